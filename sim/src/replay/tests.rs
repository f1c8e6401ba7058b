//! The recorder and the replay, on a host of fixed answers.

use liveuser_edge::platform::cache::{CacheFailed, SharedCache};
use liveuser_edge::platform::kv::{Entry, KvError, KvStore, ListPage, WriteMode};
use liveuser_edge::platform::publisher::{PublishError, PublishItem, Publisher};

use super::tape::call;
use super::*;
use crate::compute::thread_cpu_ns;
use crate::compute::{ComputeLimits, Meter};

struct Host;

impl KvStore for Host {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        Ok(Some(Entry {
            value: key.as_bytes().to_vec(),
            generation: 1,
        }))
    }
    fn insert(&self, _: &str, _: &[u8], _: Option<u32>, _: WriteMode) -> Result<(), KvError> {
        Ok(())
    }
    fn delete(&self, _: &str) -> Result<(), KvError> {
        Err(KvError::TooManyRequests)
    }
    fn list(&self, _: &str, _: Option<&str>, _: u32) -> Result<ListPage, KvError> {
        Ok(ListPage {
            keys: vec!["a".into(), "b".into()],
            next_cursor: None,
        })
    }
}

struct NullCache;
impl SharedCache for NullCache {
    fn try_claim(&self, _: &str, _: u64) -> Result<bool, CacheFailed> {
        Ok(true)
    }
    fn get(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
    fn set(&self, _: &str, _: &[u8], _: u64) {}
    fn get_or_compute(
        &self,
        _: &str,
        _: u64,
        compute: &mut dyn FnMut() -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        compute()
    }
}

struct NullPublisher;
impl Publisher for NullPublisher {
    fn publish(&self, _: &[PublishItem]) -> Result<(), PublishError> {
        Ok(())
    }
}

/// Some work on the host's answers; `key` is what it looks up.
fn step(kv: &dyn KvStore, key: &str) -> (usize, bool) {
    let found = kv.lookup(key).ok().flatten().map_or(0, |e| e.value.len());
    let listed = kv.list("p", None, 10).map_or(0, |p| p.keys.len());
    let deleted = kv.delete("x").is_ok();
    (found + listed, deleted)
}

/// Runs `step` through a recorder onto `tape`.
fn record(tape: &Tape, key: &str) -> (usize, bool) {
    static NO_PEERS: liveuser_edge::platform::peers::NoPeers =
        liveuser_edge::platform::peers::NoPeers;
    let meter = Meter::new(ComputeLimits::unlimited(), 1.0, 0);
    meter.begin_step();
    let recorder = Recorder {
        kv: &Host,
        cache: &NullCache,
        publisher: &NullPublisher,
        clock: &liveuser_edge::platform::clock::SystemClock,
        ids: &liveuser_edge::platform::ids::OsRandom,
        peers: &NO_PEERS,
        tape,
        meter: &meter,
        remeasure: &|_| None,
    };
    step(&recorder, key)
}

#[test]
fn a_replay_gets_the_answers_the_first_run_got() {
    let tape = Tape::new();
    let first = record(&tape, "k");
    assert_eq!(tape.len(), 3);
    let replay = Replay::new(&tape, Until::End);
    let mut again = None;
    assert!(replay.run(|| again = Some(step(&replay, "k"))).is_some());
    assert_eq!(again, Some(first));
}

#[test]
fn a_replay_that_asks_anything_else_measures_nothing() {
    let tape = Tape::new();
    record(&tape, "k");
    let other_key = Replay::new(&tape, Until::End);
    assert_eq!(
        other_key.run(|| {
            let _ = step(&other_key, "other");
        }),
        None
    );
    let asks_more = Replay::new(&tape, Until::End);
    let more = || {
        step(&asks_more, "k");
        let _ = asks_more.lookup("one more");
    };
    assert_eq!(
        asks_more.run(more),
        None,
        "the first run asked nothing more"
    );
    let stops_short = Replay::new(&tape, Until::End);
    assert_eq!(stops_short.run(|| drop(stops_short.lookup("k"))), None);
}

#[test]
fn a_replay_measures_up_to_the_call_the_first_run_was_about_to_make() {
    let tape = Tape::new();
    record(&tape, "k");
    // The first run was about to make its third call, the delete.
    let at_delete = Replay::new(&tape, Until::Call(2, call("delete", "x")));
    let mut got_past = false;
    let measured = at_delete.run(|| {
        step(&at_delete, "k");
        got_past = true;
    });
    assert!(measured.is_some());
    assert!(
        !got_past,
        "the replay stops at the call, before the host would answer"
    );
    let elsewhere = Replay::new(&tape, Until::Call(2, call("delete", "y")));
    assert_eq!(
        elsewhere.run(|| {
            let _ = step(&elsewhere, "k");
        }),
        None
    );
}

#[test]
fn a_replay_from_before_the_first_answer_measures_the_code_before_it() {
    let tape = Tape::new();
    record(&tape, "k");
    let none_yet = Replay::new(&tape, Until::Call(0, call("lookup", "k")));
    let ns = none_yet
        .run(|| {
            let spin = thread_cpu_ns() + 2_000_000;
            while thread_cpu_ns() < spin {}
            step(&none_yet, "k");
        })
        .expect("measured");
    assert!(
        ns >= 2_000_000,
        "the 2 ms before the first call count: {ns}"
    );
}
