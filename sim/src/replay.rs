//! Measuring a step's CPU twice, to tell the service's work from the host's noise.
//!
//! The simulator runs on a virtual machine whose thread CPU clock now and then charges a
//! thread for milliseconds it did not run (a fixed 0.4 ms loop measured 5 to 13 ms a few times
//! in minutes; the same seed's run of one scenario gave a slowest execution of 0.8, 18 and
//! 116 ms). Compute's CPU limit is about the service's work, so before a step is judged by
//! its CPU time, a suspect measurement is taken again: every answer the host gave the step is
//! recorded on a [`Tape`] as it runs (the [`Recorder`] wraps each host service), and the step's
//! code is run a second time on those same answers ([`Replay`]), with no effect on the world.
//! The same code on the same inputs does the same work, so the lesser of the two times is the
//! work's; a noise burst rarely hits both. A replay that asks the host anything the tape does
//! not hold next (the code took another path) proves nothing, and the first measurement stands.

use std::cell::{Cell, RefCell};

use liveuser_edge::platform::cache::{CacheFailed, SharedCache};
use liveuser_edge::platform::clock::Clock;
use liveuser_edge::platform::ids::IdSource;
use liveuser_edge::platform::kv::{Entry, KvError, KvStore, ListPage, WriteMode};
use liveuser_edge::platform::log::{Line, Log};
use liveuser_edge::platform::peers::{PeerError, Peers};
use liveuser_edge::platform::publisher::{PublishError, PublishItem, Publisher};

use crate::compute::thread_cpu_ns;

/// One answer the host gave.
#[derive(Debug, Clone)]
pub enum Answer {
    Lookup(Result<Option<Entry>, KvError>),
    Write(Result<(), KvError>),
    DeleteMany(Vec<(String, KvError)>),
    List(Result<PackedPage, KvError>),
    Claim(Result<bool, CacheFailed>),
    CacheGet(Option<Vec<u8>>),
    CacheSet,
    Publish(Result<(), PublishError>),
    Now(u64),
    Slept,
    Ids([u64; 2]),
    Peers(Vec<Result<(u16, Vec<u8>), PeerError>>),
}

/// A list page kept in two allocations rather than one a key: pages are most of what a
/// count is answered, and recording them must not slow the run much.
#[derive(Debug, Clone)]
pub struct PackedPage {
    keys: String,
    ends: Vec<u32>,
    next_cursor: Option<String>,
}

impl PackedPage {
    fn pack(page: &ListPage) -> PackedPage {
        let mut keys = String::with_capacity(page.keys.iter().map(String::len).sum());
        let ends = page
            .keys
            .iter()
            .map(|k| {
                keys.push_str(k);
                keys.len() as u32
            })
            .collect();
        PackedPage {
            keys,
            ends,
            next_cursor: page.next_cursor.clone(),
        }
    }

    fn unpack(&self) -> ListPage {
        let mut from = 0;
        ListPage {
            keys: self
                .ends
                .iter()
                .map(|&end| {
                    let key = self.keys[from..end as usize].to_string();
                    from = end as usize;
                    key
                })
                .collect(),
            next_cursor: self.next_cursor.clone(),
        }
    }
}

/// The answers one step got, in order.
#[derive(Debug, Default)]
pub struct Tape {
    answers: RefCell<Vec<Answer>>,
}

impl Tape {
    fn push(&self, a: Answer) {
        self.answers.borrow_mut().push(a);
    }

    /// How many answers the step has had so far.
    pub fn len(&self) -> usize {
        self.answers.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The host services of one step, each call's answer recorded on the tape before it is
/// handed on. `before_call` runs first at every host call (the meter's CPU check).
pub struct Recorder<'a> {
    pub kv: &'a dyn KvStore,
    pub cache: &'a dyn SharedCache,
    pub publisher: &'a dyn Publisher,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn IdSource,
    pub peers: &'a dyn Peers,
    pub tape: &'a Tape,
    pub before_call: &'a dyn Fn(),
}

impl Recorder<'_> {
    fn record<T>(&self, call: impl FnOnce() -> T, answer: impl FnOnce(&T) -> Answer) -> T {
        (self.before_call)();
        let result = call();
        self.tape.push(answer(&result));
        result
    }
}

impl KvStore for Recorder<'_> {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.record(|| self.kv.lookup(key), |r| Answer::Lookup(r.clone()))
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        self.record(
            || self.kv.insert(key, value, ttl_secs, mode),
            |r| Answer::Write(r.clone()),
        )
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.record(|| self.kv.delete(key), |r| Answer::Write(r.clone()))
    }

    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        self.record(
            || self.kv.delete_many(keys),
            |r| Answer::DeleteMany(r.clone()),
        )
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError> {
        self.record(
            || self.kv.list(prefix, cursor, limit),
            |r| Answer::List(r.as_ref().map(PackedPage::pack).map_err(Clone::clone)),
        )
    }
}

impl SharedCache for Recorder<'_> {
    fn try_claim(&self, key: &str, ttl_ms: u64) -> Result<bool, CacheFailed> {
        self.record(|| self.cache.try_claim(key, ttl_ms), |r| Answer::Claim(*r))
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.record(|| self.cache.get(key), |r| Answer::CacheGet(r.clone()))
    }

    fn set(&self, key: &str, value: &[u8], ttl_ms: u64) {
        self.record(|| self.cache.set(key, value, ttl_ms), |_| Answer::CacheSet)
    }

    fn get_or_compute(
        &self,
        key: &str,
        ttl_ms: u64,
        compute: &mut dyn FnMut() -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        // As the simulated cache does it: a miss computes here, then stores.
        get_or_compute(self, key, ttl_ms, compute)
    }
}

fn get_or_compute(
    cache: &dyn SharedCache,
    key: &str,
    ttl_ms: u64,
    compute: &mut dyn FnMut() -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    if let Some(v) = cache.get(key) {
        return Some(v);
    }
    let v = compute()?;
    cache.set(key, &v, ttl_ms);
    Some(v)
}

impl Publisher for Recorder<'_> {
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        self.record(
            || self.publisher.publish(items),
            |r| Answer::Publish(r.clone()),
        )
    }
}

impl Clock for Recorder<'_> {
    fn now_ms(&self) -> u64 {
        // Reading the clock is not a host call Compute could stop on: no check.
        let now = self.clock.now_ms();
        self.tape.push(Answer::Now(now));
        now
    }

    fn sleep_until(&self, at_ms: u64) {
        // Not a host call either: the request's clock moves on.
        self.clock.sleep_until(at_ms);
        self.tape.push(Answer::Slept);
    }
}

impl IdSource for Recorder<'_> {
    fn random_u64s(&self) -> [u64; 2] {
        let ids = self.ids.random_u64s();
        self.tape.push(Answer::Ids(ids));
        ids
    }
}

impl Peers for Recorder<'_> {
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>> {
        self.record(
            || self.peers.send_all(requests),
            |answers| {
                Answer::Peers(
                    answers
                        .iter()
                        .map(|a| {
                            a.as_ref()
                                .map(|r| (r.status().as_u16(), r.body().clone()))
                                .map_err(Clone::clone)
                        })
                        .collect(),
                )
            },
        )
    }
}

/// A step's code run again on its tape: answers come from the tape, in order, and nothing
/// reaches the world. Measures the code's CPU time until the tape's first `upto` answers are
/// used up (the point the first run had reached).
pub struct Replay<'a> {
    tape: &'a Tape,
    upto: usize,
    next: Cell<usize>,
    /// The code's CPU so far (answering from the tape is not the code's work).
    cpu_ns: Cell<u64>,
    running_since: Cell<Option<u64>>,
    /// The replay asked for something the tape does not hold next.
    strayed: Cell<bool>,
}

impl<'a> Replay<'a> {
    pub fn new(tape: &'a Tape, upto: usize) -> Replay<'a> {
        Replay {
            tape,
            upto,
            next: Cell::new(0),
            cpu_ns: Cell::new(0),
            running_since: Cell::new(None),
            strayed: Cell::new(false),
        }
    }

    /// The code starts (or resumes) running.
    pub fn resume(&self) {
        if !self.strayed.get() {
            self.running_since.set(Some(thread_cpu_ns()));
        }
    }

    fn pause(&self) {
        if let Some(since) = self.running_since.take() {
            self.cpu_ns
                .set(self.cpu_ns.get() + thread_cpu_ns().saturating_sub(since));
        }
    }

    /// The code's CPU time up to where the first run had got (the end, when the tape is
    /// whole), or `None` when the replay strayed from the tape or stopped short of that point.
    pub fn measured_ns(&self) -> Option<u64> {
        self.pause();
        (!self.strayed.get() && self.next.get() >= self.upto).then(|| self.cpu_ns.get())
    }

    /// The next answer, if it is of the kind `pick` takes; `None` (and the replay strays)
    /// otherwise. Asking for answer `upto` is where the first run had got: the measuring
    /// stops there, and every later call gets `None`.
    fn answer<T>(&self, pick: impl FnOnce(Answer) -> Option<T>) -> Option<T> {
        self.pause();
        let i = self.next.get();
        if self.strayed.get() || i >= self.upto {
            return None;
        }
        let picked = self.tape.answers.borrow().get(i).cloned().and_then(pick);
        match picked {
            Some(v) => {
                self.next.set(i + 1);
                self.resume();
                Some(v)
            }
            None => {
                self.strayed.set(true);
                None
            }
        }
    }
}

fn ended() -> KvError {
    KvError::Other("replay ended".into())
}

impl KvStore for Replay<'_> {
    fn lookup(&self, _key: &str) -> Result<Option<Entry>, KvError> {
        self.answer(|a| match a {
            Answer::Lookup(r) => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| Err(ended()))
    }

    fn insert(&self, _: &str, _: &[u8], _: Option<u32>, _: WriteMode) -> Result<(), KvError> {
        self.delete("")
    }

    fn delete(&self, _key: &str) -> Result<(), KvError> {
        self.answer(|a| match a {
            Answer::Write(r) => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| Err(ended()))
    }

    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        self.answer(|a| match a {
            Answer::DeleteMany(r) => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| keys.iter().map(|k| (k.clone(), ended())).collect())
    }

    fn list(&self, _: &str, _: Option<&str>, _: u32) -> Result<ListPage, KvError> {
        self.answer(|a| match a {
            Answer::List(r) => Some(r.map(|p| p.unpack())),
            _ => None,
        })
        .unwrap_or_else(|| Err(ended()))
    }
}

impl SharedCache for Replay<'_> {
    fn try_claim(&self, _key: &str, _ttl_ms: u64) -> Result<bool, CacheFailed> {
        self.answer(|a| match a {
            Answer::Claim(r) => Some(r),
            _ => None,
        })
        .unwrap_or(Err(CacheFailed))
    }

    fn get(&self, _key: &str) -> Option<Vec<u8>> {
        self.answer(|a| match a {
            Answer::CacheGet(r) => Some(r),
            _ => None,
        })
        .flatten()
    }

    fn set(&self, _key: &str, _value: &[u8], _ttl_ms: u64) {
        self.answer(|a| matches!(a, Answer::CacheSet).then_some(()));
    }

    fn get_or_compute(
        &self,
        key: &str,
        ttl_ms: u64,
        compute: &mut dyn FnMut() -> Option<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        get_or_compute(self, key, ttl_ms, compute)
    }
}

impl Publisher for Replay<'_> {
    fn publish(&self, _items: &[PublishItem]) -> Result<(), PublishError> {
        self.answer(|a| match a {
            Answer::Publish(r) => Some(r),
            _ => None,
        })
        .unwrap_or_else(|| Err(PublishError::Unreachable("replay ended".into())))
    }
}

impl Clock for Replay<'_> {
    fn now_ms(&self) -> u64 {
        self.answer(|a| match a {
            Answer::Now(t) => Some(t),
            _ => None,
        })
        .unwrap_or(0)
    }

    fn sleep_until(&self, _at_ms: u64) {
        self.answer(|a| matches!(a, Answer::Slept).then_some(()));
    }
}

impl IdSource for Replay<'_> {
    fn random_u64s(&self) -> [u64; 2] {
        self.answer(|a| match a {
            Answer::Ids(ids) => Some(ids),
            _ => None,
        })
        .unwrap_or([0, 0])
    }
}

impl Peers for Replay<'_> {
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>> {
        let answers = self.answer(|a| match a {
            Answer::Peers(r) if r.len() == requests.len() => Some(r),
            _ => None,
        });
        match answers {
            Some(answers) => answers
                .into_iter()
                .map(|a| {
                    a.map(|(status, body)| {
                        http::Response::builder()
                            .status(status)
                            .body(body)
                            .expect("a recorded response")
                    })
                })
                .collect(),
            None => requests
                .iter()
                .map(|_| Err(PeerError("replay ended".into())))
                .collect(),
        }
    }
}

/// A replay's log lines go nowhere: the first run's were counted.
pub struct NoLog;

impl Log for NoLog {
    fn emit(&self, _line: &Line) {}
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Some work on the host's answers.
    fn step(kv: &dyn KvStore) -> (usize, bool) {
        let found = kv.lookup("k").ok().flatten().map_or(0, |e| e.value.len());
        let listed = kv.list("p", None, 10).map_or(0, |p| p.keys.len());
        let deleted = kv.delete("x").is_ok();
        (found + listed, deleted)
    }

    fn recorder<'a>(kv: &'a dyn KvStore, tape: &'a Tape) -> Recorder<'a> {
        static NO_PEERS: liveuser_edge::platform::peers::NoPeers =
            liveuser_edge::platform::peers::NoPeers;
        Recorder {
            kv,
            cache: &NullCache,
            publisher: &NullPublisher,
            clock: &liveuser_edge::platform::clock::SystemClock,
            ids: &liveuser_edge::platform::ids::OsRandom,
            peers: &NO_PEERS,
            tape,
            before_call: &|| {},
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

    #[test]
    fn a_replay_gets_the_answers_the_first_run_got() {
        let tape = Tape::default();
        let first = step(&recorder(&Host, &tape));
        assert_eq!(tape.len(), 3);
        let replay = Replay::new(&tape, tape.len());
        replay.resume();
        assert_eq!(step(&replay), first);
        assert!(replay.measured_ns().is_some());
    }

    #[test]
    fn a_replay_that_strays_from_the_tape_measures_nothing() {
        let tape = Tape::default();
        step(&recorder(&Host, &tape));
        let replay = Replay::new(&tape, tape.len());
        replay.resume();
        let _ = replay.list("p", None, 10); // the tape's first answer is a lookup
        assert_eq!(replay.measured_ns(), None);
    }

    #[test]
    fn a_replay_from_before_the_first_answer_measures_the_code_before_it() {
        let tape = Tape::default();
        step(&recorder(&Host, &tape));
        let none_yet = Replay::new(&tape, 0);
        none_yet.resume();
        let spin = thread_cpu_ns() + 2_000_000;
        while thread_cpu_ns() < spin {}
        step(&none_yet);
        let ns = none_yet.measured_ns().expect("measured");
        assert!(ns >= 2_000_000, "the 2 ms before the first call count: {ns}");
    }

    #[test]
    fn a_replay_measures_up_to_where_the_first_run_was() {
        let tape = Tape::default();
        step(&recorder(&Host, &tape));
        let short = Replay::new(&tape, 2);
        short.resume();
        let (_, deleted) = step(&short);
        assert!(!deleted, "past the measured part, the host says nothing");
        assert!(short.measured_ns().is_some());
    }
}
