//! # meshtrace-ui
//!
//! The face of a meshtrace node for people who are not engineers: a local
//! web page in English and Vietnamese served by `meshtrace run` on
//! 127.0.0.1, QR codes between a person and a clinic, the CLI's notices in
//! the same words, and desktop notifications.
//!
//! * [`server`]: the page server ([`UiServer`]) and its routes;
//! * [`gate`]: what every request passes first — Host/Origin (403), login
//!   (401), body limits (413), CSRF (403) — shared with the clinic's page;
//! * [`auth`]: the secret, the one-time login codes, session cookies and
//!   CSRF tokens;
//! * [`pages`] and [`layout`]: the pages, compiled templates (maud);
//! * [`i18n`]: the Fluent bundles and the choice of language;
//! * [`qr`]: QR codes drawn (SVG, terminal) and read (PNG/JPEG);
//! * [`notify`]: desktop notifications;
//! * [`backend`]: how the page talks to the node (its control socket).
#![deny(missing_docs)]

pub mod auth;
pub mod backend;
pub mod gate;
pub mod i18n;
pub mod issuer;
pub mod layout;
pub mod notify;
pub mod pages;
pub mod qr;
pub mod server;

pub use i18n::{Lang, Tr};
pub use server::{App, PageSettings, UiError, UiServer};
