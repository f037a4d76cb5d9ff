#![no_main]
include!("../checks/store_blob.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
