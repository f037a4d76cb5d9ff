//! Test vectors for the canonical encodings, ids and signatures (also
//! printed in the crate README). Keys are fixed: the patient's Ed25519 seed
//! is 32 bytes of 0x01 and X25519 secret 32 bytes of 0x65; the clinician's
//! 0x02 and 0x66; the organization's 0x06 and 0x6a.

mod common;

use common::*;
use medledger_grants::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn vector_grant() -> (ActorKeys, ActorKeys, SignedGrant) {
    let patient = keys(ActorKind::Patient, 1);
    let doc = keys(ActorKind::Clinician, 2);
    let g = Grant {
        issuer: patient.id(),
        patient: patient.id(),
        grantee: Grantee::Actor(doc.id()),
        parent: None,
        scope: categories(&["Observation"]),
        sensitivity: SensitivitySet::empty().with(Sensitivity::Hiv),
        actions: actions(&[Action::Read]),
        purposes: purposes(&[Purpose::Treat]),
        validity: Validity::new(1_767_225_600, 1_798_761_600).unwrap(),
        max_delegation_depth: 1,
        issued_at: 1_767_225_600,
        nonce: [0x11; 16],
    };
    let s = Signed::sign(g, &patient).unwrap();
    (patient, doc, s)
}

/// Pinned vectors. The three signatures were cross-checked with an
/// independent Ed25519 implementation (pyca/cryptography 48) over
/// `context ‖ body`.
#[test]
fn encodings_ids_and_signatures_match_the_vectors() {
    let (patient, doc, g) = vector_grant();
    let org = keys(ActorKind::Organization, 6);
    assert_eq!(hex(&patient.actor().encode()), "4d4c414301018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5cfb41b1fcf75c1227fa08876056a5ed07ac44fe0c116ec2de80b8e523959d7824");
    assert_eq!(
        patient.id().to_string(),
        "02ed05510ef6a1e506530b6c79d86dcc9c35bba8db3666550fef65b3461d703d"
    );
    assert_eq!(
        doc.id().to_string(),
        "951fba76d2f7a2380cc3c85fcede234a4876ec325b71e9741e223736d89deae5"
    );
    assert_eq!(hex(g.body_bytes()), "4d4c47520102ed05510ef6a1e506530b6c79d86dcc9c35bba8db3666550fef65b3461d703d02ed05510ef6a1e506530b6c79d86dcc9c35bba8db3666550fef65b3461d703d01951fba76d2f7a2380cc3c85fcede234a4876ec325b71e9741e223736d89deae5000200010b4f62736572766174696f6e00200100000001000000006955b900000000006b36ec8001000000006955b90011111111111111111111111111111111");
    assert_eq!(
        g.id().to_string(),
        "2d76a9df0157078a0c7e6bb25cc7f81c569e8593754861a1585af0ba837f2b4a"
    );
    assert_eq!(hex(&g.signature().to_bytes()), "559c393e5a93bea8515e7dc6a8a2780b85e25a7224076defe13cd2ee79ac69038eb524e60ba7addaf89bb316f223110d9162dbebd96e180e48a20ff9c18a050d");
    assert_eq!(SignedGrant::decode(&g.encode()).unwrap(), g);
    assert!(g.verify(patient.actor()).is_ok());

    let m = membership(&org, doc.id(), "emergency", 1_767_225_600, 1_798_761_600);
    assert_eq!(
        org.id().to_string(),
        "617131c6c34a0eb7362de5b6d3ce23c3044586af846ad6d2ba0319a9a63ca2bf"
    );
    assert_eq!(hex(m.body_bytes()), "4d4c4d4201617131c6c34a0eb7362de5b6d3ce23c3044586af846ad6d2ba0319a9a63ca2bf951fba76d2f7a2380cc3c85fcede234a4876ec325b71e9741e223736d89deae509656d657267656e6379000000006955b900000000006b36ec80000000006955b900");
    assert_eq!(
        m.id().to_string(),
        "5b0ca488af0d2846b7df97a34aacd9c93290210f20418fb9d9c92fb63eb5fcca"
    );
    assert_eq!(hex(&m.signature().to_bytes()), "44791a1f52e805dfcbf5c908d3f72d6141d0870bdfa624a2aa91a4a9b3246768f81d80b2bc48177d1b47753269b370eb0e7696e36e973d43c511752e75e57800");

    let r = Signed::sign(
        Revocation {
            revoker: patient.id(),
            target: RevocationTarget::Grant(g.id()),
            issued_at: 1_767_225_600,
        },
        &patient,
    )
    .unwrap();
    assert_eq!(hex(r.body_bytes()), "4d4c52560102ed05510ef6a1e506530b6c79d86dcc9c35bba8db3666550fef65b3461d703d012d76a9df0157078a0c7e6bb25cc7f81c569e8593754861a1585af0ba837f2b4a000000006955b900");
    assert_eq!(
        r.id().to_string(),
        "e9681d73538e9e8c9fa12b6ad8787ca49d305d59ce1dbfff015757842f94259d"
    );
    assert_eq!(hex(&r.signature().to_bytes()), "41077f28c0a1e647fc5b97c2a99b6f01e6c65911a2a5d20980377c6c4bd68f73d7941afc2b71ae755246d7e7d4bd13410c2d1e2f0888c384392d37d57e5fd60e");
}
