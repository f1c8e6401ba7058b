//! Readers by country: the country Fastly's geolocation gives for a reader's address at the
//! handoff (two letters, ISO 3166-1 alpha-2; the address itself is never kept), carried in the
//! connection's meta and written into each of its presence keys the way its page is (see
//! `presence`). A count's listing therefore tallies countries as it tallies pages: no extra
//! write per heartbeat, no extra listing per broadcast.
//!
//! Countries are shown only to the site's owner (the dashboard), and the privacy floor applies
//! to each: a country with fewer readers than the site's floor is folded into
//! [`OTHER`] with the readers of no known country, so no country's handful of readers shows.

use std::collections::BTreeMap;

use crate::count::floor::Floor;

/// What countries below the floor, and readers of no known country, are shown as.
pub const OTHER: &str = "other";

/// Whether `code` is a country code as presence keys carry them: two ASCII capital letters.
pub fn is_code(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// The country code of a geolocation answer: two letters, upper-cased. Geolocation answers
/// "**", "--" or nothing for addresses it cannot place (private ranges, anonymizers): `None`.
pub fn code(raw: Option<&str>) -> Option<String> {
    let upper = raw?.trim().to_ascii_uppercase();
    is_code(&upper).then_some(upper)
}

/// The countries of a count of `total` readers as the site's owner may see them: the busiest
/// first (ties by code, so every broadcast orders alike), each country at or above the floor
/// exactly, and the rest ([`OTHER`]: countries below the floor and readers of no known
/// country) last, when there are any.
pub fn shown(countries: &BTreeMap<String, u64>, total: u64, floor: Floor) -> Vec<(String, u64)> {
    let min = floor.min().unwrap_or(0);
    let mut shown: Vec<(String, u64)> = countries
        .iter()
        .filter(|(code, n)| is_code(code) && **n >= min && **n > 0)
        .map(|(c, n)| (c.clone(), *n))
        .collect();
    shown.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let named: u64 = shown.iter().map(|(_, n)| n).sum();
    let mut other = total.saturating_sub(named);
    // "Other" below the floor would tell a small country's readers apart (watch one country
    // leave the list and "other" grow by its count): the smallest countries shown join it
    // until it reaches the floor.
    while other > 0 && other < min {
        match shown.pop() {
            Some((_, n)) => other += n,
            None => break,
        }
    }
    if other > 0 {
        shown.push((OTHER.to_string(), other));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_two_capital_letters_are_a_country() {
        assert_eq!(code(Some("de")), Some("DE".into()));
        assert_eq!(code(Some(" US ")), Some("US".into()));
        for raw in [
            None,
            Some(""),
            Some("**"),
            Some("--"),
            Some("USA"),
            Some("1a"),
        ] {
            assert_eq!(code(raw), None, "{raw:?}");
        }
        assert!(is_code("FR") && !is_code("fr") && !is_code("F"));
    }

    #[test]
    fn countries_below_the_floor_fold_into_other_with_the_unknown() {
        let counts = BTreeMap::from([
            ("US".to_string(), 40),
            ("DE".to_string(), 12),
            ("FR".to_string(), 12),
            ("IS".to_string(), 2),
        ]);
        // 70 readers: 66 placed, 4 of no known country.
        assert_eq!(
            shown(&counts, 70, Floor::at(5)),
            vec![
                ("US".to_string(), 40),
                ("DE".to_string(), 12),
                ("FR".to_string(), 12),
                (OTHER.to_string(), 6),
            ]
        );
        // "Other" is never a handful either: with 2 below the floor of 5 besides the placed,
        // the smallest country shown joins it.
        let few = BTreeMap::from([("US".to_string(), 25), ("DE".to_string(), 6)]);
        assert_eq!(
            shown(&few, 33, Floor::at(5)),
            vec![("US".to_string(), 25), (OTHER.to_string(), 8)]
        );
        // Everyone in one country below the floor: all "other".
        let one = BTreeMap::from([("IS".to_string(), 3)]);
        assert_eq!(shown(&one, 3, Floor::at(5)), vec![(OTHER.to_string(), 3)]);
        // Without a floor every country is exact, and the unknown are "other".
        let all = shown(&counts, 70, Floor::default());
        assert_eq!(all[3], ("IS".to_string(), 2));
        assert_eq!(all[4], (OTHER.to_string(), 4));
        // Everyone placed and nobody below the floor: no "other".
        assert_eq!(shown(&counts, 66, Floor::default()).len(), 4);
    }
}
