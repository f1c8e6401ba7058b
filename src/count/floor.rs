//! The privacy floor: a site may set `min_count.<siteId>` so that no count below it is ever
//! shown exactly. A smaller count is shown as the floor with a flag (`belowMin`), and the
//! widget says "fewer than N": a page with two readers does not tell each that exactly one
//! other person is there. The stored figures stay exact (nobody outside reads them); every
//! message, API answer, badge and history point passes through [`Floor::show`]. A floored
//! site's total visits are shown coarsened to a multiple of the floor ([`Floor::total`]): an
//! exact total would tell whoever watches it of each single arrival.
//!
//! What the floor does not do: it is no anonymity. Readers of a busy site are counted exactly
//! (that is the product), and someone who controls readers of their own (padding a site up to
//! the floor with fake ones) learns the exact count of the rest once it is shown exactly.
//!
//! A config store that cannot be read must not drop a floor: each POP keeps the last floor it
//! read for a site in its cache (a day), and uses that while the store fails.

use crate::count::registry;
use crate::platform::cache::SharedCache;
use crate::platform::log::Line;
use crate::platform::Services;
pub use crate::wire::protocol::Shown;
use crate::wire::site::SiteId;

/// How long a POP remembers the last floor it read for a site.
const KEPT_MS: u64 = 86_400_000;

/// A site's floor: `None` shows every count as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Floor(Option<u64>);

impl Floor {
    /// The floor the site's configuration sets, if any; the last one read here while the
    /// config store cannot be read.
    pub fn of(services: &Services, site: &SiteId) -> Floor {
        let kept_key = format!("floor/{site}");
        match registry::min_count(services, site) {
            Ok(min) => {
                let floor = Floor(min);
                remember(services.cache, &kept_key, floor);
                floor
            }
            Err(_) => {
                let kept = services
                    .cache
                    .get(&kept_key)
                    .and_then(|v: Vec<u8>| Floor::decode(&v))
                    .unwrap_or_default();
                services.log.emit(&Line::FloorKept {
                    site,
                    floor: kept.0,
                });
                kept
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self.0 {
            Some(min) => min.to_string().into_bytes(),
            None => b"none".to_vec(),
        }
    }

    fn decode(bytes: &[u8]) -> Option<Floor> {
        match std::str::from_utf8(bytes).ok()? {
            "none" => Some(Floor(None)),
            n => n.parse().ok().map(|min| Floor(Some(min))),
        }
    }

    /// A floor of `min` (tests and the simulator).
    pub fn at(min: u64) -> Floor {
        Floor(Some(min))
    }

    /// The floor's value, if the site has one.
    pub fn min(&self) -> Option<u64> {
        self.0
    }

    /// A total as it may be shown: rounded down to a multiple of the floor (exact without one).
    pub fn total(&self, total: u64) -> u64 {
        match self.0 {
            Some(min) if min > 1 => total - total % min,
            _ => total,
        }
    }

    /// A page's count `n` as it may be shown on a site of `site_count` readers whose pages
    /// count `pages`: as [`Floor::show`], except that no page count is shown exactly while the
    /// site's count less the pages shown exactly leaves a remainder below the floor (a site of
    /// 6 and a page of 5 shown exactly would tell that the other page has 1): such a page count
    /// is withheld (`None`, as for a page beyond the busiest).
    pub fn show_page(
        &self,
        site_count: u64,
        pages: &[(String, u64)],
        n: Option<u64>,
    ) -> Option<Shown> {
        let shown = n.map(|n| self.show(n))?;
        if shown.below_min || !self.withholds_pages(site_count, pages) {
            return Some(shown);
        }
        None
    }

    fn withholds_pages(&self, site_count: u64, pages: &[(String, u64)]) -> bool {
        let Some(min) = self.0 else { return false };
        if site_count < min {
            return false;
        }
        let exact: u64 = pages.iter().map(|(_, n)| *n).filter(|n| *n >= min).sum();
        let remainder = site_count.saturating_sub(exact);
        remainder > 0 && remainder < min
    }

    /// `count` as it may be shown.
    pub fn show(&self, count: u64) -> Shown {
        match self.0 {
            Some(min) if count < min => Shown {
                value: min,
                below_min: true,
            },
            _ => Shown::exact(count),
        }
    }
}

/// Keeps `floor` as the site's last read, unless the cache already holds it (one lookup on
/// most counts, a write only when the floor changes or its day is out).
fn remember(cache: &dyn SharedCache, key: &str, floor: Floor) {
    let encoded = floor.encode();
    if cache.get(key).as_deref() != Some(encoded.as_slice()) {
        cache.set(key, &encoded, KEPT_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::config::{ConfigSource, ConfigUnreadable};
    use crate::platform::testing::TestServices;
    use std::cell::Cell;
    use std::collections::HashMap;

    #[test]
    fn counts_below_the_floor_show_the_floor_and_say_so() {
        let floor = Floor::at(5);
        assert_eq!(
            floor.show(0),
            Shown {
                value: 5,
                below_min: true
            }
        );
        assert_eq!(
            floor.show(4),
            Shown {
                value: 5,
                below_min: true
            }
        );
        assert_eq!(floor.show(5), Shown::exact(5));
        assert_eq!(floor.show(900), Shown::exact(900));
        assert_eq!(Floor::default().show(1), Shown::exact(1));
    }

    #[test]
    fn no_page_is_shown_exactly_while_the_rest_of_the_site_is_below_the_floor() {
        let floor = Floor::at(3);
        let pages = |counts: &[u64]| -> Vec<(String, u64)> {
            counts
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("{i:016x}"), *n))
                .collect()
        };
        // A site of 6: a page of 5 and a page of 1. Showing 5 would tell the other has 1.
        let six = pages(&[5, 1]);
        assert_eq!(floor.show_page(6, &six, Some(5)), None);
        assert_eq!(
            floor.show_page(6, &six, Some(1)),
            Some(floor.show(1)),
            "below: as ever"
        );
        // A remainder at the floor or more, or none at all, tells nothing.
        let eight = pages(&[5, 3]);
        assert_eq!(floor.show_page(8, &eight, Some(5)), Some(Shown::exact(5)));
        assert_eq!(
            floor.show_page(5, &pages(&[5]), Some(5)),
            Some(Shown::exact(5))
        );
        // A site below its floor shows every page below it anyway; no floor, no withholding.
        assert_eq!(
            floor.show_page(2, &pages(&[2]), Some(2)),
            Some(floor.show(2))
        );
        assert_eq!(
            Floor::default().show_page(6, &six, Some(5)),
            Some(Shown::exact(5))
        );
        assert_eq!(floor.show_page(6, &six, None), None);
    }

    #[test]
    fn a_floored_sites_total_moves_in_steps_of_the_floor() {
        let floor = Floor::at(5);
        let shown: Vec<u64> = (0..12).map(|t| floor.total(t)).collect();
        assert_eq!(shown, vec![0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 10, 10]);
        assert_eq!(Floor::default().total(7), 7);
    }

    /// Settings whose store can be made unreadable.
    struct Flaky {
        settings: HashMap<String, String>,
        down: Cell<bool>,
    }

    impl Flaky {
        /// Site `a`'s floor at `min`, the store readable.
        fn with_floor(min: &str) -> Flaky {
            Flaky {
                settings: HashMap::from([("min_count.a".to_string(), min.to_string())]),
                down: Cell::new(false),
            }
        }
    }

    impl ConfigSource for Flaky {
        fn get(&self, key: &str) -> Option<String> {
            self.read(key).ok().flatten()
        }

        fn read(&self, key: &str) -> Result<Option<String>, ConfigUnreadable> {
            if self.down.get() {
                return Err(ConfigUnreadable);
            }
            Ok(self.settings.get(key).cloned())
        }
    }

    #[test]
    fn a_store_that_cannot_be_read_keeps_the_last_floor() {
        let t = TestServices::new();
        let flaky = Flaky::with_floor("5");
        let services = Services {
            settings: &flaky,
            ..t.services()
        };
        let (a, b) = (
            SiteId::parse("a").expect("a"),
            SiteId::parse("b").expect("b"),
        );
        assert_eq!(Floor::of(&services, &a), Floor::at(5));
        assert_eq!(Floor::of(&services, &b), Floor::default());
        flaky.down.set(true);
        assert_eq!(Floor::of(&services, &a), Floor::at(5), "kept");
        assert_eq!(Floor::of(&services, &b), Floor::default(), "none to keep");
        let lines = t.log.lines();
        assert!(
            lines
                .iter()
                .any(|l| l == "liveuser floor-kept site=a floor=5"),
            "{lines:?}"
        );
        assert!(lines
            .iter()
            .any(|l| l == "liveuser floor-kept site=b floor=none"));
        // The store back: its floor again (a changed one too).
        flaky.down.set(false);
        let flaky_changed = Flaky::with_floor("9");
        let services = Services {
            settings: &flaky_changed,
            ..t.services()
        };
        assert_eq!(Floor::of(&services, &a), Floor::at(9));
        flaky_changed.down.set(true);
        assert_eq!(Floor::of(&services, &a), Floor::at(9));
    }

    #[test]
    fn pages_are_told_the_floor_and_that_the_count_is_below_it() {
        let message = crate::wire::protocol::update(Floor::at(5).show(2), None, None);
        let v: serde_json::Value = serde_json::from_str(&message).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"type": "update", "count": 5, "belowMin": true})
        );
    }
}
