//! The node layout (schema version 3): the stored hashes of an append of
//! 64 entries or more in runs of up to 240, found by the run with the
//! greatest start position not above a node's; those of a smaller append
//! in its entry rows. Nodes read back across append, run and layout
//! boundaries equal an in-memory tree's, one query for any set of them.

mod common;

use medledger_chain::{HashAlg, MemoryNodeStore, MerkleLog, NodeId, NodeStore};
use medledger_postgres::nodes::{INLINE_BELOW, NODES_PER_ROW};
use medledger_postgres::PgStore;
use medledger_store::EntryLog;

fn entry(i: u64) -> Vec<u8> {
    let mut e = format!("node-runs entry {i} ").into_bytes();
    e.resize(20 + (i % 97) as usize, (i % 253) as u8);
    e
}

/// Every complete subtree of a tree of `n` leaves.
fn every_node(n: u64) -> Vec<NodeId> {
    (0u8..63)
        .take_while(|l| n >> l > 0)
        .flat_map(|l| (0..n >> l).map(move |i| NodeId::new(l, i)))
        .collect()
}

/// Appends `sizes` batches to `s` and `mem` alike; returns the log length.
fn append(s: &PgStore, mem: &mut MerkleLog<MemoryNodeStore>, sizes: &[u64]) -> u64 {
    for &k in sizes {
        let start = mem.size();
        let batch: Vec<Vec<u8>> = (start..start + k).map(entry).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let range = s.entries().append_batch(&refs).unwrap();
        assert_eq!(range, start..start + k);
        mem.append_batch(refs.iter()).unwrap();
    }
    mem.size()
}

fn run_count(url: &str, schema: &str) -> i64 {
    common::client(url)
        .query_one(&format!("SELECT count(*) FROM \"{schema}\".nodes"), &[])
        .unwrap()
        .get(0)
}

#[test]
fn nodes_are_found_across_append_and_run_boundaries() {
    let Some(url) = common::url("node_runs::nodes_are_found_across_append_and_run_boundaries")
    else {
        return;
    };
    let (schema, s) = common::store(&url, "runs", HashAlg::Blake3);
    let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
    // Appends storing fewer, exactly as many as, and more than one run's
    // 240 hashes (a leaf stores 1 + its trailing one bits), several runs,
    // and single appends between them.
    let sizes = [1u64, 119, 120, 121, 1, 240, 1, 500, 3, 1000, 1];
    let n = append(&s, &mut mem, &sizes);
    assert_eq!(n, 2107);
    // Each append of 64 entries or more wrote ceil(stored / 240) runs;
    // smaller ones kept their hashes in their entry rows.
    let mut expected_runs = 0i64;
    let mut at = 0u64;
    for k in sizes {
        let stored = medledger_chain::node_store::stored_count(at + k).unwrap()
            - medledger_chain::node_store::stored_count(at).unwrap();
        if k >= INLINE_BELOW as u64 {
            expected_runs += stored.div_ceil(NODES_PER_ROW as u64) as i64;
        }
        at += k;
    }
    assert_eq!(run_count(&url, &schema), expected_runs);
    // Every node of the tree, read in one call, in a scrambled order.
    let mut all = every_node(n);
    all.reverse();
    let third = all.len() / 3;
    all.rotate_left(third);
    assert_eq!(s.nodes().get(&all).unwrap(), mem.store().get(&all).unwrap());
    // The same node asked twice, and single nodes at run edges.
    let edge = [NodeId::new(0, 0), NodeId::new(0, 0), NodeId::new(7, 3)];
    assert_eq!(
        s.nodes().get(&edge).unwrap(),
        mem.store().get(&edge).unwrap()
    );
    for p in [239u64, 240, 241, 479, 480, 1000, 2000, 4200] {
        let id = all
            .iter()
            .copied()
            .find(|id| id.stored_index() == Some(p))
            .unwrap();
        assert_eq!(
            s.nodes().get(&[id]).unwrap(),
            mem.store().get(&[id]).unwrap(),
            "position {p}"
        );
    }
    // Nodes never stored: the next leaf, an incomplete subtree, a level
    // above the tree.
    for id in [
        NodeId::new(0, n),
        NodeId::new(2, n >> 2),
        NodeId::new(12, 0),
    ] {
        match s.nodes().get(&[NodeId::new(0, 1), id]) {
            Err(medledger_chain::Error::MissingNode { level, index }) => {
                assert_eq!((level, index), (id.level, id.index))
            }
            other => panic!("{id:?}: {other:?}"),
        }
    }
    // Roots and proofs through the durable tree.
    let tree = s.merkle_log().unwrap();
    assert_eq!(tree.root(), mem.root());
    for old in [1, 120, 240, 241, 1106, n] {
        assert_eq!(tree.root_at(old).unwrap(), mem.root_at(old).unwrap());
        assert_eq!(
            tree.consistency_proof(old, n).unwrap(),
            mem.consistency_proof(old, n).unwrap()
        );
    }
    for i in [0, 119, 239, 240, 603, 1106, n - 1] {
        assert_eq!(
            tree.inclusion_proof(i, n).unwrap(),
            mem.inclusion_proof(i, n).unwrap()
        );
    }
    drop(s);
    common::drop_schema(&url, &schema);
}

/// xorshift64*: reproducible sizes without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn random_batch_sizes_read_back_like_an_in_memory_tree() {
    let Some(url) = common::url("node_runs::random_batch_sizes_read_back_like_an_in_memory_tree")
    else {
        return;
    };
    for seed in [1u64, 0x9e37_79b9_7f4a_7c15, 2026] {
        let (schema, s) = common::store(&url, "random", HashAlg::Sha256);
        let mut mem = MerkleLog::in_memory(HashAlg::Sha256);
        let mut rng = Rng(seed);
        for round in 0..24 {
            // Mostly small appends, some past one run, a few past several.
            let k = match rng.below(10) {
                0..=5 => 1 + rng.below(8),
                6..=8 => 1 + rng.below(300),
                _ => 300 + rng.below(700),
            };
            let n = append(&s, &mut mem, &[k]);
            // A random sample of nodes, and the frontier, after each append.
            let all = every_node(n);
            let mut ids: Vec<NodeId> = (0..40)
                .map(|_| all[rng.below(all.len() as u64) as usize])
                .collect();
            ids.push(NodeId::new(0, n - 1));
            assert_eq!(
                s.nodes().get(&ids).unwrap(),
                mem.store().get(&ids).unwrap(),
                "seed {seed} round {round}"
            );
            assert_eq!(s.nodes().leaf_count().unwrap(), n);
        }
        let n = mem.size();
        let all = every_node(n);
        assert_eq!(s.nodes().get(&all).unwrap(), mem.store().get(&all).unwrap());
        assert_eq!(s.merkle_log().unwrap().root(), mem.root());
        drop(s);
        common::drop_schema(&url, &schema);
    }
}

#[test]
fn a_node_store_alone_writes_runs_and_accepts_overlapping_appends() {
    let Some(url) =
        common::url("node_runs::a_node_store_alone_writes_runs_and_accepts_overlapping_appends")
    else {
        return;
    };
    let (schema, s) = common::store(&url, "alone", HashAlg::Blake3);
    // Nodes only (no entry log), through a durable tree: 300 leaves in one
    // append (596 hashes: three runs), then singles.
    let mut tree = s.merkle_log().unwrap();
    let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
    let first: Vec<Vec<u8>> = (0..300).map(entry).collect();
    tree.append_batch(first.iter()).unwrap();
    mem.append_batch(first.iter()).unwrap();
    for i in 300..305 {
        tree.append(&entry(i)).unwrap();
        mem.append(&entry(i)).unwrap();
    }
    assert_eq!(run_count(&url, &schema), 3 + 5);
    let all = every_node(305);
    assert_eq!(s.nodes().get(&all).unwrap(), mem.store().get(&all).unwrap());
    // A second tree appending the same leaves again finds them committed
    // (they match), and one appending different ones is refused.
    let mut same = s.nodes();
    let nodes_of_300: Vec<(NodeId, medledger_chain::Hash)> = {
        let ids: Vec<NodeId> = (0..=300u64.trailing_ones())
            .map(|l| NodeId::new(l as u8, 300 >> l))
            .collect();
        ids.iter()
            .copied()
            .zip(mem.store().get(&ids).unwrap())
            .collect()
    };
    same.append(1, &nodes_of_300).unwrap();
    let mut forged = nodes_of_300.clone();
    forged[0].1 = HashAlg::Blake3.leaf_hash(b"forged");
    let e = same.append(1, &forged).unwrap_err();
    assert!(e.to_string().contains("differs"), "{e}");
    assert_eq!(s.nodes().get(&all).unwrap(), mem.store().get(&all).unwrap());
    drop((tree, s));
    common::drop_schema(&url, &schema);
}
