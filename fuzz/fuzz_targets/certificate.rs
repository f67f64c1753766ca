//! Fuzz target: see `weir::fuzz::certificate` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzz::certificate(data));
