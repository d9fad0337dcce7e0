//! Request and certificate text codes (what users type or scan).
//! Invariants: never panics; whatever decodes re-encodes to a code that
//! decodes to the same value (canonical form), and a decoded certificate
//! never verifies under a key that did not sign it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshtrace_protocol::*;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(r) = ReportRequest::from_code(&text) {
        let again = ReportRequest::from_code(&r.to_code()).expect("own code decodes");
        assert_eq!(again.to_code(), r.to_code());
        assert!(is_valid_network_id(&r.network_id));
    }
    if let Ok(c) = Certificate::from_code(&text) {
        let again = Certificate::from_code(&c.to_code()).expect("own code decodes");
        assert_eq!(again.as_bytes(), c.as_bytes());
        let stranger = IssuerPublicKey::from_hex(&"11".repeat(32));
        if let Some(k) = stranger
            && k != c.issuer()
        {
            assert!(c.check_trust(&c.params().network_id, &[k]).is_err());
        }
    }
});
