#![no_main]
include!("../checks/tlog_proof.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
