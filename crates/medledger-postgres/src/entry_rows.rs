//! Writing one append's rows: its `entries` (each with its node hashes),
//! its callers' `batches` rows and the new `log_head`, in one statement
//! (`INSERT … SELECT * FROM unnest(…)` in data-modifying `WITH` clauses).
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

use medledger_chain::{Hash, NodeId};

use crate::error::{Error, Result, Stage};
use crate::nodes::groups;
use crate::pool::Conn;

/// Every write of an append in one statement, under the head lock: the
/// entries with their node hashes, the callers' `batches` rows, the head.
const WRITE_BATCH: &str = "WITH e AS (INSERT INTO entries (idx, body, hashes) SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])), \
     b AS (INSERT INTO batches (token, start, count) SELECT * FROM unnest($4::bytea[], $5::bigint[], $6::integer[])) \
     UPDATE log_head SET entries = $7, leaves = $7 WHERE id = 0";
/// The same writes as one self-committing statement, only if the head
/// still says `$8` and, when `$9` (the writer fence) is not NULL, its
/// epoch is `$9` (locked first; see the module docs and
/// [`crate::writer`]).
const WRITE_IF_HEAD: &str = "WITH h AS (SELECT id FROM log_head WHERE id = 0 AND entries = $8 AND leaves = $8 AND ($9::bigint IS NULL OR epoch = $9) FOR UPDATE), \
     e AS (INSERT INTO entries (idx, body, hashes) SELECT i, v, x FROM unnest($1::bigint[], $2::bytea[], $3::bytea[]) AS t(i, v, x) WHERE EXISTS (SELECT 1 FROM h)), \
     b AS (INSERT INTO batches (token, start, count) SELECT k, s, c FROM unnest($4::bytea[], $5::bigint[], $6::integer[]) AS u(k, s, c) WHERE EXISTS (SELECT 1 FROM h)) \
     UPDATE log_head SET entries = $7, leaves = $7 WHERE id = 0 AND EXISTS (SELECT 1 FROM h)";

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
    let (idx, hashes): (Vec<i64>, Vec<Vec<u8>>) = groups(rows.nodes)?.into_iter().unzip();
    if idx.len() != rows.bodies.len() || idx.first() != Some(&rows.first) {
        return Err(mismatch());
    }
    let c = &rows.callers;
    let params: [&(dyn postgres::types::ToSql + Sync); 9] = [
        &idx,
        &rows.bodies,
        &hashes,
        &c.tokens,
        &c.starts,
        &c.counts,
        &rows.end,
        &rows.first,
        &rows.fence,
    ];
    let used = match mode {
        Mode::Locked => params.get(..7).unwrap_or(&params),
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
