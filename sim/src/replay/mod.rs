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
//!
//! `record` holds the [`Recorder`], `rerun` the [`Replay`], `tape` what they share: the
//! answers, the tape, and the fingerprint of a call.

mod record;
mod rerun;
mod tape;
#[cfg(test)]
mod tests;

pub use record::Recorder;
pub use rerun::{Replay, Until};
pub use tape::{Answer, NoLog, PackedPage, Tape};
