//! Percentiles over a set of durations.

use std::time::Duration;

/// p50, p99 and max of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub count: usize,
}

impl Spread {
    pub fn of(samples: &[Duration]) -> Spread {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| -> f64 {
            if ms.is_empty() {
                return 0.0;
            }
            let index = ((ms.len() as f64 - 1.0) * q).round() as usize;
            ms[index.min(ms.len() - 1)]
        };
        Spread {
            p50: at(0.5),
            p99: at(0.99),
            max: ms.last().copied().unwrap_or(0.0),
            count: ms.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_sample() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Spread::of(&samples);
        assert_eq!((s.p50, s.p99, s.max, s.count), (51.0, 99.0, 100.0, 100));
        assert_eq!(Spread::of(&[]).max, 0.0);
    }
}
