//! [`PgEntryLog`]: the entry log, sequenced by PostgreSQL.
//!
//! # One sequencer, many writers
//!
//! Every append transaction starts by locking the one `log_head` row
//! (`SELECT … FOR UPDATE`). Whoever holds it, in any process, reads the
//! log length `n`, inserts its entries at `n, n + 1, …`, computes the
//! batch's Merkle nodes with a [`MerkleLog`] over the committed frontier
//! (a transaction-scoped node view; the frontier is cached between appends
//! while the head stays where this process left it), and writes the
//! entries, their node hashes (in the entry rows, or as runs in `nodes`
//! for appends of 64 entries or more; see [`crate::nodes`]), a `batches`
//! row per caller and the new head in one statement, all in one transaction (three round trips:
//! `BEGIN` with the lock, the write, `COMMIT`). When this process
//! committed the last append, it already knows `n` and the frontier, and
//! sends that statement alone, guarded to lock the head and write only if
//! it still says `n` (one round trip, committing itself; see
//! the private `entry_rows` module); if another writer moved the head, nothing is
//! written and the append takes the locked path. So indexes have no
//! gaps and no duplicates across processes, and no reader ever sees an
//! entry without its nodes: they commit together or not at all.
//!
//! # Group commit
//!
//! Within one process, concurrent appends share one transaction (and so
//! one WAL flush). Each caller hashes its own leaves first, outside any
//! lock. The first caller to find no leader leads: its own entries go
//! without a copy; callers arriving while a leader is busy queue a copy of
//! theirs and wait on a condition variable. Before it begins, a leader
//! lets its group gather, as PostgreSQL's `commit_delay` does: it waits
//! until as many callers are queued as the largest of the last four groups
//! carried, but never longer than the last commit took (and at most
//! [`MAX_GATHER_WAIT`]). One appender therefore never waits (its groups
//! were itself), while 16 appenders, whose waiters all return together
//! after each commit, form groups of about 16 instead of alternating
//! between a group of the first to return and one of everyone else. The
//! leader then takes every queued request (up to [`MAX_GROUP_BYTES`]) and
//! commits them with its own.
//!
//! # Failures
//!
//! A transaction PostgreSQL rolled back with 40001/40P01 is run again
//! (recomputing everything from the locked head). A connection lost before
//! `COMMIT` is [`Error::ConnectionLost`]: nothing was written. One lost
//! during `COMMIT` (or during the one-statement append) is never retried,
//! because it may have committed: the log asks the server once, by the
//! transaction's [`BatchToken`], whether it did, acknowledging the batch if
//! so.
//!
//! **"Not there" is answered only when it is certain**, because a caller
//! told [`Error::ConnectionLost`] ("nothing was written") may append the
//! same batch again. The lost connection's server process can still be
//! running: its `COMMIT` may not have arrived yet, or be half-way through.
//! So the question waits until nothing can commit the batch any more:
//!
//! - when the lost connection's backend is known (its pid and start time,
//!   remembered when the connection was opened), it is ended with
//!   `pg_terminate_backend` (a commit past its point of no return
//!   completes first) and must be gone from `pg_stat_activity` (a backend
//!   leaves it only after its transaction has ended); then the `batches`
//!   row says it all;
//! - otherwise (and in [`PgEntryLog::batch_outcome`], which callers use
//!   later), the `log_head` row lock is taken in a transaction (every
//!   append holds it until it has committed or aborted), and only then, in
//!   a statement of its own (a snapshot taken after the lock), the
//!   `batches` row is read. A batch whose statement has not even started
//!   on its backend is not covered by this alone: that is why the backend
//!   is ended first when it is known.
//!
//! Each wait is bounded by [`OUTCOME_WAIT`] (the backend's exit, polled;
//! the head lock by `lock_timeout`, with a `statement_timeout` of twice
//! that): past it, or if the server cannot be
//! reached, the answer is [`Error::OutcomeUnknown`] with the caller's
//! token, never [`Error::ConnectionLost`], and
//! [`PgEntryLog::batch_outcome`] resolves it later (under the same head
//! lock).

use core::ops::Range;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use medledger_chain::{Hash, HashAlg, MerkleLog, NodeId, NodeStore};
use rand_core::RngCore;

use crate::entry_rows::{self, Callers, Mode, Rows};
use crate::error::{Error, Result, Stage};
use crate::nodes::{count, TxnNodes, SELECT_HEAD, SELECT_NODES};
use crate::pool::{Backend, Conn, Pool};

/// Most entry bytes one group transaction carries (a single larger request
/// still goes alone).
pub const MAX_GROUP_BYTES: usize = 32 << 20;

/// The longest a group-commit leader waits for its group to gather.
pub const MAX_GATHER_WAIT: Duration = Duration::from_millis(2);

/// How many recent groups a leader's gathering target looks back on.
const RECENT_GROUPS: usize = 4;

pub use crate::outcome::OUTCOME_WAIT;

/// `BEGIN` and the head lock in one round trip.
const BEGIN_LOCK_HEAD: &str =
    "BEGIN; SELECT entries, leaves, epoch FROM log_head WHERE id = 0 FOR UPDATE";
/// Names one caller's append in the `batches` table: 16 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchToken(pub [u8; 16]);

impl BatchToken {
    pub(crate) fn random() -> Self {
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

/// The writer epoch this store's appends must find in `log_head`, shared
/// by its entry log and its writer claims ([`crate::writer`]): unset until
/// a claim takes a turn, and then every append writes only while the
/// head's epoch is still the one taken.
#[derive(Debug, Default)]
pub(crate) struct Fence(Mutex<Option<u64>>);

impl Fence {
    /// The epoch appends are fenced with, if any.
    pub(crate) fn get(&self) -> Option<u64> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fences appends with `epoch` (a turn was taken).
    pub(crate) fn set(&self, epoch: u64) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(epoch);
    }
}

/// A queued caller's append (owned: another thread's leader writes it).
struct Request {
    ticket: u64,
    token: BatchToken,
    entries: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
    bytes: usize,
}

/// One caller's part of a transaction.
struct Part<'a> {
    token: BatchToken,
    entries: Vec<&'a [u8]>,
    leaves: &'a [Hash],
}

impl Request {
    fn part(&self) -> Part<'_> {
        Part {
            token: self.token,
            entries: self.entries.iter().map(Vec::as_slice).collect(),
            leaves: &self.leaves,
        }
    }
}

#[derive(Default)]
struct Group {
    queue: Vec<Request>,
    leader: bool,
    next_ticket: u64,
    results: HashMap<u64, Result<u64>>,
    /// How many callers each of the last [`RECENT_GROUPS`] groups carried.
    recent: [usize; RECENT_GROUPS],
    /// Groups committed (the next slot of `recent` to overwrite).
    groups: usize,
    /// How long the last group's transaction took.
    last_commit: Duration,
}

/// The entry log on PostgreSQL (see the module docs).
pub struct PgEntryLog {
    pool: Arc<Pool>,
    alg: HashAlg,
    group_commit: bool,
    group: Mutex<Group>,
    /// A group committed: its callers' results are in.
    committed: Condvar,
    /// A request was queued (wakes a gathering leader).
    queued: Condvar,
    /// Appends of this process choosing their path right now.
    in_flight: AtomicUsize,
    /// The tree's frontier at some size, as committed: spares reading it
    /// when the head is still at that size (nodes never change, so it is
    /// right whichever process wrote them).
    frontier: Mutex<Option<Frontier>>,
    /// The writer fence (see [`Fence`]).
    fence: Arc<Fence>,
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

pub(crate) fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> Error {
    move |e| Error::from_pg(op, Stage::BeforeCommit, None, e)
}

pub(crate) fn to_i64(what: &'static str, v: u64) -> Result<i64> {
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
            queued: Condvar::new(),
            in_flight: AtomicUsize::new(0),
            frontier: Mutex::new(None),
            fence: Arc::new(Fence::default()),
        }
    }

    /// The fence this log's appends check, for the store's writer claims.
    pub(crate) fn fence(&self) -> Arc<Fence> {
        Arc::clone(&self.fence)
    }

    fn lock(&self) -> MutexGuard<'_, Group> {
        self.group
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends `entries` and returns their range, or this crate's typed
    /// error (the [`medledger_store::EntryLog`] methods wrap it in
    /// [`medledger_store::Error::Backend`]). On
    /// [`Error::OutcomeUnknown`], `token` is what
    /// [`PgEntryLog::batch_outcome`] takes.
    pub fn append_with_token(&self, entries: &[&[u8]], token: BatchToken) -> Result<Range<u64>> {
        let k = entries.len() as u64;
        let leaves: Vec<Hash> = entries.iter().map(|e| self.alg.leaf_hash(e)).collect();
        let mine = Part {
            token,
            entries: entries.to_vec(),
            leaves: &leaves,
        };
        if !self.group_commit {
            let start = self.commit(&[mine])?;
            return Ok(start..start + k);
        }
        let mut g = self.lock();
        let mut ticket = None;
        loop {
            if let Some(r) = ticket.and_then(|t| g.results.remove(&t)) {
                return r.map(|start| start..start + k);
            }
            if !g.leader {
                break;
            }
            if ticket.is_none() {
                // Queue a copy: whichever thread leads writes it.
                let t = g.next_ticket;
                g.next_ticket = g.next_ticket.wrapping_add(1);
                g.queue.push(Request {
                    ticket: t,
                    token,
                    entries: entries.iter().map(|e| e.to_vec()).collect(),
                    leaves: leaves.clone(),
                    bytes: entries.iter().map(|e| e.len()).sum(),
                });
                ticket = Some(t);
                self.queued.notify_all();
            }
            g = self
                .committed
                .wait(g)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        // Lead, with this caller's own request first (queued or not).
        g.leader = true;
        let own = ticket.and_then(|t| {
            let at = g.queue.iter().position(|r| r.ticket == t)?;
            Some(g.queue.remove(at))
        });
        let own_bytes: usize = entries.iter().map(|e| e.len()).sum();
        // Let the group gather (see the module docs).
        let target = g.recent.iter().copied().max().unwrap_or(0);
        let deadline = Instant::now() + g.last_commit.min(MAX_GATHER_WAIT);
        loop {
            let bytes: usize = g.queue.iter().map(|r| r.bytes).sum();
            let now = Instant::now();
            if g.queue.len() + 1 >= target
                || now >= deadline
                || own_bytes + bytes >= MAX_GROUP_BYTES
            {
                break;
            }
            g = self
                .queued
                .wait_timeout(g, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        let mut taken = 0usize;
        let mut size = own_bytes;
        for r in &g.queue {
            if size + r.bytes > MAX_GROUP_BYTES {
                break;
            }
            size += r.bytes;
            taken += 1;
        }
        let others: Vec<Request> = g.queue.drain(..taken).collect();
        drop(g);
        let mut parts = Vec::with_capacity(others.len() + 1);
        parts.push(match &own {
            Some(r) => r.part(),
            None => mine,
        });
        parts.extend(others.iter().map(Request::part));
        let began = Instant::now();
        let r = self.commit(&parts);
        let took = began.elapsed();
        drop(parts);
        let mut g = self.lock();
        let slot = g.groups % RECENT_GROUPS;
        if let Some(size) = g.recent.get_mut(slot) {
            *size = others.len() + 1;
        }
        g.groups = g.groups.wrapping_add(1);
        g.last_commit = took;
        let mut at = r.as_ref().ok().map(|start| start + k);
        for req in &others {
            let result = match (&r, at) {
                (Ok(_), Some(start)) => {
                    at = Some(start + req.entries.len() as u64);
                    Ok(start)
                }
                (Err(Error::OutcomeUnknown { op, source, .. }), _) => Err(Error::OutcomeUnknown {
                    op,
                    batch: Some(req.token),
                    source: Arc::clone(source),
                }),
                (Err(e), _) => Err(e.clone()),
                (Ok(_), None) => Err(Error::Inconsistent {
                    what: "group commit",
                    reason: "no start index".into(),
                }),
            };
            g.results.insert(req.ticket, result);
        }
        g.leader = false;
        drop(g);
        self.committed.notify_all();
        match r {
            Ok(start) => Ok(start..start + k),
            Err(Error::OutcomeUnknown { op, source, .. }) => Err(Error::OutcomeUnknown {
                op,
                batch: Some(token),
                source,
            }),
            Err(e) => Err(e),
        }
    }

    /// Appends every part of `group` in order in one transaction; returns
    /// the first index. Speculatively in one round trip when this process
    /// knows the head (see [`crate::entry_rows`]), else under the lock.
    fn commit(&self, group: &[Part<'_>]) -> Result<u64> {
        // Speculate only when no other append of this process is in
        // flight (always so under group commit, where one leader commits
        // at a time): concurrent ones would mostly find the head moved.
        let alone = self.in_flight.fetch_add(1, Ordering::SeqCst) == 0;
        let r = self.commit_alone(group, alone);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// [`PgEntryLog::commit`], speculating if `alone`.
    fn commit_alone(&self, group: &[Part<'_>], alone: bool) -> Result<u64> {
        let op = "append entries";
        let batch = group.first().map(|r| r.token);
        let fence = self.fence.get();
        // The backend the commit ran on, to settle an unknown outcome.
        let mut backend = None;
        let speculated = if alone {
            self.commit_if_head(group, fence, &mut backend)
        } else {
            Ok(None)
        };
        let r = match speculated {
            Ok(Some(done)) => Ok(done),
            // The head moved, or PostgreSQL rolled the statement back with
            // 40001/40P01 (nothing written): take the lock.
            Ok(None) | Err(Error::Conflict { .. }) => {
                self.pool.transaction_tracked(
                    op,
                    batch,
                    BEGIN_LOCK_HEAD,
                    &mut backend,
                    &mut |conn, rows| {
                        let (n, epoch) = head_length(&rows)?;
                        if let Some(ours) = fence.filter(|ours| *ours != epoch) {
                            // Another writer took a turn: nothing is
                            // written (the transaction rolls back).
                            return Err(Error::WriterFenced {
                                schema: self.pool.schema().to_owned(),
                                ours,
                                current: epoch,
                            });
                        }
                        self.write_at(conn, n, group, Mode::Locked, fence)?
                            .ok_or_else(|| Error::Inconsistent {
                                what: "log_head",
                                reason: "locked head row not updated".into(),
                            })
                    },
                )
            }
            Err(e) => Err(e),
        };
        let (start, frontier) = match (r, batch) {
            (Err(Error::OutcomeUnknown { op, source, .. }), Some(token)) => {
                // Not a retry: ask once whether it committed (the `batches`
                // row commits with the entries), once nothing can still
                // commit it. If that is not certain, the outcome stays
                // unknown.
                return match self.settled_outcome(&token, backend.as_ref()) {
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

    /// The one-statement append at the head this process last committed:
    /// `None` if there is none known or another writer moved it.
    fn commit_if_head(
        &self,
        group: &[Part<'_>],
        fence: Option<u64>,
        backend: &mut Option<Backend>,
    ) -> Result<Option<(u64, Frontier)>> {
        let known = self
            .frontier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(n, _)| *n);
        let Some(n) = known else {
            return Ok(None);
        };
        let mut pooled = self.pool.get()?;
        let r = pooled.conn().and_then(|conn| {
            backend.clone_from(&conn.backend);
            self.write_at(conn, n, group, Mode::IfHead, fence)
        });
        if let Err(e) = &r {
            pooled.saw(e);
        }
        r
    }

    /// Computes the nodes of `group` appended at `n` and writes the rows
    /// (see [`entry_rows::write`]); returns the first index and the new
    /// frontier, or `None` if [`Mode::IfHead`] found the head moved (or
    /// not at the `fence` epoch).
    fn write_at(
        &self,
        conn: &mut Conn,
        n: u64,
        group: &[Part<'_>],
        mode: Mode,
        fence: Option<u64>,
    ) -> Result<Option<(u64, Frontier)>> {
        let op = "append entries";
        let batch = group.first().map(|r| r.token);
        let select_nodes = conn.prepare(op, SELECT_NODES)?;
        let all: Vec<&[u8]> = group
            .iter()
            .flat_map(|r| r.entries.iter().copied())
            .collect();
        let known: HashMap<NodeId, Hash> = match &*self
            .frontier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some((size, nodes)) if *size == n => nodes.iter().copied().collect(),
            _ => HashMap::new(),
        };
        let end = n + all.len() as u64;
        let (new_nodes, frontier) = {
            let view = TxnNodes::new(&mut conn.client, select_nodes, n, known);
            let mut tree = MerkleLog::open(self.alg, view).map_err(chain_err)?;
            for leaf in group.iter().flat_map(|r| r.leaves.iter()) {
                tree.append_leaf_hash(*leaf).map_err(chain_err)?;
            }
            let ids = frontier_ids(end);
            let hashes = tree.store().get(&ids).map_err(chain_err)?;
            (tree.into_store().new, ids.into_iter().zip(hashes).collect())
        };
        let mut callers = Callers::default();
        let mut at = n;
        for r in group {
            callers.tokens.push(&r.token.0[..]);
            callers.starts.push(to_i64("batches", at)?);
            callers
                .counts
                .push(
                    i32::try_from(r.entries.len()).map_err(|_| Error::Inconsistent {
                        what: "batches",
                        reason: "over 2^31 entries in one append".into(),
                    })?,
                );
            at += r.entries.len() as u64;
        }
        let rows = Rows {
            first: to_i64("entries", n)?,
            bodies: &all,
            nodes: &new_nodes,
            callers,
            end: to_i64("log_head", end)?,
            fence: fence.map(|f| to_i64("log_head", f)).transpose()?,
        };
        let written = entry_rows::write(conn, op, batch, &rows, mode)?;
        Ok(written.then_some((n, (end, frontier))))
    }

    pub(crate) fn read_with<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Conn) -> Result<T>,
    ) -> Result<T> {
        let _ = op;
        let mut pooled = self.pool.get()?;
        let r = pooled.conn().and_then(f);
        if let Err(e) = &r {
            pooled.saw(e);
        }
        r
    }

    pub(crate) fn length(&self) -> Result<u64> {
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

/// The log length and writer epoch from the locked head row (`entries`,
/// `leaves`, `epoch`, as text).
fn head_length(head: &[postgres::SimpleQueryRow]) -> Result<(u64, u64)> {
    let field = |i: usize| -> Result<i64> {
        head.first()
            .and_then(|r| r.get(i))
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or(Error::Inconsistent {
                what: "log_head",
                reason: "no head row".into(),
            })
    };
    let (entries, leaves, epoch) = (field(0)?, field(1)?, field(2)?);
    if entries != leaves {
        return Err(Error::Inconsistent {
            what: "log_head",
            reason: format!("{entries} entries but {leaves} leaves' nodes"),
        });
    }
    Ok((count("log_head", entries)?, count("log_head", epoch)?))
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
