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
//! - **CPU**: the thread's CPU time while the service's code runs, paused during every host
//!   call (the model's own work is not the service's), times `wasm_cpu_factor`: the service runs
//!   here natively, on Compute as wasm under Wasmtime. The factor is measured: counting a listing
//!   (`presence::census_cost`, the heaviest loop a broadcast runs) takes 2.4 times as long per
//!   key inside Viceroy's Wasmtime as natively on the same machine, same optimization level.
//! - **Heap**: the most bytes the thread holds above what it held when each part of the
//!   execution began, counted by a counting allocator (the model's allocations during host calls
//!   are included: a listing's keys are the service's heap once returned).
//! - **Wall time**: virtual time from the request's arrival to the execution's last step.
//! - **Backend requests**: publishes (and, for designs that fan out, requests to the service).
//!
//! A limit passed is noticed at the next host call or at the end of a step: from then on every
//! host call of the execution fails and nothing more it does takes effect, as when Compute stops
//! it mid-way (what it already wrote stays written).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

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
        }
    }
}

/// Counts the bytes each thread holds, and the most it held since the last reset. Per thread,
/// so simulations run side by side (tests) do not count each other's heap; a block freed by
/// another thread than the one that took it is not subtracted there (none is, here).
pub struct CountingAllocator;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(bytes: usize) {
    // `try_with`: a thread's counters are gone while it is being torn down.
    let _ = HELD.try_with(|h| {
        let held = h.get() + bytes;
        h.set(held);
        let _ = PEAK.try_with(|p| p.set(p.get().max(held)));
    });
}

fn shrank(bytes: usize) {
    let _ = HELD.try_with(|h| h.set(h.get().saturating_sub(bytes)));
}

fn held() -> usize {
    HELD.try_with(Cell::get).unwrap_or(0)
}

fn peak() -> usize {
    PEAK.try_with(Cell::get).unwrap_or(0)
}

fn reset_peak(to: usize) {
    let _ = PEAK.try_with(|p| p.set(to));
}

// SAFETY: every call is forwarded to mimalloc unchanged; only counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = mimalloc::MiMalloc.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        mimalloc::MiMalloc.dealloc(ptr, layout);
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = mimalloc::MiMalloc.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// This thread's CPU time, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if ok {
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    } else {
        0
    }
}

/// One execution's use of Compute's limits, followed across the steps the simulator runs it in.
#[derive(Debug)]
pub struct Meter {
    limits: ComputeLimits,
    wasm_cpu_factor: f64,
    started_us: u64,
    cpu_ns: Cell<u64>,
    /// The thread's CPU time when the service's code last resumed (None: paused).
    running_since: Cell<Option<u64>>,
    /// Bytes held when the current step began.
    heap_base: Cell<usize>,
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
            running_since: Cell::new(None),
            heap_base: Cell::new(0),
            heap_peak: Cell::new(0),
            last_us: Cell::new(started_us),
            backend_requests: Cell::new(0),
            killed: Cell::new(None),
        }
    }

    /// The service's code starts a step (a handler call, a claim, a count).
    pub fn begin_step(&self) {
        let held = held();
        self.heap_base.set(held);
        reset_peak(held);
        self.resume();
    }

    /// The step ends at virtual time `now_us`.
    pub fn end_step(&self, now_us: u64) {
        self.pause();
        self.check(now_us);
    }

    fn resume(&self) {
        if self.running_since.get().is_none() {
            self.running_since.set(Some(thread_cpu_ns()));
        }
    }

    fn pause(&self) {
        if let Some(since) = self.running_since.take() {
            let now = thread_cpu_ns();
            self.cpu_ns
                .set(self.cpu_ns.get() + now.saturating_sub(since));
        }
        let peak = peak().saturating_sub(self.heap_base.get()) as u64;
        self.heap_peak.set(self.heap_peak.get().max(peak));
    }

    /// A host call begins at `now_us`: the service's CPU stops counting until [`Self::host_done`].
    /// False when the execution has been stopped (the call must fail and do nothing).
    pub fn host_call(&self, now_us: u64) -> bool {
        self.pause();
        self.check(now_us)
    }

    /// The host call returned: the service's code runs again. (Its heap is followed afresh
    /// from here: the call may have run other executions on this thread, their heap theirs.)
    pub fn host_done(&self) {
        reset_peak(held());
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
            cpu_ms: self.cpu_ns.get() as f64 / 1e6 * self.wasm_cpu_factor,
            heap_bytes: self.heap_peak.get(),
            wall_us: self.last_us.get().saturating_sub(self.started_us),
            backend_requests: self.backend_requests.get(),
            killed: self.killed.get(),
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
        m.host_done();
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
        m.host_done();
        m.end_step(2);
        let cpu = m.usage().cpu_ms;
        assert!(
            (60.0..120.0).contains(&cpu),
            "20 ms × 3, not 70 ms × 3: {cpu}"
        );
    }
}
