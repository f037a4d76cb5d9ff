//! medledger-audit hot paths, each beside its baseline:
//!
//! - `audit_append_durable`: durable event appends from 4 threads through
//!   the embedded store (group commit), against raw `SegmentLog` appends of
//!   the same bytes from the same threads.
//! - `audit_verify_export`: `verify_export` of a 1,000-event patient export
//!   from a 100,000-event log, against the raw BLAKE3 calls the proofs need
//!   (one leaf hash and one node hash per path element, per event).
//! - `audit_patient_report`: a patient's 100-event disclosure report from a
//!   1,000,000-event log, against reading the same 100 entries raw.
//! - `audit_reopen_1m`: reopening (tree catch-up + index rebuild) a
//!   1,000,000-event in-memory log, against reading and leaf-hashing it.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::SigningKey;
use medledger_audit::{
    report, verify_export, Action, Actor, AuditEvent, AuditLog, Id32, Outcome, PatientKey,
    PurposeOfUse, RecordRef, Role,
};
use medledger_chain::{
    CosignatureSigner, Ed25519Signer, HashAlg, LogKey, MemoryNodeStore, MerkleLog, Policy, Witness,
};
use medledger_store::{EmbeddedStore, EntryLog, MemoryLog, StoreOptions};

const ORIGIN: &str = "bench.example/audit";

fn event(patient: u32, actor: u8, k: u64) -> AuditEvent {
    let mut p = [0u8; 32];
    p[..4].copy_from_slice(&patient.to_le_bytes());
    AuditEvent {
        action: Action::Read,
        actor: Actor {
            id: Id32([actor; 32]),
            role: Role::Clinician,
            organization: "st-mary".into(),
        },
        patient: PatientKey(p),
        record: Some(RecordRef {
            id: format!("rec-{k}"),
            version: 1,
        }),
        time_ms: 1_764_307_200_000 + k,
        source: "node-a".into(),
        purpose: PurposeOfUse::Treatment,
        outcome: Outcome::Success,
        grant_chain: vec![Id32([0xa0; 32])],
        emergency: None,
        prev_for_patient: None,
        refers_to: None,
        commitment: None,
    }
}

fn patient_key(patient: u32) -> PatientKey {
    event(patient, 0, 0).patient
}

/// A log of `n` events; patient 0 owns every `stride`-th event, the rest
/// spread over 10,000 other patients.
fn memory_log(n: u64, stride: u64) -> (Arc<MemoryLog>, AuditLog<MemoryNodeStore>) {
    let entries = Arc::new(MemoryLog::new());
    let log = AuditLog::open(
        ORIGIN,
        entries.clone(),
        MerkleLog::in_memory(HashAlg::Blake3),
    )
    .expect("open");
    let mut k = 0;
    while k < n {
        let batch: Vec<AuditEvent> = (k..n.min(k + 10_000))
            .map(|i| {
                let p = if i % stride == 0 {
                    0
                } else {
                    1 + (i % 10_000) as u32
                };
                event(p, (i % 50) as u8, i)
            })
            .collect();
        k += batch.len() as u64;
        log.append_batch(batch).expect("append");
    }
    (entries, log)
}

fn append_durable(c: &mut Criterion) {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 25;
    let mut g = c.benchmark_group("audit_append_durable");
    g.sample_size(10);
    g.throughput(Throughput::Elements(THREADS * PER_THREAD));
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = EmbeddedStore::open(dir.path(), StoreOptions::default()).expect("store");
    let store = Arc::new(store);
    let log = AuditLog::open_embedded(ORIGIN, store.clone()).expect("audit log");
    let bytes = event(1, 1, 1).encode().expect("encode");
    g.bench_function("raw_segment_log", |b| {
        let raw_dir = tempfile::tempdir().expect("tempdir");
        let (raw, _) = EmbeddedStore::open(raw_dir.path(), StoreOptions::default()).expect("store");
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                std::thread::scope(|s| {
                    for _ in 0..THREADS {
                        s.spawn(|| {
                            for _ in 0..PER_THREAD {
                                black_box(raw.log().append(&bytes).expect("append"));
                            }
                        });
                    }
                });
            }
            start.elapsed()
        });
    });
    g.bench_function("audit_log_append", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for it in 0..iters {
                std::thread::scope(|s| {
                    for t in 0..THREADS {
                        let log = &log;
                        s.spawn(move || {
                            for k in 0..PER_THREAD {
                                // Distinct patients per thread: no per-patient wait.
                                let e = event((t * 1000 + k % 7) as u32, t as u8, it + k);
                                black_box(log.append(e).expect("append"));
                            }
                        });
                    }
                });
            }
            start.elapsed()
        });
    });
    g.finish();
}

fn verify(c: &mut Criterion) {
    let (_, log) = memory_log(100_000, 100);
    let signer = Ed25519Signer::new(ORIGIN, SigningKey::from_bytes(&[1; 32])).expect("signer");
    let key = LogKey::new(ORIGIN, signer.verifier(), HashAlg::Blake3).expect("key");
    let mut w = Witness::in_memory(
        CosignatureSigner::new("w.example", SigningKey::from_bytes(&[2; 32])).expect("w"),
    );
    w.add_log(key.clone());
    log.checkpoint(&signer, 1, &[&w]).expect("checkpoint");
    let policy = Policy::new(key, vec![w.signer().verifier().expect("v")], 1).expect("policy");
    let export = log
        .export_patient(&patient_key(0), None, 0)
        .expect("export");
    let json = export.to_json().expect("json");
    let n = export.events.len() as u64;
    assert_eq!(n, 1000);
    // The raw inputs of every hash the verifier must compute.
    let leaves: Vec<Vec<u8>> = export
        .events
        .iter()
        .map(|e| {
            let mut v = vec![0u8];
            v.extend(log.event(e.index).expect("event").encode().expect("encode"));
            v
        })
        .collect();
    let path_lens: Vec<usize> = export.events.iter().map(|e| e.proof.len()).collect();
    let mut g = c.benchmark_group("audit_verify_export");
    g.throughput(Throughput::Elements(n));
    g.bench_function("raw_blake3_bound", |b| {
        b.iter(|| {
            let mut node = [1u8; 65];
            for (leaf, &len) in leaves.iter().zip(&path_lens) {
                let mut h = *blake3::hash(leaf).as_bytes();
                for _ in 0..len {
                    node[1..33].copy_from_slice(&h);
                    h = *blake3::hash(&node).as_bytes();
                }
                black_box(h);
            }
        });
    });
    g.bench_function("export_parse_only", |b| {
        b.iter(|| black_box(medledger_audit::Export::parse(json.as_bytes()).expect("parse")));
    });
    g.bench_function("verify_export", |b| {
        b.iter(|| black_box(verify_export(json.as_bytes(), &policy).expect("verify")));
    });
    g.finish();
}

fn patient_report(c: &mut Criterion) {
    let build = Instant::now();
    let (entries, log) = memory_log(1_000_000, 10_000);
    eprintln!("built 1,000,000 events in {:?}", build.elapsed());
    let p = patient_key(0);
    let idx: Vec<u64> = log
        .patient_events(&p)
        .expect("q")
        .iter()
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(idx.len(), 100);
    let mut g = c.benchmark_group("audit_patient_report");
    g.bench_function("raw_read_100_entries", |b| {
        b.iter(|| {
            for &i in &idx {
                black_box(entries.read(i).expect("read"));
            }
        });
    });
    g.bench_function("disclosure_report_100_of_1m", |b| {
        b.iter(|| {
            let ev = log.patient_events(&p).expect("query");
            black_box(report::disclosures(ev.iter().map(|(i, e)| (*i, e))))
        });
    });
    g.finish();

    let mut g = c.benchmark_group("audit_reopen_1m");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("raw_read_and_leaf_hash", |b| {
        b.iter(|| {
            let mut at = 0;
            while at < 1_000_000 {
                for e in entries
                    .read_range(at..at + 4096.min(1_000_000 - at))
                    .expect("read")
                {
                    black_box(HashAlg::Blake3.leaf_hash(&e));
                }
                at += 4096;
            }
        });
    });
    g.bench_function("audit_log_open", |b| {
        b.iter(|| {
            let l = AuditLog::open(
                ORIGIN,
                entries.clone(),
                MerkleLog::in_memory(HashAlg::Blake3),
            )
            .expect("open");
            black_box(l.size())
        });
    });
    g.finish();
}

criterion_group!(benches, append_durable, verify, patient_report);
criterion_main!(benches);
