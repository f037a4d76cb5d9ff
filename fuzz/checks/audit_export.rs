// Fuzz body for the audit export, event, heads-entry and checkpoint-entry
// decoders:
// untrusted bytes must never panic; whatever parses must re-encode to the
// same bytes.
use medledger_audit::checkpoint_entry;
use medledger_audit::heads::{HeadLeaf, HeadsEntry};
use medledger_audit::{verify_export, AuditEvent, Export};
use medledger_chain::{CosignatureSigner, Ed25519Signer, HashAlg, LogKey, Policy};

/// The policy the seeds were made under (fixed test keys, see
/// crates/medledger-audit/tests/common/mod.rs).
pub fn policy() -> Option<Policy> {
    let origin = "audit.example/log";
    let log =
        Ed25519Signer::new(origin, ed25519_dalek::SigningKey::from_bytes(&[0x11; 32])).ok()?;
    let witness = CosignatureSigner::new(
        "witness.example",
        ed25519_dalek::SigningKey::from_bytes(&[0x22; 32]),
    )
    .ok()?;
    let key = LogKey::new(origin, log.verifier(), HashAlg::Blake3).ok()?;
    Policy::new(key, vec![witness.verifier().ok()?], 1).ok()
}

pub fn check(data: &[u8]) {
    if let Ok(event) = AuditEvent::decode(data) {
        assert_eq!(event.encode().ok().as_deref(), Some(data));
    }
    if let Ok(entry) = HeadsEntry::decode(data) {
        assert_eq!(entry.encode().ok().as_ref().map(|b| &b[..]), Some(data));
    }
    if let Ok(leaf) = HeadLeaf::decode(data) {
        assert_eq!(&leaf.encode()[..], data);
    }
    if let Ok(issued) = checkpoint_entry::decode(data) {
        assert_eq!(
            checkpoint_entry::encode(&issued.note).ok().as_deref(),
            Some(data)
        );
    }
    if let Ok(export) = Export::parse(data) {
        assert_eq!(
            export.to_json().ok().as_deref().map(str::as_bytes),
            Some(data)
        );
    }
    if let Some(p) = policy() {
        if let Ok(report) = verify_export(data, &p) {
            // The report keeps the verified encodings and decodes them when
            // read: every one decodes, and re-encodes to what was hashed.
            assert_eq!(report.events.iter().count(), report.events.len());
            for (k, v) in report.events.iter().enumerate() {
                assert_eq!(v.event.encode().ok().as_deref(), report.events.encoding(k));
            }
        }
    }
}
