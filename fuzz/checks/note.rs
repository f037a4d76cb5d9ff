// Signed-note and checkpoint parsing (medledger-chain): no panic on any
// input; a note that parses re-encodes to the same bytes, and so does a
// checkpoint body that parses; verification never panics.

/// The log key that signed the checked-in seeds (fuzz/corpus/note).
const LOG_VKEY: &str = "log.example+1cc758f9+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";
const WITNESS_VKEY: &str = "w.example+a26f2ad7+BIE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU";

pub fn check(data: &[u8]) {
    use medledger_chain::{Checkpoint, HashAlg, LogKey, Note, NoteVerifier, Policy};
    let Ok(note) = Note::parse(data) else { return };
    let text = note.to_text().expect("a parsed note re-encodes");
    assert_eq!(text.as_bytes(), data, "note round trip");
    if let Ok(cp) = Checkpoint::parse_body(note.text()) {
        assert_eq!(cp.to_body(), note.text(), "checkpoint round trip");
    }
    let log = NoteVerifier::from_vkey(LOG_VKEY).expect("constant vkey");
    let witness = NoteVerifier::from_vkey(WITNESS_VKEY).expect("constant vkey");
    let _ = note.verify(&[log.clone(), witness.clone()]);
    let key = LogKey::new("log.example", log, HashAlg::Sha256).expect("constant log key");
    let policy = Policy::new(key, vec![witness], 1).expect("constant policy");
    let _ = policy.verify_note(note);
}
