//! Replays the checked-in fuzz corpus and every kept crash through the same
//! check the `grant` fuzz target runs.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use medledger_grants::*;

mod grant {
    include!("../../../fuzz/checks/grant.rs");
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn grant_corpus() {
    let mut seen = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join("grant")) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            grant::check(&std::fs::read(&path).unwrap());
            seen += 1;
        }
    }
    assert!(seen > 0, "no seeds found for grant");
}

fn framed(grants: &[&SignedGrant]) -> Vec<u8> {
    let mut out = Vec::new();
    for g in grants {
        let e = g.encode();
        out.extend_from_slice(&u16::try_from(e.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&e);
    }
    out
}

/// The seeds: valid grants, a valid delegation chain, and broken inputs.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let patient = keys(ActorKind::Patient, 1);
    let doc = keys(ActorKind::Clinician, 2);
    let nurse = keys(ActorKind::Clinician, 3);
    let org = keys(ActorKind::Organization, 6);
    let mut root = grant(patient.id(), patient.id(), Grantee::Actor(doc.id()));
    root.max_delegation_depth = 2;
    root.scope = categories(&["Condition", "Observation"]);
    let root = Signed::sign(root, &patient).unwrap();
    let mut child = grant(
        doc.id(),
        patient.id(),
        Grantee::Role {
            organization: org.id(),
            role: Role::new("cardiology").unwrap(),
        },
    );
    child.max_delegation_depth = 1;
    child.scope = categories(&["Observation"]);
    let child = Signed::delegate(&root, child, &doc).unwrap();
    let mut leaf = grant(doc.id(), patient.id(), Grantee::Actor(nurse.id()));
    leaf.scope = Scope::Records([RecordId::new("Observation/1").unwrap()].into());
    leaf.sensitivity = SensitivitySet::empty().with(Sensitivity::Hiv);
    leaf.actions = actions(&[Action::Read]);
    // Derived from the root, though wider in form (record ids are not inside
    // categories), so that decisions check the request against each link.
    leaf.parent = Some(root.id());
    let leaf = Signed::sign(leaf, &doc).unwrap();
    let one = root.encode();
    let mut trailing = one.clone();
    trailing.push(0);
    let mut bad_magic = one.clone();
    bad_magic[0] = b'X';
    let mut garbage_chain = framed(&[&root]);
    garbage_chain.extend_from_slice(&[0, 4, 1, 2, 3, 4]);
    vec![
        ("grant-root", one.clone()),
        ("grant-role-child", child.encode()),
        ("grant-records-leaf", leaf.encode()),
        ("chain-three", framed(&[&root, &child, &leaf])),
        ("chain-garbage-tail", garbage_chain),
        ("grant-truncated", one[..60].to_vec()),
        ("grant-trailing-byte", trailing),
        ("grant-bad-magic", bad_magic),
        ("empty", Vec::new()),
    ]
}

#[test]
fn chain_seed_is_a_real_chain() {
    // Loaded pre-verified, the three-grant seed lets the nurse read
    // Observation/1 through the whole chain, which is what the fuzzer
    // mutates from.
    let seeds = seeds();
    let chain = &seeds.iter().find(|(n, _)| *n == "chain-three").unwrap().1;
    let mut index = GrantIndex::new();
    let mut rest = chain.as_slice();
    let mut ids = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let (body, tail) = tail.split_at(usize::from(u16::from_be_bytes(*len)));
        let g = SignedGrant::decode(body).unwrap();
        ids.push(
            index
                .add_verified_grant(g.body().clone(), LogPosition(ids.len() as u64))
                .unwrap(),
        );
        rest = tail;
    }
    let nurse = keys(ActorKind::Clinician, 3);
    let patient = keys(ActorKind::Patient, 1);
    let mut req = request(nurse.id(), patient.id());
    assert_eq!(
        index.decide(&req),
        Decision::Allow {
            chain: vec![ids[0], ids[2]],
            emergency: None
        }
    );
    // The leaf names HIV, the root does not: a labelled record stays out.
    req.record.labels = SensitivitySet::empty().with(Sensitivity::Hiv);
    assert_eq!(
        index.decide(&req),
        Decision::Deny(DenyReason::ExcludedSensitivity)
    );
    grant::check(chain);
}

/// Rewrites `fuzz/corpus/grant/` from [`seeds`]:
/// `cargo test -p medledger-grants --test fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_seeds() {
    let dir = fuzz_dir().join("corpus/grant");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
