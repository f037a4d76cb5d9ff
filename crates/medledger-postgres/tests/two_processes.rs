//! Two processes append to one log at once: PostgreSQL's sequencer gives
//! them one gap-free, duplicate-free log and one Merkle tree.
//!
//! The test re-runs its own binary twice with `MEDLEDGER_PG_CHILD` set;
//! each child appends from four threads and prints what it was
//! acknowledged and every (size, root) it saw; the parent checks them all.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use medledger_chain::{verify_consistency, Hash, HashAlg, MerkleLog};
use medledger_postgres::PgStore;
use medledger_store::EntryLog;

const CHILD: &str = "MEDLEDGER_PG_CHILD";
const TEST: &str = "two_processes_append_to_one_log";
const THREADS: u64 = 4;
const ROUNDS: u64 = 25;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn entry(child: u64, thread: u64, round: u64, k: u64) -> Vec<u8> {
    let mut e = format!("c{child}t{thread}r{round}k{k}:").into_bytes();
    e.extend((0..(round * 13 + k) % 200).map(|i| (i ^ child ^ thread) as u8));
    e
}

/// Child mode: append, print `ACK index hex` and `ROOT size hex` lines.
fn child(spec: &str) {
    let (schema, id) = spec.split_once(':').unwrap();
    let id: u64 = id.parse().unwrap();
    let url = std::env::var("MEDLEDGER_PG_URL").unwrap();
    let store = PgStore::open(&url, common::options(schema, HashAlg::Sha256)).unwrap();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = &store;
            s.spawn(move || {
                for r in 0..ROUNDS {
                    let batch: Vec<Vec<u8>> = if r % 4 == 0 {
                        (0..3).map(|k| entry(id, t, r, k)).collect()
                    } else {
                        vec![entry(id, t, r, 0)]
                    };
                    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                    let range = store.entries().append_batch(&refs).unwrap();
                    for (i, e) in range.zip(&batch) {
                        println!("ACK {i} {}", hex(e));
                    }
                    if r % 5 == 0 {
                        let tree = store.merkle_log().unwrap();
                        println!("ROOT {} {}", tree.size(), tree.root().to_hex());
                    }
                }
            });
        }
    });
}

#[test]
fn two_processes_append_to_one_log() {
    if let Ok(spec) = std::env::var(CHILD) {
        child(&spec);
        return;
    }
    let Some(url) = common::url(TEST) else {
        return;
    };
    let (schema, store) = common::store(&url, "two", HashAlg::Sha256);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (1..=2u64)
        .map(|id| {
            Command::new(&exe)
                .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, format!("{schema}:{id}"))
                .env("MEDLEDGER_PG_URL", &url)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut acked: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut roots: Vec<(u64, Hash)> = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed");
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            // The harness may print "test … " before the first line.
            let at = line
                .find("ACK ")
                .or_else(|| line.find("ROOT "))
                .unwrap_or(0);
            let mut f = line[at..].split(' ');
            match (f.next(), f.next(), f.next()) {
                (Some("ACK"), Some(i), Some(h)) => {
                    let prev = acked.insert(i.parse().unwrap(), unhex(h));
                    assert!(prev.is_none(), "index {i} acknowledged twice");
                }
                (Some("ROOT"), Some(n), Some(h)) => {
                    roots.push((n.parse().unwrap(), Hash::from_hex(h).unwrap()))
                }
                _ => {}
            }
        }
    }
    let per_child = THREADS * (ROUNDS + 2 * ROUNDS.div_ceil(4));
    assert_eq!(acked.len() as u64, 2 * per_child);
    // The union of what both were acknowledged is exactly the log.
    let log = store.entries();
    assert_eq!(log.len().unwrap(), acked.len() as u64);
    let all = log.read_range(0..acked.len() as u64).unwrap();
    for ((i, mine), stored) in acked.iter().zip(&all) {
        assert_eq!(mine, stored, "entry {i}");
    }
    // One tree: the nodes both wrote are the tree of the entries.
    let tree = store.merkle_log().unwrap();
    let mut mem = MerkleLog::in_memory(HashAlg::Sha256);
    mem.append_batch(&all).unwrap();
    assert_eq!(tree.size(), all.len() as u64);
    assert_eq!(tree.root(), mem.root());
    // Every root either process saw is a prefix of this tree, and each
    // pair is consistent.
    roots.sort();
    roots.dedup();
    roots.push((tree.size(), tree.root()));
    assert!(roots.len() >= 10, "children saw {} roots", roots.len());
    for (n, root) in &roots {
        assert_eq!(&tree.root_at(*n).unwrap(), root, "root at {n}");
    }
    let mut pairs = 0;
    for (a, (n1, r1)) in roots.iter().enumerate() {
        for (n2, r2) in roots.iter().skip(a + 1) {
            if n1 == n2 {
                continue;
            }
            let p = tree.consistency_proof(*n1, *n2).unwrap();
            verify_consistency(HashAlg::Sha256, *n1, *n2, r1, r2, &p.path).unwrap();
            pairs += 1;
        }
    }
    assert!(pairs > 0);
    common::drop_schema(&url, &schema);
}
