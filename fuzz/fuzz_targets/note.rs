#![no_main]
include!("../checks/note.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
