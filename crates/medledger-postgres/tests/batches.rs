//! Large batches (written by binary `COPY`) and group commit under many
//! appenders: the log and its tree equal an in-memory recomputation.

mod common;

use std::collections::BTreeMap;

use medledger_chain::{HashAlg, MerkleLog, NodeStore};
use medledger_postgres::PgOptions;
use medledger_store::EntryLog;

fn entry(i: u64) -> Vec<u8> {
    let mut e = format!("entry {i} ").into_bytes();
    e.resize(40 + (i % 300) as usize, (i % 251) as u8);
    e
}

#[test]
fn large_batches_match_an_in_memory_tree() {
    let Some(url) = common::url("batches::large_batches_match_an_in_memory_tree") else {
        return;
    };
    let (schema, s) = common::store(&url, "large", HashAlg::Sha256);
    let mut mem = MerkleLog::in_memory(HashAlg::Sha256);
    let mut all = Vec::new();
    // Odd starting points and sizes on both sides of the COPY threshold.
    for (k, size) in [3u64, 300, 1, 63, 64, 65, 1000, 2].into_iter().enumerate() {
        let start = all.len() as u64;
        let batch: Vec<Vec<u8>> = (start..start + size).map(entry).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let range = s.entries().append_batch(&refs).unwrap();
        assert_eq!(range, start..start + size, "batch {k}");
        mem.append_batch(refs.iter()).unwrap();
        all.extend(batch);
    }
    let n = all.len() as u64;
    assert_eq!(s.entries().len().unwrap(), n);
    assert_eq!(s.entries().read_range(0..n).unwrap(), all);
    assert_eq!(s.entries().read(n - 1).unwrap(), all[all.len() - 1]);
    let tree = s.merkle_log().unwrap();
    assert_eq!(tree.size(), n);
    assert_eq!(tree.root(), mem.root());
    for old in [1, 3, 303, 431, 1432, n] {
        assert_eq!(tree.root_at(old).unwrap(), mem.root_at(old).unwrap());
    }
    for i in [0, 2, 3, 302, 367, 500, 1431, n - 1] {
        let proof = tree.inclusion_proof(i, n).unwrap();
        assert_eq!(proof, mem.inclusion_proof(i, n).unwrap(), "leaf {i}");
    }
    // Every stored node, read back, is the recomputed one.
    let ids: Vec<_> = (0..n)
        .map(|i| medledger_chain::NodeId::new(0, i))
        .chain((0..n / 2).map(|i| medledger_chain::NodeId::new(1, i)))
        .chain((0..n / 512).map(|i| medledger_chain::NodeId::new(9, i)))
        .collect();
    assert_eq!(s.nodes().get(&ids).unwrap(), mem.store().get(&ids).unwrap());
    common::drop_schema(&url, &schema);
}

#[test]
fn sixteen_appenders_share_commits_without_gaps_or_duplicates() {
    let Some(url) =
        common::url("batches::sixteen_appenders_share_commits_without_gaps_or_duplicates")
    else {
        return;
    };
    let schema = common::fresh_schema("group");
    let s = medledger_postgres::PgStore::open(
        &url,
        PgOptions {
            max_connections: 4,
            ..common::options(&schema, HashAlg::Blake3)
        },
    )
    .unwrap();
    const THREADS: u64 = 16;
    const EACH: u64 = 12;
    let acked: BTreeMap<u64, Vec<u8>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let log = s.entries();
                sc.spawn(move || {
                    let mut mine = Vec::new();
                    for j in 0..EACH {
                        // Mix single appends and small batches.
                        let batch: Vec<Vec<u8>> = (0..1 + j % 3)
                            .map(|b| entry(t * 1000 + j * 10 + b))
                            .collect();
                        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                        let range = log.append_batch(&refs).unwrap();
                        assert_eq!(range.end - range.start, batch.len() as u64);
                        mine.extend(range.zip(batch));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let n = s.entries().len().unwrap();
    // Every acknowledged index is distinct and together they are the log.
    assert_eq!(acked.len() as u64, n);
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>()
    );
    let stored = s.entries().read_range(0..n).unwrap();
    assert_eq!(stored, acked.values().cloned().collect::<Vec<_>>());
    let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
    mem.append_batch(stored.iter()).unwrap();
    assert_eq!(s.merkle_log().unwrap().root(), mem.root());
    drop(s);
    common::drop_schema(&url, &schema);
}
