//! Deterministic randomness: every random draw of the simulator comes from a
//! ChaCha20 stream derived from the run's seed and a purpose plus the ids of
//! what is drawn for (an agent, a day, a pair). Streams do not depend on the
//! order in which work is done, so threads and the with/without-tracing runs
//! see the same numbers for the same things.

use meshtrace_node::radio::model::{standard_normal, uniform};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// What a stream is for (part of its seed).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Purpose {
    Town = 1,
    Device = 2,
    Adopt = 3,
    Plan = 4,
    Position = 5,
    Infection = 6,
    Disease = 7,
    Testing = 8,
    Shadow = 9,
    Sight = 10,
    Keys = 11,
    Report = 12,
    Gossip = 13,
    Online = 14,
    Attack = 15,
    Carry = 16,
}

/// SplitMix64 finaliser.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stream for `(seed, purpose, a, b)`.
pub(crate) fn stream(seed: u64, purpose: Purpose, a: u64, b: u64) -> ChaCha20Rng {
    let mut h = mix(seed);
    h = mix(h ^ purpose as u64);
    h = mix(h ^ a);
    h = mix(h ^ b.rotate_left(17));
    let mut key = [0u8; 32];
    let mut x = h;
    for chunk in key.chunks_mut(8) {
        x = mix(x);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    ChaCha20Rng::from_seed(key)
}

/// Uniform in `[0, 1)`.
pub(crate) fn unif(rng: &mut ChaCha20Rng) -> f64 {
    uniform(rng)
}

/// Uniform in `[lo, hi)`.
pub(crate) fn range(rng: &mut ChaCha20Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * uniform(rng)
}

/// Uniform integer in `lo..=hi`.
pub(crate) fn int(rng: &mut ChaCha20Rng, lo: u32, hi: u32) -> u32 {
    let span = f64::from(hi - lo + 1);
    lo + ((uniform(rng) * span) as u32).min(hi - lo)
}

/// True with probability `p`.
pub(crate) fn chance(rng: &mut ChaCha20Rng, p: f64) -> bool {
    uniform(rng) < p
}

/// Standard normal.
pub(crate) fn normal(rng: &mut ChaCha20Rng) -> f64 {
    standard_normal(rng)
}

/// Log-normal with the given median and log-space sigma.
pub(crate) fn lognormal(rng: &mut ChaCha20Rng, median: f64, sigma: f64) -> f64 {
    median * (sigma * standard_normal(rng)).exp()
}

/// An index drawn with the given (non-negative) weights.
pub(crate) fn pick(rng: &mut ChaCha20Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = uniform(rng) * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len().saturating_sub(1)
}
