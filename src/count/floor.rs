//! The privacy floor: a site's registry entry may set `minCount` so that no count below it is ever
//! shown exactly. A smaller count is shown as the floor with a flag (`belowMin`), and the
//! widget says "fewer than N": a page with two readers does not tell each that exactly one
//! other person is there. The stored figures stay exact (nobody outside reads them); every
//! message to readers, API answer, badge and history point passes through [`Floor::show`]
//! (the site's owner, on its dashboard, sees the exact count, pages and total; countries there
//! are floored: see `country`). A floored
//! site's total visits are shown coarsened to a multiple of the floor ([`Floor::total`]): an
//! exact total would tell whoever watches it of each single arrival.
//!
//! What the floor does not do: it is no anonymity. Readers of a busy site are counted exactly
//! (that is the product), and someone who controls readers of their own (padding a site up to
//! the floor with fake ones) learns the exact count of the rest once it is shown exactly.
//!
//! The floor is a setting of the site's registry entry (`minCount`), so a store that cannot be
//! read does not drop it: the registry answers with the entry the POP read last.

use crate::count::registry;
use crate::platform::Services;
pub use crate::wire::protocol::Shown;
use crate::wire::site::SiteId;

/// A site's floor: `None` shows every count as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Floor(Option<u64>);

impl Floor {
    /// The floor the site's registry entry sets, if any (see `registry`: while the store
    /// cannot be read, the entry this POP read last).
    pub fn of(services: &Services, site: &SiteId) -> Floor {
        Floor(registry::min_count(services, site).ok().flatten())
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
