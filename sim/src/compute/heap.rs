//! What the meter reads of the host: the heap each thread holds (a counting allocator over
//! mimalloc, tuned for a world of several GB), the thread's CPU clock and the monotonic one,
//! and the heap a host call's answer hands the service ([`Returned`]).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

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

pub(super) fn held() -> usize {
    HELD.try_with(Cell::get).unwrap_or(0)
}

pub(super) fn peak() -> usize {
    PEAK.try_with(Cell::get).unwrap_or(0)
}

pub(super) fn reset_peak(to: usize) {
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

/// Tunes mimalloc for a world of several GB: by default it visits every page of a thread's heap
/// every 10,000 allocations that miss its fast path, which at a million readers was a tenth of
/// the run: once every million is enough. And it hands freed memory back to the system 10 ms
/// later (a second, in the mimalloc 3 this links; its header still says 10 ms), so the next
/// growth faults it in and zeroes it again (a twentieth of the run): the simulator keeps it.
/// (Only if each option's number holds a documented default, so another mimalloc version's
/// numbering cannot set something else.)
pub fn tune_allocator() {
    /// `mi_option_generic_collect` in the `mi_option_e` of the mimalloc 3 this links.
    const GENERIC_COLLECT: libmimalloc_sys::mi_option_t = 34;
    /// `mi_option_purge_delay` there.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: reading and setting an option are plain calls on a running allocator.
    unsafe {
        if libmimalloc_sys::mi_option_get(GENERIC_COLLECT) == 10_000 {
            libmimalloc_sys::mi_option_set(GENERIC_COLLECT, 1_000_000);
        }
        if matches!(libmimalloc_sys::mi_option_get(PURGE_DELAY), 10 | 1_000) {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
        }
    }
}

/// This thread's CPU time, in nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Monotonic time, in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let ok = unsafe { libc::clock_gettime(clock, &mut ts) } == 0;
    if ok {
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    } else {
        0
    }
}

/// The heap a host call's answer holds: the service's from the moment it is returned.
pub trait Returned {
    fn heap_bytes(&self) -> usize;
}

impl Returned for () {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl Returned for bool {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl Returned for Vec<u8> {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl Returned for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl<T: Returned> Returned for Option<T> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, Returned::heap_bytes)
    }
}

impl<T: Returned, E> Returned for Result<T, E> {
    fn heap_bytes(&self) -> usize {
        // An error's text is a few bytes; the answer is what can be large.
        self.as_ref().map_or(0, Returned::heap_bytes)
    }
}

impl<T: Returned> Returned for Vec<T> {
    fn heap_bytes(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>()
            + self.iter().map(Returned::heap_bytes).sum::<usize>()
    }
}

impl Returned for http::Response<Vec<u8>> {
    fn heap_bytes(&self) -> usize {
        // The body, and its headers at their names' and values' length.
        self.body().capacity()
            + self
                .headers()
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len())
                .sum::<usize>()
    }
}

impl<A: Returned, B> Returned for (A, B) {
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
}
