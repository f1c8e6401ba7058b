//! Fanout, as the service sees it: per POP, the sockets it holds and their subscriptions; one
//! publish API whose items reach the subscribers of every POP, repeated item ids dropped.

use std::collections::{HashMap, VecDeque};

/// Subscriptions and the ids Fanout has recently seen.
#[derive(Default)]
pub struct FanoutModel {
    /// Subscribers per (POP, channel).
    subscribers: HashMap<(usize, String), u64>,
    /// Recently published ids per channel, oldest first, with the time they were seen.
    seen: HashMap<String, VecDeque<(u64, String)>>,
    /// Items dropped because their id repeated one seen within the window.
    pub dropped_repeats: u64,
}

impl FanoutModel {
    pub fn subscribe(&mut self, pop: usize, channel: &str) {
        *self
            .subscribers
            .entry((pop, channel.to_string()))
            .or_insert(0) += 1;
    }

    pub fn unsubscribe(&mut self, pop: usize, channel: &str) {
        if let Some(n) = self.subscribers.get_mut(&(pop, channel.to_string())) {
            *n = n.saturating_sub(1);
        }
    }

    pub fn subscribers(&self, pop: usize, channel: &str) -> u64 {
        self.subscribers
            .get(&(pop, channel.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Drops every subscription of a POP (it died).
    pub fn drop_pop(&mut self, pop: usize) {
        self.subscribers.retain(|(p, _), _| *p != pop);
    }

    /// Whether an item with this id is new on the channel (and remembers it).
    pub fn accept(&mut self, channel: &str, id: Option<&str>, t: u64, window_us: u64) -> bool {
        let Some(id) = id else { return true };
        let seen = self.seen.entry(channel.to_string()).or_default();
        while seen.front().is_some_and(|(at, _)| at + window_us < t) {
            seen.pop_front();
        }
        if seen.iter().any(|(_, s)| s == id) {
            self.dropped_repeats += 1;
            return false;
        }
        seen.push_back((t, id.to_string()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_ids_are_dropped_within_the_window() {
        let mut f = FanoutModel::default();
        assert!(f.accept("c", Some("a"), 0, 10));
        assert!(!f.accept("c", Some("a"), 5, 10));
        assert!(f.accept("d", Some("a"), 5, 10));
        assert!(f.accept("c", Some("a"), 20, 10));
        assert!(f.accept("c", None, 20, 10));
        assert_eq!(f.dropped_repeats, 1);
    }
}
