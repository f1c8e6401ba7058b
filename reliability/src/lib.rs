//! Reliability figures for LiveUser: generated inputs for every parser that takes input from
//! outside, forged signatures and census requests, failure and abuse scenarios on the local stack, and attacks on it. `main`
//! runs them all and writes RELIABILITY.md; the smoke test runs a short version of each.

pub mod attacks;
pub mod census_forgery;
pub mod forgery;
pub mod inputs;
pub mod mutate;
pub mod report;
pub mod scenarios;
