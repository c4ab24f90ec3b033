//! Fuzzes the YAML settings loader with env overrides after a `#env` line.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| backflow::fuzzing::check_settings(data));
