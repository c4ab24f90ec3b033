//! Fuzzes the HTTP receiver's body parsing (Content-Type line, then the body).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| backflow::fuzzing::check_http_body(data));
