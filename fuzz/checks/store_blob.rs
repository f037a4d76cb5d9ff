// Fuzz body for the medledger-store blob file decoder. Shared by
// fuzz_targets/store_blob.rs and the crate's tests/fuzz_corpus.rs.
use std::io::Read;

use medledger_store::blob::{decode_blob_file, encode_blob_file, BlobReader};
use medledger_store::BlobId;

pub fn check(data: &[u8]) {
    // The id the file claims (a wrong one is always refused).
    let mut id = [0u8; 32];
    if let Some(claimed) = data.get(12..44) {
        id.copy_from_slice(claimed);
    }
    let id = BlobId(id);
    let whole = decode_blob_file(data, id);
    // Streaming in small reads agrees with decoding at once.
    let streamed = BlobReader::new(data, id).ok().and_then(|mut r| {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Some(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => return None,
            }
        }
    });
    match whole {
        Ok(body) => {
            assert_eq!(encode_blob_file(&id, &body), data, "decoding is strict");
            assert_eq!(streamed.as_deref(), Some(body.as_slice()));
        }
        Err(_) => assert!(streamed.is_none(), "a stream never yields a bad blob whole"),
    }
}
