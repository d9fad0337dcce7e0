//! End-to-end scenarios and the simulator for meshtrace (test-only crate).
#![deny(missing_docs)]
