//! Wire encoding: protobuf (proto3) messages written with prost's derive
//! macros, plus the canonical-form rule and the text codes people copy.
//!
//! Canonical form: fields in ascending tag order, each at most once, scalar
//! fields equal to their default (0, empty) omitted, minimal varints, no
//! unknown fields. This is exactly what prost emits; a decoder re-encodes what
//! it parsed and refuses input whose bytes differ, so every message has one
//! encoding and its hash is its identity.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::announce::Disposition;

/// `ReportRequest` (text code `MTRQ1:`): asks an issuer to certify a report key.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ReportRequestMsg {
    #[prost(uint32, tag = "1")]
    pub(crate) version: u32,
    #[prost(string, tag = "2")]
    pub(crate) network_id: String,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) report_key: Vec<u8>,
}

/// The signed part of a certificate.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct CertificateBodyMsg {
    #[prost(uint32, tag = "1")]
    pub(crate) version: u32,
    #[prost(string, tag = "2")]
    pub(crate) network_id: String,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) issuer_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) report_key: Vec<u8>,
    #[prost(uint64, tag = "5")]
    pub(crate) valid_from: u64,
    #[prost(uint64, tag = "6")]
    pub(crate) valid_until: u64,
    #[prost(uint32, tag = "7")]
    pub(crate) window_first_day: u32,
    #[prost(uint32, tag = "8")]
    pub(crate) window_last_day: u32,
    #[prost(uint32, tag = "9")]
    pub(crate) max_tokens: u32,
}

/// A certificate (text code `MTCT1:`): body bytes and the issuer's signature.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct CertificateMsg {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) body: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) signature: Vec<u8>,
}

/// The signed part of one announcement chunk.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct AnnouncementBodyMsg {
    #[prost(uint32, tag = "1")]
    pub(crate) version: u32,
    #[prost(string, tag = "2")]
    pub(crate) network_id: String,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) certificate: Vec<u8>,
    #[prost(uint32, tag = "4")]
    pub(crate) chunk_index: u32,
    #[prost(uint32, tag = "5")]
    pub(crate) chunk_count: u32,
    #[prost(uint64, tag = "6")]
    pub(crate) created_at: u64,
    #[prost(bytes = "vec", tag = "7")]
    pub(crate) fingerprints: Vec<u8>,
    #[prost(uint32, tag = "8")]
    pub(crate) fingerprint_count: u32,
    /// The reporter's calibrated TX power in dBm (zigzag varint); checked
    /// to lie in `i8` (§10.5 step 18).
    #[prost(sint32, tag = "9")]
    pub(crate) tx_power: i32,
}

/// One announcement chunk on the wire: body bytes and the report key's signature.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct AnnouncementMsg {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) body: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) signature: Vec<u8>,
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes than the message type allows.
    #[error("{what} of {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// Message type.
        what: &'static str,
        /// Input length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Not a valid protobuf encoding of the message (truncated, bad varint,
    /// wrong wire type).
    #[error("{0} is not valid protobuf")]
    Malformed(&'static str),
    /// Valid protobuf, but not in canonical form (unknown or repeated fields,
    /// default values present, non-minimal varints, wrong field order).
    #[error("{0} is not in canonical form")]
    NonCanonical(&'static str),
    /// A message of protocol version 1 (refused since version 2: its
    /// tokens, frames and signatures are computed differently).
    #[error(
        "{what} was made with protocol version 1, which this node no longer accepts; a new one made with version 2 is needed"
    )]
    Version1 {
        /// Message type.
        what: &'static str,
    },
    /// A version this implementation does not speak.
    #[error("{what} version {version} is not supported")]
    UnsupportedVersion {
        /// Message type.
        what: &'static str,
        /// The version found.
        version: u32,
    },
    /// A fixed-size field has the wrong length.
    #[error("{what}: field {field} must be {expected} bytes, got {got}")]
    WrongLength {
        /// Message type.
        what: &'static str,
        /// Field name.
        field: &'static str,
        /// Required length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A network id that is empty, too long or has characters outside
    /// `[a-z0-9._-]`.
    #[error("invalid network id")]
    BadNetworkId,
    /// A text code without the expected prefix.
    #[error("not a {0} code (wrong prefix)")]
    WrongPrefix(&'static str),
    /// A text code with characters outside base32.
    #[error("{0} code contains characters that are not base32")]
    BadBase32(&'static str),
    /// A text code whose checksum does not match (a typo or a truncated copy).
    #[error("{0} code checksum mismatch (mistyped or incomplete code)")]
    BadChecksum(&'static str),
    /// A text code that ends too early: a copy that was cut off.
    #[error("{0} code is incomplete: it seems cut off (copy the whole code)")]
    Truncated(&'static str),
}

impl DecodeError {
    /// The stable error code of this refusal (docs/protocol.md §16).
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::TooLong { .. } => "too_long",
            DecodeError::Malformed(_) => "malformed",
            DecodeError::NonCanonical(_) => "non_canonical",
            DecodeError::Version1 { .. } => "version_1",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::WrongLength { .. } => "wrong_length",
            DecodeError::BadNetworkId => "bad_network_id",
            DecodeError::WrongPrefix(_) => "wrong_prefix",
            DecodeError::BadBase32(_) => "bad_base32",
            DecodeError::BadChecksum(_) => "bad_checksum",
            DecodeError::Truncated(_) => "truncated_code",
        }
    }

    /// Every decoding refusal is [`Disposition::Reject`].
    pub fn disposition(&self) -> Disposition {
        Disposition::Reject
    }
}

/// Decodes `bytes` as `M`, refusing oversized and non-canonical input.
pub(crate) fn decode_canonical<M: Message + Default>(
    bytes: &[u8],
    what: &'static str,
    max: usize,
) -> Result<M, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLong {
            what,
            len: bytes.len(),
            max,
        });
    }
    if !well_formed(bytes) {
        return Err(DecodeError::Malformed(what));
    }
    // After `well_formed`, prost refuses exactly a known field with another
    // wire type than its schema's and a string field that is not UTF-8
    // (docs/protocol.md §8.2, rules M5 and M6).
    let msg = M::decode(bytes).map_err(|_| DecodeError::Malformed(what))?;
    if msg.encoded_len() != bytes.len() || msg.encode_to_vec() != bytes {
        return Err(DecodeError::NonCanonical(what));
    }
    Ok(msg)
}

/// Reads a protobuf varint at `*pos`: at most 10 bytes, the tenth at most
/// `0x01` (the value fits 64 bits). `None` when it is longer, too large or
/// cut off by the end of `buf`.
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        if i == 9 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Rules M1–M4 of docs/protocol.md §8.2, which need no schema: the input is
/// a sequence of whole fields, each a key (a varint of at most `2^32 − 1`
/// with a field number of at least 1) and a value of wire type 0 (varint),
/// 1 (8 bytes), 2 (a varint length and that many bytes) or 5 (4 bytes).
/// Groups (wire types 3 and 4) and wire types 6 and 7 are malformed here,
/// whether or not the field is known.
fn well_formed(bytes: &[u8]) -> bool {
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(key) = read_varint(bytes, &mut pos) else {
            return false;
        };
        if key > u64::from(u32::MAX) || key >> 3 == 0 {
            return false;
        }
        let size = match key & 7 {
            0 => match read_varint(bytes, &mut pos) {
                Some(_) => 0,
                None => return false,
            },
            1 => 8,
            2 => match read_varint(bytes, &mut pos) {
                Some(n) => n,
                None => return false,
            },
            5 => 4,
            _ => return false,
        };
        let left = (bytes.len() - pos) as u64;
        if size > left {
            return false;
        }
        pos += size as usize;
    }
    true
}

/// Refuses any version but `expected`: version 1 with its own plain
/// reason ([`DecodeError::Version1`]), others as unsupported.
pub(crate) fn check_version(
    found: u32,
    expected: u32,
    what: &'static str,
) -> Result<(), DecodeError> {
    match found {
        v if v == expected => Ok(()),
        1 => Err(DecodeError::Version1 { what }),
        version => Err(DecodeError::UnsupportedVersion { what, version }),
    }
}

pub(crate) fn fixed<const N: usize>(
    v: &[u8],
    what: &'static str,
    field: &'static str,
) -> Result<[u8; N], DecodeError> {
    v.try_into().map_err(|_| DecodeError::WrongLength {
        what,
        field,
        expected: N,
        got: v.len(),
    })
}

/// Longest network id in bytes.
pub const MAX_NETWORK_ID_LEN: usize = 64;

/// True when `id` is a valid network id: 1–64 bytes of `[a-z0-9._-]`.
pub fn is_valid_network_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NETWORK_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Length of the checksum appended to text codes.
pub const CODE_CHECKSUM_LEN: usize = 4;
/// Domain prefix of the text-code checksum hash.
pub const CODE_CHECKSUM_DOMAIN: &[u8] = b"meshtrace/v1/code-checksum";

fn checksum(prefix: &str, payload: &[u8]) -> [u8; CODE_CHECKSUM_LEN] {
    let mut h = Sha256::new();
    h.update(CODE_CHECKSUM_DOMAIN);
    h.update(prefix.as_bytes());
    h.update(payload);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// `prefix || BASE32(payload || checksum)` in upper case without padding:
/// only characters of QR alphanumeric mode.
pub(crate) fn to_code(prefix: &str, payload: &[u8]) -> String {
    let mut buf = payload.to_vec();
    buf.extend_from_slice(&checksum(prefix, payload));
    format!("{prefix}{}", data_encoding::BASE32_NOPAD.encode(&buf))
}

/// Inverse of [`to_code`]. Case, spaces, dashes and line breaks are ignored
/// so a code copied by hand or wrapped by a terminal still reads.
pub(crate) fn from_code(
    prefix: &str,
    what: &'static str,
    code: &str,
    max_payload: usize,
) -> Result<Vec<u8>, DecodeError> {
    let cleaned: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let Some(body) = cleaned.strip_prefix(prefix) else {
        return Err(DecodeError::WrongPrefix(what));
    };
    // 8 base32 characters carry 5 bytes.
    let max_chars = (max_payload + CODE_CHECKSUM_LEN).div_ceil(5) * 8;
    if body.len() > max_chars {
        return Err(DecodeError::TooLong {
            what,
            len: body.len(),
            max: max_chars,
        });
    }
    if !body
        .bytes()
        .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
    {
        return Err(DecodeError::BadBase32(what));
    }
    // Every character is base32 here: a length that no encoding has, or
    // stray bits after the last byte, mean the copy stops mid-code.
    let buf = data_encoding::BASE32_NOPAD
        .decode(body.as_bytes())
        .map_err(|e| match e.kind {
            data_encoding::DecodeKind::Length | data_encoding::DecodeKind::Trailing => {
                DecodeError::Truncated(what)
            }
            _ => DecodeError::BadBase32(what),
        })?;
    if buf.len() < CODE_CHECKSUM_LEN {
        return Err(DecodeError::Truncated(what));
    }
    let (payload, sum) = buf.split_at(buf.len() - CODE_CHECKSUM_LEN);
    if sum != checksum(prefix, payload) {
        return Err(if fields_end_before(&buf, payload.len()) {
            DecodeError::BadChecksum(what)
        } else {
            DecodeError::Truncated(what)
        });
    }
    Ok(payload.to_vec())
}

/// Whether the protobuf fields of `buf` end exactly at `end`, where the
/// checksum of a whole code begins. A code cut short fails this: its last
/// field runs past the end, or into the checksum's place; a typo usually
/// leaves the field layout intact.
fn fields_end_before(buf: &[u8], end: usize) -> bool {
    fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *buf.get(*pos)?;
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut pos = 0;
    while pos < end {
        let Some(key) = varint(buf, &mut pos) else {
            return false;
        };
        let skip = match key & 7 {
            0 => varint(buf, &mut pos).map(|_| 0),
            1 => Some(8),
            2 => varint(buf, &mut pos),
            5 => Some(4),
            _ => None,
        };
        let Some(next) = skip
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| pos.checked_add(n))
        else {
            return false;
        };
        if next > buf.len() {
            return false;
        }
        pos = next;
    }
    pos == end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_canonical_encodings_are_refused() {
        let m = CertificateMsg {
            body: vec![1, 2, 3],
            signature: vec![4; 64],
        };
        let bytes = m.encode_to_vec();
        assert_eq!(
            decode_canonical::<CertificateMsg>(&bytes, "certificate", 1000),
            Ok(m.clone())
        );
        // Fields in reverse order.
        let mut rev = Vec::new();
        rev.extend_from_slice(&bytes[5..]);
        rev.extend_from_slice(&bytes[..5]);
        assert_eq!(
            decode_canonical::<CertificateMsg>(&rev, "certificate", 1000),
            Err(DecodeError::NonCanonical("certificate"))
        );
        // An unknown field appended.
        let mut extra = bytes.clone();
        extra.extend_from_slice(&[0x78, 0x01]);
        assert_eq!(
            decode_canonical::<CertificateMsg>(&extra, "certificate", 1000),
            Err(DecodeError::NonCanonical("certificate"))
        );
        // A non-minimal length varint (0x83 0x00 for 3).
        let mut long = vec![0x0a, 0x83, 0x00, 1, 2, 3];
        long.extend_from_slice(&bytes[5..]);
        assert_eq!(
            decode_canonical::<CertificateMsg>(&long, "certificate", 1000),
            Err(DecodeError::NonCanonical("certificate"))
        );
        assert!(matches!(
            decode_canonical::<CertificateMsg>(&bytes[..bytes.len() - 1], "certificate", 1000),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_canonical::<CertificateMsg>(&bytes, "certificate", 10),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn codes_round_trip_and_catch_typos() {
        // Shaped like the real codes: protobuf fields, a long one last.
        let mut payload = vec![0x0a, 3, b'a', b'b', b'c', 0x12, 32];
        payload.extend_from_slice(&[0x5a; 32]);
        let code = to_code("MTXX1:", &payload);
        assert!(
            code.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ':')
        );
        assert_eq!(from_code("MTXX1:", "test", &code, 100), Ok(payload.clone()));
        let wrapped = format!("  {}\n{} ", &code[..20].to_lowercase(), &code[20..]);
        assert_eq!(from_code("MTXX1:", "test", &wrapped, 100), Ok(payload));
        let mut typo = code.clone().into_bytes();
        let i = typo.len() - 3;
        typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(
            from_code("MTXX1:", "test", &typo, 100),
            Err(DecodeError::BadChecksum("test"))
        );
        assert_eq!(
            from_code("MTYY1:", "test", &code, 100),
            Err(DecodeError::WrongPrefix("test"))
        );
        assert_eq!(
            from_code("MTXX1:", "test", "MTXX1:!!!!", 100),
            Err(DecodeError::BadBase32("test"))
        );
    }

    #[test]
    fn cut_off_codes_are_reported_as_incomplete() {
        let mut payload = vec![0x0a, 3, b'a', b'b', b'c', 0x12, 32];
        payload.extend_from_slice(&[0x5a; 32]);
        let code = to_code("MTXX1:", &payload);
        for cut in 1..=12 {
            let short = &code[..code.len() - cut];
            assert_eq!(
                from_code("MTXX1:", "test", short, 100),
                Err(DecodeError::Truncated("test")),
                "{cut} characters cut off"
            );
        }
        assert_eq!(
            from_code("MTXX1:", "test", "MTXX1:AB", 100),
            Err(DecodeError::Truncated("test"))
        );
        // A typo inside the payload is still a typo.
        let mut typo = code.clone().into_bytes();
        let i = 12;
        typo[i] = if typo[i] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(
            from_code("MTXX1:", "test", &typo, 100),
            Err(DecodeError::BadChecksum("test"))
        );
    }

    #[test]
    fn network_ids() {
        assert!(is_valid_network_id("campus-1.example"));
        assert!(!is_valid_network_id(""));
        assert!(!is_valid_network_id("Campus"));
        assert!(!is_valid_network_id(&"a".repeat(65)));
    }
}
