//! `weir canary`: drives running weirs through the stages of a rollout, judges canary
//! against baseline at every interval, and promotes or rolls back on its own.

pub mod config;
mod controller;
pub mod http;
pub mod progress;
pub mod report;
pub mod sources;
pub mod target;

pub use controller::{Options, Outcome, RunError, RunResult, judge_input, run};
