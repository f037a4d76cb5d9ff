//! The facade end to end on the durable embedded store, 4 KiB FHIR-sized
//! records: writes (envelope + log entry with its commitment + the state
//! rows, which hold the envelope) and allowed reads (decision + audit event + unwrap + decrypt),
//! single-threaded and with 4 threads, each beside the raw primitives in
//! the same run: envelope seal + one durable log append + one blob write
//! (writes), and one durable log append + blob read + envelope open
//! (reads). Writes also run beside a second baseline, the raw path of an
//! inline body (envelope seal + one durable log append + one durable state
//! transaction holding the envelope), because the facade keeps envelopes
//! of at most 64 KiB in its state store rather than as blob files. A
//! third group writes 256 KiB records, which do go to blob files, beside
//! the raw blob path.

use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medledger::envelope::{open, seal, RecipientSecretKey, RecordContext};
use medledger::grants::*;
use medledger::store::{
    read_blob, BlobId, BlobStore, EmbeddedStore, EntryLog, StateStore, StoreOptions,
};
use medledger::{Ledger, LedgerKey, NewRecord};

const BODY_LEN: usize = 4096;
const THREADS: u64 = 4;
/// A body too large to keep inline (over 64 KiB sealed).
const LARGE_LEN: usize = 256 * 1024;

struct Fixture {
    ledger: Ledger,
    patients: Vec<ActorKeys>,
    doctor: ActorKeys,
    _dir: tempfile::TempDir,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(
        dir.path(),
        "bench.example/ledger",
        &LedgerKey::from_bytes([3; 32]),
    )
    .unwrap();
    let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
    ledger.register(doctor.actor(), "st-mary").unwrap();
    let patients: Vec<ActorKeys> = (0..THREADS)
        .map(|_| ActorKeys::generate(ActorKind::Patient).unwrap())
        .collect();
    for p in &patients {
        ledger.register(p.actor(), "patients").unwrap();
        let g = SignedGrant::sign(
            Grant {
                issuer: p.id(),
                patient: p.id(),
                grantee: Grantee::Actor(doctor.id()),
                parent: None,
                scope: Scope::All,
                sensitivity: SensitivitySet::empty(),
                actions: ActionSet::empty().with(Action::Read).with(Action::Write),
                purposes: PurposeSet::empty().with(Purpose::Treat),
                validity: Validity::new(now() - 60, now() + 86400).unwrap(),
                max_delegation_depth: 0,
                issued_at: now(),
                nonce: Grant::fresh_nonce(),
            },
            p,
        )
        .unwrap();
        ledger.grant(&g).unwrap();
    }
    Fixture {
        ledger,
        patients,
        doctor,
        _dir: dir,
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn facade_write(f: &Fixture, patient: &ActorKeys, body: &[u8]) -> String {
    let id = format!("Observation/{}", NEXT.fetch_add(1, Ordering::Relaxed));
    f.ledger
        .write(&NewRecord {
            id: &id,
            patient: patient.id(),
            author: f.doctor.id(),
            content_type: "application/fhir+json",
            category: "Observation",
            labels: SensitivitySet::empty(),
            body,
        })
        .unwrap();
    id
}

/// The raw path: seal for three recipients, one durable log append of a
/// commitment-sized entry, one blob write.
struct Raw {
    store: EmbeddedStore,
    keys: [RecipientSecretKey; 3],
    _dir: tempfile::TempDir,
}

fn raw() -> Raw {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
    Raw {
        store,
        keys: [
            RecipientSecretKey::generate(),
            RecipientSecretKey::generate(),
            RecipientSecretKey::generate(),
        ],
        _dir: dir,
    }
}

/// The part both raw write paths share: seal for three recipients and one
/// durable log append of a commitment-sized entry. Returns the write's
/// number, context and envelope.
fn raw_seal_append(r: &Raw, body: &[u8]) -> (u64, RecordContext, Vec<u8>) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ctx = RecordContext::new(
        format!("Observation/{n}"),
        "patient",
        1,
        "application/fhir+json",
    )
    .unwrap();
    let recipients: Vec<_> = r.keys.iter().map(|k| k.public_key()).collect();
    let env = seal(body, &ctx, &recipients).unwrap();
    let commitment = blake3::hash(&env);
    r.store.log().append(commitment.as_bytes()).unwrap();
    (n, ctx, env)
}

/// The raw blob path: seal, append, one blob write.
fn raw_write(r: &Raw, body: &[u8]) -> (BlobId, RecordContext) {
    let (n, ctx, env) = raw_seal_append(r, body);
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    let id = BlobId(id);
    let mut w = r.store.blobs().create(id).unwrap();
    w.write_all(&env).unwrap();
    w.commit().unwrap();
    (id, ctx)
}

/// The raw path of an inline body: seal, append, one durable state
/// transaction holding the envelope (what the facade does for envelopes
/// of at most 64 KiB instead of a blob file).
fn raw_write_inline(r: &Raw, body: &[u8]) {
    let (n, _, env) = raw_seal_append(r, body);
    r.store
        .state()
        .transact(None, &mut |t| t.put("bodies", &n.to_be_bytes(), &env))
        .unwrap();
}

fn raw_read(r: &Raw, id: &BlobId, ctx: &RecordContext) -> Vec<u8> {
    r.store.log().append(&[0u8; 160]).unwrap();
    let env = read_blob(r.store.blobs(), id).unwrap();
    open(&env, ctx, &r.keys[0]).unwrap()
}

/// Runs `iters` operations split over `threads` threads; returns the wall
/// time (so the figure is time per operation at that concurrency).
fn parallel(iters: u64, threads: u64, op: impl Fn(u64) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let op = &op;
            s.spawn(move || {
                for _ in 0..iters.div_ceil(threads) {
                    op(t);
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let body: Vec<u8> = (0..BODY_LEN)
        .map(|i| b"{\"resourceType\":\"Observation\"}"[i % 30])
        .collect();
    let f = fixture();
    let r = raw();

    let mut g = c.benchmark_group("facade_write_4k");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    for threads in [1, THREADS] {
        g.bench_function(format!("facade_{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(iters, threads, |t| {
                    black_box(facade_write(&f, &f.patients[t as usize], &body));
                })
            })
        });
        g.bench_function(format!("raw_seal_append_blob_{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(iters, threads, |_| {
                    black_box(raw_write(&r, &body));
                })
            })
        });
        g.bench_function(format!("raw_seal_append_state_put_{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(iters, threads, |_| {
                    raw_write_inline(&r, &body);
                })
            })
        });
    }
    g.finish();

    let large: Vec<u8> = body.iter().copied().cycle().take(LARGE_LEN).collect();
    let mut g = c.benchmark_group("facade_write_256k");
    g.throughput(Throughput::Bytes(LARGE_LEN as u64));
    g.sample_size(10);
    g.bench_function("facade_1t", |b| {
        b.iter(|| black_box(facade_write(&f, &f.patients[0], &large)))
    });
    g.bench_function("raw_seal_append_blob_1t", |b| {
        b.iter(|| black_box(raw_write(&r, &large)))
    });
    g.finish();

    let ids: Vec<String> = f
        .patients
        .iter()
        .map(|p| facade_write(&f, p, &body))
        .collect();
    let raw_ids: Vec<_> = (0..THREADS).map(|_| raw_write(&r, &body)).collect();
    // Warm the grantee's wraps (added on first allowed read).
    for id in &ids {
        f.ledger.read(&f.doctor, id, Purpose::Treat).unwrap();
    }
    let mut g = c.benchmark_group("facade_read_4k");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    for threads in [1, THREADS] {
        g.bench_function(format!("facade_allowed_{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(iters, threads, |t| {
                    let rec = f
                        .ledger
                        .read(&f.doctor, &ids[t as usize], Purpose::Treat)
                        .unwrap();
                    black_box(rec.body.len());
                })
            })
        });
        g.bench_function(format!("raw_append_blob_open_{threads}t"), |b| {
            b.iter_custom(|iters| {
                parallel(iters, threads, |t| {
                    let (id, ctx) = &raw_ids[t as usize];
                    black_box(raw_read(&r, id, ctx));
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
