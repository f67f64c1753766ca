//! `weir canary`: drives running weirs through the stages of a rollout, judges canary
//! against baseline at every interval, and promotes or rolls back on its own.

pub mod config;
pub mod http;
pub mod sources;
pub mod target;
