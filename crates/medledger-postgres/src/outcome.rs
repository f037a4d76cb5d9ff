//! Settling the outcome of an append whose connection was lost while it
//! committed: "not written" is answered only once nothing can still
//! commit the batch (the rule is in [`crate::sequencer`], "Failures").

use core::ops::Range;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::nodes::count;
use crate::pool::{Backend, Conn};
use crate::sequencer::{pg, BatchToken, PgEntryLog};

const SELECT_BATCH: &str = "SELECT start, count FROM batches WHERE token = $1";
/// Whether a backend is still running (pid and start time name it).
const BACKEND_ALIVE: &str =
    "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start::text = $2";
/// Ends a lost connection's backend (if it is still that backend).
const END_BACKEND: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
     WHERE pid = $1 AND backend_start::text = $2";
/// The head row lock, waited for a bounded time, then nothing else: any
/// commit in flight holds it until it has committed or aborted.
const SETTLE_HEAD: &str = "SELECT 1 FROM log_head WHERE id = 0 FOR UPDATE";

/// SQLSTATE 55P03, lock_not_available (`lock_timeout`).
const LOCK_NOT_AVAILABLE: &str = "55P03";
/// SQLSTATE 57014, query_canceled (`statement_timeout`).
const QUERY_CANCELED: &str = "57014";

/// The longest the outcome check after a lost commit waits for the lost
/// connection's backend to exit or, without one, for the head row lock;
/// past it the outcome is [`Error::OutcomeUnknown`].
pub const OUTCOME_WAIT: Duration = Duration::from_secs(3);

impl PgEntryLog {
    /// Where the append named `token` landed: `Some(range)` if it
    /// committed, `None` if it did not. Resolves [`Error::OutcomeUnknown`].
    ///
    /// Reads under the head row lock (waited for at most
    /// [`OUTCOME_WAIT`]), so a commit still in flight is finished first;
    /// if the lock cannot be had in time, [`Error::OutcomeUnknown`] again.
    /// It knows no lost connection to end first, as the append's own check
    /// does (see [`crate::sequencer`], "Failures").
    pub fn batch_outcome(&self, token: &BatchToken) -> Result<Option<Range<u64>>> {
        self.settled_outcome(token, None)
    }

    /// Whether the append named `token` committed, answered only when
    /// nothing can still commit it: if the lost connection's backend
    /// (`lost`) is known, once it has been ended and is gone (within
    /// [`OUTCOME_WAIT`]); if not, under the head row lock (see the module
    /// docs, "Failures"). An error means the outcome stays unknown.
    pub(crate) fn settled_outcome(
        &self,
        token: &BatchToken,
        lost: Option<&Backend>,
    ) -> Result<Option<Range<u64>>> {
        let op = "read batch outcome";
        let r = self.read_with(op, |conn| {
            if let Some(backend) = lost {
                // Gone, it committed all it ever will: read.
                wait_ended(conn, backend)?;
                return read_batch(conn, token);
            }
            let ms = OUTCOME_WAIT.as_millis();
            conn.client
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL lock_timeout = {ms}; SET LOCAL statement_timeout = {}",
                    2 * ms
                ))
                .map_err(pg(op))?;
            let r = conn
                .client
                .execute(SETTLE_HEAD, &[])
                .map_err(pg(op))
                .and_then(|_| read_batch(conn, token));
            let end = conn.client.batch_execute("ROLLBACK").map_err(pg(op));
            match (r, end) {
                (Err(e), _) => Err(e),
                (Ok(_), Err(e)) => Err(e),
                (Ok(found), Ok(())) => Ok(found),
            }
        });
        match r {
            // The head stayed locked (or the server was too slow to say):
            // something may still be committing.
            Err(Error::Server {
                sqlstate, source, ..
            }) if sqlstate == LOCK_NOT_AVAILABLE || sqlstate == QUERY_CANCELED => {
                Err(Error::OutcomeUnknown {
                    op,
                    batch: Some(*token),
                    source,
                })
            }
            r => r,
        }
    }
}

/// The `batches` row of `token` (under the head lock, a statement of its
/// own, so its snapshot is taken after the lock was granted).
fn read_batch(conn: &mut Conn, token: &BatchToken) -> Result<Option<Range<u64>>> {
    let op = "read batch outcome";
    let row = conn
        .client
        .query_opt(SELECT_BATCH, &[&&token.0[..]])
        .map_err(pg(op))?;
    row.map(|r| {
        let start: i64 = r.try_get(0).map_err(pg(op))?;
        let n: i32 = r.try_get(1).map_err(pg(op))?;
        let start = count("batches", start)?;
        let n = count("batches", i64::from(n))?;
        Ok(start..start + n)
    })
    .transpose()
}

/// Ends `backend` (a connection this process lost) and waits, at most
/// [`OUTCOME_WAIT`], until it is gone from `pg_stat_activity`: from then on
/// nothing it was sent can commit.
fn wait_ended(conn: &mut Conn, backend: &Backend) -> Result<()> {
    let op = "read batch outcome";
    let key: [&(dyn postgres::types::ToSql + Sync); 2] = [&backend.pid, &backend.started];
    // Lacking the right to end it (another role), waiting still works.
    let _ = conn.client.query(END_BACKEND, &key);
    let began = Instant::now();
    loop {
        let alive = conn.client.query_opt(BACKEND_ALIVE, &key).map_err(pg(op))?;
        if alive.is_none() {
            return Ok(());
        }
        if began.elapsed() >= OUTCOME_WAIT {
            return Err(Error::Inconsistent {
                what: "batch outcome",
                reason: format!(
                    "backend {} of the lost connection is still running",
                    backend.pid
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
