//! # meshtrace-node
//!
//! The adapters around the pure protocol core: the encrypted store, the radio
//! backends, the libp2p mesh, the clock, and the one task that drives them.
//! This crate is being built issue by issue; today it re-exports the protocol
//! core so downstream crates have one dependency to name.
#![deny(missing_docs)]

pub use meshtrace_protocol as protocol;
