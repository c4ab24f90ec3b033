//! Fuzzes the MessagePack feedback decoder (ids, levels, version, round trips).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| backflow::fuzzing::check_feedback(data));
