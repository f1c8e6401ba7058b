//! History and peak: the peak of every minute of a site for 7 days, and today's peak.
//!
//! Broadcasts already see every change of a site's count, one POP at a time, and store what
//! they saw in the snapshot. So the snapshot carries the running peaks ([`Peak`]: this
//! minute's and this day's, UTC), at no extra write. When a broadcast (a change's, or a
//! sweep's: readers' heartbeats claim one per site every few seconds) finds that the last
//! snapshot belongs to an earlier minute, that minute is over: it writes the minute's peak
//! into the day's key, and fills the minutes since then that are not written yet (nothing
//! changed in them, or a broadcast would have published) with the count the last broadcast
//! published, while its readers' presence could last without a sweep storing a snapshot. After
//! that the readers were gone (0), unless the silence ends with a sweep that still finds
//! readers: then they were there while no broadcast stored their count (broadcasts failing),
//! and those minutes, which nobody measured, stay unknown (empty) rather than 0.
//!
//! Key: `history/<site>/<day>` (days since 1970, UTC): 1440 comma-separated fields, one per
//! minute, empty where nothing is known, KV TTL 8 days. The write is conditional on the
//! generation read, and skipped when the minute is already there: one write per site per
//! minute across all POPs (more, once, after a silence that spans days: one per day).

use crate::count::floor::Floor;
use crate::count::peak::{minute_of, Peak, DAY_MINUTES};
use crate::count::snapshot::{self, Snapshot};
use crate::platform::kv::{KvError, KvStore, WriteMode};
use crate::wire::site::SiteId;

/// How many days are kept.
pub const KEEP_DAYS: u64 = 7;
/// A day key outlives the week it serves.
const TTL_SECS: u32 = (KEEP_DAYS as u32 + 1) * 86_400;

fn key(site: &SiteId, day: u64) -> String {
    format!("history/{site}/{day}")
}

/// A day's fields.
fn parse_day(bytes: &[u8]) -> Vec<Option<u64>> {
    let text = String::from_utf8_lossy(bytes);
    let mut fields: Vec<Option<u64>> = text.split(',').map(|f| f.parse().ok()).collect();
    fields.resize(DAY_MINUTES as usize, None);
    fields
}

fn encode_day(fields: &[Option<u64>]) -> String {
    let texts: Vec<String> = fields
        .iter()
        .map(|f| f.map(|n| n.to_string()).unwrap_or_default())
        .collect();
    texts.join(",")
}

/// Writes what the `last` snapshot says of its minute, and of the minutes since, before
/// `now_minute`, if no broadcast has yet: the number of day keys written (0 to 2).
pub fn record(
    kv: &dyn KvStore,
    site: &SiteId,
    last: &Snapshot,
    now_minute: u64,
    quiet: Quiet,
    silence: Silence,
) -> Result<u32, KvError> {
    let Some(peak) = last.peak else { return Ok(0) };
    if peak.minute >= now_minute {
        return Ok(0);
    }
    let held = Held {
        peak,
        count: last.count,
        until_minute: held_until(last, quiet),
        after: silence.after(),
    };
    let first_day =
        (peak.minute / DAY_MINUTES).max((now_minute / DAY_MINUTES).saturating_sub(KEEP_DAYS));
    let mut written = 0;
    for day in first_day..=now_minute / DAY_MINUTES {
        let day_start = day * DAY_MINUTES;
        let from = peak.minute.max(day_start);
        let to = now_minute.min(day_start + DAY_MINUTES); // exclusive
        if from < to && write_day(kv, site, day, from, to, &held)? {
            written += 1;
        }
    }
    Ok(written)
}

/// The first minute after `last` whose count is 0 if no broadcast came since: once the
/// snapshot outlived its readers (see `snapshot::lifetime_ms`).
fn held_until(last: &Snapshot, quiet: Quiet) -> u64 {
    minute_of(last.slot_end_ms + quiet.lifetime_ms) + 1
}

/// What the minutes after a silent snapshot's lifetime were (no broadcast stored one in them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Nobody was there: readers arrive with a broadcast, and stay with sweeps.
    Empty,
    /// Nobody measured them: the broadcast that ends the silence is a sweep that finds readers,
    /// so they were there while no broadcast stored a count.
    Unmeasured,
}

impl Silence {
    /// What a silence before a broadcast was: a sweep's (`sweep`) that counted `live` readers.
    pub fn ended_by(sweep: bool, live: u64) -> Silence {
        if sweep && live > 0 {
            Silence::Unmeasured
        } else {
            Silence::Empty
        }
    }

    fn after(self) -> Option<u64> {
        match self {
            Silence::Empty => Some(0),
            Silence::Unmeasured => None,
        }
    }
}

/// How long a site may be silent while its readers are still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    pub lifetime_ms: u64,
}

impl Quiet {
    pub fn of(config: &crate::platform::config::Config) -> Quiet {
        Quiet {
            lifetime_ms: snapshot::lifetime_ms(config),
        }
    }
}

/// What the minutes after a snapshot's were: its minute's peak, then its count while its
/// readers may have been there, then `after` (0, or unknown).
struct Held {
    peak: Peak,
    count: u64,
    until_minute: u64,
    after: Option<u64>,
}

impl Held {
    fn at(&self, minute: u64) -> Option<u64> {
        if minute == self.peak.minute {
            Some(self.peak.minute_peak)
        } else if minute < self.until_minute {
            Some(self.count)
        } else {
            self.after
        }
    }
}

/// Fills the unknown of minutes `from..to` of `day` with what `held` says of them. Nothing when all are known already (another broadcast wrote them), or when
/// another write comes between the read and this one.
fn write_day(
    kv: &dyn KvStore,
    site: &SiteId,
    day: u64,
    from: u64,
    to: u64,
    held: &Held,
) -> Result<bool, KvError> {
    let k = key(site, day);
    let found = kv.lookup(&k)?;
    let mut fields = found
        .as_ref()
        .map_or_else(|| vec![None; DAY_MINUTES as usize], |e| parse_day(&e.value));
    let day_start = day * DAY_MINUTES;
    let index = |minute: u64| (minute - day_start) as usize;
    let known: Vec<(u64, u64)> = (from..to)
        .filter(|m| fields[index(*m)].is_none())
        .filter_map(|m| held.at(m).map(|n| (m, n)))
        .collect();
    if known.is_empty() {
        return Ok(false);
    }
    for (minute, n) in known {
        fields[index(minute)] = Some(n);
    }
    let mode = found.map_or(WriteMode::AddOnly, |e| {
        WriteMode::IfGeneration(e.generation)
    });
    match kv.insert(&k, encode_day(&fields).as_bytes(), Some(TTL_SECS), mode) {
        Ok(()) => Ok(true),
        Err(KvError::PreconditionFailed | KvError::TooManyRequests) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A history range the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    /// `1h`, `24h` or `7d`.
    pub fn parse(text: &str) -> Option<Range> {
        match text {
            "1h" => Some(Range::Hour),
            "24h" => Some(Range::Day),
            "7d" => Some(Range::Week),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    /// How many minutes the range spans, and how many one point covers (its peak).
    fn minutes_and_step(self) -> (u64, u64) {
        match self {
            Range::Hour => (60, 1),
            Range::Day => (DAY_MINUTES, 1),
            Range::Week => (KEEP_DAYS * DAY_MINUTES, 10),
        }
    }
}

/// A history answer: peaks per step, oldest first, ending with the current minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// The first point's minute.
    pub start_minute: u64,
    pub step_minutes: u64,
    /// Each step's peak as it may be shown: `None` where nothing is known.
    pub points: Vec<Option<u64>>,
    /// The indices of points below the site's privacy floor (shown as the floor).
    pub below_min: Vec<usize>,
}

/// Reads a range of history ending at `now_ms`: one lookup per day it spans, plus the
/// current minute from `current` (the snapshot).
pub fn read(
    kv: &dyn KvStore,
    site: &SiteId,
    range: Range,
    now_ms: u64,
    current: Option<&Snapshot>,
    floor: Floor,
    quiet: Quiet,
) -> Result<History, KvError> {
    let now_minute = minute_of(now_ms);
    let (span, step) = range.minutes_and_step();
    // Whole steps, the last one ending with the current minute.
    let end = now_minute + 1;
    let start = (end - span.min(end)) / step * step;
    let mut minutes: Vec<Option<u64>> = Vec::with_capacity((end - start) as usize);
    for day in start / DAY_MINUTES..=now_minute / DAY_MINUTES {
        let fields = kv
            .lookup(&key(site, day))?
            .map_or_else(|| vec![None; DAY_MINUTES as usize], |e| parse_day(&e.value));
        let day_start = day * DAY_MINUTES;
        for minute in start.max(day_start)..end.min(day_start + DAY_MINUTES) {
            minutes.push(fields[(minute - day_start) as usize]);
        }
    }
    // The minutes since the last broadcast's, as `record` will write them.
    // (A silence still going on reads as empty: the snapshot that outlived its readers counts
    // nobody now.)
    if let Some((snapshot, peak)) = current.and_then(|s| s.peak.map(|p| (s, p))) {
        let held = Held {
            peak,
            count: snapshot.count,
            until_minute: held_until(snapshot, quiet),
            after: Silence::Empty.after(),
        };
        for minute in peak.minute.max(start)..end {
            let i = (minute - start) as usize;
            if minutes[i].is_none() {
                minutes[i] = held.at(minute);
            }
        }
    }
    let mut history = History {
        start_minute: start,
        step_minutes: step,
        points: Vec::new(),
        below_min: Vec::new(),
    };
    for (i, chunk) in minutes.chunks(step as usize).enumerate() {
        let peak = chunk.iter().flatten().max().copied();
        let shown = peak.map(|n| floor.show(n));
        if shown.is_some_and(|s| s.below_min) {
            history.below_min.push(i);
        }
        history.points.push(shown.map(|s| s.value));
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::kv::CountingKv;
    use crate::platform::testing::MemoryKv;

    fn site() -> SiteId {
        SiteId::parse("s").expect("site")
    }

    /// The defaults: a 5-minute refresh, a 45 s TTL, a 10 s sweep interval.
    const QUIET: Quiet = Quiet {
        lifetime_ms: 355_000,
    };
    /// A site whose counts outlast a few silent minutes, and no more.
    const HELD: Quiet = Quiet {
        lifetime_ms: 130_000,
    };

    #[test]
    fn a_finished_minute_is_written_once_with_the_quiet_minutes_after_it() {
        let kv = MemoryKv::default();
        let counting = CountingKv::new(&kv);
        let day = 20_000 * DAY_MINUTES;
        let last = Snapshot::at_minute(day + 10, 2, Some((5, 5)));
        assert_eq!(
            record(&counting, &site(), &last, day + 10, HELD, Silence::Empty),
            Ok(0),
            "not over yet"
        );
        assert_eq!(
            record(&counting, &site(), &last, day + 13, HELD, Silence::Empty),
            Ok(1)
        );
        assert_eq!(counting.counts().insert, 1);
        // Another POP's broadcast with the same (stale) snapshot writes nothing.
        assert_eq!(
            record(&counting, &site(), &last, day + 13, HELD, Silence::Empty),
            Ok(0)
        );
        assert_eq!(counting.counts().insert, 1);
        let h = read(
            &kv,
            &site(),
            Range::Hour,
            (day + 13) * 60_000,
            None,
            Floor::default(),
            QUIET,
        )
        .expect("read");
        let tail: Vec<Option<u64>> = h.points[h.points.len() - 4..].to_vec();
        assert_eq!(tail, vec![Some(5), Some(2), Some(2), None]);
        assert_eq!(h.points.len(), 60);
    }

    #[test]
    fn a_gap_over_midnight_writes_both_days_and_a_week_reads_ten_minute_peaks() {
        let kv = MemoryKv::default();
        let day = 20_000 * DAY_MINUTES;
        let last = Snapshot::at_minute(day + DAY_MINUTES - 2, 3, Some((6, 8)));
        assert_eq!(
            record(
                &kv,
                &site(),
                &last,
                day + DAY_MINUTES + 5,
                QUIET,
                Silence::Empty
            ),
            Ok(2)
        );
        let now_ms = (day + DAY_MINUTES + 5) * 60_000;
        let current = Snapshot::at_minute(day + DAY_MINUTES + 5, 4, Some((4, 4)));
        let h = read(
            &kv,
            &site(),
            Range::Day,
            now_ms,
            Some(&current),
            Floor::default(),
            QUIET,
        )
        .expect("read");
        let n = h.points.len();
        assert_eq!(n as u64, DAY_MINUTES);
        assert_eq!(
            &h.points[n - 8..],
            // The count is held while a sweep might still have been due to store a snapshot
            // (the refresh period, a TTL and a sweep interval: the sixth minute here), then the
            // readers were gone: 0.
            &[
                Some(6),
                Some(3),
                Some(3),
                Some(3),
                Some(3),
                Some(3),
                Some(0),
                Some(4)
            ]
        );
        let week = read(
            &kv,
            &site(),
            Range::Week,
            now_ms,
            Some(&current),
            Floor::default(),
            QUIET,
        )
        .expect("read");
        assert_eq!(week.step_minutes, 10);
        assert!(week.points.len() as u64 <= KEEP_DAYS * DAY_MINUTES / 10 + 1);
        assert_eq!(week.points.iter().flatten().max(), Some(&6));
        // Below a floor, points show the floor and are listed.
        let floored = read(
            &kv,
            &site(),
            Range::Hour,
            now_ms,
            Some(&current),
            Floor::at(5),
            QUIET,
        )
        .expect("read");
        assert!(floored.points.iter().flatten().all(|p| *p >= 5));
        assert!(!floored.below_min.is_empty());
    }

    #[test]
    fn a_silence_a_sweep_ends_with_readers_still_there_is_unknown_not_zero() {
        let day = 20_000 * DAY_MINUTES;
        let last = Snapshot::at_minute(day + 10, 3, Some((3, 3)));
        let points = |silence: Silence| {
            let kv = MemoryKv::default();
            record(&kv, &site(), &last, day + 20, QUIET, silence).expect("record");
            let h = read(
                &kv,
                &site(),
                Range::Hour,
                (day + 20) * 60_000,
                None,
                Floor::default(),
                QUIET,
            )
            .expect("read");
            h.points[h.points.len() - 11..h.points.len() - 1].to_vec()
        };
        // Held for the snapshot's lifetime (six minutes here), then: nobody, or unknown.
        let held = [Some(3); 6];
        let mut empty = held.to_vec();
        empty.extend([Some(0); 4]);
        assert_eq!(points(Silence::ended_by(false, 2)), empty, "a change");
        assert_eq!(
            points(Silence::ended_by(true, 0)),
            empty,
            "a sweep finding nobody"
        );
        let mut unknown = held.to_vec();
        unknown.extend([None; 4]);
        assert_eq!(points(Silence::ended_by(true, 2)), unknown);
    }
}
