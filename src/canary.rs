//! Canary analysis: a judge faithful to Kayenta ([`judge`]) and a progressive rollout
//! that drives running weirs through stages and promotes or rolls back on its own
//! ([`rollout`]).

pub mod judge;
pub mod rollout;
