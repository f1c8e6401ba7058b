//! A small seeded random number generator (SplitMix64): the simulation must be repeatable, so
//! every random choice comes from here, never from the OS.

use std::cell::Cell;

pub struct Rng {
    state: Cell<u64>,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: Cell::new(seed),
        }
    }

    pub fn next_u64(&self) -> u64 {
        let s = self.state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.state.set(s);
        mix(s)
    }

    /// Uniform in [0, 1).
    pub fn unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Exponentially distributed with the given mean.
    pub fn exp(&self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// SplitMix64's output function: also a good stateless hash of one word.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A latency distribution: `base` plus a skewed tail up to `base + spread` (most draws are
/// near `base`; the cube of a uniform draw puts the median at an eighth of the spread).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub base_us: u64,
    pub spread_us: u64,
}

impl Latency {
    pub const fn ms(base: f64, spread: f64) -> Latency {
        Latency {
            base_us: (base * 1000.0) as u64,
            spread_us: (spread * 1000.0) as u64,
        }
    }

    pub fn draw(&self, rng: &Rng) -> u64 {
        self.at(rng.unit())
    }

    /// The latency at quantile `u` of the distribution.
    pub fn at(&self, u: f64) -> u64 {
        self.base_us + (self.spread_us as f64 * u * u * u) as u64
    }
}
