//! Request routing: which route a request takes (first match wins) and which destination
//! its weighted split picks.
//!
//! Everything here is free of I/O and of hyper's connection types, so it can be
//! benchmarked and tested on its own.

mod matcher;
pub mod random;
mod split;
mod table;

pub use matcher::{RequestHeaders, RequestMatch, RequestView, StringMatch, strip_port};
pub use split::{SplitError, WeightedSplit};
pub use table::RouteTable;
