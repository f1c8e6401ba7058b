//! The running peaks a snapshot carries: the highest count of its minute and of its day
//! (UTC), kept up by every broadcast at no extra write (see `snapshot` and `history`).

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
