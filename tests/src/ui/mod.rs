//! Helpers for the tests of the local web pages (the node's page served by
//! `meshtrace run`, the clinic's page served by `meshtrace issuer serve`):
//! a real headless browser ([`browser`]) and plain HTTP requests beside it
//! ([`http`]).

pub mod browser;
pub mod http;
