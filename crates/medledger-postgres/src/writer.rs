//! The schema's writer: one writing `Ledger` at a time, and writers that
//! take turns, with every append fenced by the turn's epoch.
//!
//! The store itself takes any number of writers (the sequencer orders
//! them), but the facade keeps indexes, per-patient chains and its tree's
//! size in process and would see another writer's entries as gaps. So the
//! schema has one writer lock: a session-level advisory lock keyed by the
//! schema name, held on a connection of the [`WriterClaim`]'s own (shown
//! as `application_name = medledger-writer` in `pg_stat_activity`).
//!
//! # Holding the writer for good
//!
//! [`PgStore::claim_writer`] takes the lock at once (try-lock:
//! [`Error::WriterClaimed`] if another session holds it), and
//! [`WriterClaim::confirm`] checks before each operation that the session
//! still holds it; if the session died (server restart,
//! `pg_terminate_backend`), PostgreSQL released the lock and `confirm`
//! reconnects and takes it again, or fails with [`Error::WriterClaimed`].
//!
//! # Taking turns
//!
//! Several application servers share one ledger by taking turns: a
//! process takes the writer ([`WriterClaim::take`], waiting a bounded time
//! for the current holder), catches up with the entries others appended
//! ([`Turn::entries`] is the log length at the take), works, and
//! [releases](WriterClaim::release) the writer when idle.
//!
//! Each take that follows another writer's bumps `log_head.epoch` (schema
//! version 2) with `UPDATE log_head SET epoch = epoch + 1 … RETURNING`,
//! and from then on the store's appends are **fenced**: the one-statement
//! append writes only if the head still carries that epoch, and the locked
//! append reads the epoch with the head lock and, if it changed, rolls
//! back with [`Error::WriterFenced`] (nothing appended, never retried,
//! never an unknown outcome). A take that finds the epoch it took last
//! (nobody took a turn since) writes nothing and returns
//! [`Turn::resumed`]: the process's in-memory view of the log is still
//! its own, up to entries appended by stores that take no turns.
//!
//! What the fence guarantees: **an append by a writer whose turn has ended
//! cannot land after another writer's take.** The take's `UPDATE` needs
//! the head row, which every append holds from its check of the epoch
//! until it commits; so the take waits for an append in flight, and every
//! append that locks the head after the take sees the new epoch and
//! writes nothing. This holds even if the old writer's lock session died
//! without its process noticing (the lock is gone, the fence is not).
//!
//! What it does not guarantee:
//!
//! - Only stores whose claim took a turn are fenced. A [`PgStore`] that
//!   never took a turn appends unguarded, as before version 2, whatever
//!   turns others take.
//! - Blob and state writes are not fenced: a writer whose turn ended can
//!   still write blobs and state rows (the facade keeps those consistent
//!   by writing the log entry that makes them count, which is fenced).
//! - Appends of the taking store itself that read the fence just before
//!   its own take set it may fail with [`Error::WriterFenced`] (nothing
//!   written): take a turn before working, not during work.
//!
//! Waits are bounded: the advisory lock by the caller's `wait`
//! (`lock_timeout`), the epoch bump by [`TAKE_HEAD_WAIT`] (an append that
//! holds the head longer, e.g. a backend whose client vanished, is a typed
//! error, and the writer lock is released again).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use postgres::Client;

use crate::error::{Error, Result, Stage};
use crate::nodes::count;
use crate::pool::Pool;
use crate::sequencer::Fence;
use crate::PgStore;

/// Seed of the advisory lock key (`hashtextextended(schema, seed)`); the
/// schema migration lock uses another seed.
const WRITER_LOCK_SEED: i64 = 7306;
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended($1, $2))";
const LOCK: &str = "SELECT pg_advisory_lock(hashtextextended($1, $2))";
const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtextextended($1, $2))";
const READ_HEAD: &str = "SELECT epoch, entries FROM log_head WHERE id = 0";
const BUMP_EPOCH: &str =
    "UPDATE log_head SET epoch = epoch + 1 WHERE id = 0 RETURNING epoch, entries";
/// SQLSTATE 55P03, lock_not_available (`lock_timeout` expired).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The longest a take waits for an append in flight to release the head
/// row before bumping the epoch.
pub const TAKE_HEAD_WAIT: Duration = Duration::from_secs(5);

/// The claim's sessions show up under this name in `pg_stat_activity`.
pub const WRITER_APPLICATION_NAME: &str = "medledger-writer";

/// One writer turn, as [`WriterClaim::take`] found or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// The writer epoch this store's appends are now fenced with.
    pub epoch: u64,
    /// The log length at the take: entries below it may have been
    /// appended by others since this process last looked.
    pub entries: u64,
    /// Nobody took a turn since this handle's last take (the epoch is
    /// unchanged and nothing was written).
    pub resumed: bool,
}

/// The claim's session and what it holds.
#[derive(Default)]
struct Session {
    client: Option<Client>,
    /// The session holds the writer lock (taken, not released since).
    held: bool,
    /// The epoch of this handle's last take.
    last: Option<u64>,
}

/// A handle on one schema's writer (see the module docs). Dropping it
/// closes its session, which releases the lock.
pub struct WriterClaim {
    pool: Arc<Pool>,
    schema: String,
    fence: Arc<Fence>,
    session: Mutex<Session>,
}

impl std::fmt::Debug for WriterClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterClaim")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Claims this schema's writer for the lifetime of the returned
    /// [`WriterClaim`]: [`Error::WriterClaimed`] if another session holds
    /// it.
    pub fn claim_writer(&self) -> Result<WriterClaim> {
        let claim = self.writer();
        claim.confirm()?;
        Ok(claim)
    }

    /// A handle on this schema's writer that holds nothing yet (no I/O):
    /// take turns with [`WriterClaim::take`]. Its turns fence this store's
    /// appends (see the module docs).
    pub fn writer(&self) -> WriterClaim {
        WriterClaim {
            pool: Arc::clone(&self.pool),
            schema: self.schema.clone(),
            fence: self.entries.fence(),
            session: Mutex::new(Session::default()),
        }
    }
}

fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> Error {
    move |e| Error::from_pg(op, Stage::BeforeCommit, None, e)
}

/// `lock_timeout` for `wait`, in whole milliseconds, at least 1 (0 would
/// mean no limit).
fn timeout_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl WriterClaim {
    fn lock(&self) -> MutexGuard<'_, Session> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The claim's session was found lost (its lock died with it): drops
    /// it, and the pool's idle connections, which a server restart or
    /// network failure most likely took too.
    fn session_gone(&self, s: &mut Session) {
        s.client = None;
        s.held = false;
        self.pool.discard_idle();
    }

    /// A new session for the claim.
    fn connect(&self, op: &'static str) -> Result<Client> {
        let mut client = self.pool.connect()?;
        client
            .batch_execute(&format!(
                "SET application_name = '{WRITER_APPLICATION_NAME}'"
            ))
            .map_err(pg(op))?;
        Ok(client)
    }

    /// Checks that this claim's session still holds the lock (one round
    /// trip); if the session is gone or the lock was released, takes it
    /// again (try-lock), or fails with [`Error::WriterClaimed`].
    pub fn confirm(&self) -> Result<()> {
        let mut s = self.lock();
        if s.held {
            if let Some(client) = s.client.as_mut() {
                if !client.is_closed() && client.simple_query("SELECT 1").is_ok() {
                    return Ok(());
                }
            }
            self.session_gone(&mut s);
        }
        self.lock_session(&mut s, "claim the ledger's writer", Duration::ZERO)
    }

    /// Takes the writer for a turn, waiting at most `wait` for another
    /// session to release it ([`Error::WriterClaimed`] after that; zero
    /// tries once), then reads or bumps the epoch and fences this store's
    /// appends with it (see the module docs). Taking it while this handle
    /// holds it does not lock twice. If the epoch cannot be read or bumped
    /// (e.g. an append holds the head past [`TAKE_HEAD_WAIT`]), the error
    /// is returned and a lock this call took is released again (one held
    /// from an earlier take stays held).
    pub fn take(&self, wait: Duration) -> Result<Turn> {
        let op = "take the ledger's writer";
        let mut s = self.lock();
        if s.held {
            match self.turn(&mut s, op) {
                Err(e) if e.connection_gone() => {
                    // The session died, and the lock with it.
                    self.session_gone(&mut s);
                }
                r => return r,
            }
        }
        self.lock_session(&mut s, op, wait)?;
        match self.turn(&mut s, op) {
            Err(e) => {
                // No turn without its epoch: let the next writer have it.
                if let Some(client) = s.client.as_mut() {
                    if client
                        .query_one(UNLOCK, &[&self.schema, &WRITER_LOCK_SEED])
                        .is_err()
                    {
                        s.client = None;
                    }
                }
                s.held = false;
                Err(e)
            }
            r => r,
        }
    }

    /// Releases the writer (its session stays open for the next take). A
    /// session that is gone released it already: `Ok`, and it is dropped.
    pub fn release(&self) -> Result<()> {
        let op = "release the ledger's writer";
        let mut s = self.lock();
        if !s.held {
            return Ok(());
        }
        s.held = false;
        let Some(client) = s.client.as_mut() else {
            return Ok(());
        };
        match client
            .query_one(UNLOCK, &[&self.schema, &WRITER_LOCK_SEED])
            .map_err(pg(op))
        {
            Ok(_) => Ok(()),
            Err(e) if e.connection_gone() => {
                self.session_gone(&mut s);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Takes the advisory lock on the claim's session (opening one if
    /// needed; a dead one is replaced once), waiting at most `wait`.
    fn lock_session(&self, s: &mut Session, op: &'static str, wait: Duration) -> Result<()> {
        let mut fresh = false;
        loop {
            if s.client.as_ref().is_none_or(Client::is_closed) {
                s.client = Some(self.connect(op)?);
                fresh = true;
            }
            let Some(client) = s.client.as_mut() else {
                return Err(Error::Inconsistent {
                    what: "writer claim",
                    reason: "no session after connecting".into(),
                });
            };
            match self.lock_on(client, op, wait) {
                Ok(true) => {
                    s.held = true;
                    return Ok(());
                }
                Ok(false) => {
                    return Err(Error::WriterClaimed {
                        schema: self.schema.clone(),
                    })
                }
                Err(e) if e.connection_gone() && !fresh => self.session_gone(s),
                Err(e) => {
                    if e.connection_gone() {
                        self.session_gone(s);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// One attempt at the advisory lock: whether it was had within `wait`.
    fn lock_on(&self, client: &mut Client, op: &'static str, wait: Duration) -> Result<bool> {
        let key: [&(dyn postgres::types::ToSql + Sync); 2] = [&self.schema, &WRITER_LOCK_SEED];
        if wait.is_zero() {
            return client
                .query_one(TRY_LOCK, &key)
                .and_then(|row| row.try_get(0))
                .map_err(pg(op));
        }
        client
            .batch_execute(&format!("SET lock_timeout = {}", timeout_ms(wait)))
            .map_err(pg(op))?;
        match client.query_one(LOCK, &key) {
            Ok(_) => Ok(true),
            Err(e) if e.code().map(|c| c.code()) == Some(LOCK_NOT_AVAILABLE) => Ok(false),
            Err(e) => Err(pg(op)(e)),
        }
    }

    /// With the lock held: the turn (resumed, or a new epoch), and the
    /// store's fence set to it.
    fn turn(&self, s: &mut Session, op: &'static str) -> Result<Turn> {
        let client = s.client.as_mut().ok_or(Error::Inconsistent {
            what: "writer claim",
            reason: "no session while holding the writer".into(),
        })?;
        let read = |row: postgres::Row| -> Result<(u64, u64)> {
            let epoch: i64 = row.try_get(0).map_err(pg(op))?;
            let entries: i64 = row.try_get(1).map_err(pg(op))?;
            Ok((count("log_head", epoch)?, count("log_head", entries)?))
        };
        let (epoch, entries) = read(client.query_one(READ_HEAD, &[]).map_err(pg(op))?)?;
        if s.last == Some(epoch) {
            self.fence.set(epoch);
            return Ok(Turn {
                epoch,
                entries,
                resumed: true,
            });
        }
        // Waits for an append in flight (it holds the head row), at most
        // `TAKE_HEAD_WAIT`.
        client
            .batch_execute(&format!(
                "SET lock_timeout = {}",
                timeout_ms(TAKE_HEAD_WAIT)
            ))
            .map_err(pg(op))?;
        let (epoch, entries) = read(client.query_one(BUMP_EPOCH, &[]).map_err(pg(op))?)?;
        s.last = Some(epoch);
        self.fence.set(epoch);
        Ok(Turn {
            epoch,
            entries,
            resumed: false,
        })
    }
}
