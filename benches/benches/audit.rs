//! medledger-audit hot paths, each beside its baseline:
//!
//! - `audit_append_durable`: durable event appends from 4 threads through
//!   the embedded store (group commit), against raw `SegmentLog` appends of
//!   the same bytes from the same threads.
//! - `audit_verify_export`: `verify_export` of a 1,000-event patient export
//!   from a 100,000-event log (10,001 patients, checkpoint with heads),
//!   against the raw hashing it must do, in the same run: one BLAKE3 leaf
//!   hash per event, the node hashes of the batch proof (shared nodes
//!   once), the heads entry and heads-tree hashes, and the two Ed25519
//!   signature checks of the checkpoint. For comparison with the v1 format,
//!   also the bound with one separate RFC 9162 path per event; and
//!   `verify_export` followed by decoding every event of the report into an
//!   owned `AuditEvent` (the report decodes them when read).
//! - `audit_heads_tree`: building the heads tree over 100,000 patients (what
//!   `checkpoint_with_heads` adds), against the raw BLAKE3 leaf and node
//!   hashes of a tree of that size.
//! - `audit_patient_report`: a patient's 100-event disclosure report from a
//!   1,000,000-event log, against reading the same 100 entries raw.
//! - `audit_reopen_1m`: reopening (tree catch-up + index rebuild) a
//!   1,000,000-event in-memory log, against reading and leaf-hashing it.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::Signer as _;
use ed25519_dalek::SigningKey;
use medledger_audit::heads::HeadsTree;
use medledger_audit::{
    batch_proof, report, verify_export, Action, Actor, AuditEvent, AuditLog, Id32, Outcome,
    PatientKey, PurposeOfUse, RecordRef, Role,
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
    let log_key_bytes = SigningKey::from_bytes(&[1; 32]);
    let witness_key_bytes = SigningKey::from_bytes(&[2; 32]);
    let signer = Ed25519Signer::new(ORIGIN, log_key_bytes.clone()).expect("signer");
    let key = LogKey::new(ORIGIN, signer.verifier(), HashAlg::Blake3).expect("key");
    let mut w = Witness::in_memory(
        CosignatureSigner::new("w.example", witness_key_bytes.clone()).expect("w"),
    );
    w.add_log(key.clone());
    let cp = log
        .checkpoint_with_heads(&signer, 1, &[&w])
        .expect("checkpoint");
    let policy = Policy::new(key, vec![w.signer().verifier().expect("v")], 1).expect("policy");
    let export = log
        .export_patient(&patient_key(0), None, 0)
        .expect("export");
    let json = export.to_json().expect("json");
    let n = export.events.len() as u64;
    assert_eq!(n, 1000);
    let report = verify_export(json.as_bytes(), &policy).expect("verify");
    assert!(report.tail_complete());
    eprintln!("export: {} bytes for {n} events", json.len());

    // The raw inputs of every hash the verifier must compute.
    let size = cp.checkpoint.size;
    let mut leaves: Vec<Vec<u8>> = export
        .events
        .iter()
        .map(|e| {
            let mut v = vec![0u8];
            v.extend(log.event(e.index).expect("event").encode().expect("encode"));
            v
        })
        .collect();
    let mut proven: Vec<u64> = export.events.iter().map(|e| e.index).collect();
    proven.push(size - 1);
    leaves.push(vec![0u8; 54]); // the heads entry leaf
    leaves.push(vec![0u8; 41]); // the patient's heads-tree leaf
    let (_, log_nodes) = batch_proof::cost(&proven, size).expect("cost");
    let heads_nodes = 14; // ceil(log2(10,001)) nodes up the heads tree
    let nodes = log_nodes + heads_nodes;
    eprintln!(
        "batch proof: {log_nodes} node hashes for {} leaves",
        proven.len()
    );
    let per_event_paths: Vec<usize> = export
        .events
        .iter()
        .map(|e| medledger_chain::proof::inclusion_proof_len(e.index, size).expect("len"))
        .collect();
    let note = medledger_chain::Note::parse(cp.note.as_bytes()).expect("note");
    let body = note.text().as_bytes().to_vec();
    let log_sig = log_key_bytes.sign(&body);
    let cos_msg = vec![7u8; 120];
    let cos_sig = witness_key_bytes.sign(&cos_msg);
    let (log_vk, cos_vk) = (
        log_key_bytes.verifying_key(),
        witness_key_bytes.verifying_key(),
    );
    let signatures = || {
        log_vk.verify_strict(&body, &log_sig).expect("sig");
        cos_vk.verify_strict(&cos_msg, &cos_sig).expect("cosig");
    };

    let mut g = c.benchmark_group("audit_verify_export");
    g.throughput(Throughput::Elements(n));
    g.bench_function("raw_hashing_bound", |b| {
        b.iter(|| {
            let mut node = [1u8; 65];
            for leaf in &leaves {
                black_box(blake3::hash(leaf));
            }
            for k in 0..nodes {
                node[1] = k as u8;
                black_box(blake3::hash(&node));
            }
            signatures();
        });
    });
    g.bench_function("raw_per_event_paths_bound_v1", |b| {
        b.iter(|| {
            let mut node = [1u8; 65];
            for (leaf, &len) in leaves.iter().zip(&per_event_paths) {
                let mut h = *blake3::hash(leaf).as_bytes();
                for _ in 0..len {
                    node[1..33].copy_from_slice(&h);
                    h = *blake3::hash(&node).as_bytes();
                }
                black_box(h);
            }
            signatures();
        });
    });
    g.bench_function("verify_export", |b| {
        b.iter(|| black_box(verify_export(json.as_bytes(), &policy).expect("verify")));
    });
    // The report keeps the verified encodings and decodes an `AuditEvent`
    // when read: this is verification plus reading every event back (what
    // an auditor printing the whole report does).
    g.bench_function("verify_export_then_read_all_events", |b| {
        b.iter(|| {
            let report = verify_export(json.as_bytes(), &policy).expect("verify");
            black_box(report.events.iter().map(|v| v.event.time_ms).sum::<u64>())
        });
    });
    g.finish();
}

fn heads_tree(c: &mut Criterion) {
    const PATIENTS: u32 = 100_000;
    let heads: Vec<(PatientKey, u64)> = (0..PATIENTS)
        .map(|p| {
            let k = *blake3::hash(&p.to_le_bytes()).as_bytes();
            (PatientKey(k), u64::from(p) * 10)
        })
        .collect();
    let mut g = c.benchmark_group("audit_heads_tree");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(PATIENTS)));
    g.bench_function("raw_blake3_leaves_and_nodes", |b| {
        b.iter(|| {
            let mut leaf = [0u8; 41];
            let mut node = [1u8; 65];
            for p in 0..PATIENTS {
                leaf[1..5].copy_from_slice(&p.to_le_bytes());
                black_box(blake3::hash(&leaf));
                node[1..5].copy_from_slice(&p.to_le_bytes());
                black_box(blake3::hash(&node));
            }
        });
    });
    g.bench_function("heads_tree_build_100k", |b| {
        b.iter(|| {
            let t = HeadsTree::build(HashAlg::Blake3, heads.iter().copied()).expect("build");
            black_box(t.root())
        });
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

criterion_group!(benches, append_durable, verify, heads_tree, patient_report);
criterion_main!(benches);
