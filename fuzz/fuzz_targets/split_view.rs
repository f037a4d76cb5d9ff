#![no_main]
include!("../checks/split_view.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
