//! Replays the checked-in fuzz corpus and every kept crash through the same
//! check functions the fuzz targets run.

use std::path::Path;

mod envelope_header {
    include!("../../../fuzz/checks/envelope_header.rs");
}
mod envelope_stream {
    include!("../../../fuzz/checks/envelope_stream.rs");
}

fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seen = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            seen += 1;
        }
    }
    assert!(seen > 0, "no seeds found for {target}");
}

#[test]
fn envelope_header_corpus() {
    replay("envelope_header", envelope_header::check);
}

#[test]
fn envelope_stream_corpus() {
    replay("envelope_stream", envelope_stream::check);
}

#[test]
fn stream_seeds_behind_the_fixed_header_open() {
    // The body-mode seeds are real: the fixed header's key opens them.
    let env = envelope_stream::fuzz_envelope(b"forty bytes of plaintext for the fuzzer");
    let opened = medledger_envelope::open(
        &env,
        &envelope_stream::fuzz_context(),
        &envelope_stream::fuzz_key(),
    );
    assert_eq!(opened.unwrap(), b"forty bytes of plaintext for the fuzzer");
}
