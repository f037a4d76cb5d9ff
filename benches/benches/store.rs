//! medledger-store: durable appends beside the device's raw
//! write + fdatasync, group commit beside one fsync per append, the batch
//! API, state transactions beside raw redb, and reopening a 1,000,000-entry
//! log beside reading its files. Everything runs in the same target
//! directory (same disk), in the same run.
//!
//! `cargo bench -p medledger-benches --bench store`

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use medledger_store::{EmbeddedStore, EntryLog, StateStore, StoreOptions};
use std::hint::black_box;

const ENTRY: [u8; 256] = [0x5a; 256];

fn tmpdir() -> tempfile::TempDir {
    // The target directory, not /tmp: the figures must be the real disk's.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn store(dir: &Path, group_commit: bool) -> EmbeddedStore {
    let mut opts = StoreOptions::default();
    opts.log.group_commit = group_commit;
    EmbeddedStore::open(dir, opts).unwrap().0
}

/// `iters` appends spread over `threads` appenders; the wall time.
fn concurrent(log: &Arc<EmbeddedStore>, threads: u64, iters: u64) -> Duration {
    let per = iters.div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let log = Arc::clone(log);
            s.spawn(move || {
                for _ in 0..per {
                    black_box(log.log().append(&ENTRY).unwrap());
                }
            });
        }
    });
    start.elapsed()
}

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_append_256B");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .throughput(Throughput::Elements(1));

    let raw_dir = tmpdir();
    let mut raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(raw_dir.path().join("raw"))
        .unwrap();
    g.bench_function("raw_write_fdatasync", |b| {
        b.iter(|| {
            raw.write_all(black_box(&ENTRY)).unwrap();
            raw.sync_data().unwrap();
        })
    });

    for (name, group_commit) in [("append", true), ("append_fsync_each", false)] {
        let dir = tmpdir();
        let s = Arc::new(store(dir.path(), group_commit));
        for threads in [1u64, 4, 16, 64] {
            g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &t| {
                b.iter_custom(|iters| concurrent(&s, t, iters))
            });
        }
    }

    let dir = tmpdir();
    let s = store(dir.path(), true);
    let batch: Vec<&[u8]> = vec![&ENTRY[..]; 1000];
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_batch_1000", |b| {
        b.iter(|| black_box(s.log().append_batch(&batch).unwrap()))
    });
    g.finish();
}

const WRAPPED_KEY: [u8; 120] = [0xc3; 120];
const RAW: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("wrapped_keys");

fn state(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_state_put_delete");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);

    let raw_dir = tmpdir();
    let db = redb::Database::create(raw_dir.path().join("raw.redb")).unwrap();
    g.bench_function("raw_redb", |b| {
        b.iter(|| {
            let t = db.begin_write().unwrap();
            t.open_table(RAW)
                .unwrap()
                .insert(&b"record-1/alice"[..], &WRAPPED_KEY[..])
                .unwrap();
            t.commit().unwrap();
            let t = db.begin_write().unwrap();
            black_box(
                t.open_table(RAW)
                    .unwrap()
                    .remove(&b"record-1/alice"[..])
                    .unwrap()
                    .is_some(),
            );
            t.commit().unwrap();
        })
    });

    let dir = tmpdir();
    let s = store(dir.path(), true);
    let mut stamp = 0u64;
    for (name, stamped) in [("state_store", false), ("state_store_stamped", true)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut next = || {
                    stamp += 1;
                    stamped.then_some(stamp)
                };
                s.state()
                    .transact(next(), &mut |t| {
                        t.put("wrapped_keys", b"record-1/alice", &WRAPPED_KEY)
                    })
                    .unwrap();
                s.state()
                    .transact(next(), &mut |t| {
                        t.delete("wrapped_keys", b"record-1/alice").map(|_| ())
                    })
                    .unwrap();
            })
        });
    }
    g.finish();
}

fn open_million(c: &mut Criterion) {
    let dir = tmpdir();
    {
        let s = store(dir.path(), true);
        let mut tree = s.merkle_log().unwrap();
        let batch: Vec<&[u8]> = vec![&ENTRY[..]; 1000];
        for _ in 0..1000 {
            s.log().append_batch(&batch).unwrap();
            tree.append_batch(batch.iter()).unwrap();
        }
        tree.store().sync().unwrap();
    }
    let mut g = c.benchmark_group("store_open_1M_entries");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    g.bench_function("raw_read_log_and_node_files", |b| {
        b.iter(|| {
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            let mut files: Vec<_> = std::fs::read_dir(dir.path().join("log"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.push(dir.path().join("nodes.dat"));
            for p in files {
                let mut f = std::fs::File::open(p).unwrap();
                loop {
                    let n = f.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
            }
            black_box(total)
        })
    });
    g.bench_function("embedded_store_open", |b| {
        b.iter(|| {
            let (s, report) = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
            assert_eq!(report.entries, 1_000_000);
            assert_eq!(report.leaves_recomputed, 0);
            black_box(s)
        })
    });
    g.finish();
}

criterion_group!(benches, appends, state, open_million);
criterion_main!(benches);
