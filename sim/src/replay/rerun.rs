//! The measuring half: a step's code run again on the answers its first run got.

use std::cell::Cell;

use liveuser_edge::platform::cache::{CacheFailed, SharedCache};
use liveuser_edge::platform::clock::Clock;
use liveuser_edge::platform::ids::IdSource;
use liveuser_edge::platform::kv::{Entry, KvError, KvStore, ListPage, WriteMode};
use liveuser_edge::platform::peers::{PeerError, Peers};
use liveuser_edge::platform::publisher::{PublishError, PublishItem, Publisher};

use super::tape::{call, get_or_compute, items_fingerprint, requests_fingerprint, Answer, Tape};
use crate::compute::thread_cpu_ns;

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
        let fingerprint = call("insert", (key, value, ttl_secs, mode));
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
