//! Fuzz target: see `weir::fuzz::admin_weights` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzz::admin_weights(data));
