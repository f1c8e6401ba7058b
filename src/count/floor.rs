//! The privacy floor: a site may set `min_count.<siteId>` so that no count below it is ever
//! shown exactly. A smaller count is shown as the floor with a flag (`belowMin`), and the
//! widget says "fewer than N": a page with two readers does not tell each that exactly one
//! other person is there. The stored figures stay exact (nobody outside reads them); every
//! message, API answer, badge and history point passes through [`Floor::show`].
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
        match registry::min_count(services.settings, site) {
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
