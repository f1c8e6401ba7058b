//! Figures from a run, and the report: `SIMULATION.md` and its plot.
//!
//! This folder owns the report, each file using only those listed before it: `figures` (the
//! figures of a phase of a run), `sections` (a scenario's section: its table of figures by
//! phase, KV costs and CPU by request, and notes), `countries` (what readers by country cost:
//! a run with them against one without), `verdicts` (the requirements checked
//! against the runs), `plot` (the SVG charts over time) and `document` (the whole
//! `SIMULATION.md`, with the design and the model's limits). It reads the scenarios' runs and
//! the parameters; nothing else in the crate depends on it.

mod countries;
mod document;
mod figures;
mod plot;
mod sections;
mod verdicts;

pub use document::document;
pub use figures::{figures, Figures};
pub use plot::{chart, plot, series, Series};
pub use sections::section;
pub use verdicts::{most_slots_in_a_second, phantoms_after, verdicts, visits_lost, Verdict};
