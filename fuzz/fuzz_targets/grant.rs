#![no_main]
include!("../checks/grant.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
