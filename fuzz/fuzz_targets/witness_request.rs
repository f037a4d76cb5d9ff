#![no_main]
include!("../checks/witness_request.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
