//! Merkle nodes, kept beside the entries: the [`NodeStore`] a ledger's
//! [`MerkleLog`](medledger_chain::MerkleLog) runs on, and the
//! transaction-scoped view the sequencer computes a batch's nodes with.
//!
//! # Layout (schema version 3)
//!
//! Every node hash the tree ever stores has a place in one flat sequence,
//! Go `sumdb/tlog` stored-hash order: appending leaf `i` stores its leaf
//! hash and then one node for each trailing one bit of `i` (the subtrees it
//! completes), so `n` leaves store `2n − popcount(n)` hashes and node
//! (`level`, `index`) is at position [`NodeId::stored_index`], stored by
//! leaf `((index + 1) << level) − 1` as the `level`-th hash of that leaf's
//! group. Where an append puts the hashes it stores depends on its size:
//!
//! ```text
//! fewer than 64 entries (INLINE_BELOW): in the entry rows
//!   entries.hashes  the leaf's group: 32 × (1 + trailing ones of idx) bytes
//! 64 entries or more: entries.hashes NULL, and runs in
//!   nodes (pos bigint PK, hashes bytea STORAGE PLAIN)
//!     pos     stored-hash position of the run's first hash
//!     hashes  the run: 32 × k bytes, hash after hash, 1 ≤ k ≤ 240 (NODES_PER_ROW)
//! ```
//!
//! A large append writes its hashes as runs of [`NODES_PER_ROW`] (the last
//! one shorter) from position `stored_count(first leaf)`: 9 rows for
//! 1,000 entries, instead of a hash column in each of 1,000 rows. 240
//! hashes (7,680 bytes) keep a row inside one 8 KiB page, so with
//! `STORAGE PLAIN` no run is ever compressed or moved out of line (TOAST).
//! A small append (a single entry, a group-commit group) keeps the old
//! per-row layout, which costs it no extra row and index entry. (Versions
//! 1 and 2 kept every leaf's group in its entry row; those rows read as
//! they are after migration, see [`crate::schema`].)
//!
//! **Locating a node** (the private `SELECT_NODES`, one query for any
//! number of nodes): bytes `32 × level ..` of its leaf's `entries.hashes`
//! if that is not NULL; else its position `p`, the run with the greatest `pos ≤ p` (a
//! backward scan of the primary key), and bytes `32 × (p − pos) .. + 32`
//! of that run, cut on the server. Runs never overlap and, with the entry
//! rows' groups, leave no gap below the stored count; a position past the
//! end of its group or run, or with neither, is a node never stored
//! ([`medledger_chain::Error::MissingNode`]). `log_head.leaves` says how
//! many leaves' nodes are committed. Nodes never change once committed.
//!
//! Who writes nodes: the entry log ([`crate::PgEntryLog`]) writes an
//! append's hashes in the statement that writes its entries, so no reader
//! ever sees an entry without its nodes. [`PgNodeStore::append`] then finds
//! them already there and only checks that the nodes its caller computed
//! are byte-identical to the committed ones (one read, no write); a
//! mismatch is [`Error::Inconsistent`]. Used alone (no entry log), it
//! writes the runs itself under the head lock and advances
//! `log_head.leaves`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use medledger_chain::node_store::stored_count;
use medledger_chain::{Hash, NodeId, NodeStore, HASH_LEN};
use postgres::{Client, Statement};

use crate::entry_rows::runs;
use crate::error::{Error, Result, Stage};
use crate::pool::{Conn, Pool};

/// Hashes per `nodes` row at most: 7,680 bytes, inside one 8 KiB page.
pub const NODES_PER_ROW: usize = 240;

/// Appends of fewer entries than this keep each entry's stored hashes in
/// its own row (`entries.hashes`); larger ones write runs in `nodes`.
pub const INLINE_BELOW: usize = 64;

/// The node at each stored-hash position of `$1`, stored by leaf `$2` at
/// byte `$3` of that leaf's group: from the leaf's `entries.hashes` if its
/// append kept them there, else from the run holding the position (the
/// greatest `pos` not above it). A position past its group's or run's end
/// comes back empty or NULL; runs are never longer than 256 hashes, so a
/// farther one (a corrupt row) is not used.
pub(crate) const SELECT_NODES: &str = "SELECT q.p, COALESCE(substring(e.hashes FROM q.o + 1 FOR 32), \
       CASE WHEN q.p - n.pos < 256 THEN substring(n.hashes FROM ((q.p - n.pos) * 32 + 1)::integer FOR 32) END) \
     FROM unnest($1::bigint[], $2::bigint[], $3::integer[]) AS q(p, l, o) \
     LEFT JOIN entries AS e ON e.idx = q.l \
     LEFT JOIN LATERAL (SELECT pos, hashes FROM nodes WHERE pos <= q.p ORDER BY pos DESC LIMIT 1) AS n ON true";
const INSERT_NODES: &str =
    "INSERT INTO nodes (pos, hashes) SELECT * FROM unnest($1::bigint[], $2::bytea[])";
pub(crate) const SELECT_HEAD: &str = "SELECT entries, leaves FROM log_head WHERE id = 0";
pub(crate) const LOCK_HEAD: &str = "SELECT entries, leaves FROM log_head WHERE id = 0 FOR UPDATE";
const SET_LEAVES: &str = "UPDATE log_head SET leaves = $1 WHERE id = 0";

/// The stored-hash position of node `id`, as a bigint.
pub(crate) fn position(id: NodeId) -> Result<i64> {
    id.stored_index()
        .and_then(|p| i64::try_from(p).ok())
        .ok_or(Error::Inconsistent {
            what: "nodes",
            reason: format!("node ({}, {}) has no 63-bit position", id.level, id.index),
        })
}

/// Where node `id` is: its stored-hash position, the leaf whose append
/// stored it, and its byte offset in that leaf's group.
fn place(id: NodeId) -> Result<(i64, i64, i32)> {
    let p = position(id)?;
    let leaf = id
        .leaves()
        .and_then(|r| r.end.checked_sub(1))
        .and_then(|l| i64::try_from(l).ok())
        .ok_or(Error::Inconsistent {
            what: "nodes",
            reason: format!("node ({}, {}) has no 63-bit leaf", id.level, id.index),
        })?;
    Ok((p, leaf, i32::from(id.level) * HASH_LEN as i32))
}

/// A non-negative count from the database.
pub(crate) fn count(what: &'static str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Inconsistent {
        what,
        reason: format!("negative count {v}"),
    })
}

/// Reads nodes `ids` with `stmt` ([`SELECT_NODES`]), in order.
pub(crate) fn fetch(
    client: &mut Client,
    stmt: &Statement,
    ids: &[NodeId],
) -> Result<Vec<Hash>, medledger_chain::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let places = ids
        .iter()
        .map(|&id| place(id))
        .collect::<Result<Vec<_>>>()?;
    let mut wanted = places.clone();
    wanted.sort_unstable();
    wanted.dedup();
    let (p, rest): (Vec<i64>, Vec<(i64, i32)>) =
        wanted.into_iter().map(|(p, l, o)| (p, (l, o))).unzip();
    let (l, o): (Vec<i64>, Vec<i32>) = rest.into_iter().unzip();
    let rows = client
        .query(stmt, &[&p, &l, &o])
        .map_err(|e| Error::from_pg("read nodes", Stage::BeforeCommit, None, e))?;
    let mut found: HashMap<i64, Hash> = HashMap::with_capacity(rows.len());
    for row in rows {
        let p: i64 = row
            .try_get(0)
            .map_err(|e| Error::from_pg("read nodes", Stage::BeforeCommit, None, e))?;
        let bytes: Option<Vec<u8>> = row
            .try_get(1)
            .map_err(|e| Error::from_pg("read nodes", Stage::BeforeCommit, None, e))?;
        let bytes = bytes.unwrap_or_default();
        match bytes.len() {
            // Past the end of its run: never stored.
            0 => {}
            _ => {
                let h = Hash::from_slice(&bytes).ok_or_else(|| Error::Inconsistent {
                    what: "nodes",
                    reason: format!("hashes holding position {p} are not whole"),
                })?;
                found.insert(p, h);
            }
        }
    }
    ids.iter()
        .zip(&places)
        .map(|(id, (p, _, _))| {
            found
                .get(p)
                .copied()
                .ok_or(medledger_chain::Error::MissingNode {
                    level: id.level,
                    index: id.index,
                })
        })
        .collect()
}

/// Checks the contract of [`NodeStore::append`]: `nodes` are exactly the
/// stored-hash run for `leaves` leaves after the first one's leaf. Returns
/// the leaf count before the append.
fn check_run(leaves: u64, nodes: &[(NodeId, Hash)]) -> Result<u64, medledger_chain::Error> {
    let out_of_order = |old| {
        medledger_chain::Error::from(medledger_store::Error::NodeAppendOutOfOrder {
            stored: stored_count(old).unwrap_or(0),
            got: nodes.len(),
            leaves,
        })
    };
    let Some((first, _)) = nodes.first() else {
        return if leaves == 0 {
            Ok(0)
        } else {
            Err(out_of_order(0))
        };
    };
    let old = first.index;
    let expected = old
        .checked_add(leaves)
        .and_then(stored_count)
        .zip(stored_count(old))
        .map(|(b, a)| b - a);
    if first.level != 0 || expected != u64::try_from(nodes.len()).ok() {
        return Err(out_of_order(old));
    }
    Ok(old)
}

/// The durable [`NodeStore`] on PostgreSQL (see the module docs).
#[derive(Debug, Clone)]
pub struct PgNodeStore {
    pool: Arc<Pool>,
    /// Leaves known committed (a lower bound on `log_head.leaves`).
    known: u64,
}

impl PgNodeStore {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        PgNodeStore { pool, known: 0 }
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, medledger_chain::Error>,
    ) -> Result<T, medledger_chain::Error> {
        let mut pooled = self.pool.get()?;
        let r = f(pooled.conn()?);
        if let Err(e) = &r {
            if let Some(pe) = Error::in_chain_error(e) {
                pooled.saw(pe);
            }
        }
        r
    }

    fn head_leaves(conn: &mut Conn) -> Result<u64> {
        let stmt = conn.prepare("read log head", SELECT_HEAD)?;
        let row = conn
            .client
            .query_one(&stmt, &[])
            .map_err(|e| Error::from_pg("read log head", Stage::BeforeCommit, None, e))?;
        let leaves: i64 = row
            .try_get(1)
            .map_err(|e| Error::from_pg("read log head", Stage::BeforeCommit, None, e))?;
        count("log_head", leaves)
    }

    /// Checks that committed nodes equal `nodes`.
    fn verify(conn: &mut Conn, nodes: &[(NodeId, Hash)]) -> Result<(), medledger_chain::Error> {
        let stmt = conn.prepare("read nodes", SELECT_NODES)?;
        let ids: Vec<NodeId> = nodes.iter().map(|(id, _)| *id).collect();
        let stored = fetch(&mut conn.client, &stmt, &ids)?;
        for ((id, mine), theirs) in nodes.iter().zip(stored) {
            if *mine != theirs {
                return Err(Error::Inconsistent {
                    what: "nodes",
                    reason: format!(
                        "node ({}, {}) computed here differs from the committed one",
                        id.level, id.index
                    ),
                }
                .into());
            }
        }
        Ok(())
    }
}

impl NodeStore for PgNodeStore {
    fn leaf_count(&self) -> Result<u64, medledger_chain::Error> {
        self.with_conn(|c| Ok(Self::head_leaves(c)?))
    }

    fn get(&self, ids: &[NodeId]) -> Result<Vec<Hash>, medledger_chain::Error> {
        self.with_conn(|c| {
            let stmt = c.prepare("read nodes", SELECT_NODES)?;
            fetch(&mut c.client, &stmt, ids)
        })
    }

    fn append(
        &mut self,
        leaves: u64,
        nodes: &[(NodeId, Hash)],
    ) -> Result<(), medledger_chain::Error> {
        let old = check_run(leaves, nodes)?;
        if leaves == 0 {
            return Ok(());
        }
        let end = old + leaves;
        // Usually the entry log committed these nodes already: check them.
        let known = self.with_conn(|c| {
            let known = Self::head_leaves(c)?;
            if end <= known {
                Self::verify(c, nodes)?;
            }
            Ok(known)
        })?;
        self.known = self.known.max(known);
        if end <= known {
            return Ok(());
        }
        // Standalone: insert them, under the head lock.
        let r = self.pool.transaction("append nodes", None, &mut |conn| {
            let lock = conn.prepare("append nodes", LOCK_HEAD)?;
            let row = conn
                .client
                .query_one(&lock, &[])
                .map_err(|e| Error::from_pg("append nodes", Stage::BeforeCommit, None, e))?;
            let db_leaves: i64 = row
                .try_get(1)
                .map_err(|e| Error::from_pg("append nodes", Stage::BeforeCommit, None, e))?;
            let db_leaves = count("log_head", db_leaves)?;
            if old > db_leaves {
                return Err(Error::Inconsistent {
                    what: "nodes",
                    reason: format!("append at leaf {old} past the {db_leaves} stored"),
                });
            }
            // Write the runs past what is committed; the rest must match.
            let insert = conn.prepare("append nodes", INSERT_NODES)?;
            let set = conn.prepare("append nodes", SET_LEAVES)?;
            if end > db_leaves {
                let skip = stored_count(db_leaves)
                    .zip(stored_count(old))
                    .and_then(|(a, b)| usize::try_from(a - b).ok())
                    .unwrap_or(usize::MAX);
                let (positions, bytes) =
                    runs(db_leaves, end - db_leaves, nodes.get(skip..).unwrap_or(&[]))?;
                conn.client
                    .execute(&insert, &[&positions, &bytes])
                    .map_err(|e| Error::from_pg("append nodes", Stage::BeforeCommit, None, e))?;
            }
            // Nodes that were already there must be the same.
            let overlap: Vec<(NodeId, Hash)> = nodes
                .iter()
                .filter(|(id, _)| id.leaves().is_some_and(|r| r.end <= db_leaves))
                .copied()
                .collect();
            if !overlap.is_empty() {
                Self::verify(conn, &overlap).map_err(|e| match Error::in_chain_error(&e) {
                    Some(pe) => pe.clone(),
                    None => Error::Inconsistent {
                        what: "nodes",
                        reason: e.to_string(),
                    },
                })?;
            }
            let new_leaves =
                i64::try_from(end.max(db_leaves)).map_err(|_| Error::Inconsistent {
                    what: "log_head",
                    reason: "leaf count over 2^63".into(),
                })?;
            conn.client
                .execute(&set, &[&new_leaves])
                .map_err(|e| Error::from_pg("append nodes", Stage::BeforeCommit, None, e))?;
            Ok(end.max(db_leaves))
        });
        match r {
            Ok(now) => {
                self.known = self.known.max(now);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The nodes of one sequencer transaction: committed ones are read through
/// the transaction's connection, new ones are buffered for insertion with
/// the batch's entries.
pub(crate) struct TxnNodes<'a> {
    client: RefCell<&'a mut Client>,
    select: Statement,
    /// Leaves committed before this transaction.
    base: u64,
    /// Leaves appended in this transaction.
    added: u64,
    /// Committed nodes already known (the cached frontier).
    known: HashMap<NodeId, Hash>,
    /// The nodes appended in this transaction, in stored-hash order.
    pub(crate) new: Vec<(NodeId, Hash)>,
}

impl<'a> TxnNodes<'a> {
    pub(crate) fn new(
        client: &'a mut Client,
        select: Statement,
        base: u64,
        known: HashMap<NodeId, Hash>,
    ) -> Self {
        TxnNodes {
            client: RefCell::new(client),
            select,
            base,
            added: 0,
            known,
            new: Vec::new(),
        }
    }
}

impl NodeStore for TxnNodes<'_> {
    fn leaf_count(&self) -> Result<u64, medledger_chain::Error> {
        Ok(self.base + self.added)
    }

    fn get(&self, ids: &[NodeId]) -> Result<Vec<Hash>, medledger_chain::Error> {
        let base_stored = stored_count(self.base).unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity(ids.len());
        let mut from_db = Vec::new();
        for id in ids {
            match id.stored_index() {
                Some(p) if p >= base_stored => {
                    let local = self
                        .new
                        .iter()
                        .find(|(n, _)| n == id)
                        .map(|(_, h)| *h)
                        .ok_or(medledger_chain::Error::MissingNode {
                            level: id.level,
                            index: id.index,
                        })?;
                    out.push(Some(local));
                }
                _ => match self.known.get(id) {
                    Some(h) => out.push(Some(*h)),
                    None => {
                        from_db.push(*id);
                        out.push(None);
                    }
                },
            }
        }
        let mut fetched = {
            let mut client = self.client.borrow_mut();
            fetch(&mut client, &self.select, &from_db)?.into_iter()
        };
        out.into_iter()
            .zip(ids)
            .map(|(h, id)| {
                h.or_else(|| fetched.next())
                    .ok_or(medledger_chain::Error::MissingNode {
                        level: id.level,
                        index: id.index,
                    })
            })
            .collect()
    }

    fn append(
        &mut self,
        leaves: u64,
        nodes: &[(NodeId, Hash)],
    ) -> Result<(), medledger_chain::Error> {
        self.new.extend_from_slice(nodes);
        self.added += leaves;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_stored_hash_indexes() {
        assert_eq!(position(NodeId::new(0, 0)).unwrap(), 0);
        assert_eq!(position(NodeId::new(1, 0)).unwrap(), 2);
        assert_eq!(position(NodeId::new(0, 5)).unwrap(), 8);
        assert!(position(NodeId::new(63, 1)).is_err());
    }
}
