//! BLE frames: how a rotating ID travels on the air.
//!
//! Two carriers, both decoded by [`decode_service_data`]:
//!
//! * **extended** (BLE 5 extended advertising): one service-data entry of
//!   [`EXTENDED_SERVICE_DATA_LEN`] bytes: `header | id[32]`;
//! * **legacy** (31-byte advertisements): two service-data entries of
//!   [`LEGACY_HALF_SERVICE_DATA_LEN`] bytes each, `header | tag[2] |
//!   id_half[16]`, carried by an advertisement and its scan response or by two
//!   advertising instances. The tag is a hash of the whole ID: it binds the
//!   halves and lets the receiver check the reassembled ID.
//!
//! Nothing else is on the air: no transmit power (a constant per device
//! would link rotating IDs across rotations). The receiver stores the level
//! it received at; the reporter's TX power travels in its report
//! (`docs/protocol.md` §3, §5, §10.3).
//!
//! `header = (FRAME_VERSION << 4) | kind`, kind 0 = whole ID, 1 = first half,
//! 2 = second half. The service-data entries are keyed by [`SERVICE_UUID16`],
//! which the advertisement also lists in its complete 16-bit service-UUID list
//! (scan filters match the list, not the service data).

use std::collections::VecDeque;

use sha2::{Digest, Sha256};

use crate::announce::Disposition;
use crate::keys::{ROTATING_ID_LEN, RotatingId};
use crate::time::UnixTime;

/// Our 16-bit service UUID (`0xFCB7`), in the service-UUID list and as the
/// key of the service data. See `docs/protocol.md` §3.1 on its status.
pub const SERVICE_UUID16: u16 = 0xFCB7;
/// The frame format version carried in the high nibble of the header byte.
pub const FRAME_VERSION: u8 = 2;
/// Service-data length of the extended carrier: header and 32-byte ID.
pub const EXTENDED_SERVICE_DATA_LEN: usize = 1 + ROTATING_ID_LEN;
/// Bytes of the ID carried by one legacy half.
pub const HALF_ID_LEN: usize = ROTATING_ID_LEN / 2;
/// Length of the tag binding two legacy halves.
pub const HALF_TAG_LEN: usize = 2;
/// Service-data length of one legacy half: header, tag, 16 ID bytes (19).
/// Flags + UUID list + service data take 30 of a legacy advertisement's 31
/// bytes, and it stays under BlueZ's 27-byte service-data limit.
pub const LEGACY_HALF_SERVICE_DATA_LEN: usize = 1 + HALF_TAG_LEN + HALF_ID_LEN;
/// Largest service data the decoder looks at (the extended-advertising limit
/// of one AD structure); longer input is refused.
pub const MAX_SERVICE_DATA_LEN: usize = 251;
/// Largest advertising payload (AD structures) the parser accepts: BLE 5
/// extended advertising data is at most 1650 bytes.
pub const MAX_ADVERTISING_DATA_LEN: usize = 1650;
/// Legacy advertising payload limit.
pub const LEGACY_ADVERTISING_DATA_LEN: usize = 31;
/// Domain-separation prefix of the half tag hash.
pub const HALF_TAG_DOMAIN: &[u8] = b"meshtrace/v2/half-tag";
/// A legacy half whose complement arrives more than this many seconds later is
/// stale and is not combined with it.
pub const HALF_MAX_AGE_SECONDS: u64 = 60;
/// Most unmatched legacy halves a [`HalfReassembler`] keeps.
pub const MAX_PENDING_HALVES: usize = 256;

const KIND_FULL: u8 = 0;
const KIND_FIRST: u8 = 1;
const KIND_SECOND: u8 = 2;

/// AD type: flags.
pub const AD_TYPE_FLAGS: u8 = 0x01;
/// AD type: complete list of 16-bit service UUIDs.
pub const AD_TYPE_UUID16_COMPLETE: u8 = 0x03;
/// AD type: service data with a 16-bit UUID.
pub const AD_TYPE_SERVICE_DATA16: u8 = 0x16;
/// Flags value: LE General Discoverable, BR/EDR not supported.
pub const AD_FLAGS_VALUE: u8 = 0x06;

/// A decoded rotating-ID frame: the ID and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The sender's rotating ID for the current epoch.
    pub id: RotatingId,
}

/// Which half of the ID a legacy half carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HalfPart {
    /// Bytes 0..16 of the ID.
    First,
    /// Bytes 16..32 of the ID.
    Second,
}

/// One legacy half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Half {
    /// Which half.
    pub part: HalfPart,
    /// Binding tag: the first two bytes of `SHA-256(HALF_TAG_DOMAIN || version || id)`.
    pub tag: [u8; HALF_TAG_LEN],
    /// The 16 ID bytes of this half.
    pub bytes: [u8; HALF_ID_LEN],
}

/// What one service-data entry decodes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame (extended carrier).
    Full(Frame),
    /// One legacy half, to be reassembled.
    Half(Half),
}

/// Why a frame or advertisement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// No bytes.
    #[error("empty service data")]
    Empty,
    /// More bytes than any carrier allows.
    #[error("service data of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// Header version is not [`FRAME_VERSION`].
    #[error("unsupported frame version {0}")]
    UnsupportedVersion(u8),
    /// Header kind is not 0, 1 or 2.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Length does not match the kind.
    #[error("frame kind {kind} needs {expected} bytes, got {got}")]
    WrongLength {
        /// The header kind.
        kind: u8,
        /// Required length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// An AD structure's length runs past the end of the payload.
    #[error("truncated AD structure")]
    TruncatedAd,
    /// The AD payload is longer than [`MAX_ADVERTISING_DATA_LEN`].
    #[error("advertising data of {0} bytes exceeds the limit")]
    AdTooLong(usize),
}

impl FrameError {
    /// The stable error code of this refusal (docs/protocol.md §16).
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::Empty => "frame_empty",
            FrameError::TooLong(_) => "frame_too_long",
            FrameError::UnsupportedVersion(_) => "frame_unsupported_version",
            FrameError::UnknownKind(_) => "frame_unknown_kind",
            FrameError::WrongLength { .. } => "frame_wrong_length",
            FrameError::TruncatedAd => "ad_truncated",
            FrameError::AdTooLong(_) => "ad_too_long",
        }
    }

    /// Every frame refusal is [`Disposition::Reject`]: the bytes are not a
    /// meshtrace frame.
    pub fn disposition(&self) -> Disposition {
        Disposition::Reject
    }
}

fn header(kind: u8) -> u8 {
    (FRAME_VERSION << 4) | kind
}

/// The tag binding the two legacy halves of `id`.
pub fn half_tag(id: &RotatingId) -> [u8; HALF_TAG_LEN] {
    let mut h = Sha256::new();
    h.update(HALF_TAG_DOMAIN);
    h.update([FRAME_VERSION]);
    h.update(id.0);
    let d = h.finalize();
    [d[0], d[1]]
}

impl Frame {
    /// Service data of the extended carrier.
    pub fn encode_extended(&self) -> [u8; EXTENDED_SERVICE_DATA_LEN] {
        let mut out = [0u8; EXTENDED_SERVICE_DATA_LEN];
        out[0] = header(KIND_FULL);
        out[1..].copy_from_slice(&self.id.0);
        out
    }

    /// Service data of the two legacy halves (first, second).
    pub fn encode_legacy(
        &self,
    ) -> (
        [u8; LEGACY_HALF_SERVICE_DATA_LEN],
        [u8; LEGACY_HALF_SERVICE_DATA_LEN],
    ) {
        let tag = half_tag(&self.id);
        let mk = |kind: u8, part: &[u8]| {
            let mut out = [0u8; LEGACY_HALF_SERVICE_DATA_LEN];
            out[0] = header(kind);
            out[1..3].copy_from_slice(&tag);
            out[3..].copy_from_slice(part);
            out
        };
        (
            mk(KIND_FIRST, &self.id.0[..HALF_ID_LEN]),
            mk(KIND_SECOND, &self.id.0[HALF_ID_LEN..]),
        )
    }
}

/// Decodes one service-data entry (the bytes after the 16-bit UUID).
pub fn decode_service_data(data: &[u8]) -> Result<Decoded, FrameError> {
    let Some(&h) = data.first() else {
        return Err(FrameError::Empty);
    };
    if data.len() > MAX_SERVICE_DATA_LEN {
        return Err(FrameError::TooLong(data.len()));
    }
    let version = h >> 4;
    if version != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    let kind = h & 0x0f;
    let expected = match kind {
        KIND_FULL => EXTENDED_SERVICE_DATA_LEN,
        KIND_FIRST | KIND_SECOND => LEGACY_HALF_SERVICE_DATA_LEN,
        other => return Err(FrameError::UnknownKind(other)),
    };
    if data.len() != expected {
        return Err(FrameError::WrongLength {
            kind,
            expected,
            got: data.len(),
        });
    }
    if kind == KIND_FULL {
        let mut id = [0u8; ROTATING_ID_LEN];
        id.copy_from_slice(&data[1..]);
        return Ok(Decoded::Full(Frame { id: RotatingId(id) }));
    }
    let mut bytes = [0u8; HALF_ID_LEN];
    bytes.copy_from_slice(&data[3..]);
    Ok(Decoded::Half(Half {
        part: if kind == KIND_FIRST {
            HalfPart::First
        } else {
            HalfPart::Second
        },
        tag: [data[1], data[2]],
        bytes,
    }))
}

/// A full legacy or extended advertising payload (AD structures): flags,
/// complete 16-bit UUID list with [`SERVICE_UUID16`], and the service data.
pub fn advertising_data(service_data: &[u8]) -> Vec<u8> {
    let uuid = SERVICE_UUID16.to_le_bytes();
    let mut out = Vec::with_capacity(11 + service_data.len());
    out.extend_from_slice(&[2, AD_TYPE_FLAGS, AD_FLAGS_VALUE]);
    out.extend_from_slice(&[3, AD_TYPE_UUID16_COMPLETE, uuid[0], uuid[1]]);
    // AD length byte counts type + UUID + data; callers pass at most one
    // carrier's service data, far below 252.
    let len = u8::try_from(3 + service_data.len()).unwrap_or(u8::MAX);
    out.extend_from_slice(&[len, AD_TYPE_SERVICE_DATA16, uuid[0], uuid[1]]);
    out.extend_from_slice(service_data);
    out
}

/// Finds our service data in a raw advertising payload. `Ok(None)` when the
/// payload is well-formed but carries no meshtrace service data.
pub fn find_service_data(ad: &[u8]) -> Result<Option<&[u8]>, FrameError> {
    if ad.len() > MAX_ADVERTISING_DATA_LEN {
        return Err(FrameError::AdTooLong(ad.len()));
    }
    let mut rest = ad;
    let mut found = None;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0 {
            // Early termination (zero padding), allowed by the Core spec.
            break;
        }
        let len = usize::from(len);
        if tail.len() < len {
            return Err(FrameError::TruncatedAd);
        }
        let (structure, next) = tail.split_at(len);
        if structure[0] == AD_TYPE_SERVICE_DATA16
            && structure.len() >= 3
            && u16::from_le_bytes([structure[1], structure[2]]) == SERVICE_UUID16
            && found.is_none()
        {
            found = Some(&structure[3..]);
        }
        rest = next;
    }
    Ok(found)
}

/// Counters kept by a [`HalfReassembler`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Frames produced.
    pub reassembled: u64,
    /// Halves dropped because their complement was too old.
    pub stale: u64,
    /// Half pairs with the same tag whose reassembled ID did not hash to it.
    pub mismatched: u64,
    /// Halves evicted because the buffer was full.
    pub evicted: u64,
}

/// Pairs legacy halves into frames. Halves are matched by tag alone (two
/// advertising instances get two different random BLE addresses), checked
/// against the tag hash, and never combined across more than
/// [`HALF_MAX_AGE_SECONDS`].
#[derive(Debug, Default)]
pub struct HalfReassembler {
    pending: VecDeque<(UnixTime, Half)>,
    stats: ReassemblyStats,
}

impl HalfReassembler {
    /// An empty reassembler.
    pub fn new() -> HalfReassembler {
        HalfReassembler::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Number of halves waiting for a complement.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes one half heard at `at`. Returns the frame when a fresh,
    /// consistent complement is known. Both halves are kept (until stale), so
    /// every later report of either half yields the frame again, as a new
    /// sighting.
    pub fn push(&mut self, at: UnixTime, half: Half) -> Option<Frame> {
        // Drop everything stale relative to this report.
        let before = self.pending.len();
        self.pending
            .retain(|(t, _)| at.seconds_since(*t) <= HALF_MAX_AGE_SECONDS);
        self.stats.stale += (before - self.pending.len()) as u64;

        let mut result = None;
        for (_, other) in self.pending.iter().rev() {
            if other.tag != half.tag || other.part == half.part {
                continue;
            }
            let (first, second) = match half.part {
                HalfPart::First => (&half, other),
                HalfPart::Second => (other, &half),
            };
            let mut id = [0u8; ROTATING_ID_LEN];
            id[..HALF_ID_LEN].copy_from_slice(&first.bytes);
            id[HALF_ID_LEN..].copy_from_slice(&second.bytes);
            let id = RotatingId(id);
            if half_tag(&id) == half.tag {
                result = Some(Frame { id });
                break;
            }
            self.stats.mismatched += 1;
        }
        // Replace an older copy of the same half (same part, tag and bytes),
        // otherwise add it.
        self.pending
            .retain(|(_, h)| !(h.part == half.part && h.tag == half.tag && h.bytes == half.bytes));
        if self.pending.len() >= MAX_PENDING_HALVES {
            self.pending.pop_front();
            self.stats.evicted += 1;
        }
        self.pending.push_back((at, half));
        if result.is_some() {
            self.stats.reassembled += 1;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seed: u8) -> Frame {
        let mut id = [0u8; 32];
        for (i, b) in id.iter_mut().enumerate() {
            *b = seed.wrapping_mul(31).wrapping_add(i as u8);
        }
        Frame { id: RotatingId(id) }
    }

    fn half(d: &[u8]) -> Half {
        match decode_service_data(d).unwrap() {
            Decoded::Half(h) => h,
            Decoded::Full(_) => panic!("expected a half"),
        }
    }

    #[test]
    fn extended_round_trip() {
        let f = frame(1);
        let sd = f.encode_extended();
        assert_eq!(decode_service_data(&sd), Ok(Decoded::Full(f)));
    }

    #[test]
    fn legacy_fits_31_bytes() {
        let (a, b) = frame(2).encode_legacy();
        assert_eq!(a.len(), 19);
        assert_eq!(advertising_data(&a).len(), 30);
        assert_eq!(advertising_data(&b).len(), 30);
        assert!(advertising_data(&a).len() <= LEGACY_ADVERTISING_DATA_LEN);
        let ad = advertising_data(&a);
        assert_eq!(find_service_data(&ad), Ok(Some(&a[..])));
    }

    #[test]
    fn halves_reassemble_in_either_order() {
        let f = frame(3);
        let (a, b) = f.encode_legacy();
        let mut r = HalfReassembler::new();
        assert_eq!(r.push(UnixTime(100), half(&b)), None);
        assert_eq!(r.push(UnixTime(101), half(&a)), Some(f));
        // A later report of either half yields a new sighting.
        assert_eq!(r.push(UnixTime(110), half(&b)), Some(f));
    }

    #[test]
    fn stale_halves_are_rejected() {
        let f = frame(4);
        let (a, b) = f.encode_legacy();
        let mut r = HalfReassembler::new();
        r.push(UnixTime(100), half(&a));
        assert_eq!(
            r.push(UnixTime(100 + HALF_MAX_AGE_SECONDS + 1), half(&b)),
            None
        );
        assert_eq!(r.stats().stale, 1);
    }

    #[test]
    fn mismatched_halves_with_forged_tag_are_rejected() {
        let f = frame(5);
        let g = frame(6);
        let (a, _) = f.encode_legacy();
        let (_, mut b2) = g.encode_legacy();
        // Forge g's second half to carry f's tag.
        b2[1..3].copy_from_slice(&a[1..3]);
        let mut r = HalfReassembler::new();
        r.push(UnixTime(1), half(&a));
        assert_eq!(r.push(UnixTime(2), half(&b2)), None);
        assert_eq!(r.stats().mismatched, 1);
    }

    #[test]
    fn foreign_uuid_is_ignored() {
        let f = frame(7);
        let mut ad = advertising_data(&f.encode_extended());
        // Rewrite the service-data UUID (offset 7 + 2).
        ad[9] ^= 0xff;
        assert_eq!(find_service_data(&ad), Ok(None));
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        let f = frame(8);
        let mut sd = f.encode_extended();
        sd[0] = 0x30;
        assert_eq!(
            decode_service_data(&sd),
            Err(FrameError::UnsupportedVersion(3))
        );
        sd[0] = 0x10;
        assert_eq!(
            decode_service_data(&sd),
            Err(FrameError::UnsupportedVersion(1)),
            "a version 1 frame is refused"
        );
        sd[0] = 0x23;
        assert_eq!(decode_service_data(&sd), Err(FrameError::UnknownKind(3)));
        assert_eq!(decode_service_data(&[]), Err(FrameError::Empty));
        assert!(matches!(
            decode_service_data(&sd[..20]),
            Err(FrameError::UnknownKind(3))
        ));
        let sd = f.encode_extended();
        assert_eq!(sd.len(), 33);
        assert!(matches!(
            decode_service_data(&sd[..32]),
            Err(FrameError::WrongLength { .. })
        ));
        // The 34-byte layout that still carried a TX power byte is refused.
        let mut with_tx = vec![0x20, 0xf8];
        with_tx.extend_from_slice(&f.id.0);
        assert_eq!(
            decode_service_data(&with_tx),
            Err(FrameError::WrongLength {
                kind: 0,
                expected: 33,
                got: 34
            })
        );
        assert_eq!(
            decode_service_data(&[0x10; 300]),
            Err(FrameError::TooLong(300))
        );
        assert_eq!(
            find_service_data(&[5, 0x16, 1]),
            Err(FrameError::TruncatedAd)
        );
    }

    #[test]
    fn reassembler_is_bounded() {
        let mut r = HalfReassembler::new();
        for i in 0..(MAX_PENDING_HALVES as u32 + 50) {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_be_bytes());
            r.push(
                UnixTime(1),
                Half {
                    part: HalfPart::First,
                    tag: [i as u8, (i >> 8) as u8],
                    bytes: b,
                },
            );
        }
        assert_eq!(r.pending(), MAX_PENDING_HALVES);
        assert_eq!(r.stats().evicted, 50);
    }
}
