//! Canary analysis: a judge faithful to Kayenta ([`judge`]), a progressive rollout
//! that drives running weirs through stages and promotes or rolls back on its own
//! ([`rollout`]), and the HTML report people read it in ([`report`]).

pub mod judge;
pub mod report;
pub mod rollout;
