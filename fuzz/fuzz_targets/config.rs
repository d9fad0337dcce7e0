//! The node's config file: `Config::parse` (TOML, unknown keys refused)
//! and `Config::validate`. Invariants: never panics; every error's Display
//! is one line; a config that parses and validates, written back with
//! `Config::to_toml`, parses and validates to an equal value; and the
//! accessors of a validated config drop nothing (every issuer key, listen
//! and bootstrap address parses).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meshtrace_node::config::{Config, ConfigError};

fn one_line(e: &ConfigError) {
    let s = e.to_string();
    assert!(!s.contains('\n'), "error of more than one line: {s:?}");
}

fuzz_target!(|data: &[u8]| {
    // `Config::load` refuses what is not UTF-8 before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    let c = match Config::parse(text, path) {
        Ok(c) => c,
        Err(e) => return one_line(&e),
    };
    if let Err(e) = c.validate(path) {
        return one_line(&e);
    }
    assert_eq!(c.trusted_issuers().len(), c.issuers.len());
    assert_eq!(c.listen_addrs().len(), c.p2p.listen.len());
    assert_eq!(c.bootstrap_addrs().len(), c.p2p.bootstrap.len());
    let written = c.to_toml().expect("a valid config serialises");
    let back = Config::parse(&written, path)
        .unwrap_or_else(|e| panic!("own output does not parse: {e}\n{written}"));
    if let Err(e) = back.validate(path) {
        panic!("own output does not validate: {e}\n{written}");
    }
    assert_eq!(back, c, "round trip changed the config:\n{written}");
});
