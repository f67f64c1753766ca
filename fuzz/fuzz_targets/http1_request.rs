//! Fuzz target: see `weir::fuzz::http1_request` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzz::http1_request(data));
