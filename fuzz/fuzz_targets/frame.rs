//! Advertising data → service data → frame. Invariants: never panics;
//! service data over MAX_SERVICE_DATA_LEN is refused; a decoded frame or
//! half re-encodes to exactly the service-data bytes it came from (one valid
//! encoding per frame).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshtrace_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(sd)) = find_service_data(data) {
        assert!(sd.len() <= MAX_ADVERTISING_DATA_LEN);
        check(sd);
    }
    check(data);
});

fn check(sd: &[u8]) {
    let decoded = decode_service_data(sd);
    if sd.len() > MAX_SERVICE_DATA_LEN {
        assert!(decoded.is_err(), "oversized service data accepted");
    }
    match decoded {
        Ok(Decoded::Full(f)) => assert_eq!(&f.encode_extended()[..], sd),
        Ok(Decoded::Half(h)) => {
            assert_eq!(sd.len(), LEGACY_HALF_SERVICE_DATA_LEN);
            assert_eq!(&sd[1..3], &h.tag[..]);
            assert_eq!(&sd[3..], &h.bytes[..]);
        }
        Err(_) => {}
    }
}
