//! How the typed config values are read from and written to TOML. Each
//! value is parsed once, when the file is read; its error names the setting
//! (the TOML error adds the file and the line).

use std::time::Duration;

use libp2p::Multiaddr;
use meshtrace_protocol::IssuerPublicKey;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

use super::{parse_issuer_key, parse_multiaddr};

fn addrs_to_toml<S: Serializer>(list: &[Multiaddr], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(list.iter().map(ToString::to_string))
}

fn addrs_from_toml<'de, D: Deserializer<'de>>(
    setting: &str,
    d: D,
) -> Result<Vec<Multiaddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|a| parse_multiaddr(a).map_err(|r| D::Error::custom(format!("{setting}: {r}"))))
        .collect()
}

/// `p2p.listen`: a list of multiaddrs.
pub(super) mod listen {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(list: &[Multiaddr], s: S) -> Result<S::Ok, S::Error> {
        addrs_to_toml(list, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Multiaddr>, D::Error> {
        addrs_from_toml("p2p.listen", d)
    }
}

/// `p2p.bootstrap`: a list of multiaddrs.
pub(super) mod bootstrap {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(list: &[Multiaddr], s: S) -> Result<S::Ok, S::Error> {
        addrs_to_toml(list, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Multiaddr>, D::Error> {
        addrs_from_toml("p2p.bootstrap", d)
    }
}

/// `issuer.key`: 64 hex digits of a strong Ed25519 key.
pub(super) mod issuer_key {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(k: &IssuerPublicKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&k.to_hex())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<IssuerPublicKey, D::Error> {
        let text = String::deserialize(d)?;
        parse_issuer_key(&text).map_err(|r| D::Error::custom(format!("issuer.key: {r}")))
    }
}

/// A duration written as whole seconds.
pub(super) mod seconds {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(t: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(t.as_secs())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Parses a duration written as a number and a unit: `"60s"`, `"4s"`,
/// `"1.5s"`, `"500ms"`, `"2min"` (spaces allowed between them).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "min" | "m" => 60.0,
        _ => f64::NAN,
    };
    number
        .parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| {
            format!(
                "{:?} is not a duration (write a number and a unit: \"60s\", \"4s\", \
                 \"1.5s\", \"500ms\" or \"2min\")",
                text.escape_debug().to_string()
            )
        })
}

/// How a duration is written back: whole seconds as `"60s"`, else
/// milliseconds (`"1500ms"`).
pub(crate) fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn opt_duration_from_toml<'de, D: Deserializer<'de>>(
    setting: &str,
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(|r| D::Error::custom(format!("{setting}: {r}")))
}

fn opt_duration_to_toml<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&duration_text(*d)),
        None => s.serialize_none(),
    }
}

/// `radio.scan_interval`: an optional duration.
pub(super) mod scan_interval {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        opt_duration_to_toml(d, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        opt_duration_from_toml("radio.scan_interval", d)
    }
}

/// `radio.scan_window`: an optional duration.
pub(super) mod scan_window {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        opt_duration_to_toml(d, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        opt_duration_from_toml("radio.scan_window", d)
    }
}
