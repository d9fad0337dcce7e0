//! # meshtrace-node
//!
//! Everything around the pure protocol core ([`protocol`]) that a running
//! meshtrace node needs, as two sans-IO cores and the adapters that drive
//! them:
//!
//! * [`NodeCore`]: the node's state machine (key rotation and advertising,
//!   sightings into encounters, matching, exposures, reports), driven with
//!   explicit time and drained of [`NodeEffect`]s. [`start`] spawns the task
//!   that drives it with a store, a radio, the mesh and a clock, and returns
//!   a [`NodeHandle`].
//! * [`MeshState`]: the mesh's state machine (validated gossip, stem hops,
//!   catch-up). [`spawn`] runs it on a libp2p swarm in its own task and
//!   returns a [`P2pHandle`]; [`P2pConfig`] says how.
//! * [`store`]: the encrypted contact store ([`ContactStore`]) over an
//!   on-disk or in-memory backend.
//! * [`radio`]: the [`Radio`] trait and its backends (Bluetooth LE, a UDP
//!   simulated air, an in-memory air) with the path-loss model.
//! * [`clock`]: the [`Clock`] the node reads time from ([`SystemClock`],
//!   [`ManualClock`] for tests, a scaled clock for simulations).
//! * [`config`]: the node's TOML [`Config`]; [`daemon`]: running a node from
//!   a config and data directory; [`control`]: the local control socket the
//!   CLI talks to; [`perms`]: the file-permission checks they share.
//!
//! The types most users need are re-exported here at the root.
#![deny(missing_docs)]

pub use meshtrace_protocol as protocol;

pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
mod node;
pub mod p2p;
pub mod perms;
pub mod radio;
pub mod store;
mod trust;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::Config;
pub use node::{
    MAX_PENDING_REPORT_REQUESTS, NewReportRequest, NodeCore, NodeEffect, NodeError, NodeEvent,
    NodeHandle, NodeSettings, NodeSettingsBuilder, NodeStatus, RADIO_CLOSED, ReportSummary,
    create_report_request, start,
};
pub use p2p::{MeshState, Multiaddr, P2pConfig, P2pEvent, P2pHandle, PeerId, spawn};
pub use radio::{Radio, RadioError, RadioEvent, RadioStats};
pub use store::{ContactStore, StoreConfig, StoreError};
pub use trust::TrustedIssuers;
