#![no_main]
include!("../checks/store_segment.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
