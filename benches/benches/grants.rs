//! medledger-grants hot paths, each beside its baseline in the same run.
//!
//! `decide_1m`: decisions for a patient holding 1,000 grants, in an index of
//! 1,000,000 grants (1,000 patients × 1,000) and 100,000 revocations. The
//! index is built through the pre-verified load path
//! (`GrantIndex::add_verified_grant`), as a store reopening grants it
//! verified on append would; decisions never verify signatures. Baselines:
//! one `HashMap` lookup in a 1,000,000-entry map (the floor of any indexed
//! decision) and a linear scan of the patient's 1,000 grants (what a
//! decision would cost with a per-patient index alone).
//!
//! `load_10k`: loading 10,000 signed grants (100 issuers) with batch versus
//! one-by-one Ed25519 verification, beside the raw dalek primitives over the
//! same messages. 10,000 rather than 100,000 keeps the one-by-one runs of
//! this group near a minute on the shared 2-core machine; the per-grant
//! ratio is what matters.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use medledger_chain::Hash;
use medledger_grants::*;
use x25519_dalek::StaticSecret;

const PATIENTS: u64 = 1_000;
const GRANTS_PER_PATIENT: u64 = 1_000;
const REVOCATIONS: u64 = 100_000;
const CLINICIANS: u64 = 5_000;
const NOW: u64 = 1_750_000_000;
const POS: LogPosition = LogPosition(u64::MAX);

fn id(tag: &str, i: u64) -> ActorId {
    let mut h = blake3::Hasher::new();
    h.update(tag.as_bytes());
    h.update(&i.to_le_bytes());
    ActorId(Hash(*h.finalize().as_bytes()))
}

fn cat(name: &str) -> Category {
    Category::new(name).expect("category")
}

fn base(patient: ActorId, grantee: Grantee, nonce: u64) -> Grant {
    let mut n = [0u8; 16];
    n[..8].copy_from_slice(&nonce.to_le_bytes());
    Grant {
        issuer: patient,
        patient,
        grantee,
        parent: None,
        scope: Scope::All,
        sensitivity: SensitivitySet::empty(),
        actions: ActionSet::empty().with(Action::Read).with(Action::Share),
        purposes: PurposeSet::empty().with(Purpose::Treat),
        validity: Validity::new(NOW - 1_000_000, NOW + 1_000_000).expect("validity"),
        max_delegation_depth: 2,
        issued_at: NOW - 1_000_000,
        nonce: n,
    }
}

struct Fixture {
    index: GrantIndex,
    /// Grants of the target patient, for the scan baseline.
    patient_grants: Vec<Grant>,
    ids: HashMap<GrantId, u32>,
    some_id: GrantId,
    direct: Request,
    role: Request,
    chain: Request,
    stranger: Request,
}

fn record() -> RecordMeta {
    RecordMeta {
        id: RecordId::new("Observation/1").expect("record"),
        category: cat("Observation"),
        labels: SensitivitySet::empty(),
    }
}

fn request(actor: ActorId, patient: ActorId) -> Request {
    Request {
        actor,
        patient,
        record: record(),
        action: Action::Read,
        purpose: Purpose::Treat,
        time: NOW,
        position: POS,
        break_glass: None,
    }
}

fn build() -> Fixture {
    let mut index = GrantIndex::new();
    let mut ids = HashMap::new();
    let mut all_ids = Vec::with_capacity((PATIENTS * GRANTS_PER_PATIENT) as usize);
    let cats = [
        "Observation",
        "Condition",
        "MedicationRequest",
        "DiagnosticReport",
    ];
    let target = id("patient", 0);
    let mut patient_grants = Vec::new();
    let mut pos = 0u64;
    // The organization and memberships the role request relies on.
    let org_keys = keys(ActorKind::Organization, 200);
    let org = index.register_actor(*org_keys.actor());
    let member = id("member", 0);
    let m = Signed::sign(
        Membership {
            organization: org,
            member,
            role: Role::new("cardiology").expect("role"),
            validity: Validity::new(0, u64::MAX).expect("validity"),
            issued_at: 0,
        },
        &org_keys,
    )
    .expect("membership");
    index
        .add_membership(&m, LogPosition(0))
        .expect("membership");

    for p in 0..PATIENTS {
        let patient = id("patient", p);
        for k in 0..GRANTS_PER_PATIENT {
            let clinician = id("clinician", (p * 7919 + k * 104_729) % CLINICIANS);
            let mut g = base(patient, Grantee::Actor(clinician), k);
            if k % 2 == 1 {
                g.scope = Scope::Categories([cat(cats[(k / 2 % 4) as usize])].into());
            }
            pos += 1;
            let gid = index
                .add_verified_grant(g.clone(), LogPosition(pos))
                .expect("grant");
            ids.insert(gid, ids.len() as u32);
            all_ids.push(gid);
            if p == 0 {
                patient_grants.push(g);
            }
        }
    }
    // The target patient: the direct requester holds an expired grant, an
    // out-of-scope grant and a valid one; a role grant for cardiology; a
    // three-link delegation chain.
    let doctor = id("doctor", 0);
    let mut expired = base(target, Grantee::Actor(doctor), 1_000_001);
    expired.validity = Validity::new(1, 2).expect("validity");
    let mut narrow = base(target, Grantee::Actor(doctor), 1_000_002);
    narrow.scope = Scope::Categories([cat("Condition")].into());
    let valid = base(target, Grantee::Actor(doctor), 1_000_003);
    let role = base(
        target,
        Grantee::Role {
            organization: org,
            role: Role::new("cardiology").expect("role"),
        },
        1_000_004,
    );
    for g in [expired, narrow, valid.clone(), role] {
        pos += 1;
        index
            .add_verified_grant(g.clone(), LogPosition(pos))
            .expect("grant");
        patient_grants.push(g);
    }
    let mut parent_id = valid.id();
    let mut issuer = doctor;
    let mut depth = 2;
    let mut last = doctor;
    for level in 0..2u64 {
        let next = id("delegate", level);
        let mut g = base(issuer, Grantee::Actor(next), 2_000_000 + level);
        g.patient = target;
        g.parent = Some(parent_id);
        depth -= 1;
        g.max_delegation_depth = depth;
        pos += 1;
        parent_id = index
            .add_verified_grant(g.clone(), LogPosition(pos))
            .expect("delegation");
        patient_grants.push(g);
        issuer = next;
        last = next;
    }
    // 100,000 revocations of other patients' grants.
    for r in 0..REVOCATIONS {
        let gid = all_ids[((r * 9973) % (all_ids.len() as u64 - GRANTS_PER_PATIENT)
            + GRANTS_PER_PATIENT) as usize];
        let patient = index.grant(&gid).expect("grant").patient;
        pos += 1;
        index
            .add_verified_revocation(
                &Revocation {
                    revoker: patient,
                    target: RevocationTarget::Grant(gid),
                    issued_at: NOW,
                },
                LogPosition(pos),
            )
            .expect("revocation");
    }
    assert!(index.grant_count() >= 1_000_000);
    assert!(index.revocation_count() >= 99_000);
    let fx = Fixture {
        direct: request(doctor, target),
        role: request(member, target),
        chain: request(last, target),
        stranger: request(id("stranger", 0), target),
        some_id: all_ids[123_456],
        index,
        patient_grants,
        ids,
    };
    assert!(fx.index.decide(&fx.direct).is_allowed());
    assert!(fx.index.decide(&fx.role).is_allowed());
    match fx.index.decide(&fx.chain) {
        Decision::Allow { chain, .. } => assert_eq!(chain.len(), 3),
        d => panic!("chain request denied: {d:?}"),
    }
    assert_eq!(
        fx.index.decide(&fx.stranger),
        Decision::Deny(DenyReason::NoGrant)
    );
    fx
}

/// The scan baseline: the first of the patient's grants naming the actor
/// that covers the record now.
fn scan(grants: &[Grant], req: &Request) -> Option<usize> {
    grants.iter().position(|g| {
        g.grantee == Grantee::Actor(req.actor)
            && g.scope.covers(&req.record)
            && g.actions.contains(req.action)
            && g.purposes.contains(req.purpose)
            && g.validity.contains(req.time)
    })
}

fn decide(c: &mut Criterion) {
    let fx = build();
    let mut g = c.benchmark_group("decide_1m");
    g.bench_function("baseline_hashmap_get", |b| {
        b.iter(|| black_box(fx.ids.get(black_box(&fx.some_id))))
    });
    g.bench_function("baseline_scan_patient_1000", |b| {
        b.iter(|| black_box(scan(black_box(&fx.patient_grants), black_box(&fx.direct))))
    });
    g.bench_function("allow_direct", |b| {
        b.iter(|| black_box(fx.index.decide(black_box(&fx.direct))))
    });
    g.bench_function("allow_role", |b| {
        b.iter(|| black_box(fx.index.decide(black_box(&fx.role))))
    });
    g.bench_function("allow_chain_3", |b| {
        b.iter(|| black_box(fx.index.decide(black_box(&fx.chain))))
    });
    g.bench_function("deny_no_grant", |b| {
        b.iter(|| black_box(fx.index.decide(black_box(&fx.stranger))))
    });
    g.finish();
}

fn keys(kind: ActorKind, seed: u8) -> ActorKeys {
    ActorKeys::from_keys(
        kind,
        SigningKey::from_bytes(&[seed; 32]),
        StaticSecret::from([seed; 32]),
    )
    .expect("keys")
}

const LOAD: usize = 10_000;
const ISSUERS: usize = 100;

fn load(c: &mut Criterion) {
    let issuers: Vec<ActorKeys> = (0..ISSUERS)
        .map(|i| keys(ActorKind::Patient, i as u8 + 1))
        .collect();
    let items: Vec<(SignedGrant, LogPosition)> = (0..LOAD)
        .map(|i| {
            let k = &issuers[i % ISSUERS];
            let g = base(k.id(), Grantee::Actor(id("clinician", i as u64)), i as u64);
            (Signed::sign(g, k).expect("sign"), LogPosition(i as u64))
        })
        .collect();
    let msgs: Vec<Vec<u8>> = items.iter().map(|(g, _)| g.signed_message()).collect();
    let sigs: Vec<Signature> = items.iter().map(|(g, _)| *g.signature()).collect();
    let vks: Vec<VerifyingKey> = (0..LOAD)
        .map(|i| *issuers[i % ISSUERS].actor().verifying_key())
        .collect();
    let fresh = || {
        let mut index = GrantIndex::new();
        for k in &issuers {
            index.register_actor(*k.actor());
        }
        index
    };
    let mut g = c.benchmark_group("load_10k");
    g.sample_size(10);
    g.bench_function("baseline_dalek_verify_strict_each", |b| {
        b.iter(|| {
            for ((m, s), k) in msgs.iter().zip(&sigs).zip(&vks) {
                k.verify_strict(m, s).expect("verify");
            }
        })
    });
    g.bench_function("baseline_dalek_verify_batch_256", |b| {
        b.iter(|| {
            for ((m, s), k) in msgs.chunks(256).zip(sigs.chunks(256)).zip(vks.chunks(256)) {
                let refs: Vec<&[u8]> = m.iter().map(Vec::as_slice).collect();
                ed25519_dalek::verify_batch(&refs, s, k).expect("batch");
            }
        })
    });
    for (name, mode) in [
        ("load_one_by_one", Verification::OneByOne),
        ("load_batch", Verification::Batch),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                fresh,
                |mut index| {
                    let report = index.add_grants(&items, mode);
                    assert_eq!(report.loaded.len(), LOAD);
                    index
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, decide, load);
criterion_main!(benches);
