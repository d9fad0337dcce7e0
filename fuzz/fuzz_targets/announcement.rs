//! Announcement chunks as they arrive from the mesh. The fuzzer starts from
//! genuine chunks (the seed corpus holds them; `cargo fuzz run announcement
//! fuzz/corpus/announcement`). Invariants: never panics; the only byte
//! strings that verify are the genuine chunks themselves (canonical
//! encoding + signatures: no mutation is accepted), and a verified chunk's
//! id is the hash of its bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use meshtrace_protocol::*;
use rand_core::SeedableRng;

struct Fixture {
    issuer: IssuerPublicKey,
    network: String,
    now: UnixTime,
    genuine: Vec<Vec<u8>>,
}

/// Fixed time of the fixture (2026-11-27 12:00 UTC).
const NOW: u64 = 1_795_780_800;

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let issuer = IssuerSecretKey::generate(&mut rng);
        let key = ReportSecretKey::generate(&mut rng);
        let now = UnixTime(NOW);
        let cert = Certificate::issue(
            &issuer,
            CertificateParams {
                network_id: "fuzz".into(),
                report_key: key.public(),
                valid_from: now,
                valid_until: now.plus(86_400),
                window_first_day: now.day().minus(2),
                window_last_day: now.day(),
                max_tokens: 4096,
            },
        )
        .expect("certificate");
        let mut genuine = Vec::new();
        for n in [3usize, 100, 2100] {
            let tokens: Vec<EncounterToken> = (0..n)
                .map(|i| {
                    let mut t = [0u8; 16];
                    t[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    t[8] = n as u8;
                    EncounterToken(t)
                })
                .collect();
            for c in build_announcements(&key, &cert, &tokens, -8, now, &mut rng).expect("build") {
                genuine.push(c.bytes);
            }
        }
        // `MESHTRACE_FUZZ_WRITE_SEEDS=DIR` writes the genuine chunks as the
        // seed corpus (run once with -runs=1).
        if let Ok(dir) = std::env::var("MESHTRACE_FUZZ_WRITE_SEEDS") {
            for (i, g) in genuine.iter().enumerate() {
                let _ = std::fs::write(format!("{dir}/genuine-{i}"), g);
            }
        }
        Fixture {
            issuer: issuer.public(),
            network: "fuzz".into(),
            now,
            genuine,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let ctx = VerifyContext {
        network_id: &f.network,
        trusted_issuers: &[f.issuer],
        now: f.now,
    };
    if let Ok(v) = VerifiedAnnouncement::verify(data, &ctx) {
        assert!(
            f.genuine.iter().any(|g| g[..] == *data),
            "a mutated chunk verified"
        );
        assert_eq!(v.id(), AnnouncementId::of(data));
        assert!(v.tokens().windows(2).all(|w| w[0] < w[1]), "tokens sorted and distinct");
    }
});
