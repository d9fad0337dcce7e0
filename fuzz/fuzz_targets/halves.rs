//! A stream of legacy halves at fuzzer-chosen times into the reassembler.
//! Invariants: never panics; the buffer stays within MAX_PENDING_HALVES;
//! every frame produced hashes to the tag of the halves it came from and
//! carries the bytes of a first and a second half heard within
//! HALF_MAX_AGE_SECONDS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshtrace_protocol::*;

fuzz_target!(|data: &[u8]| {
    let mut r = HalfReassembler::new();
    let mut t = 1_000_000u64;
    let mut heard: Vec<(u64, Half)> = Vec::new();
    // Each record: 1 byte time step, then service data of one half.
    for rec in data.chunks(1 + LEGACY_HALF_SERVICE_DATA_LEN) {
        let (step, sd) = rec.split_first().unwrap_or((&0, &[]));
        t += u64::from(*step % 8);
        let Ok(Decoded::Half(h)) = decode_service_data(sd) else {
            continue;
        };
        heard.push((t, h));
        if let Some(frame) = r.push(UnixTime(t), h) {
            let tag = half_tag(&frame.id);
            assert_eq!(tag, h.tag, "frame does not hash to its tag");
            let (first, second) = frame.id.0.split_at(HALF_ID_LEN);
            let fresh = |b: &[u8], part: HalfPart| {
                heard.iter().any(|(at, x)| {
                    x.part == part
                        && x.tag == tag
                        && x.bytes[..] == *b
                        && t - at <= HALF_MAX_AGE_SECONDS
                })
            };
            assert!(fresh(first, HalfPart::First) && fresh(second, HalfPart::Second));
        }
        assert!(r.pending() <= MAX_PENDING_HALVES);
    }
});
