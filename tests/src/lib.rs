//! End-to-end scenarios for meshtrace (test-only crate; the simulator is
//! `meshtrace-sim`).
//!
//! [`mesh`] has the helpers the mesh tests share: a certified test network
//! and nodes listening on real TCP sockets on 127.0.0.1. Every bounded wait
//! takes its limit from [`deadline`], which scales it to a busy machine
//! ([`timing`]).
#![deny(missing_docs)]

pub mod ble_vm;
pub mod cli;
pub mod mesh;
pub mod netns;
pub mod timing;
pub mod town;
pub mod ui;
pub mod world;

pub use timing::deadline;

/// The simulator, now its own crate (`meshtrace-sim`).
pub use meshtrace_sim as sim;
