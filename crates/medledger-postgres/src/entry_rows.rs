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

use medledger_chain::{Hash, NodeId};

use crate::error::{Error, Result, Stage};
use crate::nodes::node_rows;
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
