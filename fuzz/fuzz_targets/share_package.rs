#![no_main]
include!("../checks/share_package.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
