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
use std::hash::{Hash, Hasher};

use liveuser_edge::platform::cache::{CacheFailed, SharedCache};
use liveuser_edge::platform::clock::Clock;
use liveuser_edge::platform::ids::IdSource;
use liveuser_edge::platform::kv::{Entry, KvError, KvStore, ListPage, WriteMode};
use liveuser_edge::platform::log::{Line, Log};
use liveuser_edge::platform::peers::{PeerError, Peers};
use liveuser_edge::platform::publisher::{PublishError, PublishItem, Publisher};

use crate::compute::{thread_cpu_ns, Meter, Returned};

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

/// The answers one step got, in order, each with the fingerprint of the call it answered.
#[derive(Debug, Default)]
pub struct Tape {
    answers: RefCell<Vec<(u64, Answer)>>,
}

impl Tape {
    /// A tape with room for a step's usual answers (made before the step is metered).
    pub fn new() -> Tape {
        Tape {
            answers: RefCell::new(Vec::with_capacity(64)),
        }
    }

    fn push(&self, call: u64, a: Answer) {
        self.answers.borrow_mut().push((call, a));
    }

    /// How many answers the step has had so far.
    pub fn len(&self) -> usize {
        self.answers.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A call's fingerprint: what it is and its arguments, so that a replay that asks anything
/// else than the first run asked at that point is caught.
fn call(kind: &str, args: impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    kind.hash(&mut h);
    args.hash(&mut h);
    h.finish()
}

fn items_fingerprint(items: &[PublishItem]) -> Vec<(&str, &str, Option<&str>)> {
    items
        .iter()
        .map(|i| (i.channel.as_str(), i.content.as_str(), i.id.as_deref()))
        .collect()
}

fn requests_fingerprint(requests: &[http::Request<Vec<u8>>]) -> Vec<String> {
    requests.iter().map(|r| r.uri().to_string()).collect()
}

/// The host services of one step, each call's answer recorded on the tape before it is
/// handed on. Each host call runs in one window of the meter's (`open_host` … `close_host`):
/// the recording is the model's work, not the service's, and the CPU check before the call
/// may measure the step again (`remeasure`: the answers so far, and the call about to be made).
pub struct Recorder<'a> {
    pub kv: &'a dyn KvStore,
    pub cache: &'a dyn SharedCache,
    pub publisher: &'a dyn Publisher,
    pub clock: &'a dyn Clock,
    pub ids: &'a dyn IdSource,
    pub peers: &'a dyn Peers,
    pub tape: &'a Tape,
    pub meter: &'a Meter,
    pub remeasure: &'a dyn Fn(u64) -> Option<u64>,
}

impl Recorder<'_> {
    fn record<T: Returned>(
        &self,
        fingerprint: u64,
        call: impl FnOnce() -> T,
        answer: impl FnOnce(&T) -> Answer,
    ) -> T {
        self.meter.open_host(|| (self.remeasure)(fingerprint));
        let result = call();
        self.tape.push(fingerprint, answer(&result));
        self.meter.close_host(result.heap_bytes());
        result
    }
}

impl KvStore for Recorder<'_> {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.record(
            call("lookup", key),
            || self.kv.lookup(key),
            |r| Answer::Lookup(r.clone()),
        )
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        self.record(
            call("insert", (key, value, ttl_secs, format!("{mode:?}"))),
            || self.kv.insert(key, value, ttl_secs, mode),
            |r| Answer::Write(r.clone()),
        )
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.record(
            call("delete", key),
            || self.kv.delete(key),
            |r| Answer::Write(r.clone()),
        )
    }

    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        self.record(
            call("delete_many", keys),
            || self.kv.delete_many(keys),
            |r| Answer::DeleteMany(r.clone()),
        )
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError> {
        self.record(
            call("list", (prefix, cursor, limit)),
            || self.kv.list(prefix, cursor, limit),
            |r| Answer::List(r.as_ref().map(PackedPage::pack).map_err(Clone::clone)),
        )
    }
}

impl SharedCache for Recorder<'_> {
    fn try_claim(&self, key: &str, ttl_ms: u64) -> Result<bool, CacheFailed> {
        self.record(
            call("try_claim", (key, ttl_ms)),
            || self.cache.try_claim(key, ttl_ms),
            |r| Answer::Claim(*r),
        )
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.record(
            call("cache_get", key),
            || self.cache.get(key),
            |r| Answer::CacheGet(r.clone()),
        )
    }

    fn set(&self, key: &str, value: &[u8], ttl_ms: u64) {
        self.record(
            call("cache_set", (key, value, ttl_ms)),
            || self.cache.set(key, value, ttl_ms),
            |_| Answer::CacheSet,
        )
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
            call("publish", items_fingerprint(items)),
            || self.publisher.publish(items),
            |r| Answer::Publish(r.clone()),
        )
    }
}

impl Clock for Recorder<'_> {
    fn now_ms(&self) -> u64 {
        // Reading the clock is not a host call Compute could stop on: no window, no check.
        let now = self.clock.now_ms();
        self.tape.push(call("now", ()), Answer::Now(now));
        now
    }

    fn sleep_until(&self, at_ms: u64) {
        // Not a host call either: the request's clock moves on.
        self.clock.sleep_until(at_ms);
        self.tape.push(call("sleep", at_ms), Answer::Slept);
    }
}

impl IdSource for Recorder<'_> {
    fn random_u64s(&self) -> [u64; 2] {
        let ids = self.ids.random_u64s();
        self.tape.push(call("ids", ()), Answer::Ids(ids));
        ids
    }
}

impl Peers for Recorder<'_> {
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>> {
        self.record(
            call("send_all", requests_fingerprint(&requests)),
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
/// reaches the world. Measures the code's CPU time up to where the first run had got: its end
/// (`Until::End`), or the host call it was about to make (`Until::Call`: the call's index on
/// the tape and its fingerprint). Once there, or once the replay asks for anything the first
/// run did not ask at that point, it stops: the code is unwound (see [`Replay::run`]), so it
/// never runs on answers the host did not give.
pub struct Replay<'a> {
    tape: &'a Tape,
    until: Until,
    next: Cell<usize>,
    /// The code's CPU so far (answering from the tape is not the code's work).
    cpu_ns: Cell<u64>,
    running_since: Cell<Option<u64>>,
    reached: Cell<bool>,
    strayed: Cell<bool>,
}

/// Where the first run had got.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// The step's end: the replay must use every answer and ask for no more.
    End,
    /// About to make the call with this fingerprint, after the tape's answers so far.
    Call(usize, u64),
}

/// What unwinds a replay that has measured what it can.
struct ReplayStopped;

impl<'a> Replay<'a> {
    pub fn new(tape: &'a Tape, until: Until) -> Replay<'a> {
        Replay {
            tape,
            until,
            next: Cell::new(0),
            cpu_ns: Cell::new(0),
            running_since: Cell::new(None),
            reached: Cell::new(false),
            strayed: Cell::new(false),
        }
    }

    /// Runs `code` on this replay, measuring it; the code's CPU time up to where the first
    /// run had got, or `None` when the replay strayed from the tape or stopped short.
    pub fn run(&self, code: impl FnOnce()) -> Option<u64> {
        self.resume();
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(code));
        self.pause();
        if let Err(payload) = finished {
            if !payload.is::<ReplayStopped>() {
                // A real panic of the service's code: not ours to swallow.
                std::panic::resume_unwind(payload);
            }
        }
        let whole = match self.until {
            Until::End => self.next.get() == self.tape.len(),
            Until::Call(..) => self.reached.get(),
        };
        (whole && !self.strayed.get()).then(|| self.cpu_ns.get())
    }

    fn resume(&self) {
        self.running_since.set(Some(thread_cpu_ns()));
    }

    fn pause(&self) {
        if let Some(since) = self.running_since.take() {
            self.cpu_ns
                .set(self.cpu_ns.get() + thread_cpu_ns().saturating_sub(since));
        }
    }

    /// Stops the replay here (unwinding the code).
    fn stop(&self) -> ! {
        std::panic::resume_unwind(Box::new(ReplayStopped))
    }

    /// The answer to the call `fingerprint`, if the tape holds it next and it is of the kind
    /// `pick` takes; otherwise the replay stops (where the first run was, or astray).
    fn answer<T>(&self, fingerprint: u64, pick: impl FnOnce(Answer) -> Option<T>) -> T {
        self.pause();
        let i = self.next.get();
        if let Until::Call(at, pending) = self.until {
            if i == at {
                self.reached.set(fingerprint == pending);
                self.strayed.set(fingerprint != pending);
                self.stop();
            }
        }
        let recorded = self.tape.answers.borrow().get(i).cloned();
        let picked = recorded
            .filter(|(call, _)| *call == fingerprint)
            .and_then(|(_, a)| pick(a));
        match picked {
            Some(v) => {
                self.next.set(i + 1);
                self.resume();
                v
            }
            None => {
                self.strayed.set(true);
                self.stop()
            }
        }
    }
}

impl KvStore for Replay<'_> {
    fn lookup(&self, key: &str) -> Result<Option<Entry>, KvError> {
        self.answer(call("lookup", key), |a| match a {
            Answer::Lookup(r) => Some(r),
            _ => None,
        })
    }

    fn insert(
        &self,
        key: &str,
        value: &[u8],
        ttl_secs: Option<u32>,
        mode: WriteMode,
    ) -> Result<(), KvError> {
        let fingerprint = call("insert", (key, value, ttl_secs, format!("{mode:?}")));
        self.answer(fingerprint, |a| match a {
            Answer::Write(r) => Some(r),
            _ => None,
        })
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.answer(call("delete", key), |a| match a {
            Answer::Write(r) => Some(r),
            _ => None,
        })
    }

    fn delete_many(&self, keys: &[String]) -> Vec<(String, KvError)> {
        self.answer(call("delete_many", keys), |a| match a {
            Answer::DeleteMany(r) => Some(r),
            _ => None,
        })
    }

    fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage, KvError> {
        self.answer(call("list", (prefix, cursor, limit)), |a| match a {
            Answer::List(r) => Some(r.map(|p| p.unpack())),
            _ => None,
        })
    }
}

impl SharedCache for Replay<'_> {
    fn try_claim(&self, key: &str, ttl_ms: u64) -> Result<bool, CacheFailed> {
        self.answer(call("try_claim", (key, ttl_ms)), |a| match a {
            Answer::Claim(r) => Some(r),
            _ => None,
        })
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.answer(call("cache_get", key), |a| match a {
            Answer::CacheGet(r) => Some(r),
            _ => None,
        })
    }

    fn set(&self, key: &str, value: &[u8], ttl_ms: u64) {
        self.answer(call("cache_set", (key, value, ttl_ms)), |a| {
            matches!(a, Answer::CacheSet).then_some(())
        })
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
    fn publish(&self, items: &[PublishItem]) -> Result<(), PublishError> {
        self.answer(call("publish", items_fingerprint(items)), |a| match a {
            Answer::Publish(r) => Some(r),
            _ => None,
        })
    }
}

impl Clock for Replay<'_> {
    fn now_ms(&self) -> u64 {
        self.answer(call("now", ()), |a| match a {
            Answer::Now(t) => Some(t),
            _ => None,
        })
    }

    fn sleep_until(&self, at_ms: u64) {
        self.answer(call("sleep", at_ms), |a| {
            matches!(a, Answer::Slept).then_some(())
        })
    }
}

impl IdSource for Replay<'_> {
    fn random_u64s(&self) -> [u64; 2] {
        self.answer(call("ids", ()), |a| match a {
            Answer::Ids(ids) => Some(ids),
            _ => None,
        })
    }
}

impl Peers for Replay<'_> {
    fn send_all(
        &self,
        requests: Vec<http::Request<Vec<u8>>>,
    ) -> Vec<Result<http::Response<Vec<u8>>, PeerError>> {
        let answers = self.answer(
            call("send_all", requests_fingerprint(&requests)),
            |a| match a {
                Answer::Peers(r) => Some(r),
                _ => None,
            },
        );
        answers
            .into_iter()
            .map(|a| {
                a.map(|(status, body)| {
                    http::Response::builder()
                        .status(status)
                        .body(body)
                        .expect("a recorded response")
                })
            })
            .collect()
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
}
