//! Merkle nodes, kept beside the entries: the [`NodeStore`] a ledger's
//! [`MerkleLog`](medledger_chain::MerkleLog) runs on, and the
//! transaction-scoped view the sequencer computes a batch's nodes with.
//!
//! Appending leaf `i` stores, in Go tlog stored-hash order, its leaf hash
//! and then one node for each trailing one bit of `i` (the subtrees it
//! completes). Those hashes, concatenated (32 bytes each), are the `hashes`
//! column of row `i` of `entries`, in the same row as the entry itself: so
//! an entry and its nodes are one row, committed together, and a batch of
//! `k` entries is `k` rows. Node (`level`, `index`) is therefore at byte
//! `32 × level` of row `((index + 1) << level) − 1`. `log_head.leaves`
//! says how many leaves' nodes are committed. Nodes never change once
//! committed.
//!
//! Who writes nodes: the entry log ([`crate::PgEntryLog`]) writes each
//! entry's hashes in its row, so no reader ever sees an entry without its
//! nodes. [`PgNodeStore::append`] then finds them already there and only
//! checks that the nodes its caller computed are byte-identical to the
//! committed ones (one read, no write); a mismatch is
//! [`Error::Inconsistent`]. Used alone (no entry log), it inserts rows with
//! a NULL `body` and advances `log_head.leaves` itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use medledger_chain::node_store::stored_count;
use medledger_chain::{Hash, NodeId, NodeStore, HASH_LEN};
use postgres::{Client, Statement};

use crate::error::{Error, Result, Stage};
use crate::pool::{Conn, Pool};

pub(crate) const SELECT_NODES: &str = "SELECT idx, hashes FROM entries WHERE idx = ANY($1)";
const INSERT_NODES_IF_ABSENT: &str =
    "INSERT INTO entries (idx, body, hashes) SELECT i, NULL, h FROM unnest($1::bigint[], $2::bytea[]) AS t(i, h) ON CONFLICT (idx) DO NOTHING";
pub(crate) const SELECT_HEAD: &str = "SELECT entries, leaves FROM log_head WHERE id = 0";
pub(crate) const LOCK_HEAD: &str = "SELECT entries, leaves FROM log_head WHERE id = 0 FOR UPDATE";
const SET_LEAVES: &str = "UPDATE log_head SET leaves = $1 WHERE id = 0";

/// The row (leaf index) holding node `id`, and the node's byte offset in
/// that row's `hashes`.
pub(crate) fn location(id: NodeId) -> Result<(i64, usize)> {
    id.leaves()
        .and_then(|r| r.end.checked_sub(1))
        .and_then(|leaf| i64::try_from(leaf).ok())
        .map(|leaf| (leaf, usize::from(id.level) * HASH_LEN))
        .ok_or(Error::Inconsistent {
            what: "nodes",
            reason: format!("node ({}, {}) has no 63-bit leaf", id.level, id.index),
        })
}

/// A non-negative count from the database.
pub(crate) fn count(what: &'static str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Inconsistent {
        what,
        reason: format!("negative count {v}"),
    })
}

/// Splits nodes in stored-hash order into one `hashes` value per leaf:
/// each leaf-level node starts its leaf's group.
pub(crate) fn groups(nodes: &[(NodeId, Hash)]) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
    for (id, h) in nodes {
        if id.level == 0 {
            let leaf = i64::try_from(id.index).map_err(|_| Error::Inconsistent {
                what: "nodes",
                reason: "leaf index over 2^63".into(),
            })?;
            out.push((leaf, Vec::with_capacity(2 * HASH_LEN)));
        }
        match out.last_mut() {
            Some((_, g)) => g.extend_from_slice(h.as_bytes()),
            None => {
                return Err(Error::Inconsistent {
                    what: "nodes",
                    reason: "nodes do not start at a leaf".into(),
                })
            }
        }
    }
    Ok(out)
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
        .map(|&id| location(id))
        .collect::<Result<Vec<_>>>()?;
    let mut leaves: Vec<i64> = places.iter().map(|(leaf, _)| *leaf).collect();
    leaves.sort_unstable();
    leaves.dedup();
    let rows = client
        .query(stmt, &[&leaves])
        .map_err(|e| Error::from_pg("read nodes", Stage::BeforeCommit, None, e))?;
    let mut found: HashMap<i64, Vec<u8>> = HashMap::with_capacity(rows.len());
    for row in rows {
        let idx: i64 = row
            .try_get(0)
            .map_err(|e| Error::from_pg("read nodes", Stage::BeforeCommit, None, e))?;
        let hashes: Vec<u8> = row
            .try_get(1)
            .map_err(|e| Error::from_pg("read nodes", Stage::BeforeCommit, None, e))?;
        found.insert(idx, hashes);
    }
    ids.iter()
        .zip(&places)
        .map(|(id, (leaf, at))| {
            let missing = medledger_chain::Error::MissingNode {
                level: id.level,
                index: id.index,
            };
            let hashes = found.get(leaf).ok_or(missing)?;
            let bytes = hashes.get(*at..at + HASH_LEN).ok_or_else(|| {
                medledger_chain::Error::from(Error::Inconsistent {
                    what: "entries",
                    reason: format!("row {leaf} holds too few node hashes"),
                })
            })?;
            Hash::from_slice(bytes).ok_or_else(|| {
                Error::Inconsistent {
                    what: "entries",
                    reason: format!("row {leaf} node hash is not 32 bytes"),
                }
                .into()
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
            let insert = conn.prepare("append nodes", INSERT_NODES_IF_ABSENT)?;
            let set = conn.prepare("append nodes", SET_LEAVES)?;
            let (rows, hashes): (Vec<i64>, Vec<Vec<u8>>) = groups(nodes)?.into_iter().unzip();
            conn.client
                .execute(&insert, &[&rows, &hashes])
                .map_err(|e| Error::from_pg("append nodes", Stage::BeforeCommit, None, e))?;
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
