//! [`PgEntryLog`]: the entry log, sequenced by PostgreSQL.
//!
//! # One sequencer, many writers
//!
//! Every append transaction starts by locking the one `log_head` row
//! (`SELECT … FOR UPDATE`). Whoever holds it, in any process, reads the
//! log length `n`, inserts its entries at `n, n + 1, …`, computes the
//! batch's Merkle nodes with a [`MerkleLog`] over the committed frontier
//! (a transaction-scoped node view; the frontier is cached between appends
//! while the head stays where this process left it), and writes each entry
//! in one row with its node hashes, a `batches` row per caller and the new
//! head in one statement, all in one transaction (three round trips:
//! `BEGIN` with the lock, the write, `COMMIT`). So indexes have no
//! gaps and no duplicates across processes, and no reader ever sees an
//! entry without its nodes: they commit together or not at all.
//!
//! # Group commit
//!
//! Within one process, concurrent appends share one transaction (and so
//! one WAL flush): the first caller to find no transaction in flight
//! becomes the leader, takes every queued request (up to
//! [`MAX_GROUP_BYTES`]) and commits them together; the others wait on a
//! condition variable for their result, as in medledger-store's segment log.
//!
//! # Failures
//!
//! A transaction PostgreSQL rolled back with 40001/40P01 is run again
//! (recomputing everything from the locked head). A connection lost before
//! `COMMIT` is [`Error::ConnectionLost`]: nothing was written. One lost
//! during `COMMIT` is never retried, because it may have committed: the
//! log asks the server once, by the transaction's [`BatchToken`], whether
//! it did (acknowledging the batch if so, [`Error::ConnectionLost`] if not);
//! only if the server cannot answer is it [`Error::OutcomeUnknown`] with the
//! caller's token, which [`PgEntryLog::batch_outcome`] resolves later.

use core::ops::Range;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use medledger_chain::{Hash, HashAlg, MerkleLog, NodeId, NodeStore};
use medledger_store::{EntryLog, MAX_ENTRY_LEN};
use rand_core::RngCore;

use crate::error::{Error, Result, Stage};
use crate::nodes::{count, groups, TxnNodes, SELECT_HEAD, SELECT_NODES};
use crate::pool::{Conn, Pool};

/// Most entry bytes one group transaction carries (a single larger request
/// still goes alone).
pub const MAX_GROUP_BYTES: usize = 32 << 20;

/// `BEGIN` and the head lock in one round trip.
const BEGIN_LOCK_HEAD: &str = "BEGIN; SELECT entries, leaves FROM log_head WHERE id = 0 FOR UPDATE";
/// Every write of an append in one statement (one round trip): the
/// entries with their node hashes, the callers' `batches` rows, the head.
const WRITE_BATCH: &str = "WITH e AS (INSERT INTO entries (idx, body, hashes) SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])), \
     b AS (INSERT INTO batches (token, start, count) SELECT * FROM unnest($4::bytea[], $5::bigint[], $6::integer[])) \
     UPDATE log_head SET entries = $7, leaves = $7 WHERE id = 0";
const SELECT_ENTRY: &str = "SELECT body FROM entries WHERE idx = $1";
const SELECT_RANGE: &str =
    "SELECT idx, body FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";
const SELECT_BATCH: &str = "SELECT start, count FROM batches WHERE token = $1";

/// Names one caller's append in the `batches` table: 16 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchToken(pub [u8; 16]);

impl BatchToken {
    fn random() -> Self {
        let mut b = [0u8; 16];
        rand_core::OsRng.fill_bytes(&mut b);
        BatchToken(b)
    }
}

impl fmt::Display for BatchToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for BatchToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchToken({self})")
    }
}

struct Request {
    ticket: u64,
    token: BatchToken,
    entries: Vec<Vec<u8>>,
    bytes: usize,
}

#[derive(Default)]
struct Group {
    queue: Vec<Request>,
    leader: bool,
    next_ticket: u64,
    results: HashMap<u64, Result<u64>>,
}

/// The entry log on PostgreSQL (see the module docs).
pub struct PgEntryLog {
    pool: Arc<Pool>,
    alg: HashAlg,
    group_commit: bool,
    group: Mutex<Group>,
    committed: Condvar,
    /// The tree's frontier at some size, as committed: spares reading it
    /// when the head is still at that size (nodes never change, so it is
    /// right whichever process wrote them).
    frontier: Mutex<Option<Frontier>>,
}

/// A tree size and the roots of its complete subtrees.
type Frontier = (u64, Vec<(NodeId, Hash)>);

/// The complete subtrees making up a tree of `n` leaves, largest first.
fn frontier_ids(n: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for level in (0..64u8).rev() {
        if n >> level & 1 == 1 {
            out.push(NodeId::new(level, at >> level));
            at += 1 << level;
        }
    }
    out
}

impl fmt::Debug for PgEntryLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgEntryLog")
            .field("alg", &self.alg)
            .field("group_commit", &self.group_commit)
            .finish_non_exhaustive()
    }
}

fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> Error {
    move |e| Error::from_pg(op, Stage::BeforeCommit, None, e)
}

fn to_i64(what: &'static str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Inconsistent {
        what,
        reason: format!("{v} does not fit a bigint"),
    })
}

impl PgEntryLog {
    pub(crate) fn new(pool: Arc<Pool>, alg: HashAlg, group_commit: bool) -> Self {
        PgEntryLog {
            pool,
            alg,
            group_commit,
            group: Mutex::new(Group::default()),
            committed: Condvar::new(),
            frontier: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Group> {
        self.group
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends `entries` and returns their range, or this crate's typed
    /// error (the [`EntryLog`] methods wrap it in
    /// [`medledger_store::Error::Backend`]). On
    /// [`Error::OutcomeUnknown`], `token` is what
    /// [`PgEntryLog::batch_outcome`] takes.
    pub fn append_with_token(&self, entries: &[&[u8]], token: BatchToken) -> Result<Range<u64>> {
        let k = entries.len() as u64;
        let bytes = entries.iter().map(|e| e.len()).sum();
        let owned: Vec<Vec<u8>> = entries.iter().map(|e| e.to_vec()).collect();
        if !self.group_commit {
            let start = self.commit(&[Request {
                ticket: 0,
                token,
                entries: owned,
                bytes,
            }])?;
            return Ok(start..start + k);
        }
        let mut g = self.lock();
        let ticket = g.next_ticket;
        g.next_ticket = g.next_ticket.wrapping_add(1);
        g.queue.push(Request {
            ticket,
            token,
            entries: owned,
            bytes,
        });
        loop {
            if let Some(r) = g.results.remove(&ticket) {
                return r.map(|start| start..start + k);
            }
            if g.leader {
                g = self
                    .committed
                    .wait(g)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            // Lead: take queued requests up to the byte cap (at least one).
            g.leader = true;
            let mut taken = 0usize;
            let mut size = 0usize;
            for r in &g.queue {
                if taken > 0 && size + r.bytes > MAX_GROUP_BYTES {
                    break;
                }
                size += r.bytes;
                taken += 1;
            }
            let group: Vec<Request> = g.queue.drain(..taken).collect();
            drop(g);
            let r = self.commit(&group);
            g = self.lock();
            let mut at = r.as_ref().ok().copied();
            for req in &group {
                let result = match (&r, at) {
                    (Ok(_), Some(start)) => {
                        at = Some(start + req.entries.len() as u64);
                        Ok(start)
                    }
                    (Err(Error::OutcomeUnknown { op, source, .. }), _) => {
                        Err(Error::OutcomeUnknown {
                            op,
                            batch: Some(req.token),
                            source: Arc::clone(source),
                        })
                    }
                    (Err(e), _) => Err(e.clone()),
                    (Ok(_), None) => Err(Error::Inconsistent {
                        what: "group commit",
                        reason: "no start index".into(),
                    }),
                };
                g.results.insert(req.ticket, result);
            }
            g.leader = false;
            self.committed.notify_all();
        }
    }

    /// One transaction appending every request of `group` in order;
    /// returns the first index.
    fn commit(&self, group: &[Request]) -> Result<u64> {
        let op = "append entries";
        let batch = group.first().map(|r| r.token);
        let r = self
            .pool
            .transaction_from(op, batch, BEGIN_LOCK_HEAD, &mut |conn, rows| {
                self.append_in(conn, rows, group)
            });
        let (start, frontier) = match (r, batch) {
            (Err(Error::OutcomeUnknown { op, source, .. }), Some(token)) => {
                // Not a retry: ask once whether it committed (the `batches`
                // row commits with the entries). If the server cannot say,
                // the outcome stays unknown.
                return match self.batch_outcome(&token) {
                    Ok(Some(range)) => Ok(range.start),
                    Ok(None) => Err(Error::ConnectionLost { op, source }),
                    Err(_) => Err(Error::OutcomeUnknown { op, batch, source }),
                };
            }
            (r, _) => r?,
        };
        *self
            .frontier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(frontier);
        Ok(start)
    }

    /// The body of an append transaction, the head already locked (its row
    /// in `head`). Returns the first index and the new frontier.
    fn append_in(
        &self,
        conn: &mut Conn,
        head: Vec<postgres::SimpleQueryRow>,
        group: &[Request],
    ) -> Result<(u64, Frontier)> {
        let op = "append entries";
        let select_nodes = conn.prepare(op, SELECT_NODES)?;
        let write = conn.prepare(op, WRITE_BATCH)?;
        let field = |i: usize| -> Result<i64> {
            head.first()
                .and_then(|r| r.get(i))
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or(Error::Inconsistent {
                    what: "log_head",
                    reason: "no head row".into(),
                })
        };
        let (entries, leaves) = (field(0)?, field(1)?);
        if entries != leaves {
            return Err(Error::Inconsistent {
                what: "log_head",
                reason: format!("{entries} entries but {leaves} leaves' nodes"),
            });
        }
        let n = count("log_head", entries)?;
        let all: Vec<&[u8]> = group
            .iter()
            .flat_map(|r| r.entries.iter().map(Vec::as_slice))
            .collect();
        let known: std::collections::HashMap<NodeId, Hash> = match &*self
            .frontier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some((size, nodes)) if *size == n => nodes.iter().copied().collect(),
            _ => std::collections::HashMap::new(),
        };
        let end = n + all.len() as u64;
        let (new_nodes, frontier) = {
            let view = TxnNodes::new(&mut conn.client, select_nodes, n, known);
            let mut tree = MerkleLog::open(self.alg, view).map_err(chain_err)?;
            tree.append_batch(all.iter()).map_err(chain_err)?;
            let ids = frontier_ids(end);
            let hashes = tree.store().get(&ids).map_err(chain_err)?;
            (tree.into_store().new, ids.into_iter().zip(hashes).collect())
        };
        let (idx, hashes): (Vec<i64>, Vec<Vec<u8>>) = groups(&new_nodes)?.into_iter().unzip();
        if idx.len() != all.len() || idx.first() != Some(&to_i64("entries", n)?) {
            return Err(Error::Inconsistent {
                what: "nodes",
                reason: "computed nodes do not match the batch".into(),
            });
        }
        let mut tokens = Vec::with_capacity(group.len());
        let mut starts = Vec::with_capacity(group.len());
        let mut counts = Vec::with_capacity(group.len());
        let mut at = n;
        for r in group {
            tokens.push(&r.token.0[..]);
            starts.push(to_i64("batches", at)?);
            counts.push(
                i32::try_from(r.entries.len()).map_err(|_| Error::Inconsistent {
                    what: "batches",
                    reason: "over 2^31 entries in one append".into(),
                })?,
            );
            at += r.entries.len() as u64;
        }
        conn.client
            .execute(
                &write,
                &[
                    &idx,
                    &all,
                    &hashes,
                    &tokens,
                    &starts,
                    &counts,
                    &to_i64("log_head", end)?,
                ],
            )
            .map_err(pg(op))?;
        Ok((n, (end, frontier)))
    }

    /// Where the append named `token` landed: `Some(range)` if it
    /// committed, `None` if it did not. Resolves [`Error::OutcomeUnknown`].
    pub fn batch_outcome(&self, token: &BatchToken) -> Result<Option<Range<u64>>> {
        self.read_with("read batch outcome", |conn| {
            let s = conn.prepare("read batch outcome", SELECT_BATCH)?;
            let row = conn
                .client
                .query_opt(&s, &[&&token.0[..]])
                .map_err(pg("read batch outcome"))?;
            row.map(|r| {
                let start: i64 = r.try_get(0).map_err(pg("read batch outcome"))?;
                let n: i32 = r.try_get(1).map_err(pg("read batch outcome"))?;
                let start = count("batches", start)?;
                let n = count("batches", i64::from(n))?;
                Ok(start..start + n)
            })
            .transpose()
        })
    }

    fn read_with<T>(&self, op: &'static str, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        let _ = op;
        let mut pooled = self.pool.get()?;
        let r = pooled.conn().and_then(f);
        if let Err(e) = &r {
            pooled.saw(e);
        }
        r
    }

    fn length(&self) -> Result<u64> {
        self.read_with("read log length", |conn| {
            let s = conn.prepare("read log length", SELECT_HEAD)?;
            let row = conn
                .client
                .query_one(&s, &[])
                .map_err(pg("read log length"))?;
            count("log_head", row.try_get(0).map_err(pg("read log length"))?)
        })
    }
}

fn chain_err(e: medledger_chain::Error) -> Error {
    match Error::in_chain_error(&e) {
        Some(pe) => pe.clone(),
        None => Error::Inconsistent {
            what: "nodes",
            reason: e.to_string(),
        },
    }
}

fn check_sizes(entries: &[&[u8]]) -> medledger_store::Result<()> {
    match entries.iter().find(|e| e.len() > MAX_ENTRY_LEN) {
        Some(e) => Err(medledger_store::Error::EntryTooLarge {
            len: e.len(),
            max: MAX_ENTRY_LEN,
        }),
        None => Ok(()),
    }
}

impl EntryLog for PgEntryLog {
    fn append(&self, entry: &[u8]) -> medledger_store::Result<u64> {
        Ok(self.append_batch(&[entry])?.start)
    }

    fn append_batch(&self, entries: &[&[u8]]) -> medledger_store::Result<Range<u64>> {
        check_sizes(entries)?;
        if entries.is_empty() {
            let n = self.length()?;
            return Ok(n..n);
        }
        Ok(self.append_with_token(entries, BatchToken::random())?)
    }

    fn read(&self, index: u64) -> medledger_store::Result<Vec<u8>> {
        let op = "read entry";
        let found = self.read_with(op, |conn| {
            let s = conn.prepare(op, SELECT_ENTRY)?;
            let Ok(i) = i64::try_from(index) else {
                return Ok(None);
            };
            let row = conn.client.query_opt(&s, &[&i]).map_err(pg(op))?;
            row.map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg(op)))
                .transpose()
        })?;
        match found {
            Some(body) => Ok(body),
            None => {
                let len = self.length()?;
                if index < len {
                    return Err(Error::Inconsistent {
                        what: "entries",
                        reason: format!("entry {index} missing below the length {len}"),
                    }
                    .into());
                }
                Err(medledger_store::Error::IndexOutOfRange { index, len })
            }
        }
    }

    fn len(&self) -> medledger_store::Result<u64> {
        Ok(self.length()?)
    }

    fn read_range(&self, range: Range<u64>) -> medledger_store::Result<Vec<Vec<u8>>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let len = self.length()?;
        if range.end > len {
            return Err(medledger_store::Error::IndexOutOfRange {
                index: range.start.max(len),
                len,
            });
        }
        let op = "read entries";
        let rows = self.read_with(op, |conn| {
            let s = conn.prepare(op, SELECT_RANGE)?;
            let (a, b) = (
                to_i64("entries", range.start)?,
                to_i64("entries", range.end)?,
            );
            let rows = conn.client.query(&s, &[&a, &b]).map_err(pg(op))?;
            let mut out = Vec::with_capacity(rows.len());
            for (expected, row) in range.clone().zip(&rows) {
                let idx: i64 = row.try_get(0).map_err(pg(op))?;
                if u64::try_from(idx).ok() != Some(expected) {
                    return Err(Error::Inconsistent {
                        what: "entries",
                        reason: format!("entry {expected} missing below the length {len}"),
                    });
                }
                out.push(row.try_get::<_, Vec<u8>>(1).map_err(pg(op))?);
            }
            if out.len() as u64 != range.end - range.start {
                return Err(Error::Inconsistent {
                    what: "entries",
                    reason: format!("range {range:?} has {} rows", out.len()),
                });
            }
            Ok(out)
        })?;
        Ok(rows)
    }
}
