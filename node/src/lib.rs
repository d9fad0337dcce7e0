//! # meshtrace-node
//!
//! The adapters around the pure protocol core: the encrypted store, the radio
//! backends, the libp2p mesh, the clock, and the one task that drives them.
//! This crate is being built issue by issue: today it holds the encrypted
//! contact store ([`store`]), the clocks ([`clock`]) and the radio layer
//! ([`radio`]).
#![deny(missing_docs)]

pub use meshtrace_protocol as protocol;

pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod node;
pub mod p2p;
pub mod perms;
pub mod radio;
pub mod store;
pub mod trust;
