//! Golomb-Rice coding of sorted fingerprints (`docs/protocol.md` §10.3): how
//! an announcement carries its entries compactly.
//!
//! `n` distinct fingerprints of [`FINGERPRINT_BITS`] bits, ascending, are
//! written as their differences (the first one from 0). With the Rice
//! parameter `p = FINGERPRINT_BITS − log2(n)` (`n` is always a power of two)
//! each difference `d` is `d >> p` one-bits, a zero bit, and the low `p` bits
//! of `d`, most significant first; bits fill bytes from the most significant
//! bit, and the last byte is padded with zero bits. Uniform fingerprints cost
//! about `p + 1.6` bits each (Golomb-coded sets, as in BIP 158).

use crate::token::FINGERPRINT_BITS;

/// Why coded fingerprints were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GcsError {
    /// The bytes end before `n` fingerprints were read.
    #[error("the fingerprints end early")]
    Truncated,
    /// A fingerprint is not below `2^FINGERPRINT_BITS`.
    #[error("a fingerprint is out of range")]
    OutOfRange,
    /// Two fingerprints are equal (a difference of 0 after the first).
    #[error("the fingerprints are not strictly ascending")]
    NotAscending,
    /// Bytes or non-zero bits after the last fingerprint.
    #[error("the fingerprints are followed by extra bits")]
    Trailing,
}

impl GcsError {
    /// The stable error code of this refusal (docs/protocol.md §16).
    pub fn code(&self) -> &'static str {
        match self {
            GcsError::Truncated => "fingerprints_truncated",
            GcsError::OutOfRange => "fingerprint_out_of_range",
            GcsError::NotAscending => "fingerprints_not_ascending",
            GcsError::Trailing => "fingerprints_trailing_bits",
        }
    }
}

/// The Rice parameter for `n` entries (`n` a power of two, at least 1).
pub(crate) fn rice_parameter(n: usize) -> u32 {
    FINGERPRINT_BITS.saturating_sub(n.max(1).trailing_zeros())
}

struct BitWriter {
    out: Vec<u8>,
    used: u32,
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.used == 0 {
            self.out.push(0);
        }
        if b {
            // `out` is non-empty: a byte was pushed above when needed.
            if let Some(last) = self.out.last_mut() {
                *last |= 0x80 >> self.used;
            }
        }
        self.used = (self.used + 1) % 8;
    }

    fn bits(&mut self, v: u64, count: u32) {
        for i in (0..count).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }
}

/// Codes `fingerprints` (strictly ascending, each below
/// `2^FINGERPRINT_BITS`; `n` a power of two).
pub(crate) fn encode(fingerprints: &[u64]) -> Vec<u8> {
    let p = rice_parameter(fingerprints.len());
    let mut w = BitWriter {
        out: Vec::with_capacity(fingerprints.len() * (p as usize + 2) / 8 + 1),
        used: 0,
    };
    let mut prev = 0u64;
    for &f in fingerprints {
        let d = f - prev;
        prev = f;
        for _ in 0..(d >> p) {
            w.bit(true);
        }
        w.bit(false);
        w.bits(d, p);
    }
    w.out
}

/// Reads bits most significant first, up to 57 at a time.
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position of the next bit.
    pos: u64,
    /// Bits in `bytes`.
    total: u64,
}

impl BitReader<'_> {
    /// The bits from `pos` on, left-aligned; at least the first 57 are
    /// the input's where it has them, and every bit past its end is zero.
    fn window(&self) -> u64 {
        let i = (self.pos / 8) as usize;
        let word = match self.bytes.get(i..i + 8) {
            // Eight whole bytes: one load, no copy.
            Some(b) => <[u8; 8]>::try_from(b).map_or(0, u64::from_be_bytes),
            // The last few bytes, then zeros.
            None => {
                let mut buf = [0u8; 8];
                if let Some(rest) = self.bytes.get(i..) {
                    let n = rest.len().min(8);
                    buf[..n].copy_from_slice(&rest[..n]);
                }
                u64::from_be_bytes(buf)
            }
        };
        word << (self.pos % 8)
    }
}

/// Decodes exactly `n` fingerprints (`n` a power of two) from `bytes`,
/// refusing anything but the one encoding [`encode`] produces.
///
/// Reads whole runs of bits at a time; the result and the error for any
/// input are those of reading bit by bit in the order §10.3 gives (the
/// tests compare the two).
pub(crate) fn decode(bytes: &[u8], n: usize) -> Result<Vec<u64>, GcsError> {
    let p = rice_parameter(n);
    let mut r = BitReader {
        bytes,
        pos: 0,
        total: bytes.len() as u64 * 8,
    };
    let limit = 1u64 << FINGERPRINT_BITS;
    // Any quotient above this already overshoots the range.
    let max_quotient = limit >> p;
    let mut out = Vec::with_capacity(n.min(bytes.len() * 8 + 1));
    let mut prev = 0u64;
    for i in 0..n {
        // The quotient: a run of one-bits ended by a zero bit.
        let mut q = 0u64;
        loop {
            if r.pos >= r.total {
                return Err(GcsError::Truncated);
            }
            let w = r.window();
            let loaded = 64 - r.pos % 8;
            // Bits past the input's end read as zero, so a run of ones
            // holds only the input's bits.
            let ones = u64::from((!w).leading_zeros()).min(loaded);
            if q + ones > max_quotient {
                return Err(GcsError::OutOfRange);
            }
            q += ones;
            r.pos += ones;
            if ones < loaded {
                // The run ended at a zero bit, the input's or past its end.
                if r.pos >= r.total {
                    return Err(GcsError::Truncated);
                }
                r.pos += 1;
                break;
            }
        }
        // The remainder: `p` bits (p ≤ 56, within one window).
        if r.pos + u64::from(p) > r.total {
            return Err(GcsError::Truncated);
        }
        let rem = if p == 0 { 0 } else { r.window() >> (64 - p) };
        r.pos += u64::from(p);
        let d = (q << p) | rem;
        if i > 0 && d == 0 {
            return Err(GcsError::NotAscending);
        }
        let f = prev + d;
        if f >= limit {
            return Err(GcsError::OutOfRange);
        }
        out.push(f);
        prev = f;
    }
    // The padding: fewer than 8 bits, all zero.
    if r.total - r.pos >= 8 || (r.pos < r.total && r.window() != 0) {
        return Err(GcsError::Trailing);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, seed: u64) -> Vec<u64> {
        let mut x = seed;
        let mut v: Vec<u64> = (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                x >> (64 - FINGERPRINT_BITS)
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v.truncate(n.next_power_of_two() / 2);
        v
    }

    /// §10.3 read literally, one bit at a time: the reference the
    /// word-at-a-time [`decode`] must agree with on every input.
    fn decode_bitwise(bytes: &[u8], n: usize) -> Result<Vec<u64>, GcsError> {
        let p = rice_parameter(n);
        let total = bytes.len() as u64 * 8;
        let mut pos = 0u64;
        let bit = |pos: u64| (bytes[(pos / 8) as usize] >> (7 - pos % 8)) & 1 == 1;
        let limit = 1u64 << FINGERPRINT_BITS;
        let mut out = Vec::new();
        let mut prev = 0u64;
        for i in 0..n {
            let mut q = 0u64;
            loop {
                if pos >= total {
                    return Err(GcsError::Truncated);
                }
                let b = bit(pos);
                pos += 1;
                if !b {
                    break;
                }
                q += 1;
                if q > limit >> p {
                    return Err(GcsError::OutOfRange);
                }
            }
            if pos + u64::from(p) > total {
                return Err(GcsError::Truncated);
            }
            let mut r = 0u64;
            for _ in 0..p {
                r = (r << 1) | u64::from(bit(pos));
                pos += 1;
            }
            let d = (q << p) | r;
            if i > 0 && d == 0 {
                return Err(GcsError::NotAscending);
            }
            let f = prev + d;
            if f >= limit {
                return Err(GcsError::OutOfRange);
            }
            out.push(f);
            prev = f;
        }
        if total - pos >= 8 || (pos..total).any(bit) {
            return Err(GcsError::Trailing);
        }
        Ok(out)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any bytes, any entry count: the same fingerprints or the same
        /// error as reading bit by bit.
        #[test]
        fn decode_agrees_with_the_bitwise_reading(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..96),
            log_n in 0u32..5,
        ) {
            let n = 1usize << log_n;
            proptest::prop_assert_eq!(decode(&bytes, n), decode_bitwise(&bytes, n));
        }

        /// Valid encodings, then each damaged at one bit or cut short:
        /// the same result both ways.
        #[test]
        fn decode_agrees_on_encodings_and_their_damage(
            seed in proptest::prelude::any::<u64>(),
            log_n in 0u32..9,
            flip in proptest::prelude::any::<proptest::sample::Index>(),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let n = 1usize << log_n;
            let v = sample(n * 2, seed);
            proptest::prop_assume!(v.len() >= n);
            let bytes = encode(&v[..n]);
            proptest::prop_assert_eq!(decode(&bytes, n), Ok(v[..n].to_vec()));
            let mut bad = bytes.clone();
            let at = flip.index(bad.len() * 8);
            bad[at / 8] ^= 0x80 >> (at % 8);
            proptest::prop_assert_eq!(decode(&bad, n), decode_bitwise(&bad, n));
            let short = &bytes[..cut.index(bytes.len())];
            proptest::prop_assert_eq!(decode(short, n), decode_bitwise(short, n));
            // Dense runs of one-bits (long quotients) too.
            let ones = vec![0xffu8; bytes.len()];
            proptest::prop_assert_eq!(decode(&ones, n), decode_bitwise(&ones, n));
        }
    }

    #[test]
    fn round_trips_and_is_compact() {
        for n in [1usize, 2, 64, 512, 2048] {
            let v = sample(n * 2, n as u64);
            let v = &v[..n];
            let bytes = encode(v);
            assert_eq!(decode(&bytes, n).unwrap(), v);
            let p = rice_parameter(n) as usize;
            // About p + 1.6 bits per entry; never more than p + 4 on average.
            assert!(
                bytes.len() * 8 <= n * (p + 4) + 7,
                "{n}: {} bytes",
                bytes.len()
            );
        }
    }

    #[test]
    fn extremes_round_trip() {
        let top = (1u64 << FINGERPRINT_BITS) - 1;
        for v in [vec![0u64], vec![top], vec![0, top], vec![0, 1, 2, top]] {
            assert_eq!(decode(&encode(&v), v.len()).unwrap(), v);
        }
    }

    #[test]
    fn refuses_everything_but_the_one_encoding() {
        let v = sample(128, 7);
        let v = &v[..64];
        let bytes = encode(v);
        // One byte short, one byte more, a set padding bit.
        assert_eq!(
            decode(&bytes[..bytes.len() - 1], 64),
            Err(GcsError::Truncated)
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer, 64), Err(GcsError::Trailing));
        // Fewer entries than announced / more entries than announced.
        assert_eq!(decode(&bytes, 128), Err(GcsError::Truncated));
        assert!(decode(&bytes, 32).is_err());
        // A repeated fingerprint.
        let dup = encode(&[5, 5]);
        assert_eq!(decode(&dup, 2), Err(GcsError::NotAscending));
        // A fingerprint beyond the range.
        let mut over = BitWriter {
            out: Vec::new(),
            used: 0,
        };
        let p = rice_parameter(1);
        over.bit(true);
        over.bit(false);
        over.bits(0, p);
        assert_eq!(decode(&over.out, 1), Err(GcsError::OutOfRange));
        // All ones never loops for long.
        assert!(decode(&[0xff; 4096], 1).is_err());
    }

    #[test]
    fn padding_bits_must_be_zero() {
        let bytes = encode(&[3]);
        let used = 1 + rice_parameter(1) as usize;
        assert_eq!(bytes.len(), used.div_ceil(8));
        if !used.is_multiple_of(8) {
            let mut bad = bytes.clone();
            *bad.last_mut().unwrap() |= 1;
            assert_eq!(decode(&bad, 1), Err(GcsError::Trailing));
        }
    }
}
