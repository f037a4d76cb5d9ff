//! Writing one append's rows: its `entries` (`idx`, `body`, and for an
//! append of fewer than [`INLINE_BELOW`](crate::nodes::INLINE_BELOW)
//! entries each leaf's node hashes in `hashes`), the runs of node hashes
//! of a larger append in `nodes` (see [`crate::nodes`]), its callers'
//! `batches` rows and the new `log_head`, in one statement (`INSERT …
//! SELECT … FROM unnest(…)` in data-modifying `WITH` clauses).
//!
//! Two ways to run it:
//!
//! - **Under the lock** ([`WRITE_BATCH`]): inside the sequencer's
//!   transaction, after `BEGIN; SELECT … FOR UPDATE` returned the head;
//!   `COMMIT` follows. Three round trips per append.
//! - **Speculatively** ([`WRITE_IF_HEAD`]): when this process committed
//!   the last append it knows the head (`n`) and the frontier, so it
//!   computes the nodes first and sends one statement, outside any
//!   `BEGIN`, that locks the head row only if it still says `n`
//!   (`SELECT … FOR UPDATE` in a `WITH`; a writer that moved it meanwhile
//!   makes PostgreSQL re-check the row after the wait, and then nothing is
//!   written) and otherwise writes the entries, the `batches` rows and the
//!   head exactly as under the lock. As a single statement it commits
//!   when it completes (implicit transaction, same `synchronous_commit`
//!   flush as `COMMIT`): one round trip per append. If the head moved (or
//!   another writer took a turn: the fence, see [`crate::writer`]) it
//!   updates no row and commits nothing, and the sequencer takes the
//!   locked path, which decides. A connection lost during it is an
//!   unknown outcome, like one lost during `COMMIT`.
//!
//! Measured on the dev VM (2 shared cores, other builds running), round
//! trips cost far more than their nominal socket latency: each is two
//! context switches on a saturated machine. Binary `COPY` was tried for
//! large batches: its server CPU per 1,000 rows was no lower than this
//! `INSERT`'s (4.6 ms against 4.5 ms, `log_statement_stats`) and it needs
//! two more round trips, so it is not used.
//!
//! For a large append the entry rows have the shape of a plain
//! `(idx bigint, body bytea)` table (`hashes` NULL): the indexes are
//! `first + ordinality` on the server (one bigint sent, not an array), and
//! the node hashes go to [`NODES_PER_ROW`](crate::nodes::NODES_PER_ROW)-hash
//! rows of `nodes`, 9 rows for 1,000 entries. Measured on the dev VM
//! (the statements alone, medians of 80–100 interleaved executions, three
//! runs): 1,000 entries with a hash column per row 11.4, 7.3 and 5.7 ms,
//! with 9 `nodes` rows 9.9, 6.3 and 5.1 ms, a raw `(idx, body)` insert
//! (`BEGIN`, `INSERT`, `COMMIT`) 9.2, 6.2 and 4.8 ms; WAL per batch 460 KB,
//! 461 KB and 395 KB. A single entry is the other way round (its hash
//! column 0.48 ms, a `nodes` row beside it 0.53 ms), hence the threshold.

use medledger_chain::node_store::stored_count;
use medledger_chain::{Hash, NodeId, HASH_LEN};

use crate::error::{Error, Result, Stage};
use crate::nodes::{INLINE_BELOW, NODES_PER_ROW};
use crate::pool::Conn;

/// Every write of an append in one statement, under the head lock: the
/// entries (`$1` bodies at `$2`, `$2 + 1`, …, each with its group of node
/// hashes from `$3`, or NULL past its end), the node runs (`$4`
/// positions, `$5` bytes), the callers' `batches` rows, the head (`$9`).
const WRITE_BATCH: &str = "WITH e AS (INSERT INTO entries (idx, body, hashes) SELECT $2::bigint + i - 1, v, x FROM unnest($1::bytea[], $3::bytea[]) WITH ORDINALITY AS t(v, x, i)), \
     n AS (INSERT INTO nodes (pos, hashes) SELECT * FROM unnest($4::bigint[], $5::bytea[])), \
     b AS (INSERT INTO batches (token, start, count) SELECT * FROM unnest($6::bytea[], $7::bigint[], $8::integer[])) \
     UPDATE log_head SET entries = $9, leaves = $9 WHERE id = 0";
/// The same writes as one self-committing statement, only if the head
/// still says `$2` and, when `$10` (the writer fence) is not NULL, its
/// epoch is `$10` (locked first; see the module docs and
/// [`crate::writer`]).
const WRITE_IF_HEAD: &str = "WITH h AS (SELECT id FROM log_head WHERE id = 0 AND entries = $2 AND leaves = $2 AND ($10::bigint IS NULL OR epoch = $10) FOR UPDATE), \
     e AS (INSERT INTO entries (idx, body, hashes) SELECT $2::bigint + i - 1, v, x FROM unnest($1::bytea[], $3::bytea[]) WITH ORDINALITY AS t(v, x, i) WHERE EXISTS (SELECT 1 FROM h)), \
     n AS (INSERT INTO nodes (pos, hashes) SELECT p, x FROM unnest($4::bigint[], $5::bytea[]) AS m(p, x) WHERE EXISTS (SELECT 1 FROM h)), \
     b AS (INSERT INTO batches (token, start, count) SELECT k, s, c FROM unnest($6::bytea[], $7::bigint[], $8::integer[]) AS u(k, s, c) WHERE EXISTS (SELECT 1 FROM h)) \
     UPDATE log_head SET entries = $9, leaves = $9 WHERE id = 0 AND EXISTS (SELECT 1 FROM h)";

/// How one append stores its node hashes: in its entry rows (`groups`,
/// one per entry, for appends of fewer than [`INLINE_BELOW`] entries) or
/// as runs (`positions`, `runs`); the other side is empty.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeRows {
    pub(crate) groups: Vec<Vec<u8>>,
    pub(crate) positions: Vec<i64>,
    pub(crate) runs: Vec<Vec<u8>>,
}

/// [`NodeRows`] of an append of `leaves` leaves after the first `first`
/// (checked like [`runs`]).
pub(crate) fn node_rows(first: u64, leaves: u64, nodes: &[(NodeId, Hash)]) -> Result<NodeRows> {
    let (positions, runs) = runs(first, leaves, nodes)?;
    if leaves >= INLINE_BELOW as u64 {
        return Ok(NodeRows {
            groups: Vec::new(),
            positions,
            runs,
        });
    }
    // Checked: consecutive stored positions from the first leaf's.
    let mut groups: Vec<Vec<u8>> = Vec::with_capacity(leaves as usize);
    for (id, h) in nodes {
        if id.level == 0 {
            groups.push(Vec::with_capacity(2 * HASH_LEN));
        }
        if let Some(g) = groups.last_mut() {
            g.extend_from_slice(h.as_bytes());
        }
    }
    Ok(NodeRows {
        groups,
        positions: Vec::new(),
        runs: Vec::new(),
    })
}

/// The `nodes` rows of an append of `leaves` leaves after the first
/// `first`: `nodes` must be exactly the hashes those leaves store, in
/// stored-hash order. Returns the runs' positions and bytes
/// ([`NODES_PER_ROW`] hashes each, the last one shorter).
pub(crate) fn runs(
    first: u64,
    leaves: u64,
    nodes: &[(NodeId, Hash)],
) -> Result<(Vec<i64>, Vec<Vec<u8>>)> {
    let mismatch = |reason: String| Error::Inconsistent {
        what: "nodes",
        reason,
    };
    let start = stored_count(first)
        .ok_or_else(|| mismatch(format!("no stored position for leaf {first}")))?;
    let expected = first
        .checked_add(leaves)
        .and_then(stored_count)
        .map(|end| end - start);
    if expected != u64::try_from(nodes.len()).ok() {
        return Err(mismatch(format!(
            "{} nodes for {leaves} leaves after leaf {first}",
            nodes.len()
        )));
    }
    let mut positions = Vec::with_capacity(nodes.len().div_ceil(NODES_PER_ROW));
    let mut bytes = Vec::with_capacity(positions.capacity());
    let mut at = start;
    for chunk in nodes.chunks(NODES_PER_ROW) {
        positions.push(to_bigint(at)?);
        let mut run = Vec::with_capacity(chunk.len() * HASH_LEN);
        for (id, h) in chunk {
            if id.stored_index() != Some(at) {
                return Err(mismatch(format!(
                    "node ({}, {}) is not at stored position {at}",
                    id.level, id.index
                )));
            }
            run.extend_from_slice(h.as_bytes());
            at += 1;
        }
        bytes.push(run);
    }
    Ok((positions, bytes))
}

fn to_bigint(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Inconsistent {
        what: "nodes",
        reason: format!("stored position {v} over 2^63"),
    })
}

/// The `batches` rows of one transaction, one per caller.
#[derive(Default)]
pub(crate) struct Callers<'a> {
    pub(crate) tokens: Vec<&'a [u8]>,
    pub(crate) starts: Vec<i64>,
    pub(crate) counts: Vec<i32>,
}

/// One append transaction's rows.
pub(crate) struct Rows<'a> {
    /// Index of the first entry (the log length under the lock).
    pub(crate) first: i64,
    /// The entries, in index order.
    pub(crate) bodies: &'a [&'a [u8]],
    /// Their nodes, in stored-hash order (as the tree appended them).
    pub(crate) nodes: &'a [(NodeId, Hash)],
    /// The callers' `batches` rows.
    pub(crate) callers: Callers<'a>,
    /// The new log length.
    pub(crate) end: i64,
    /// The writer epoch the head must still carry ([`Mode::IfHead`] only;
    /// the locked path checks it when it locks the head), or `None` when
    /// this store took no writer turn.
    pub(crate) fence: Option<i64>,
}

fn mismatch() -> Error {
    Error::Inconsistent {
        what: "nodes",
        reason: "computed nodes do not match the batch".into(),
    }
}

/// How [`write`] runs its statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Inside the caller's transaction, the head locked.
    Locked,
    /// On its own, committing itself, if the head still says `rows.first`
    /// (and carries `rows.fence`, if set) ([`WRITE_IF_HEAD`]).
    IfHead,
}

/// Writes `rows` on `conn`. Returns whether they were written (always,
/// under [`Mode::Locked`]; under [`Mode::IfHead`], whether the head still
/// said `rows.first`, in which case they are also committed).
pub(crate) fn write(
    conn: &mut Conn,
    op: &'static str,
    batch: Option<crate::BatchToken>,
    rows: &Rows<'_>,
    mode: Mode,
) -> Result<bool> {
    let (sql, stage) = match mode {
        Mode::Locked => (WRITE_BATCH, Stage::BeforeCommit),
        // The statement commits as it completes: losing the connection
        // during it leaves the outcome unknown, as during `COMMIT`.
        Mode::IfHead => (WRITE_IF_HEAD, Stage::Commit),
    };
    let stmt = conn.prepare(op, sql)?;
    let first = u64::try_from(rows.first).map_err(|_| mismatch())?;
    let nodes = node_rows(first, rows.bodies.len() as u64, rows.nodes)?;
    if rows.end.checked_sub(rows.first) != i64::try_from(rows.bodies.len()).ok() {
        return Err(mismatch());
    }
    let c = &rows.callers;
    let params: [&(dyn postgres::types::ToSql + Sync); 10] = [
        &rows.bodies,
        &rows.first,
        &nodes.groups,
        &nodes.positions,
        &nodes.runs,
        &c.tokens,
        &c.starts,
        &c.counts,
        &rows.end,
        &rows.fence,
    ];
    let used = match mode {
        Mode::Locked => params.get(..9).unwrap_or(&params),
        Mode::IfHead => &params,
    };
    let updated = conn
        .client
        .execute(&stmt, used)
        .map_err(|e| Error::from_pg(op, stage, batch, e))?;
    match (mode, updated) {
        (Mode::Locked, 1) | (Mode::IfHead, 1) => Ok(true),
        (Mode::IfHead, 0) => Ok(false),
        (_, n) => Err(Error::Inconsistent {
            what: "log_head",
            reason: format!("append updated {n} head rows"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_chain::{HashAlg, MerkleLog, NodeStore};

    /// The nodes appending `k` leaves after `first` stores, from an
    /// in-memory tree.
    fn appended(first: u64, k: u64) -> Vec<(NodeId, Hash)> {
        let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
        let leaves: Vec<Vec<u8>> = (0..first + k).map(|i| i.to_le_bytes().to_vec()).collect();
        mem.append_batch(leaves.iter().take(first as usize))
            .unwrap();
        let a = stored_count(first).unwrap();
        let b = stored_count(first + k).unwrap();
        mem.append_batch(leaves.iter().skip(first as usize))
            .unwrap();
        let ids: Vec<NodeId> = (0..=first + k)
            .flat_map(|i| (0..=i.trailing_ones()).map(move |l| NodeId::new(l as u8, i >> l)))
            .filter(|id| id.stored_index().is_some_and(|p| p >= a && p < b))
            .collect();
        let mut nodes: Vec<(NodeId, Hash)> = ids
            .iter()
            .copied()
            .zip(mem.store().get(&ids).unwrap())
            .collect();
        nodes.sort_by_key(|(id, _)| id.stored_index());
        nodes
    }

    #[test]
    fn runs_cut_an_append_into_rows_of_240_hashes_from_its_position() {
        let nodes = appended(5, 300);
        // Leaves 5..305 store stored_count(305) - stored_count(5) hashes.
        assert_eq!(nodes.len(), (610 - 4) - (10 - 2));
        let (pos, bytes) = runs(5, 300, &nodes).unwrap();
        assert_eq!(pos, vec![8, 248, 488]);
        let lens: Vec<usize> = bytes.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![240 * 32, 240 * 32, 118 * 32]);
        let flat: Vec<u8> = nodes
            .iter()
            .flat_map(|(_, h)| h.as_bytes().to_vec())
            .collect();
        assert_eq!(bytes.concat(), flat);
        // One leaf: one run of its leaf hash and the nodes it completes.
        let one = appended(7, 1);
        let (pos, bytes) = runs(7, 1, &one).unwrap();
        assert_eq!(pos, vec![11]);
        assert_eq!(bytes.iter().map(Vec::len).collect::<Vec<_>>(), vec![4 * 32]);
    }

    #[test]
    fn runs_refuse_nodes_that_are_not_exactly_the_append() {
        let nodes = appended(5, 30);
        for (first, k, given) in [
            (5u64, 31u64, nodes.clone()),
            (6, 30, nodes.clone()),
            (5, 30, nodes[1..].to_vec()),
            (5, 30, {
                let mut v = nodes.clone();
                v.swap(3, 4);
                v
            }),
        ] {
            assert!(
                matches!(
                    runs(first, k, &given),
                    Err(Error::Inconsistent { what: "nodes", .. })
                ),
                "{first} {k}"
            );
        }
    }

    #[test]
    fn small_appends_keep_hashes_per_entry_and_large_ones_write_runs() {
        let small = appended(7, 3);
        let rows = node_rows(7, 3, &small).unwrap();
        assert!(rows.positions.is_empty() && rows.runs.is_empty());
        // Leaf 7 stores 4 hashes, leaf 8 one, leaf 9 two.
        let lens: Vec<usize> = rows.groups.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![4 * 32, 32, 2 * 32]);
        let flat: Vec<u8> = small
            .iter()
            .flat_map(|(_, h)| h.as_bytes().to_vec())
            .collect();
        assert_eq!(rows.groups.concat(), flat);
        let k = INLINE_BELOW as u64;
        let large = appended(0, k);
        let rows = node_rows(0, k, &large).unwrap();
        assert!(rows.groups.is_empty());
        assert_eq!(rows.positions, vec![0]);
        assert!(node_rows(7, 4, &small).is_err());
    }
}
