//! Fuzz target: see `weir::fuzz::chunked` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weir::fuzz::chunked(data));
