//! Replays the fuzz targets' seeds and every kept crash through the same
//! check the fuzzers run (`fuzz/checks/<target>.rs`).

mod store_segment {
    include!("../../../fuzz/checks/store_segment.rs");
}
mod store_blob {
    include!("../../../fuzz/checks/store_blob.rs");
}

fn replay(target: &str, check: fn(&[u8])) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seen = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(items) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for item in items {
            let path = item.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            seen += 1;
        }
    }
    assert!(seen > 0, "no seeds for {target}");
}

#[test]
fn store_segment_corpus() {
    replay("store_segment", store_segment::check);
}

#[test]
fn store_blob_corpus() {
    replay("store_blob", store_blob::check);
}
