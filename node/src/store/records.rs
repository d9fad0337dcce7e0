//! On-disk record encodings (protobuf via prost), the plaintext inside each
//! sealed value. Decoding failures of authenticated plaintext mean a bug or a
//! newer writer, and are reported as damage.

use meshtrace_protocol::{Day, DayRisk, Encounter, UnixTime};
use prost::Message;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A day key as stored; its key bytes are wiped when dropped.
#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
pub(crate) struct DayKeyRecord {
    #[prost(uint32, tag = "1")]
    pub(crate) day: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) key: Vec<u8>,
}

/// An own epoch secret as stored; its secret bytes are wiped when dropped.
#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
pub(crate) struct EpochKeyRecord {
    #[prost(uint32, tag = "1")]
    pub(crate) epoch: u32,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) secret: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct EncounterRecord {
    #[prost(uint64, tag = "1")]
    pub(crate) first_seen: u64,
    #[prost(uint64, tag = "2")]
    pub(crate) last_seen: u64,
    /// Concatenated 16-byte tokens.
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) tokens: Vec<u8>,
    /// 5 bytes per entry: received level (u8, dB; schema 1: attenuation) ||
    /// seconds (u32 big-endian).
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) profile: Vec<u8>,
    #[prost(uint32, tag = "5")]
    pub(crate) sightings: u32,
}

impl EncounterRecord {
    pub(crate) fn from_encounter(e: &Encounter) -> EncounterRecord {
        EncounterRecord {
            first_seen: e.first_seen.0,
            last_seen: e.last_seen.0,
            tokens: e.tokens.iter().flat_map(|t| t.0).collect(),
            profile: e
                .profile
                .iter()
                .flat_map(|&(a, s)| {
                    let mut b = [0u8; 5];
                    b[0] = a;
                    b[1..].copy_from_slice(&s.to_be_bytes());
                    b
                })
                .collect(),
            sightings: e.sightings,
        }
    }

    pub(crate) fn to_encounter(&self) -> Option<Encounter> {
        if !self.profile.len().is_multiple_of(5) {
            return None;
        }
        Some(Encounter {
            tokens: meshtrace_protocol::tokens_from_bytes(&self.tokens)?,
            first_seen: UnixTime(self.first_seen),
            last_seen: UnixTime(self.last_seen),
            profile: self
                .profile
                .chunks_exact(5)
                .map(|c| (c[0], u32::from_be_bytes([c[1], c[2], c[3], c[4]])))
                .collect(),
            sightings: self.sightings,
        })
    }
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct AnnouncementMetaRecord {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub(crate) expires_at: u64,
    #[prost(uint32, tag = "3")]
    pub(crate) last_day: u32,
    #[prost(uint64, tag = "4")]
    pub(crate) received_at: u64,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct DayRiskRecord {
    #[prost(uint32, tag = "1")]
    pub(crate) day: u32,
    #[prost(double, tag = "2")]
    pub(crate) weighted_minutes: f64,
    #[prost(double, tag = "3")]
    pub(crate) close_minutes: f64,
    #[prost(uint32, tag = "4")]
    pub(crate) contacts: u32,
    #[prost(bool, tag = "5")]
    pub(crate) high_risk: bool,
    /// Estimated minutes within 2 m; absent (0) in records written before
    /// it existed, which then show their weighted minutes.
    #[prost(double, tag = "6")]
    pub(crate) estimated_minutes: f64,
}

impl DayRiskRecord {
    pub(crate) fn from_risk(d: &DayRisk) -> DayRiskRecord {
        DayRiskRecord {
            day: d.day.0,
            weighted_minutes: d.weighted_minutes,
            close_minutes: d.close_minutes,
            contacts: d.contacts,
            high_risk: d.high_risk,
            estimated_minutes: d.estimated_minutes,
        }
    }

    pub(crate) fn to_risk(&self) -> DayRisk {
        DayRisk {
            day: Day(self.day),
            weighted_minutes: self.weighted_minutes,
            close_minutes: self.close_minutes,
            contacts: self.contacts,
            estimated_minutes: if self.estimated_minutes > 0.0 {
                self.estimated_minutes
            } else {
                self.weighted_minutes
            },
            high_risk: self.high_risk,
        }
    }
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct ExposureRecord {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) report_key: Vec<u8>,
    #[prost(uint64, repeated, tag = "2")]
    pub(crate) encounters: Vec<u64>,
    #[prost(message, repeated, tag = "3")]
    pub(crate) days: Vec<DayRiskRecord>,
    #[prost(bool, tag = "4")]
    pub(crate) high_risk: bool,
    #[prost(uint64, tag = "5")]
    pub(crate) found_at: u64,
    #[prost(uint64, tag = "6")]
    pub(crate) updated_at: u64,
}

#[derive(Clone, PartialEq, Message)]
pub(crate) struct IssuerRecord {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) key: Vec<u8>,
    #[prost(string, tag = "2")]
    pub(crate) label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiped_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn key_records_wipe_their_secrets_when_dropped() {
        // Compile-time: both secret-holding records implement ZeroizeOnDrop.
        wiped_on_drop::<DayKeyRecord>();
        wiped_on_drop::<EpochKeyRecord>();
        // And zeroizing one clears its bytes.
        let mut r = EpochKeyRecord {
            epoch: 7,
            secret: vec![0xAB; 32],
        };
        r.zeroize();
        assert!(r.secret.is_empty());
        assert_eq!(r.epoch, 0);
    }
}
