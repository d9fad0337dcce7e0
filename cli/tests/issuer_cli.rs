//! `meshtrace issuer keygen` and `meshtrace issuer certify`, run as the real
//! binary: the certificate they print verifies against the printed key, and
//! bad input fails with one clear line and a non-zero exit.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use meshtrace_node::protocol::{
    Certificate, IssuerPublicKey, ReportRequest, ReportSecretKey, UnixTime,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn meshtrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshtrace"))
        .args(args)
        .output()
        .unwrap()
}

fn today() -> UnixTime {
    UnixTime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

fn request(network: &str) -> (String, ReportSecretKey) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let key = ReportSecretKey::generate(&mut rng);
    let code = ReportRequest {
        network_id: network.into(),
        report_key: key.public(),
    }
    .to_code();
    (code, key)
}

fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
}

#[test]
fn keygen_then_certify_gives_a_certificate_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("issuer.key");
    let k = key.to_str().unwrap();
    let out = meshtrace(&["issuer", "keygen", "--out", k]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = IssuerPublicKey::from_hex(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Never overwrite an issuer key.
    fails_with(&meshtrace(&["issuer", "keygen", "--out", k]), "issuer.key");

    let (code, report_key) = request("campus");
    let start = today().day().minus(3).to_string();
    let out = meshtrace(&[
        "issuer",
        "certify",
        &code,
        "--key",
        k,
        "--network",
        "campus",
        "--window-start",
        &start,
        "--max-tokens",
        "4096",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = Certificate::from_code(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    cert.verify("campus", &[public], today()).unwrap();
    assert_eq!(cert.params().report_key, report_key.public());
    assert_eq!(cert.params().window_first_day, today().day().minus(3));
    assert_eq!(cert.params().window_last_day, today().day());
    assert_eq!(cert.params().max_tokens, 4096);
}

#[test]
fn certify_refuses_bad_input_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("issuer.key");
    let k = key.to_str().unwrap();
    assert!(
        meshtrace(&["issuer", "keygen", "--out", k])
            .status
            .success()
    );
    let (code, _) = request("campus");
    let start = today().day().minus(2).to_string();
    let truncated = &code[..code.len() - 5];
    let future = today().day().plus(2).to_string();
    let long_ago = today().day().minus(30).to_string();
    let window = ["--window-start", start.as_str()];
    let cases: Vec<(&str, &str, Vec<&str>, &str)> = vec![
        (truncated, k, window.to_vec(), "request code"),
        ("hello", k, window.to_vec(), "request code"),
        (
            &code,
            k,
            [&["--network", "town"][..], &window].concat(),
            "network",
        ),
        (
            &code,
            k,
            [&window[..], &["--window-end", &future]].concat(),
            "future",
        ),
        (&code, k, vec!["--window-start", &long_ago], "window"),
        (
            &code,
            k,
            vec!["--window-start", "2026-02-30"],
            "not a valid date",
        ),
        (
            &code,
            "/nonexistent/issuer.key",
            window.to_vec(),
            "issuer.key",
        ),
    ];
    for (request, key_file, extra, needle) in &cases {
        fails_with(&certify(request, key_file, extra), needle);
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    fails_with(&certify(&code, k, &window), "chmod 600");
}

/// `meshtrace issuer certify REQUEST --key KEY_FILE EXTRA…`.
fn certify(request: &str, key_file: &str, extra: &[&str]) -> Output {
    let mut args = vec!["issuer", "certify", request, "--key", key_file];
    args.extend_from_slice(extra);
    meshtrace(&args)
}

#[test]
fn pubkey_prints_the_public_key_of_an_existing_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("issuer.key");
    let k = key.to_str().unwrap();
    let made = meshtrace(&["issuer", "keygen", "--out", k]);
    assert!(made.status.success(), "{made:?}");
    let out = meshtrace(&["issuer", "pubkey", "--key", k]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, made.stdout, "the same public key as keygen's");
    assert!(out.stderr.is_empty());
    // A missing key file: one line naming the file.
    let missing = tmp.path().join("nope.key");
    let out = meshtrace(&["issuer", "pubkey", "--key", missing.to_str().unwrap()]);
    fails_with(&out, missing.to_str().unwrap());
    assert!(out.stdout.is_empty());
}
