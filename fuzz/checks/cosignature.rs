// Cosignature lines (a witness's add-checkpoint response): no panic; lines
// that parse re-encode to the same bytes; verification never panics.

const WITNESS_VKEY: &str = "w.example+a26f2ad7+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU";

pub fn check(data: &[u8]) {
    use medledger_chain::{Cosignature, NoteSignature, NoteVerifier};
    if let Ok(sigs) = NoteSignature::parse_lines(data) {
        let again: String = sigs.iter().map(NoteSignature::to_line).collect();
        assert_eq!(again.as_bytes(), data, "signature lines round trip");
    }
    let Ok(cs) = Cosignature::parse_lines(data) else {
        return;
    };
    let again: String = cs.iter().map(Cosignature::to_line).collect();
    assert_eq!(again.as_bytes(), data, "cosignature round trip");
    let w = NoteVerifier::from_vkey(WITNESS_VKEY).expect("constant vkey");
    for c in &cs {
        let _ = c.verify(
            &w,
            "log.example\n11\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        );
    }
}
