//! Readers by country: the country Fastly's geolocation gives for a reader's address at the
//! handoff (two letters, ISO 3166-1 alpha-2; the address itself is never kept), carried in the
//! connection's meta and written into each of its presence keys the way its page is (see
//! `presence`). A count's listing therefore tallies countries as it tallies pages: no extra
//! write per heartbeat, no extra listing per broadcast.
//!
//! Countries are shown only to the site's owner (the dashboard), and the privacy floor applies
//! to each: a country with fewer readers than the site's floor is folded into
//! [`OTHER`] with the readers of no known country, so no country's handful of readers shows.

use crate::count::floor::Floor;

/// What countries below the floor, and readers of no known country, are shown as.
pub const OTHER: &str = "other";

/// How many two-letter codes there are.
const CODES: usize = 26 * 26;

/// Readers per country, as a count takes them: an array by code (`AA` = 0 … `ZZ` = 675), so
/// counting a reader is an addition and adding two shares' tallies is adding two arrays, with
/// no allocation per country. Carried between executions as `US:3,DE:2`.
#[derive(Debug, Clone, Default)]
pub struct CountryCounts(Vec<u64>);

impl CountryCounts {
    /// A country code's place in the array (`None`: not a code).
    pub fn index(code: &str) -> Option<usize> {
        match code.as_bytes() {
            [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => {
                Some(usize::from(a - b'A') * 26 + usize::from(b - b'A'))
            }
            _ => None,
        }
    }

    fn code(index: usize) -> String {
        // `index` < CODES: both letters are A–Z.
        let letters = [b'A' + (index / 26) as u8, b'A' + (index % 26) as u8];
        String::from_utf8_lossy(&letters).into_owned()
    }

    /// Counts `n` more readers in the country at `index` (as [`CountryCounts::index`] gives).
    pub fn add_at(&mut self, index: usize, n: u64) {
        if index >= CODES {
            return;
        }
        if self.0.is_empty() {
            self.0 = vec![0; CODES];
        }
        self.0[index] += n;
    }

    /// Adds another share's counts.
    pub fn add(&mut self, other: &CountryCounts) {
        for (i, n) in other.0.iter().enumerate().filter(|(_, n)| **n > 0) {
            self.add_at(i, *n);
        }
    }

    /// The countries with readers, by code.
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let counted = self.0.iter().enumerate().filter(|(_, n)| **n > 0);
        counted.map(|(i, n)| (Self::code(i), *n)).collect()
    }

    /// `US:3,DE:2` (by code; empty when nobody was placed).
    pub fn encode(&self) -> String {
        let pairs: Vec<String> = self
            .pairs()
            .into_iter()
            .map(|(c, n)| format!("{c}:{n}"))
            .collect();
        pairs.join(",")
    }

    /// Counts read back from [`CountryCounts::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<CountryCounts> {
        let mut counts = CountryCounts::default();
        for entry in text.split(',').filter(|e| !e.is_empty()) {
            let (code, n) = entry.split_once(':')?;
            counts.add_at(Self::index(code)?, n.parse().ok()?);
        }
        Some(counts)
    }
}

impl PartialEq for CountryCounts {
    fn eq(&self, other: &CountryCounts) -> bool {
        self.pairs() == other.pairs()
    }
}

impl Eq for CountryCounts {}

impl<const N: usize> From<[(&str, u64); N]> for CountryCounts {
    fn from(pairs: [(&str, u64); N]) -> CountryCounts {
        let mut counts = CountryCounts::default();
        for (code, n) in pairs {
            if let Some(i) = Self::index(code) {
                counts.add_at(i, n);
            }
        }
        counts
    }
}

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
pub fn shown(countries: &[(String, u64)], total: u64, floor: Floor) -> Vec<(String, u64)> {
    let min = floor.min().unwrap_or(0);
    let mut shown: Vec<(String, u64)> = countries
        .iter()
        .filter(|(code, n)| is_code(code) && *n >= min && *n > 0)
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
    use std::collections::BTreeMap;

    fn list(map: BTreeMap<String, u64>) -> Vec<(String, u64)> {
        map.into_iter().collect()
    }

    #[test]
    fn counts_add_up_and_round_trip() {
        let mut a = CountryCounts::from([("US", 3), ("DE", 1)]);
        a.add(&CountryCounts::from([("DE", 2), ("ZZ", 1), ("AA", 4)]));
        assert_eq!(a.encode(), "AA:4,DE:3,US:3,ZZ:1");
        assert_eq!(CountryCounts::decode(&a.encode()), Some(a.clone()));
        assert_eq!(CountryCounts::decode(""), Some(CountryCounts::default()));
        for bad in ["us:1", "US", "US:x", "USA:1", "U:1"] {
            assert_eq!(CountryCounts::decode(bad), None, "{bad}");
        }
        assert_eq!(CountryCounts::index("AB"), Some(1));
        assert_eq!(CountryCounts::index("ab"), None);
    }

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
            shown(&list(counts.clone()), 70, Floor::at(5)),
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
            shown(&list(few), 33, Floor::at(5)),
            vec![("US".to_string(), 25), (OTHER.to_string(), 8)]
        );
        // Everyone in one country below the floor: all "other".
        let one = BTreeMap::from([("IS".to_string(), 3)]);
        assert_eq!(
            shown(&list(one), 3, Floor::at(5)),
            vec![(OTHER.to_string(), 3)]
        );
        // Without a floor every country is exact, and the unknown are "other".
        let all = shown(&list(counts.clone()), 70, Floor::default());
        assert_eq!(all[3], ("IS".to_string(), 2));
        assert_eq!(all[4], (OTHER.to_string(), 4));
        // Everyone placed and nobody below the floor: no "other".
        assert_eq!(shown(&list(counts.clone()), 66, Floor::default()).len(), 4);
    }
}
