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

/// Runs every op in `ops` once per iteration, in order, and returns the
/// time spent in `ops[which]` alone. Benchmarks of the ops in one group use
/// the same interleaved schedule, so a shared disk's drifting fsync latency
/// hits all of them alike and their ratio holds.
fn paired(ops: &mut [&mut dyn FnMut()], which: usize, iters: u64) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..iters {
        for (i, op) in ops.iter_mut().enumerate() {
            let start = Instant::now();
            op();
            if i == which {
                spent += start.elapsed();
            }
        }
    }
    spent
}

/// About `iters` appends spread over `threads` appenders; the wall time
/// scaled to exactly `iters` (each thread does a whole number of appends).
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
    let done = per * threads;
    start.elapsed().mul_f64(iters as f64 / done as f64)
}

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("store_append_256B");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .throughput(Throughput::Elements(1));

    // One appender beside the device floor, interleaved (see `paired`).
    let raw_dir = tmpdir();
    let mut raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(raw_dir.path().join("raw"))
        .unwrap();
    let one_dir = tmpdir();
    let one = store(one_dir.path(), true);
    for (which, name) in ["raw_write_fdatasync", "append_1_paired"]
        .into_iter()
        .enumerate()
    {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut raw_op = || {
                    raw.write_all(black_box(&ENTRY)).unwrap();
                    raw.sync_data().unwrap();
                };
                let mut append_op = || {
                    black_box(one.log().append(&ENTRY).unwrap());
                };
                paired(&mut [&mut raw_op, &mut append_op], which, iters)
            })
        });
    }

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
    // The same on tmpfs, where fdatasync costs nothing: the CPU's ceiling,
    // which tells whether the disk or the CPU limits the figure above.
    if Path::new("/dev/shm").is_dir() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let s = store(shm.path(), true);
        g.bench_function("append_batch_1000_tmpfs", |b| {
            b.iter(|| black_box(s.log().append_batch(&batch).unwrap()))
        });
    }
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
    let dir = tmpdir();
    let s = store(dir.path(), true);
    let stamp = std::cell::Cell::new(0u64);
    let names = ["raw_redb", "state_store", "state_store_stamped"];
    for (which, name) in names.into_iter().enumerate() {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut raw_op = || {
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
                };
                let ours = |stamped: bool| {
                    let next = || {
                        stamp.set(stamp.get() + 1);
                        stamped.then_some(stamp.get())
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
                };
                let mut ours_plain = || ours(false);
                let mut ours_stamped = || ours(true);
                paired(
                    &mut [&mut raw_op, &mut ours_plain, &mut ours_stamped],
                    which,
                    iters,
                )
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Criterion measures each function in its own time window, and on a
/// shared VM disk the fsync latency drifts between windows by several
/// times. This prints medians of strictly interleaved operations (one of
/// each per round), whose ratio is what the README reports.
fn interleaved_medians(_: &mut Criterion) {
    let dir = tmpdir();
    let s = store(dir.path(), true);
    let mut raw = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("raw"))
        .unwrap();
    let (mut t_raw, mut t_append) = (Vec::new(), Vec::new());
    for _ in 0..400 {
        let t = Instant::now();
        raw.write_all(black_box(&ENTRY)).unwrap();
        raw.sync_data().unwrap();
        t_raw.push(t.elapsed());
        let t = Instant::now();
        black_box(s.log().append(&ENTRY).unwrap());
        t_append.push(t.elapsed());
    }
    let (r, a) = (median(t_raw), median(t_append));
    println!(
        "interleaved 256 B: raw write+fdatasync {r:?}, append {a:?}, ratio {:.2}",
        a.as_secs_f64() / r.as_secs_f64()
    );

    // The batch API beside one raw write+fdatasync, interleaved.
    let batch: Vec<&[u8]> = vec![&ENTRY[..]; 1000];
    let (mut t_raw, mut t_batch) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let t = Instant::now();
        raw.write_all(black_box(&ENTRY)).unwrap();
        raw.sync_data().unwrap();
        t_raw.push(t.elapsed());
        let t = Instant::now();
        black_box(s.log().append_batch(&batch).unwrap());
        t_batch.push(t.elapsed());
    }
    let (r, b) = (median(t_raw), median(t_batch));
    println!(
        "interleaved batch of 1000: raw write+fdatasync {r:?}, batch {b:?} ({:.0} entries/s, {:.1} raw syncs)",
        1000.0 / b.as_secs_f64(),
        b.as_secs_f64() / r.as_secs_f64()
    );

    // 64 appenders with group commit beside 64 forced to one fsync each,
    // alternating rounds; per-append time.
    let (grouped_dir, forced_dir) = (tmpdir(), tmpdir());
    let grouped = Arc::new(store(grouped_dir.path(), true));
    let forced = Arc::new(store(forced_dir.path(), false));
    let (mut t_group, mut t_forced) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        t_group.push(concurrent(&grouped, 64, 64 * 20) / (64 * 20));
        t_forced.push(concurrent(&forced, 64, 64 * 2) / (64 * 2));
    }
    let (g, f) = (median(t_group), median(t_forced));
    println!(
        "interleaved 64 appenders: group commit {g:?}/append ({:.0}/s), one fsync each {f:?}/append ({:.0}/s), ratio {:.1}",
        1.0 / g.as_secs_f64(),
        1.0 / f.as_secs_f64(),
        f.as_secs_f64() / g.as_secs_f64()
    );

    let db = redb::Database::create(dir.path().join("raw.redb")).unwrap();
    let (mut t_redb, mut t_ours, mut t_stamped) = (Vec::new(), Vec::new(), Vec::new());
    let mut stamp = 0u64;
    for _ in 0..150 {
        let t = Instant::now();
        for remove in [false, true] {
            let w = db.begin_write().unwrap();
            let mut table = w.open_table(RAW).unwrap();
            if remove {
                black_box(table.remove(&b"record-1/alice"[..]).unwrap().is_some());
            } else {
                table
                    .insert(&b"record-1/alice"[..], &WRAPPED_KEY[..])
                    .unwrap();
            }
            drop(table);
            w.commit().unwrap();
        }
        t_redb.push(t.elapsed());
        for (stamped, out) in [(false, &mut t_ours), (true, &mut t_stamped)] {
            let t = Instant::now();
            stamp += 1;
            s.state()
                .transact(stamped.then_some(stamp), &mut |t| {
                    t.put("wrapped_keys", b"record-1/alice", &WRAPPED_KEY)
                })
                .unwrap();
            stamp += 1;
            s.state()
                .transact(stamped.then_some(stamp), &mut |t| {
                    t.delete("wrapped_keys", b"record-1/alice").map(|_| ())
                })
                .unwrap();
            out.push(t.elapsed());
        }
    }
    let (r, o, st) = (median(t_redb), median(t_ours), median(t_stamped));
    println!(
        "interleaved put+delete: raw redb {r:?}, state store {o:?} ({:.2}x), stamped {st:?} ({:.2}x)",
        o.as_secs_f64() / r.as_secs_f64(),
        st.as_secs_f64() / r.as_secs_f64()
    );
}

criterion_group!(benches, interleaved_medians, appends, state, open_million);
criterion_main!(benches);
