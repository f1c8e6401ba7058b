//! The privacy floor: a site may set `min_count.<siteId>` so that no count below it is ever
//! shown exactly. A smaller count is shown as the floor with a flag (`belowMin`), and the
//! widget says "fewer than N": a page with two readers does not tell each that exactly one
//! other person is there. The stored figures stay exact (nobody outside reads them); every
//! message, API answer, badge and history point passes through [`Floor::show`].

use crate::count::registry;
use crate::platform::config::ConfigSource;
pub use crate::wire::protocol::Shown;
use crate::wire::site::SiteId;

/// A site's floor: `None` shows every count as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Floor(Option<u64>);

impl Floor {
    /// The floor the site's configuration sets, if any.
    pub fn of(settings: &dyn ConfigSource, site: &SiteId) -> Floor {
        Floor(registry::min_count(settings, site))
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn pages_are_told_the_floor_and_that_the_count_is_below_it() {
        let message = crate::wire::protocol::update(Floor::at(5).show(2), None, None);
        let v: serde_json::Value = serde_json::from_str(&message).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"type": "update", "count": 5, "belowMin": true})
        );
    }
}
