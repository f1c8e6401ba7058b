//! The running peaks a snapshot carries: the highest count of its minute and of its day
//! (UTC), kept up by every broadcast at no extra write (the snapshot carries them; `history`
//! keeps each finished minute's).

/// Minutes in a day.
pub const DAY_MINUTES: u64 = 1440;

/// The running peaks a snapshot carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peak {
    /// Minutes since 1970 (UTC) of the snapshot's slot.
    pub minute: u64,
    /// The highest count seen in that minute so far.
    pub minute_peak: u64,
    /// The highest count seen in that minute's day so far.
    pub day_peak: u64,
}

/// The minute of a time in ms.
pub fn minute_of(ms: u64) -> u64 {
    ms / 60_000
}

/// Two views of the peaks at one time (from two snapshots): the higher of each, or the view
/// of the later minute.
pub fn merge(a: Peak, b: Peak) -> Peak {
    match a.minute.cmp(&b.minute) {
        std::cmp::Ordering::Equal => Peak {
            minute: a.minute,
            minute_peak: a.minute_peak.max(b.minute_peak),
            day_peak: a.day_peak.max(b.day_peak),
        },
        std::cmp::Ordering::Less => b,
        std::cmp::Ordering::Greater => a,
    }
}

/// What a snapshot published, as far as the peaks after it are concerned: its count and the
/// peaks it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Last {
    pub count: u64,
    pub peak: Option<Peak>,
}

/// The peaks once `count` is counted in `minute`, after the `last` snapshot's. A count held
/// since the last broadcast was there at the start of this minute too.
pub fn next_peak(last: Option<Last>, minute: u64, count: u64) -> Peak {
    let Some(last) = last else {
        return Peak {
            minute,
            minute_peak: count,
            day_peak: count,
        };
    };
    let held = last.count.max(count);
    match last.peak {
        Some(p) if p.minute == minute => Peak {
            minute,
            minute_peak: p.minute_peak.max(count),
            day_peak: p.day_peak.max(count),
        },
        Some(p) if p.minute / DAY_MINUTES == minute / DAY_MINUTES && p.minute < minute => Peak {
            minute,
            minute_peak: held,
            day_peak: p.day_peak.max(held),
        },
        _ => Peak {
            minute,
            minute_peak: held,
            day_peak: held,
        },
    }
}

/// Today's peak as a snapshot (`last`) knows it at `now_ms`: its day's peak if it is from today, else
/// the count it published (held since).
pub fn today_peak(last: Last, now_ms: u64) -> u64 {
    let today = minute_of(now_ms) / DAY_MINUTES;
    match last.peak {
        Some(p) if p.minute / DAY_MINUTES == today => p.day_peak.max(last.count),
        _ => last.count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a snapshot published at the end of `minute`, with its peaks.
    fn at(minute: u64, count: u64, (minute_peak, day_peak): (u64, u64)) -> Last {
        Last {
            count,
            peak: Some(Peak {
                minute,
                minute_peak,
                day_peak,
            }),
        }
    }

    #[test]
    fn peaks_run_through_the_minute_and_the_day_and_start_again() {
        let day = 20_000 * DAY_MINUTES;
        let first = next_peak(None, day + 10, 4);
        assert_eq!((first.minute_peak, first.day_peak), (4, 4));
        let s = at(day + 10, 4, (4, 4));
        // Same minute: the higher count is kept.
        assert_eq!(next_peak(Some(s), day + 10, 9).minute_peak, 9);
        assert_eq!(next_peak(Some(s), day + 10, 2).minute_peak, 4);
        // A later minute starts from the count held into it.
        let later = next_peak(Some(s), day + 12, 1);
        assert_eq!((later.minute_peak, later.day_peak), (4, 4));
        let s = at(day + 12, 1, (7, 12));
        assert_eq!(next_peak(Some(s), day + 13, 0).day_peak, 12);
        // A new day starts the day's peak again.
        let tomorrow = next_peak(Some(s), day + DAY_MINUTES + 1, 3);
        assert_eq!((tomorrow.minute_peak, tomorrow.day_peak), (3, 3));
        assert_eq!(today_peak(s, (day + 20) * 60_000), 12);
        assert_eq!(today_peak(s, (day + DAY_MINUTES) * 60_000), 1);
    }
}
