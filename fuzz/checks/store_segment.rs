// Fuzz body for the medledger-store log segment scanner (recovery's
// decoder). Shared by fuzz_targets/store_segment.rs and the crate's
// tests/fuzz_corpus.rs. The first byte says whether the segment is the
// log's last (where a torn tail may be cut); the rest is the file.
use medledger_store::segment::{
    encode_frame, encode_segment_header, inspect_segment, FRAME_HEADER_LEN,
};

pub fn check(data: &[u8]) {
    let Some((&flag, bytes)) = data.split_first() else {
        return;
    };
    let last = flag & 1 == 1;
    let Ok(scan) = inspect_segment(bytes, 0, last) else {
        return;
    };
    let valid = scan.valid_len as usize;
    assert!(valid <= bytes.len());
    if scan.torn.is_none() {
        assert_eq!(valid, bytes.len(), "only a reported tail is cut");
    }
    assert!(
        last || scan.torn.is_none(),
        "a torn tail only in the last segment"
    );
    if valid == 0 {
        assert!(scan.offsets.is_empty());
        return;
    }
    // Whatever the scan keeps re-encodes to exactly the same bytes.
    let mut again = encode_segment_header(0).to_vec();
    let mut ends: Vec<usize> = scan.offsets.iter().skip(1).map(|&o| o as usize).collect();
    ends.push(valid);
    for (i, (&start, end)) in scan.offsets.iter().zip(ends).enumerate() {
        let payload = &bytes[start as usize + FRAME_HEADER_LEN..end];
        encode_frame(i as u64, payload, &mut again);
    }
    assert_eq!(again, &bytes[..valid]);
}
