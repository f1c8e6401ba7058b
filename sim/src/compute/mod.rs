//! Compute's limits on one execution, enforced on the service's own code as the simulator runs
//! it. Fastly stops an execution that passes any of them (its published defaults): **50 ms of
//! CPU time, 128 MB of heap, 2 minutes of wall time, 32 backend requests**. Viceroy enforces
//! none of them, so only a model can show a design breaking them.
//!
//! One execution is what `main` does for one request on Compute: the handler, then (after the
//! reply) the broadcast the request won, claimed and, when it wakes, counted and published.
//! The simulator runs those as separate events, so a [`Meter`] follows the execution across
//! them:
//!
//! - **CPU**: the time the service's code runs, paused during every host call (the model's own
//!   work is not the service's), on the monotonic clock: at least the code's CPU time, and
//!   read without a system call (the thread's CPU clock takes one, and reading it around every
//!   host call was a tenth of a long run). When it looks large (over [`REMEASURE_ABOVE`] of
//!   the limit at a step's end, or over the limit at a host call) it is checked twice:
//!   1. against the thread's CPU clock since the step began, read once at the step's start:
//!      that counts the host calls' work too but never a moment the thread was preempted
//!      (which the monotonic clock counts), so it is a second bound, and the lesser stands;
//!   2. if still large, by running the step's code again on the answers it got, measured on
//!      the thread's CPU clock: the lesser time is the work's, the rest the host's noise (see
//!      `replay`).
//!
//!   Times
//!   `wasm_cpu_factor`: the service runs here natively, on Compute as wasm under Wasmtime.
//!   The factor is measured: counting a listing (`presence::census_cost`, the heaviest loop a
//!   broadcast runs) takes 2.4 times as long per key inside Viceroy's Wasmtime as natively on
//!   the same machine, same optimization level.
//! - **Heap**: the most bytes the thread holds above what it held when each part of the
//!   execution began, counted by a counting allocator. What a host call hands back (a listing's
//!   keys, a lookup's value, a share's answer) is the service's heap from then on; whatever
//!   else the thread's heap grew or shrank by during the call is the model's own state (its
//!   store, its queue of events, its figures) and is not the service's: a host call moves the
//!   step's baseline by that much (see [`Returned`]). The allocator and the clocks are
//!   `heap.rs`'s.
//! - **Wall time**: virtual time from the request's arrival to the execution's last step.
//! - **Backend requests**: publishes (and, for designs that fan out, requests to the service).
//!
//! A limit passed is noticed at the next host call or at the end of a step: from then on every
//! host call of the execution fails and nothing more it does takes effect, as when Compute stops
//! it mid-way (what it already wrote stays written).

use std::cell::Cell;

mod heap;

use heap::{held, peak, reset_peak};
pub(crate) use heap::{monotonic_ns, thread_cpu_ns};
pub use heap::{tune_allocator, CountingAllocator, Returned};

/// Compute's default limits on one execution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ComputeLimits {
    pub cpu_ms: f64,
    pub heap_bytes: u64,
    pub wall_us: u64,
    pub backend_requests: u32,
}

/// Fastly's published defaults.
pub const LIMITS: ComputeLimits = ComputeLimits {
    cpu_ms: 50.0,
    heap_bytes: 128 * 1024 * 1024,
    wall_us: 120_000_000,
    backend_requests: 32,
};

impl ComputeLimits {
    /// No limits: for reads the report makes, which no request on Compute stands for.
    pub fn unlimited() -> ComputeLimits {
        ComputeLimits {
            cpu_ms: f64::INFINITY,
            heap_bytes: u64::MAX,
            wall_us: u64::MAX,
            backend_requests: u32::MAX,
        }
    }
}

/// Which limit stopped an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit {
    Cpu,
    Heap,
    Wall,
    BackendRequests,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Cpu => "CPU",
            Limit::Heap => "heap",
            Limit::Wall => "wall time",
            Limit::BackendRequests => "backend requests",
        }
    }
}

/// What one execution used, as Compute would count it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU time, scaled to wasm on Compute.
    pub cpu_ms: f64,
    pub heap_bytes: u64,
    pub wall_us: u64,
    pub backend_requests: u32,
    pub killed: Option<Limit>,
    /// How many times a step of the execution was measured again.
    pub remeasured: u32,
    /// Second measurements that proved nothing: the step's code took another path on the
    /// same answers (the first measurement stood).
    pub inconclusive: u32,
    /// CPU (as wasm) a second measurement showed was the host's noise, not the service's.
    pub noise_ms: f64,
}

impl Usage {
    /// The largest share of any limit this execution used (0.5: half of one limit).
    pub fn worst_share(&self, limits: &ComputeLimits) -> f64 {
        [
            self.cpu_ms / limits.cpu_ms,
            self.heap_bytes as f64 / limits.heap_bytes as f64,
            self.wall_us as f64 / limits.wall_us as f64,
            f64::from(self.backend_requests) / f64::from(limits.backend_requests),
        ]
        .into_iter()
        .fold(0.0, f64::max)
    }

    /// The highest of each figure over two executions (for reporting the worst).
    pub fn max(self, o: Usage) -> Usage {
        Usage {
            cpu_ms: self.cpu_ms.max(o.cpu_ms),
            heap_bytes: self.heap_bytes.max(o.heap_bytes),
            wall_us: self.wall_us.max(o.wall_us),
            backend_requests: self.backend_requests.max(o.backend_requests),
            killed: self.killed.or(o.killed),
            remeasured: self.remeasured.max(o.remeasured),
            inconclusive: self.inconclusive.max(o.inconclusive),
            noise_ms: self.noise_ms.max(o.noise_ms),
        }
    }
}

/// The share of the CPU limit above which a step's CPU is measured a second time at its end.
pub const REMEASURE_ABOVE: f64 = 0.2;

thread_local! {
    static REMEASURE_SHARE: Cell<f64> = const { Cell::new(REMEASURE_ABOVE) };
}

/// Measures every step a second time on this thread from now on (`true`), or only those over
/// [`REMEASURE_ABOVE`] of the limit: a test that every step of the service runs the same way
/// on the same answers, which the second measurement relies on.
pub fn remeasure_every_step(every: bool) {
    REMEASURE_SHARE.with(|s| s.set(if every { -1.0 } else { REMEASURE_ABOVE }));
}

/// How much shorter than the first a second measurement must be (besides a quarter) to be
/// taken as the step's: the host's bursts are milliseconds long.
const NOISE_MARGIN_NS: u64 = 1_000_000;

/// Before each run of a step measured again, a pause (in real time, not the simulation's):
/// none before the first, then long enough to leave a noisy episode of the host's behind.
/// The last, longest, only for a step that would otherwise be stopped.
const RETRY_PAUSES_MS: [u64; 4] = [0, 100, 500, 2_000];

/// The most second measurements one execution gets (each runs its step again).
const MAX_REMEASURES: u32 = 4;

/// One execution's use of Compute's limits, followed across the steps the simulator runs it in.
#[derive(Debug)]
pub struct Meter {
    limits: ComputeLimits,
    wasm_cpu_factor: f64,
    started_us: u64,
    cpu_ns: Cell<u64>,
    /// `cpu_ns` when the current step began.
    step_cpu_from: Cell<u64>,
    /// The thread's CPU clock when the current step began.
    step_thread_from: Cell<u64>,
    remeasured: Cell<u32>,
    inconclusive: Cell<u32>,
    noise_ns: Cell<u64>,
    /// Monotonic time when the service's code last resumed (None: paused).
    running_since: Cell<Option<u64>>,
    /// Bytes held when the current step began, moved by what host calls added to (or took
    /// from) the model's own state.
    heap_base: Cell<usize>,
    /// Bytes held when the current host call began.
    held_at_call: Cell<usize>,
    /// Inside a host call window opened by `open_host` (the recorder's).
    in_host: Cell<u32>,
    /// What the execution is (a socket's request, a broadcast, a census share…), for reports.
    kind: Cell<&'static str>,
    heap_peak: Cell<u64>,
    last_us: Cell<u64>,
    backend_requests: Cell<u32>,
    killed: Cell<Option<Limit>>,
}

impl Meter {
    /// An execution that starts at virtual time `started_us`.
    pub fn new(limits: ComputeLimits, wasm_cpu_factor: f64, started_us: u64) -> Meter {
        Meter {
            limits,
            wasm_cpu_factor,
            started_us,
            cpu_ns: Cell::new(0),
            step_cpu_from: Cell::new(0),
            step_thread_from: Cell::new(0),
            remeasured: Cell::new(0),
            inconclusive: Cell::new(0),
            noise_ns: Cell::new(0),
            running_since: Cell::new(None),
            heap_base: Cell::new(0),
            held_at_call: Cell::new(0),
            in_host: Cell::new(0),
            kind: Cell::new("execution"),
            heap_peak: Cell::new(0),
            last_us: Cell::new(started_us),
            backend_requests: Cell::new(0),
            killed: Cell::new(None),
        }
    }

    /// Names what the execution is doing from now on (the last name given is reported).
    pub fn set_kind(&self, kind: &'static str) {
        self.kind.set(kind);
    }

    /// What the execution was last doing.
    pub fn kind(&self) -> &'static str {
        self.kind.get()
    }

    /// The service's code starts a step (a handler call, a claim, a count).
    pub fn begin_step(&self) {
        let held = held();
        self.heap_base.set(held);
        reset_peak(held);
        self.step_cpu_from.set(self.cpu_ns.get());
        self.step_thread_from.set(thread_cpu_ns());
        self.resume();
    }

    /// The step ends at virtual time `now_us`.
    pub fn end_step(&self, now_us: u64) {
        self.pause();
        self.check(now_us);
    }

    /// The step ends at virtual time `now_us`; if its CPU looks large, `remeasure` (the step
    /// run again on the answers it got: its CPU time, or `None` if that proved nothing) may
    /// show part of it was the host's.
    pub fn finish_step(&self, now_us: u64, remeasure: impl Fn() -> Option<u64>) {
        self.pause();
        let above = REMEASURE_SHARE.with(Cell::get) * self.limits.cpu_ms;
        let step_ms = || self.scaled_ms(self.cpu_ns.get() - self.step_cpu_from.get());
        if self.killed.get().is_none() && step_ms() > above {
            self.bound_by_thread_clock();
            if step_ms() > above {
                self.remeasure(remeasure);
            }
        }
        self.check(now_us);
    }

    /// A host call of the service's begins (its answer will be recorded within the window):
    /// the service's CPU stops counting, and what the thread's heap does until
    /// [`Self::close_host`] is the host's. If the CPU used has passed the limit, `remeasure`
    /// (the step run again up to this call) may show the excess was the host's; if not, the
    /// call's check stops the execution. The calls the host services make inside the window
    /// ([`Self::host_call`], [`Self::host_done`]) only check the limits.
    pub fn open_host(&self, remeasure: impl Fn() -> Option<u64>) {
        self.pause();
        self.held_at_call.set(held());
        self.in_host.set(self.in_host.get() + 1);
        let over = || self.scaled_ms(self.cpu_ns.get()) > self.limits.cpu_ms;
        if self.killed.get().is_none() && over() {
            self.bound_by_thread_clock();
            if over() {
                self.remeasure(remeasure);
            }
        }
    }

    /// The step's CPU so far is at most what the thread's CPU clock counted since it began
    /// (the host calls' work included, but no moment the thread was preempted): where that is
    /// less than the monotonic count, it stands, and the difference was the host's.
    fn bound_by_thread_clock(&self) {
        let monotonic = self.cpu_ns.get() - self.step_cpu_from.get();
        let thread = thread_cpu_ns().saturating_sub(self.step_thread_from.get());
        if thread < monotonic {
            self.cpu_ns.set(self.step_cpu_from.get() + thread);
            self.noise_ns
                .set(self.noise_ns.get() + (monotonic - thread));
        }
    }

    /// The host call opened by [`Self::open_host`] returned `returned` bytes to the service.
    pub fn close_host(&self, returned: usize) {
        self.in_host.set(self.in_host.get().saturating_sub(1));
        self.host_done(returned);
    }

    /// Measures the current step again; the lesser time is the step's.
    fn remeasure(&self, remeasure: impl Fn() -> Option<u64>) {
        if self.remeasured.get() >= MAX_REMEASURES {
            return;
        }
        self.remeasured.set(self.remeasured.get() + 1);
        let first = self.cpu_ns.get() - self.step_cpu_from.get();
        // A second run is warmer (caches, allocator, faulted pages), so it is taken only when
        // it is shorter by more than warmth explains: by over a millisecond and a quarter.
        let noise = |a: u64| first.saturating_sub(a) > NOISE_MARGIN_NS.max(a / 4);
        // The host's noise comes in episodes (of hundreds of milliseconds, at times): a second
        // run as long as the first is tried again after a pause that outlasts one.
        let mut least: Option<u64> = None;
        let stopped = |least: Option<u64>| {
            let step = least.map_or(first, |l| l.min(first));
            self.scaled_ms(self.step_cpu_from.get() + step) > self.limits.cpu_ms
        };
        for (i, pause_ms) in RETRY_PAUSES_MS.into_iter().enumerate() {
            if i + 1 == RETRY_PAUSES_MS.len() && !stopped(least) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(pause_ms));
            let again = remeasure();
            // That run's heap was its own, and is gone.
            reset_peak(held());
            let Some(again) = again else {
                self.inconclusive.set(self.inconclusive.get() + 1);
                return;
            };
            least = Some(least.map_or(again, |l| l.min(again)));
            // (A first run under the margin has no noise a run could show.)
            if noise(again) || first <= NOISE_MARGIN_NS {
                break;
            }
        }
        if let Some(again) = least.filter(|&a| noise(a)) {
            self.cpu_ns.set(self.step_cpu_from.get() + again);
            self.noise_ns.set(self.noise_ns.get() + (first - again));
        }
    }

    fn scaled_ms(&self, ns: u64) -> f64 {
        ns as f64 / 1e6 * self.wasm_cpu_factor
    }

    fn resume(&self) {
        if self.running_since.get().is_none() {
            self.running_since.set(Some(monotonic_ns()));
        }
    }

    fn pause(&self) {
        if let Some(since) = self.running_since.take() {
            let now = monotonic_ns();
            self.cpu_ns
                .set(self.cpu_ns.get() + now.saturating_sub(since));
        }
        let peak = peak().saturating_sub(self.heap_base.get()) as u64;
        self.heap_peak.set(self.heap_peak.get().max(peak));
    }

    /// A host call begins at `now_us`: the service's CPU stops counting until [`Self::host_done`].
    /// False when the execution has been stopped (the call must fail and do nothing).
    pub fn host_call(&self, now_us: u64) -> bool {
        if self.in_host.get() == 0 {
            self.pause();
            self.held_at_call.set(held());
        }
        self.check(now_us)
    }

    /// The host call returned `returned` bytes to the service: its code runs again. The heap
    /// the call added beyond those (or freed) is the model's, so the baseline moves by it; the
    /// peak is followed afresh from here (the call may have run other executions on this
    /// thread, their heap theirs).
    pub fn host_done(&self, returned: usize) {
        if self.in_host.get() > 0 {
            return;
        }
        let now = held();
        let model_growth = now as i128 - self.held_at_call.get() as i128 - returned as i128;
        let base = (self.heap_base.get() as i128 + model_growth).max(0);
        self.heap_base
            .set(usize::try_from(base).unwrap_or(usize::MAX));
        reset_peak(now);
        if self.killed.get().is_none() {
            self.resume();
        }
    }

    /// A backend request is about to be made (a publish): false when it may not be.
    pub fn backend_request(&self, now_us: u64) -> bool {
        self.backend_requests.set(self.backend_requests.get() + 1);
        self.check(now_us)
    }

    /// Whether the execution is still running at `now_us`; stops it if it passed a limit.
    pub fn check(&self, now_us: u64) -> bool {
        self.last_us.set(self.last_us.get().max(now_us));
        if self.killed.get().is_some() {
            return false;
        }
        let usage = self.usage();
        let over = if usage.cpu_ms > self.limits.cpu_ms {
            Some(Limit::Cpu)
        } else if usage.heap_bytes > self.limits.heap_bytes {
            Some(Limit::Heap)
        } else if usage.wall_us > self.limits.wall_us {
            Some(Limit::Wall)
        } else if usage.backend_requests > self.limits.backend_requests {
            Some(Limit::BackendRequests)
        } else {
            None
        };
        self.killed.set(over);
        over.is_none()
    }

    /// Whether Compute has stopped this execution.
    pub fn killed(&self) -> Option<Limit> {
        self.killed.get()
    }

    /// What the execution has used so far.
    pub fn usage(&self) -> Usage {
        Usage {
            cpu_ms: self.scaled_ms(self.cpu_ns.get()),
            heap_bytes: self.heap_peak.get(),
            wall_us: self.last_us.get().saturating_sub(self.started_us),
            backend_requests: self.backend_requests.get(),
            killed: self.killed.get(),
            remeasured: self.remeasured.get(),
            inconclusive: self.inconclusive.get(),
            noise_ms: self.scaled_ms(self.noise_ns.get()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tight() -> ComputeLimits {
        ComputeLimits {
            cpu_ms: 1_000.0,
            heap_bytes: 1 << 20,
            wall_us: 1_000_000,
            backend_requests: 2,
        }
    }

    #[test]
    fn an_execution_over_a_limit_is_stopped_and_stays_stopped() {
        let m = Meter::new(tight(), 1.0, 0);
        m.begin_step();
        assert!(m.host_call(10));
        m.host_done(0);
        assert!(m.backend_request(20));
        assert!(m.backend_request(30));
        assert!(
            !m.backend_request(40),
            "a third backend request passes the limit"
        );
        assert_eq!(m.killed(), Some(Limit::BackendRequests));
        assert!(!m.host_call(50), "nothing runs after the stop");
        let wall = Meter::new(tight(), 1.0, 0);
        assert!(!wall.check(2_000_000));
        assert_eq!(wall.killed(), Some(Limit::Wall));
    }

    #[test]
    fn heap_is_what_a_step_holds_above_its_start() {
        let m = Meter::new(tight(), 1.0, 0);
        m.begin_step();
        let big = vec![1u8; 4 << 20];
        assert!(!m.host_call(1), "4 MiB held passes a 1 MiB limit");
        assert_eq!(m.killed(), Some(Limit::Heap));
        assert!(m.usage().heap_bytes >= 4 << 20);
        drop(big);
        let small = Meter::new(tight(), 1.0, 0);
        small.begin_step();
        let v = vec![0u8; 1000];
        small.end_step(1);
        assert!(small.killed().is_none(), "{:?}", small.usage());
        assert!(small.usage().heap_bytes >= v.len() as u64);
    }

    #[test]
    fn what_a_host_call_returns_is_the_services_heap_and_the_rest_the_models() {
        let m = Meter::new(tight(), 1.0, 0);
        m.begin_step();
        assert!(m.host_call(1));
        let model_state = vec![0u8; 8 << 20]; // the model's store grows by 8 MiB
        let answer = vec![1u8; 100 << 10]; // and hands back 100 KiB
        m.host_done(answer.heap_bytes());
        m.end_step(2);
        assert!(m.killed().is_none(), "{:?}", m.usage());
        let heap = m.usage().heap_bytes;
        assert!(
            (100 << 10..1 << 20).contains(&heap),
            "the answer counts, the model's growth does not: {heap}"
        );
        drop((model_state, answer));
    }

    #[test]
    fn the_allocator_is_tuned_where_its_option_is_the_one_meant() {
        tune_allocator();
        // SAFETY: reading an option.
        let now = unsafe { libmimalloc_sys::mi_option_get(34) };
        assert_eq!(
            now, 1_000_000,
            "option 34 is generic_collect, default 10,000"
        );
        // SAFETY: reading an option.
        let purge = unsafe { libmimalloc_sys::mi_option_get(15) };
        assert_eq!(
            purge, -1,
            "option 15 is purge_delay, default 1,000 (10 in mimalloc 2)"
        );
    }

    /// A step of 30 ms of CPU under `limits`, whose runs again measure `answers` in turn:
    /// what it used, and how many times it ran again.
    fn step_under(limits: ComputeLimits, answers: [u64; 4]) -> (Usage, usize) {
        let until = thread_cpu_ns() + 30_000_000;
        let m = Meter::new(limits, 1.0, 0);
        m.begin_step();
        while thread_cpu_ns() < until {}
        let runs = Cell::new(0);
        m.finish_step(1, || {
            runs.set(runs.get() + 1);
            Some(answers[runs.get() - 1])
        });
        (m.usage(), runs.get())
    }

    #[test]
    fn a_step_measured_long_again_is_tried_after_a_pause_and_the_noise_taken_out() {
        remeasure_every_step(true);
        let step_of = |answers: [u64; 4]| step_under(tight(), answers);
        // The first second run is as long (a noisy episode), the next is not.
        let (usage, runs) = step_of([29_000_000, 2_000_000, 2_000_000, 2_000_000]);
        assert_eq!(runs, 2);
        assert!(usage.cpu_ms < 3.0 && usage.noise_ms > 25.0, "{usage:?}");
        // Every run as long: the work is the work.
        let (usage, runs) = step_of([29_000_000; 4]);
        assert_eq!(
            runs, 3,
            "the longest pause is for steps that would be stopped"
        );
        // (The thread's CPU clock may take off what the monotonic clock counted while the
        // thread was preempted: tests run side by side. The work itself, 30 ms of the
        // thread's CPU, stays.)
        assert!(usage.cpu_ms >= 29.0, "{usage:?}");
        // A step that would be stopped gets one more try after the longest pause.
        let stopping = ComputeLimits {
            cpu_ms: 20.0,
            ..tight()
        };
        let (usage, runs) = step_under(stopping, [29_000_000, 29_000_000, 29_000_000, 2_000_000]);
        assert_eq!(runs, 4);
        assert!(usage.killed.is_none() && usage.cpu_ms < 3.0, "{usage:?}");
        remeasure_every_step(false);
    }

    #[test]
    fn time_the_thread_did_not_run_is_not_the_services() {
        // The monotonic clock counts 40 ms in which the thread ran nothing (as when it is
        // preempted); the thread's CPU clock bounds the step, and no second run is needed.
        let limits = ComputeLimits {
            cpu_ms: 100.0,
            ..tight()
        };
        let m = Meter::new(limits, 1.0, 0);
        m.begin_step();
        std::thread::sleep(std::time::Duration::from_millis(40));
        let runs = Cell::new(0);
        m.finish_step(1, || {
            runs.set(runs.get() + 1);
            None
        });
        let usage = m.usage();
        assert_eq!(runs.get(), 0, "{usage:?}");
        assert!(usage.cpu_ms < 5.0 && usage.noise_ms > 35.0, "{usage:?}");
        assert!(usage.killed.is_none());
    }

    #[test]
    fn cpu_counts_the_service_only_scaled_to_wasm() {
        let m = Meter::new(tight(), 3.0, 0);
        m.begin_step();
        let spin = |ms: u64| {
            let start = thread_cpu_ns();
            let mut x = 0u64;
            while thread_cpu_ns() < start + ms * 1_000_000 {
                x = x.wrapping_add(1);
            }
            x
        };
        spin(20);
        assert!(m.host_call(1));
        spin(50); // the host's work, not counted
        m.host_done(0);
        m.end_step(2);
        let cpu = m.usage().cpu_ms;
        assert!(
            (60.0..120.0).contains(&cpu),
            "20 ms × 3, not 70 ms × 3: {cpu}"
        );
    }
}
