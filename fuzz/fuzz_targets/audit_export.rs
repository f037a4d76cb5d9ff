#![no_main]
include!("../checks/audit_export.rs");
libfuzzer_sys::fuzz_target!(|data: &[u8]| check(data));
