#![no_main]
include!("../checks/cosignature.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
