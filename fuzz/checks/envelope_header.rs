// Fuzz body for the medledger-envelope header and record-context decoders.
// Shared by fuzz_targets/envelope_header.rs and the crate's
// tests/fuzz_corpus.rs.
use medledger_envelope::{Header, RecordContext};

pub fn check(data: &[u8]) {
    // Parsing is strict: whatever parses re-encodes to the same bytes.
    if let Ok(header) = Header::parse(data) {
        assert_eq!(header.encode(), data);
    }
    let prefix = Header::parse_prefix(data);
    let mut reader = data;
    let streamed = Header::read_from(&mut reader);
    match (prefix, streamed) {
        (Ok((header, body)), Ok(streamed)) => {
            assert_eq!(header, streamed);
            assert_eq!(body, reader);
            assert_eq!(header.encoded_len() + body.len(), data.len());
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "parse_prefix and read_from disagree: {:?} vs {:?}",
            a.map(|(h, _)| h),
            b
        ),
    }
    if let Ok(ctx) = RecordContext::decode(data) {
        assert_eq!(ctx.encode(), data);
    }
}
