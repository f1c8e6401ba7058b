//! When a hook fires, and that it fires once. A hook's state is how many times its count has
//! crossed and when it last did (`hook-state/<site>/<hook>` = `<n> <ms>`: odd is above the
//! threshold, even below), so a crossing has a number, and crossings alternate: up at the
//! threshold `N`, down only below `N − hysteresis`, and at most one a second (a key takes about
//! a write a second: a crossing sooner waits for a later count, as a count flapping across the
//! threshold within a second is not news). A crossing is claimed with an insert-only write of its own key,
//! `hook-crossing/<site>/<hook>/<n>` (decided at the primary store, like a slot's claim): of two
//! executions in two POPs that see the same crossing, only the one whose write created the key
//! delivers it. The state then moves to `n` with a generation-matched write, which loses if the
//! state moved meanwhile (a stale read seeing an old crossing again).

use crate::count::hooks::settings::Hook;
use crate::platform::kv::{KvError, KvStore, WriteMode, KEY_WRITE_INTERVAL_MS};
use crate::wire::site::SiteId;
use crate::wire::webhook::Direction;

/// How long a crossing's key is kept: far longer than any stale read of the state it moved.
pub const CROSSING_TTL_SECS: u32 = 7 * 86_400;

fn state_key(site: &SiteId, hook: &str) -> String {
    format!("hook-state/{site}/{hook}")
}

fn crossing_key(site: &SiteId, hook: &str, n: u64) -> String {
    format!("hook-crossing/{site}/{hook}/{n}")
}

/// A hook's state as read: its crossings so far, and the generation it was read at (`None`:
/// never crossed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub crossings: u64,
    /// When the last crossing was claimed (0: never).
    pub at_ms: u64,
    pub generation: Option<u64>,
}

impl Seen {
    /// Whether the last crossing was upward.
    pub fn above(&self) -> bool {
        !self.crossings.is_multiple_of(2)
    }
}

/// One crossing `count` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// Its number for the hook: 1, 2, …
    pub n: u64,
    pub direction: Direction,
    /// When it was seen.
    pub at_ms: u64,
}

/// The crossing `count`, counted at `now_ms`, makes from `seen`, if any: up when it reaches
/// `above`, down when it falls below `above − hysteresis` (between the two, nothing: the
/// hysteresis); none within a second of the last.
pub fn next(seen: &Seen, hook: &Hook, count: u64, now_ms: u64) -> Option<Crossing> {
    if seen.crossings > 0 && now_ms < seen.at_ms + KEY_WRITE_INTERVAL_MS {
        return None;
    }
    let direction = if !seen.above() && count >= hook.above {
        Direction::Above
    } else if seen.above() && count.saturating_add(hook.hysteresis) < hook.above {
        Direction::Below
    } else {
        return None;
    };
    Some(Crossing {
        n: seen.crossings + 1,
        direction,
        at_ms: now_ms,
    })
}

/// The hook's state. A value this version cannot read counts as never crossed.
pub fn read(kv: &dyn KvStore, site: &SiteId, hook: &str) -> Result<Seen, KvError> {
    Ok(match kv.lookup(&state_key(site, hook))? {
        Some(e) => {
            let text = String::from_utf8_lossy(&e.value);
            let mut words = text.split_whitespace().map(|w| w.parse::<u64>().ok());
            Seen {
                crossings: words.next().flatten().unwrap_or(0),
                at_ms: words.next().flatten().unwrap_or(0),
                generation: Some(e.generation),
            }
        }
        None => Seen {
            crossings: 0,
            at_ms: 0,
            generation: None,
        },
    })
}

/// Claims `crossing` across every POP, storing `record` (what is delivered) under its key:
/// true for the one execution whose write created the key. Whoever created it, the state then
/// moves on to it (unless it moved already since `seen` was read): a winner that died before
/// moving it leaves it to the next broadcast, not to deliver again.
pub fn claim(
    kv: &dyn KvStore,
    site: &SiteId,
    hook: &str,
    seen: &Seen,
    crossing: Crossing,
    record: &[u8],
) -> Result<bool, KvError> {
    let won = match kv.insert(
        &crossing_key(site, hook, crossing.n),
        record,
        Some(CROSSING_TTL_SECS),
        WriteMode::AddOnly,
    ) {
        Ok(()) => true,
        Err(KvError::PreconditionFailed) => false,
        // Not written by anyone: the crossing is claimed again at the next count.
        Err(e) => return Err(e),
    };
    let mode = seen
        .generation
        .map_or(WriteMode::AddOnly, WriteMode::IfGeneration);
    // Losing this write means another execution moved the state: nothing to do.
    let _ = kv.insert(
        &state_key(site, hook),
        format!("{} {}", crossing.n, crossing.at_ms).as_bytes(),
        None,
        mode,
    );
    Ok(won)
}

/// Forgets a removed hook's state (its crossing keys lapse by their TTL).
pub fn forget(kv: &dyn KvStore, site: &SiteId, hook: &str) -> Result<(), KvError> {
    kv.delete(&state_key(site, hook))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::MemoryKv;

    fn hook(above: u64, hysteresis: u64) -> Hook {
        Hook {
            id: "hk_1".into(),
            url: "https://hooks.example/".into(),
            above,
            hysteresis,
            secret: "whsec_x".into(),
        }
    }

    /// The events a run of counts fires, state kept as the store would.
    fn fired(hook: &Hook, counts: &[u64]) -> Vec<(u64, u64, &'static str)> {
        let mut seen = Seen {
            crossings: 0,
            at_ms: 0,
            generation: None,
        };
        let mut events = Vec::new();
        // A count every two seconds.
        for (i, &count) in counts.iter().enumerate() {
            if let Some(c) = next(&seen, hook, count, 2_000 * (i as u64 + 1)) {
                events.push((count, c.n, c.direction.event()));
                seen.crossings = c.n;
                seen.at_ms = c.at_ms;
            }
        }
        events
    }

    #[test]
    fn a_crossing_fires_once_up_at_the_threshold_and_once_down_below_it_minus_the_hysteresis() {
        let h = hook(10, 3);
        assert_eq!(
            fired(&h, &[0, 9, 10, 11, 10, 8, 7, 9, 12, 6, 5, 0, 10]),
            vec![
                (10, 1, "online.above"),
                (6, 2, "online.below"),
                (10, 3, "online.above")
            ]
        );
        // Without hysteresis, one below the threshold is below.
        assert_eq!(
            fired(&hook(10, 0), &[10, 10, 9, 9, 10]),
            vec![
                (10, 1, "online.above"),
                (9, 2, "online.below"),
                (10, 3, "online.above")
            ]
        );
        // Hovering inside the band fires nothing more.
        assert_eq!(
            fired(&h, &[10, 7, 8, 9, 10, 7, 9]),
            vec![(10, 1, "online.above")]
        );
    }

    #[test]
    fn a_crossing_within_a_second_of_the_last_waits_for_a_later_count() {
        let h = hook(10, 0);
        let seen = Seen {
            crossings: 1,
            at_ms: 5_000,
            generation: Some(1),
        };
        assert_eq!(next(&seen, &h, 2, 5_900), None);
        assert_eq!(
            next(&seen, &h, 2, 6_000),
            Some(Crossing {
                n: 2,
                direction: Direction::Below,
                at_ms: 6_000
            })
        );
    }

    #[test]
    fn two_pops_seeing_one_crossing_deliver_it_once() {
        let kv = MemoryKv::default();
        let site = SiteId::parse("shop").expect("site");
        let h = hook(10, 3);
        // Both read the state before either claims (two executions, two POPs).
        let a = read(&kv, &site, "hk_1").expect("read");
        let b = read(&kv, &site, "hk_1").expect("read");
        let ca = next(&a, &h, 12, 1_000).expect("crossing");
        let cb = next(&b, &h, 11, 1_000).expect("crossing");
        assert_eq!(ca, cb);
        assert_eq!(claim(&kv, &site, "hk_1", &a, ca, b"a"), Ok(true));
        assert_eq!(claim(&kv, &site, "hk_1", &b, cb, b"b"), Ok(false));
        let now = read(&kv, &site, "hk_1").expect("read");
        assert!(now.above());
        assert_eq!(now.crossings, 1);
        assert_eq!(
            next(&now, &h, 12, 3_000),
            None,
            "counted again: nothing new"
        );
        // A copy read before the state moved (stale) finds crossing 1 taken, and cannot move the
        // state back once it has moved on.
        let down = next(&now, &h, 2, 3_000).expect("down");
        assert_eq!(claim(&kv, &site, "hk_1", &now, down, b"down"), Ok(true));
        let stale = Seen {
            crossings: 0,
            at_ms: 0,
            generation: a.generation,
        };
        assert_eq!(claim(&kv, &site, "hk_1", &stale, ca, b"again"), Ok(false));
        assert_eq!(read(&kv, &site, "hk_1").map(|s| s.crossings), Ok(2));
    }

    #[test]
    fn a_winner_that_never_moved_the_state_is_caught_up_without_a_second_delivery() {
        let kv = MemoryKv::default();
        let site = SiteId::parse("shop").expect("site");
        let h = hook(10, 0);
        let seen = read(&kv, &site, "hk_1").expect("read");
        let c = next(&seen, &h, 10, 1_000).expect("crossing");
        // The winner's crossing key is written, and its execution stops before the state moves.
        kv.insert(
            &crossing_key(&site, "hk_1", c.n),
            b"x",
            None,
            WriteMode::AddOnly,
        )
        .expect("claimed");
        assert_eq!(claim(&kv, &site, "hk_1", &seen, c, b"y"), Ok(false));
        assert_eq!(read(&kv, &site, "hk_1").map(|s| s.crossings), Ok(1));
    }
}
