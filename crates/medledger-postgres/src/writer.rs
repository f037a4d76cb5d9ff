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
//! Each take that follows another writer's starts a new **epoch**, in one
//! transaction: it locks the `state_meta` row (`SELECT … FOR UPDATE`),
//! bumps `log_head.epoch` (schema version 2) with `UPDATE log_head SET
//! epoch = epoch + 1 … RETURNING`, and sets `state_meta.epoch` (schema
//! version 4) to the new epoch. From then on the store's appends and
//! state writes are **fenced** with it:
//!
//! - the one-statement append writes only if the head still carries that
//!   epoch, and the locked append reads the epoch with the head lock and,
//!   if it changed, rolls back with [`Error::WriterFenced`] (nothing
//!   appended, never retried, never an unknown outcome);
//! - every state write transaction ([`crate::PgStateStore`]'s `transact`,
//!   `transact_applied` and `reconcile`) reads `state_meta.epoch` with the
//!   `state_meta` lock it starts with and, if it changed, writes nothing
//!   and fails with [`Error::WriterFenced`] before running its closure.
//!
//! A take that finds the epoch it took last in both rows (nobody took a
//! turn since) writes nothing and returns [`Turn::resumed`]: the
//! process's in-memory view of the log is still its own, up to entries
//! appended by stores that take no turns.
//!
//! What the fence guarantees: **an append or a state write by a writer
//! whose turn has ended cannot land after another writer's take.** The
//! take needs the `state_meta` row, which every state transaction holds
//! from its check of the epoch until it commits, and the head row, which
//! every append holds likewise; so the take waits for a state transaction
//! and an append in flight, and every one that locks its row after the
//! take sees the new epoch and writes nothing. The taker therefore sees,
//! when it catches up, everything the old writer wrote. This holds even
//! if the old writer's lock session died without its process noticing
//! (the lock is gone, the fence is not).
//!
//! What it does not guarantee:
//!
//! - Only stores whose claim took a turn are fenced. A [`PgStore`] that
//!   never took a turn appends and writes state unguarded, as before
//!   version 2, whatever turns others take.
//! - Blob writes are not fenced: a writer whose turn ended can still
//!   write a blob. That is harmless: a blob counts only once a state row
//!   references it, and that state write is fenced; a blob nobody's state
//!   row references is collected like any other orphan.
//! - Reads are never fenced.
//! - Appends and state writes of the taking store itself that read the
//!   fence just before its own take set it may fail with
//!   [`Error::WriterFenced`] (nothing written): take a turn before
//!   working, not during work.
//!
//! Waits are bounded: the advisory lock by the caller's `wait`
//! (`lock_timeout`), and each of the take's two row locks by
//! [`TAKE_HEAD_WAIT`] (a state transaction or an append that holds its
//! row longer, e.g. one whose client vanished or whose closure blocks, is
//! a typed error, nothing of the take is written, and the writer lock is
//! released again).
//!
//! Releasing unlocks the advisory lock; if the unlock fails, or finds
//! nothing to unlock, the claim closes its session instead (advisory
//! locks stack, so a session that may still hold the lock must not lock
//! again), and the lock dies with it.

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
/// The head's epoch and length, and the epoch state writes are fenced
/// with (equal to the head's since any take by this build).
const READ_HEAD: &str = "SELECT h.epoch, h.entries, m.epoch FROM log_head h, state_meta m \
     WHERE h.id = 0 AND m.id = 0";
/// Waits for a state transaction in flight (they hold this row from their
/// start to their commit).
const LOCK_STATE_META: &str = "SELECT epoch FROM state_meta WHERE id = 0 FOR UPDATE";
const BUMP_EPOCH: &str =
    "UPDATE log_head SET epoch = epoch + 1 WHERE id = 0 RETURNING epoch, entries";
const SET_STATE_EPOCH: &str = "UPDATE state_meta SET epoch = $1 WHERE id = 0";
/// SQLSTATE 55P03, lock_not_available (`lock_timeout` expired).
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The longest a take waits for a state transaction in flight to release
/// the `state_meta` row, and then for an append in flight to release the
/// head row, before bumping the epoch.
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
                self.unlock(&mut s, op);
                Err(e)
            }
            r => r,
        }
    }

    /// Releases the writer (its session stays open for the next take). A
    /// session that is gone released it already: `Ok`, and it is dropped.
    /// If the unlock fails in any other way, or finds nothing to unlock,
    /// the session is closed, which releases whatever it holds: `Ok` too.
    pub fn release(&self) -> Result<()> {
        let mut s = self.lock();
        if s.held {
            self.unlock(&mut s, "release the ledger's writer");
        }
        Ok(())
    }

    /// Unlocks the writer lock on the claim's session. Advisory locks
    /// stack, so a session whose unlock failed (or unlocked nothing it
    /// knew of) must not lock again: it is dropped, and the lock, if it
    /// still held it, dies with it.
    fn unlock(&self, s: &mut Session, op: &'static str) {
        s.held = false;
        let Some(client) = s.client.as_mut() else {
            return;
        };
        let unlocked = client
            .query_one(UNLOCK, &[&self.schema, &WRITER_LOCK_SEED])
            .and_then(|row| row.try_get::<_, bool>(0))
            .map_err(pg(op));
        match unlocked {
            Ok(true) => {}
            Err(e) if e.connection_gone() => self.session_gone(s),
            Ok(false) | Err(_) => s.client = None,
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
        let read = |row: &postgres::Row| -> Result<(u64, u64)> {
            let epoch: i64 = row.try_get(0).map_err(pg(op))?;
            let entries: i64 = row.try_get(1).map_err(pg(op))?;
            Ok((count("log_head", epoch)?, count("log_head", entries)?))
        };
        let head = client.query_one(READ_HEAD, &[]).map_err(pg(op))?;
        let (epoch, entries) = read(&head)?;
        let state_epoch: i64 = head.try_get(2).map_err(pg(op))?;
        if s.last == Some(epoch) && u64::try_from(state_epoch).ok() == Some(epoch) {
            self.fence.set(epoch);
            return Ok(Turn {
                epoch,
                entries,
                resumed: true,
            });
        }
        // Each lock below waits at most `TAKE_HEAD_WAIT`: first for a
        // state transaction in flight (it holds the `state_meta` row),
        // then for an append in flight (it holds the head row). Both
        // epochs change in one transaction.
        client
            .batch_execute(&format!(
                "SET lock_timeout = {}",
                timeout_ms(TAKE_HEAD_WAIT)
            ))
            .map_err(pg(op))?;
        let mut tx = client.transaction().map_err(pg(op))?;
        tx.query_one(LOCK_STATE_META, &[]).map_err(pg(op))?;
        let (epoch, entries) = read(&tx.query_one(BUMP_EPOCH, &[]).map_err(pg(op))?)?;
        let new_epoch = i64::try_from(epoch).map_err(|_| Error::Inconsistent {
            what: "log_head",
            reason: format!("epoch {epoch} does not fit a bigint"),
        })?;
        tx.execute(SET_STATE_EPOCH, &[&new_epoch]).map_err(pg(op))?;
        tx.commit()
            .map_err(|e| Error::from_pg(op, Stage::Commit, None, e))?;
        s.last = Some(epoch);
        self.fence.set(epoch);
        Ok(Turn {
            epoch,
            entries,
            resumed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_server::drop_schema;

    fn url() -> Option<String> {
        crate::test_server::url("writer release tests")
    }

    fn open(url: &str, schema: &str) -> PgStore {
        let options = crate::PgOptions {
            schema: schema.to_owned(),
            ..crate::PgOptions::default()
        };
        PgStore::open(url, options).unwrap()
    }

    /// An unlock that fails without losing the connection (here: the
    /// session is in an aborted transaction, 25P02) closes the session, so
    /// the lock it still holds dies with it; before, the session was kept
    /// holding the lock, and the next take stacked a second one on it.
    #[test]
    fn a_failed_unlock_closes_the_session_and_frees_the_lock() {
        let Some(url) = url() else { return };
        let schema = format!("t_unlock_{}", std::process::id());
        let (a, b) = (open(&url, &schema), open(&url, &schema));
        let (wa, wb) = (a.writer(), b.writer());
        wa.take(Duration::ZERO).unwrap();
        {
            let mut s = wa.lock();
            let client = s.client.as_mut().unwrap();
            let e = client.batch_execute("BEGIN; SELECT 1 / 0").unwrap_err();
            assert_eq!(e.code().map(|c| c.code()), Some("22012"));
        }
        wa.release().unwrap();
        assert!(wa.lock().client.is_none(), "the session was kept");
        // The lock is free for another writer (once the server has seen
        // the session close), and A takes turns again afterwards.
        assert_eq!(wb.take(Duration::from_secs(5)).unwrap().epoch, 2);
        wb.release().unwrap();
        assert_eq!(wa.take(Duration::from_secs(5)).unwrap().epoch, 3);
        wa.release().unwrap();
        assert_eq!(wb.take(Duration::from_secs(5)).unwrap().epoch, 4);
        drop((wa, wb, a, b));
        drop_schema(&url, &schema);
    }

    /// An unlock that finds nothing to unlock (the session's bookkeeping
    /// was wrong) closes the session too.
    #[test]
    fn an_unlock_that_unlocks_nothing_closes_the_session() {
        let Some(url) = url() else { return };
        let schema = format!("t_unlock0_{}", std::process::id());
        let (a, b) = (open(&url, &schema), open(&url, &schema));
        let (wa, wb) = (a.writer(), b.writer());
        wa.take(Duration::ZERO).unwrap();
        {
            let mut s = wa.lock();
            let client = s.client.as_mut().unwrap();
            let unlocked: bool = client
                .query_one(UNLOCK, &[&schema, &WRITER_LOCK_SEED])
                .unwrap()
                .get(0);
            assert!(unlocked);
        }
        wa.release().unwrap();
        assert!(wa.lock().client.is_none(), "the session was kept");
        assert_eq!(wb.take(Duration::from_secs(5)).unwrap().epoch, 2);
        drop((wa, wb, a, b));
        drop_schema(&url, &schema);
    }
}
