// Share package decoding and import verification (medledger facade).
//
// Every input is decoded (whatever decodes must re-encode to exactly the
// input) and then imported into one in-memory ledger that trusts a fixed
// exporting log key and one fixed witness. `seed_package` builds a package
// that this trust accepts, so mutations of it reach every check of import.

use std::sync::OnceLock;

use ed25519_dalek::{Signer, SigningKey};
use medledger::audit::{
    Action, Actor, AuditEvent, Id32, LedgerSecret, Outcome, PurposeOfUse, RecordRef, Role,
};
use medledger::chain::MemoryNodeStore;
use medledger::chain::{
    Checkpoint, CosignatureSigner, Ed25519Signer, HashAlg, LogKey, Note, TlogProof,
};
use medledger::envelope::{seal, Header, RecipientPublicKey, RecordContext};
use medledger::grants::{
    Action as GrantAction, ActionSet, ActorKeys, ActorKind, Grant, Grantee, Purpose, PurposeSet,
    Scope, SensitivitySet, SignedGrant, Validity,
};
use medledger::{Ledger, LedgerKey, SharePackage};

const ORIGIN: &str = "fuzz-a.example/ledger";
const WITNESS: &str = "fuzz-w.example";

fn log_signer() -> Ed25519Signer {
    Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[9; 32])).expect("log signer")
}

fn witness() -> CosignatureSigner {
    CosignatureSigner::new(WITNESS, SigningKey::from_bytes(&[10; 32])).expect("witness")
}

/// Deterministic bytes for the harness's fixed actor keys (an LCG: these
/// keys protect nothing, they only have to be the same in every run).
struct FixedRng(u64);

impl rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = (self.next_u64() >> 56) as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for FixedRng {}

fn keys(kind: ActorKind, seed: u64) -> ActorKeys {
    ActorKeys::generate_with(kind, &mut FixedRng(seed)).expect("actor keys")
}

/// The recipient every package is imported for.
pub fn recipient() -> ActorKeys {
    keys(ActorKind::Clinician, 11)
}

fn patient() -> ActorKeys {
    keys(ActorKind::Patient, 13)
}

pub fn importer() -> &'static Ledger<MemoryNodeStore> {
    static LEDGER: OnceLock<Ledger<MemoryNodeStore>> = OnceLock::new();
    LEDGER.get_or_init(|| {
        let b = Ledger::in_memory("fuzz-b.example/ledger", &LedgerKey::from_bytes([2; 32]))
            .expect("ledger");
        b.register(patient().actor(), "patients").expect("patient");
        b.register(recipient().actor(), "b-hospital")
            .expect("recipient");
        let log = LogKey::new(ORIGIN, log_signer().verifier(), HashAlg::Blake3).expect("log key");
        b.trust_log(&log, &[witness().verifier().expect("vkey")], 1)
            .expect("trust");
        // Importing writes at B: the patient lets the recipient write.
        let grant = SignedGrant::sign(
            Grant {
                issuer: patient().id(),
                patient: patient().id(),
                grantee: Grantee::Actor(recipient().id()),
                parent: None,
                scope: Scope::All,
                sensitivity: SensitivitySet::empty(),
                actions: ActionSet::empty().with(GrantAction::Write),
                purposes: PurposeSet::empty().with(Purpose::Treat),
                validity: Validity::new(0, u64::MAX / 2).expect("validity"),
                max_delegation_depth: 0,
                issued_at: 0,
                nonce: [0; 16],
            },
            &patient(),
        )
        .expect("grant");
        b.grant(&grant).expect("grant accepted");
        b
    })
}

/// A package the importer accepts: a one-entry log whose checkpoint the
/// fixed log key signed and the fixed witness cosigned.
pub fn seed_package() -> Vec<u8> {
    let record = "Observation/1";
    let content_type = "application/fhir+json";
    let patient_key = LedgerSecret::from_bytes([3; 32])
        .patient_key(patient().id().as_bytes())
        .expect("pseudonym");
    let ctx = RecordContext::new(record, patient_key.to_hex(), 1, content_type).expect("context");
    let to = RecipientPublicKey::from_bytes(recipient().actor().encryption_key().to_bytes());
    let envelope = seal(br#"{"resourceType":"Observation"}"#, &ctx, &[to]).expect("seal");
    let (_, body) = Header::parse_prefix(&envelope).expect("header");
    let nonce = [4u8; 32];
    let mut h = blake3::Hasher::new_derive_key("medledger/v1 record commitment");
    h.update(&nonce);
    h.update(body);
    let event = AuditEvent {
        action: Action::Create,
        actor: Actor {
            id: Id32([5; 32]),
            role: Role::Patient,
            organization: "patients".into(),
        },
        patient: patient_key,
        record: Some(RecordRef {
            id: record.into(),
            version: 1,
        }),
        time_ms: 1_700_000_000_000,
        source: "fuzz-a".into(),
        purpose: PurposeOfUse::Treatment,
        outcome: Outcome::Success,
        grant_chain: Vec::new(),
        emergency: None,
        prev_for_patient: None,
        refers_to: None,
        commitment: Some(Id32(*h.finalize().as_bytes())),
    }
    .encode()
    .expect("event");
    let root = HashAlg::Blake3.leaf_hash(&event);
    let cp = Checkpoint::first(ORIGIN, HashAlg::Blake3, 1, root, 1_700_000_000);
    let body_text = cp.to_body();
    let mut note = Note::new(&body_text).expect("note");
    note.sign(&log_signer()).expect("sign");
    let cosig = witness().cosign(&body_text, 1_700_000_001).expect("cosign");
    note.add_signature(cosig.to_note_signature())
        .expect("add cosignature");
    let proof = TlogProof {
        extra: None,
        index: 0,
        path: Vec::new(),
        checkpoint: note,
    }
    .to_text()
    .expect("proof");
    let mut p = SharePackage {
        origin: ORIGIN.into(),
        record: record.into(),
        version: 1,
        content_type: content_type.into(),
        category: "Observation".into(),
        labels: SensitivitySet::empty(),
        patient: patient().id(),
        recipient: recipient().id(),
        nonce,
        event,
        proof,
        envelope,
        signature: [0; 64],
    };
    p.signature = SigningKey::from_bytes(&[9; 32])
        .sign(&p.signature_message())
        .to_bytes();
    p.encode()
}

pub fn check(data: &[u8]) {
    let decoded = SharePackage::decode(data);
    if let Ok(p) = &decoded {
        assert_eq!(
            p.encode(),
            data,
            "a decoded package re-encodes to its input"
        );
    }
    let imported = importer().import_share(data, &recipient(), "fuzz/1");
    if imported.is_ok() {
        assert!(decoded.is_ok(), "an imported package decodes");
    }
}
