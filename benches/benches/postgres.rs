//! medledger on PostgreSQL, each beside its baseline in the same run on
//! the same server (`MEDLEDGER_PG_URL`, e.g. from
//! `eval "$(scripts/pg-test-cluster start)"`; without it the benchmark
//! says it skipped):
//!
//! - durable 256-byte appends, one appender: `PgEntryLog::append` against
//!   a raw `INSERT` + `COMMIT` of the same row through the same client;
//! - batches of 1,000: `append_batch` against one raw transaction
//!   inserting the same 1,000 rows into an `(idx bigint PK, body bytea)`
//!   table (`BEGIN`, one `INSERT … unnest`, `COMMIT`), measured one after
//!   the other and again paired (each iteration runs both, timing one);
//! - 16 concurrent appenders: group commit against one commit per append
//!   (the same log with group commit off, and 16 raw clients);
//! - facade 4 KiB record writes on PostgreSQL beside the embedded store:
//!   without turns, in turns alone, and two ledgers on one schema writing
//!   in alternation (every write a handover).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use medledger::chain::HashAlg;
use medledger::grants::*;
use medledger::store::{BlobStore, EntryLog, StateStore};
use medledger::{Ledger, LedgerKey, NewRecord, Stores};
use medledger_postgres::postgres::{Client, Config, NoTls};
use medledger_postgres::{PgOptions, PgStore};

const ENTRY: usize = 256;
const BATCH: usize = 1000;
const APPENDERS: usize = 16;
/// Appends per appender per measured iteration in the concurrent runs.
const PER_APPENDER: usize = 4;

fn url() -> String {
    std::env::var("MEDLEDGER_PG_URL").unwrap_or_default()
}

fn schema(tag: &str) -> String {
    format!("bench_{tag}_{}", std::process::id())
}

fn client() -> Client {
    url().parse::<Config>().unwrap().connect(NoTls).unwrap()
}

fn drop_schema(name: &str) {
    client()
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
        .unwrap();
}

fn store(tag: &str, group_commit: bool) -> PgStore {
    let name = schema(tag);
    drop_schema(&name);
    PgStore::open(
        &url(),
        PgOptions {
            schema: name,
            group_commit,
            max_connections: APPENDERS + 2,
            ..PgOptions::default()
        },
    )
    .unwrap()
}

/// A raw table and client for the baselines.
fn raw_client() -> Client {
    let name = schema("raw");
    drop_schema(&name);
    let mut c = client();
    c.batch_execute(&format!(
        "CREATE SCHEMA \"{name}\"; SET search_path TO \"{name}\";
         CREATE TABLE raw_entries (idx bigint PRIMARY KEY, body bytea NOT NULL);"
    ))
    .unwrap();
    c
}

static RAW_IDX: AtomicU64 = AtomicU64::new(0);

fn raw_insert(c: &mut Client, stmt: &medledger_postgres::postgres::Statement, body: &[u8]) {
    let i = RAW_IDX.fetch_add(1, Ordering::Relaxed) as i64;
    let mut tx = c.transaction().unwrap();
    tx.execute(stmt, &[&i, &body]).unwrap();
    tx.commit().unwrap();
}

fn appends(c: &mut Criterion) {
    let entry = vec![0xa5u8; ENTRY];
    let mut g = c.benchmark_group("pg_append_256B");
    g.sample_size(20);

    // One appender, one row per commit.
    let mut raw = raw_client();
    let insert = raw
        .prepare("INSERT INTO raw_entries (idx, body) VALUES ($1, $2)")
        .unwrap();
    let log = store("one", true);
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_insert_commit_1", |b| {
        b.iter(|| raw_insert(&mut raw, &insert, black_box(&entry)))
    });
    g.bench_function("medledger_append_1", |b| {
        b.iter(|| log.entries().append(black_box(&entry)).unwrap())
    });

    // Batches of 1,000.
    let rows: Vec<&[u8]> = (0..BATCH).map(|_| entry.as_slice()).collect();
    let insert_many = raw
        .prepare(
            "INSERT INTO raw_entries (idx, body) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        )
        .unwrap();
    g.throughput(Throughput::Elements(BATCH as u64));
    let raw_batch = |raw: &mut Client| {
        let start = RAW_IDX.fetch_add(BATCH as u64, Ordering::Relaxed) as i64;
        let idx: Vec<i64> = (start..start + BATCH as i64).collect();
        let mut tx = raw.transaction().unwrap();
        tx.execute(&insert_many, &[&idx, black_box(&rows)]).unwrap();
        tx.commit().unwrap();
    };
    g.bench_function("raw_insert_commit_1000", |b| b.iter(|| raw_batch(&mut raw)));
    g.bench_function("medledger_batch_1000", |b| {
        b.iter(|| log.entries().append_batch(black_box(&rows)).unwrap())
    });
    // The same two, paired: every iteration runs the raw batch and then
    // the medledger batch and times one of them, so both are measured over
    // the same stretch of this shared VM's load, which moves within the
    // seconds criterion spends on one function before the next.
    let paired = |raw: &mut Client, iters: u64, time_raw: bool| {
        let mut timed = Duration::ZERO;
        for _ in 0..iters {
            let t = Instant::now();
            raw_batch(raw);
            let raw_took = t.elapsed();
            let t = Instant::now();
            log.entries().append_batch(black_box(&rows)).unwrap();
            timed += if time_raw { raw_took } else { t.elapsed() };
        }
        timed
    };
    g.bench_function("raw_insert_commit_1000_paired", |b| {
        b.iter_custom(|iters| paired(&mut raw, iters, true))
    });
    g.bench_function("medledger_batch_1000_paired", |b| {
        b.iter_custom(|iters| paired(&mut raw, iters, false))
    });

    // 16 concurrent appenders.
    let no_group = store("nogroup", false);
    let concurrent = |log: &PgStore, iters: u64| {
        let start = Instant::now();
        for _ in 0..iters {
            std::thread::scope(|s| {
                for _ in 0..APPENDERS {
                    s.spawn(|| {
                        for _ in 0..PER_APPENDER {
                            log.entries().append(&entry).unwrap();
                        }
                    });
                }
            });
        }
        start.elapsed()
    };
    g.throughput(Throughput::Elements((APPENDERS * PER_APPENDER) as u64));
    g.bench_function("raw_16_clients_commit_each", |b| {
        let mut clients: Vec<(Client, _)> = (0..APPENDERS)
            .map(|_| {
                let mut c = client();
                c.batch_execute(&format!("SET search_path TO \"{}\"", schema("raw")))
                    .unwrap();
                let s = c
                    .prepare("INSERT INTO raw_entries (idx, body) VALUES ($1, $2)")
                    .unwrap();
                (c, s)
            })
            .collect();
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                std::thread::scope(|s| {
                    for (c, st) in clients.iter_mut() {
                        let entry = &entry;
                        s.spawn(move || {
                            for _ in 0..PER_APPENDER {
                                raw_insert(c, st, entry);
                            }
                        });
                    }
                });
            }
            start.elapsed()
        })
    });
    g.bench_function("medledger_16_appenders_commit_each", |b| {
        b.iter_custom(|iters| concurrent(&no_group, iters))
    });
    g.bench_function("medledger_16_appenders_group_commit", |b| {
        b.iter_custom(|iters| concurrent(&log, iters))
    });
    g.finish();
    drop((log, no_group, raw));
    for t in ["one", "nogroup", "raw"] {
        drop_schema(&schema(t));
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Actors {
    patient: ActorKeys,
    doctor: ActorKeys,
}

fn actors<N: medledger::chain::NodeStore>(ledger: &Ledger<N>) -> Actors {
    let patient = ActorKeys::generate(ActorKind::Patient).unwrap();
    let doctor = ActorKeys::generate(ActorKind::Clinician).unwrap();
    ledger.register(patient.actor(), "patients").unwrap();
    ledger.register(doctor.actor(), "st-mary").unwrap();
    let g = SignedGrant::sign(
        Grant {
            issuer: patient.id(),
            patient: patient.id(),
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
        &patient,
    )
    .unwrap();
    ledger.grant(&g).unwrap();
    Actors { patient, doctor }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn write<N: medledger::chain::NodeStore>(ledger: &Ledger<N>, a: &Actors, body: &[u8]) {
    let id = format!("Observation/{}", NEXT.fetch_add(1, Ordering::Relaxed));
    ledger
        .write(&NewRecord {
            id: &id,
            patient: a.patient.id(),
            author: a.doctor.id(),
            content_type: "application/fhir+json",
            category: "Observation",
            labels: SensitivitySet::empty(),
            body,
        })
        .unwrap();
}

fn facade(c: &mut Criterion) {
    let body = vec![0x42u8; 4096];
    let key = LedgerKey::from_bytes([3; 32]);
    let mut g = c.benchmark_group("pg_facade_write_4KiB");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));

    let dir = tempfile::tempdir().unwrap();
    let embedded = Ledger::open(dir.path(), "bench.example/ledger", &key).unwrap();
    let ea = actors(&embedded);
    g.bench_function("embedded", |b| {
        b.iter(|| write(&embedded, &ea, black_box(&body)))
    });

    // The ledger over the store's parts without turns: the path a single
    // writer took before several could share a schema.
    let pg = store("facade", true);
    let stores = Stores {
        entries: Arc::clone(pg.entries()) as Arc<dyn EntryLog>,
        tree: pg.merkle_log().unwrap(),
        blobs: Arc::clone(pg.blobs()) as Arc<dyn BlobStore>,
        state: Arc::clone(pg.state()) as Arc<dyn StateStore>,
    };
    let ledger = Ledger::with_stores(stores, "bench.example/ledger", &key).unwrap();
    let pa = actors(&ledger);
    g.bench_function("postgres_no_turns", |b| {
        b.iter(|| write(&ledger, &pa, black_box(&body)))
    });

    // `open_postgres`: every write runs in a turn. Alone, each turn
    // resumes (lock, head read, unlock); with two ledgers writing in
    // alternation, each write is a handover (epoch bump in both rows, then
    // catch-up of the other's write).
    let name = schema("turns");
    drop_schema(&name);
    let opts = PgOptions {
        schema: name.clone(),
        ..PgOptions::default()
    };
    let one = Ledger::open_postgres(&url(), opts.clone(), "bench.example/ledger", &key).unwrap();
    let oa = actors(&one);
    g.bench_function("postgres_turns", |b| {
        b.iter(|| write(&one, &oa, black_box(&body)))
    });
    let two = Ledger::open_postgres(&url(), opts, "bench.example/ledger", &key).unwrap();
    let mut flip = false;
    g.bench_function("postgres_two_ledgers_alternating", |b| {
        b.iter(|| {
            flip = !flip;
            write(if flip { &one } else { &two }, &oa, black_box(&body))
        })
    });
    g.finish();
    drop((ledger, pg, one, two));
    drop_schema(&schema("facade"));
    drop_schema(&name);
    let _ = HashAlg::Blake3;
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = appends, facade
}

fn main() {
    if url().is_empty() {
        eprintln!(
            "*** SKIPPED the PostgreSQL benchmarks: MEDLEDGER_PG_URL is not set \
             (eval \"$(scripts/pg-test-cluster start)\") ***"
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
