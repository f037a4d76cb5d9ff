//! The binary encoding: round trips of every kind, the pinned test vector,
//! strictness, and property tests (round trip, any mutation rejected or
//! re-encoded identically).

mod common;

use common::*;
use medledger_audit::codec::{MAX_EVENT_LEN, MAX_GRANTS};
use medledger_audit::*;
use proptest::prelude::*;

#[test]
fn every_kind_round_trips() {
    let kinds = every_kind();
    assert_eq!(kinds.len(), 2 * Action::ALL.len());
    for e in kinds {
        let bytes = e.encode().unwrap();
        assert!(bytes.len() <= MAX_EVENT_LEN);
        assert_eq!(AuditEvent::decode(&bytes).unwrap(), e);
    }
}

/// Test vector (also in the README): a clinician's read of record "rec-1"
/// v1 for the patient pseudonym 0x33.., with grant 0xa0.., previous event 4
/// and commitment 0x5c...
#[test]
fn test_vector() {
    let mut e = event(
        Action::Read,
        PatientKey([0x33; 32]),
        (1, Role::Clinician),
        T0,
    );
    e.prev_for_patient = Some(4);
    e.commitment = Some(Id32([0x5c; 32]));
    let hex: String = e
        .encode()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let expect = concat!(
        "4d4c4145",
        "02",
        "02",
        "0101010101010101010101010101010101010101010101010101010101010101",
        "03",
        "07",
        "73742d6d617279",
        "3333333333333333333333333333333333333333333333333333333333333333",
        "01",
        "05",
        "7265632d31",
        "0000000000000001",
        "0000019ac8e76800",
        "06",
        "6e6f64652d61",
        "01",
        "00",
        "01",
        "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0",
        "00",
        "01",
        "0000000000000004",
        "00",
        "01",
        "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c",
    );
    assert_eq!(hex, expect);
    let leaf = medledger_chain::HashAlg::Blake3.leaf_hash(&e.encode().unwrap());
    assert_eq!(
        leaf.to_hex(),
        blake3::hash(&[&[0u8][..], &e.encode().unwrap()].concat())
            .to_hex()
            .to_string()
    );
}

#[test]
fn strict_decoding() {
    let e = every_kind().remove(1);
    let bytes = e.encode().unwrap();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        AuditEvent::decode(&trailing),
        Err(DecodeError::TrailingBytes { .. } | DecodeError::TooLong { .. })
    ));
    for cut in 0..bytes.len() {
        assert!(AuditEvent::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut v = bytes.clone();
    v[4] = 1;
    assert_eq!(
        AuditEvent::decode(&v),
        Err(DecodeError::UnsupportedVersion(1))
    );
    let mut v = bytes.clone();
    v[5] = 0;
    assert!(matches!(
        AuditEvent::decode(&v),
        Err(DecodeError::UnknownCode {
            field: "action",
            code: 0,
            offset: 5
        })
    ));
    // The highest action code is 11 (import); 12 is unknown.
    assert_eq!(Action::from_code(11), Some(Action::Import));
    let mut v = bytes.clone();
    v[5] = 12;
    assert!(matches!(
        AuditEvent::decode(&v),
        Err(DecodeError::UnknownCode {
            field: "action",
            code: 12,
            offset: 5
        })
    ));
    assert_eq!(AuditEvent::decode(b"XXXX\x01"), Err(DecodeError::BadMagic));
    assert!(AuditEvent::decode(&vec![0u8; MAX_EVENT_LEN + 1]).is_err());
}

#[test]
fn encoder_refuses_over_caps() {
    let base = event(Action::Read, patient_a(), (1, Role::Clinician), T0);
    let mut e = base.clone();
    e.grant_chain = vec![id(1); MAX_GRANTS + 1];
    assert!(e.encode().is_err());
    let mut e = base.clone();
    e.source = "n".repeat(65);
    assert!(e.encode().is_err());
    let mut e = base.clone();
    e.actor.organization = String::new();
    assert!(e.encode().is_err());
    let mut e = base.clone();
    e.action = Action::EmergencyAccess;
    e.emergency = None;
    assert!(e.encode().is_err());
    let mut e = base;
    e.time_ms = u64::MAX;
    assert!(e.encode().is_err());
}

fn arb_string(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-z0-9é-]{{{min},{}}}", max / 2)).unwrap()
}

fn arb_event() -> impl Strategy<Value = AuditEvent> {
    (
        (
            proptest::sample::select(Action::ALL),
            any::<[u8; 32]>(),
            proptest::sample::select(Role::ALL),
            arb_string(1, 64),
            any::<[u8; 32]>(),
            proptest::option::of((arb_string(1, 64), any::<u64>())),
            0..=i64::MAX as u64,
        ),
        (
            arb_string(1, 64),
            proptest::sample::select(PurposeOfUse::ALL),
            proptest::option::of((any::<u16>(), arb_string(0, 255))),
            proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_GRANTS),
            proptest::option::of(arb_string(1, 255)),
            proptest::option::of(0..=i64::MAX as u64),
            proptest::option::of(0..=i64::MAX as u64),
            proptest::option::of(any::<[u8; 32]>()),
        ),
    )
        .prop_map(
            |(
                (action, actor, role, org, patient, record, time_ms),
                (source, purpose, denied, grants, emergency, prev, refers, commitment),
            )| {
                let emergency = if action == Action::EmergencyAccess {
                    Some(emergency.unwrap_or_else(|| "reason".into()))
                } else {
                    emergency
                };
                AuditEvent {
                    action,
                    actor: Actor {
                        id: Id32(actor),
                        role,
                        organization: org,
                    },
                    patient: PatientKey(patient),
                    record: record.map(|(id, version)| RecordRef { id, version }),
                    time_ms,
                    source,
                    purpose,
                    outcome: denied.map_or(Outcome::Success, |(code, reason)| Outcome::Denied {
                        code,
                        reason,
                    }),
                    grant_chain: grants.into_iter().map(Id32).collect(),
                    emergency,
                    prev_for_patient: prev,
                    refers_to: refers,
                    commitment: commitment.map(Id32),
                }
            },
        )
}

proptest! {
    #[test]
    fn round_trip(e in arb_event()) {
        let bytes = e.encode().unwrap();
        prop_assert_eq!(AuditEvent::decode(&bytes).unwrap(), e);
    }

    /// Any single-byte change either fails to decode or decodes to an event
    /// whose canonical encoding is exactly the changed bytes (so a changed
    /// entry never hashes to the original leaf).
    #[test]
    fn mutation_is_rejected_or_canonical(e in arb_event(), at in any::<prop::sample::Index>(), x in 1u8..=255) {
        let mut bytes = e.encode().unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= x;
        if let Ok(d) = AuditEvent::decode(&bytes) {
            prop_assert_ne!(&d, &e);
            prop_assert_eq!(d.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(d) = AuditEvent::decode(&bytes) {
            prop_assert_eq!(d.encode().unwrap(), bytes);
        }
    }
}
