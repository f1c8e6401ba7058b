//! When a hook fires, and that it fires once. A hook's state is how many times its count has
//! crossed (`hook-state/<site>/<hook>`: odd is above the threshold, even below), so a crossing
//! has a number, and crossings alternate: up at the threshold `N`, down only below
//! `N − hysteresis`. A crossing is claimed with an insert-only write of its own key,
//! `hook-crossing/<site>/<hook>/<n>` (decided at the primary store, like a slot's claim): of two
//! executions in two POPs that see the same crossing, only the one whose write created the key
//! delivers it. The state then moves to `n` with a generation-matched write, which loses if the
//! state moved meanwhile (a stale read seeing an old crossing again).

use crate::count::hooks::settings::Hook;
use crate::platform::kv::{KvError, KvStore, WriteMode};
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
}

/// The crossing `count` makes from `seen`, if any: up when it reaches `above`, down when it
/// falls below `above − hysteresis` (between the two, nothing: the hysteresis).
pub fn next(seen: &Seen, hook: &Hook, count: u64) -> Option<Crossing> {
    let n = seen.crossings + 1;
    if !seen.above() && count >= hook.above {
        Some(Crossing {
            n,
            direction: Direction::Above,
        })
    } else if seen.above() && count.saturating_add(hook.hysteresis) < hook.above {
        Some(Crossing {
            n,
            direction: Direction::Below,
        })
    } else {
        None
    }
}

/// The hook's state. A value this version cannot read counts as never crossed.
pub fn read(kv: &dyn KvStore, site: &SiteId, hook: &str) -> Result<Seen, KvError> {
    Ok(match kv.lookup(&state_key(site, hook))? {
        Some(e) => Seen {
            crossings: std::str::from_utf8(&e.value)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            generation: Some(e.generation),
        },
        None => Seen {
            crossings: 0,
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
        crossing.n.to_string().as_bytes(),
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
            generation: None,
        };
        let mut events = Vec::new();
        for &count in counts {
            if let Some(c) = next(&seen, hook, count) {
                events.push((count, c.n, c.direction.event()));
                seen.crossings = c.n;
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
    fn two_pops_seeing_one_crossing_deliver_it_once() {
        let kv = MemoryKv::default();
        let site = SiteId::parse("shop").expect("site");
        let h = hook(10, 3);
        // Both read the state before either claims (two executions, two POPs).
        let a = read(&kv, &site, "hk_1").expect("read");
        let b = read(&kv, &site, "hk_1").expect("read");
        let ca = next(&a, &h, 12).expect("crossing");
        let cb = next(&b, &h, 11).expect("crossing");
        assert_eq!(ca, cb);
        assert_eq!(claim(&kv, &site, "hk_1", &a, ca, b"a"), Ok(true));
        assert_eq!(claim(&kv, &site, "hk_1", &b, cb, b"b"), Ok(false));
        let now = read(&kv, &site, "hk_1").expect("read");
        assert!(now.above());
        assert_eq!(now.crossings, 1);
        assert_eq!(next(&now, &h, 12), None, "counted again: nothing new");
        // A copy read before the state moved (stale) finds crossing 1 taken, and cannot move the
        // state back once it has moved on.
        let down = next(&now, &h, 2).expect("down");
        assert_eq!(claim(&kv, &site, "hk_1", &now, down, b"down"), Ok(true));
        let stale = Seen {
            crossings: 0,
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
        let c = next(&seen, &h, 10).expect("crossing");
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
