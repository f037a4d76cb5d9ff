//! One writing `Ledger` per schema: [`PgStore::claim_writer`] takes a
//! session-level advisory lock keyed by the schema name on a connection of
//! its own, and [`WriterClaim::confirm`] checks before each operation that
//! the session still holds it.
//!
//! The store itself takes any number of writers (the sequencer orders
//! them), but the facade keeps indexes, per-patient chains and its tree's
//! size in process and would see another writer's entries as gaps. The
//! claim turns running a second writer into a typed error
//! ([`Error::WriterClaimed`]) instead of silent divergence.
//!
//! If the claim's session dies (server restart, `pg_terminate_backend`),
//! PostgreSQL releases the lock; the next `confirm` reconnects and takes it
//! again, or fails with [`Error::WriterClaimed`] if another process took it
//! meanwhile. A write already past its `confirm` when the session died can
//! still land after another process has claimed the schema: the claim
//! narrows that window to one operation, it is not a fencing token in the
//! log itself.

use std::sync::{Arc, Mutex};

use postgres::Client;

use crate::error::{Error, Result, Stage};
use crate::pool::Pool;
use crate::PgStore;

/// Seed of the advisory lock key (`hashtextextended(schema, seed)`); the
/// schema migration lock uses another seed.
const WRITER_LOCK_SEED: i64 = 7306;
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtextextended($1, $2))";
/// The claim's sessions show up under this name in `pg_stat_activity`.
pub const WRITER_APPLICATION_NAME: &str = "medledger-writer";

/// The claim of one schema's writer (see the module docs). Dropping it
/// closes its session, which releases the lock.
pub struct WriterClaim {
    pool: Arc<Pool>,
    schema: String,
    session: Mutex<Option<Client>>,
}

impl std::fmt::Debug for WriterClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterClaim")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Claims this schema's writer for the caller's lifetime of the
    /// returned [`WriterClaim`]: [`Error::WriterClaimed`] if another
    /// session holds it.
    pub fn claim_writer(&self) -> Result<WriterClaim> {
        let claim = WriterClaim {
            pool: Arc::clone(&self.pool),
            schema: self.schema.clone(),
            session: Mutex::new(None),
        };
        claim.confirm()?;
        Ok(claim)
    }
}

impl WriterClaim {
    /// Checks that this claim's session still holds the lock (one round
    /// trip); if the session is gone, reconnects and takes the lock again.
    pub fn confirm(&self) -> Result<()> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = session.as_mut() {
            if !client.is_closed() && client.simple_query("SELECT 1").is_ok() {
                return Ok(());
            }
        }
        *session = None;
        let mut client = self.pool.connect()?;
        let op = "claim the ledger's writer";
        client
            .batch_execute(&format!(
                "SET application_name = '{WRITER_APPLICATION_NAME}'"
            ))
            .map_err(|e| Error::from_pg(op, Stage::BeforeCommit, None, e))?;
        let held: bool = client
            .query_one(TRY_LOCK, &[&self.schema, &WRITER_LOCK_SEED])
            .and_then(|row| row.try_get(0))
            .map_err(|e| Error::from_pg(op, Stage::BeforeCommit, None, e))?;
        if !held {
            return Err(Error::WriterClaimed {
                schema: self.schema.clone(),
            });
        }
        *session = Some(client);
        Ok(())
    }
}
