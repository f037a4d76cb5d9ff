//! medledger's storage traits on PostgreSQL, so several application
//! servers share one ledger on a database the organization already
//! replicates, backs up and monitors.
//!
//! | trait | type | tables |
//! |---|---|---|
//! | [`medledger_store::EntryLog`] | [`PgEntryLog`] | `entries`, `nodes`, `log_head`, `batches` |
//! | [`medledger_chain::NodeStore`] | [`PgNodeStore`] | `nodes`, `log_head` |
//! | [`medledger_store::BlobStore`] | [`PgBlobStore`] | `blobs`, `blob_chunks` |
//! | [`medledger_store::StateStore`] | [`PgStateStore`] | `state_kv`, `state_meta`, `state_undo` |
//!
//! [`PgStore::open`] creates or migrates the schema ([`schema`]) and
//! hands out the four. The facade's `Ledger::open_postgres` (feature
//! `postgres` of the `medledger` crate) builds a ledger on them.
//!
//! # Example
//!
//! ```no_run
//! use medledger_postgres::{PgOptions, PgStore};
//! use medledger_store::EntryLog;
//!
//! let store = PgStore::open(
//!     "host=/run/postgresql user=medledger dbname=ledger",
//!     PgOptions::default(),
//! )?;
//! let range = store.entries().append_batch(&[b"grant", b"read"])?;
//! assert_eq!(range.end - range.start, 2);
//! let tree = store.merkle_log()?; // one tree, whichever server wrote
//! assert!(tree.size() >= 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Security notes
//!
//! - Ordering: every append locks the `log_head` row, so PostgreSQL hands
//!   out indexes with no gap and no duplicate across all processes, and a
//!   batch's Merkle nodes commit in the same transaction as its entries
//!   ([`sequencer`]).
//! - Retries: only SQLSTATE 40001/40P01, which PostgreSQL guarantees were
//!   rolled back. A connection lost during `COMMIT` is
//!   never retried (it may have committed): the entry log asks once, by
//!   the append's [`BatchToken`], whether it did, and answers "not written"
//!   only once nothing can still commit it (the lost backend ended and
//!   gone, or the head row lock held); if that is not certain within
//!   [`sequencer::OUTCOME_WAIT`], it is [`Error::OutcomeUnknown`]
//!   ([`PgEntryLog::batch_outcome`] resolves it later).
//! - Several writers take turns on the schema's writer lock
//!   ([`writer`]); each turn bumps `log_head.epoch` and
//!   `state_meta.epoch`, and a store whose turn has ended can neither
//!   append nor write state ([`Error::WriterFenced`]). Stores that take no
//!   turns are not fenced, and blob writes never are (a blob no state row
//!   references is collected).
//! - Durability is PostgreSQL's: an append is acknowledged after `COMMIT`
//!   returns, durable only with `synchronous_commit` on (the default) and
//!   `fsync` on. With synchronous replication it is also on a standby.
//! - Deletion: a deleted blob or state row stays as a dead tuple until
//!   `VACUUM`, in WAL, on replicas and in backups. Erasure is
//!   crypto-shredding (see [`blobs`]).
//! - Transport: the client is built without TLS (no OpenSSL). Connect over
//!   a Unix socket or a trusted network; put TLS in front (e.g. a local
//!   proxy) where the database is remote.
//! - The database is not trusted for integrity: the Merkle tree,
//!   checkpoints and witnesses catch a rewritten log, and tags on every
//!   state value and blob chunk catch misplaced or damaged rows.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod blobs;
mod entry_log;
mod entry_rows;
pub mod error;
pub mod nodes;
mod outcome;
mod pool;
pub mod schema;
pub mod sequencer;
pub mod state;
#[cfg(test)]
mod test_server;
pub mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use medledger_chain::{HashAlg, MerkleLog};

pub use blobs::PgBlobStore;
pub use error::{Error, Result};
pub use nodes::PgNodeStore;
pub use schema::SCHEMA_VERSION;
pub use sequencer::{BatchToken, PgEntryLog};
pub use state::PgStateStore;
pub use writer::{Turn, WriterClaim};

/// The PostgreSQL client this crate is built on (for callers that need a
/// plain connection with the same version, e.g. tests and tooling).
pub use postgres;

/// How to open a [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The PostgreSQL schema (namespace) holding this ledger's tables:
    /// `[a-z_][a-z0-9_]{0,62}`. Created if absent. Default `medledger`.
    pub schema: String,
    /// The log's hash algorithm, fixed when the schema is created.
    pub hash_alg: HashAlg,
    /// Most connections this process opens. Default 16.
    pub max_connections: usize,
    /// How long a caller waits for a free connection. Default 30 s.
    pub pool_wait: Duration,
    /// Concurrent appends share one transaction (default on; off only to
    /// measure the baseline).
    pub group_commit: bool,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: "medledger".into(),
            hash_alg: HashAlg::Blake3,
            max_connections: 16,
            pool_wait: Duration::from_secs(30),
            group_commit: true,
        }
    }
}

/// One ledger's stores on PostgreSQL, sharing one connection pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: Arc<pool::Pool>,
    schema: String,
    entries: Arc<PgEntryLog>,
    blobs: Arc<PgBlobStore>,
    state: Arc<PgStateStore>,
    alg: HashAlg,
}

impl PgStore {
    /// Connects to `url` (a `postgresql://` URL or a `key=value`
    /// connection string; a `host=` starting with `/` is a Unix socket
    /// directory), creates or migrates the schema, and checks the hash
    /// algorithm. Fails with [`Error::SchemaTooNew`] on a schema written by
    /// a newer build.
    pub fn open(url: &str, options: PgOptions) -> Result<Self> {
        let mut config = postgres::Config::from_str(url).map_err(|e| Error::InvalidUrl {
            source: Arc::new(e),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("medledger");
        let pool = Arc::new(pool::Pool::new(
            config,
            &options.schema,
            options.max_connections,
            options.pool_wait,
        )?);
        {
            let mut client = pool.connect()?;
            schema::prepare(&mut client, &options.schema, options.hash_alg)?;
        }
        let entries = Arc::new(PgEntryLog::new(
            Arc::clone(&pool),
            options.hash_alg,
            options.group_commit,
        ));
        Ok(PgStore {
            // The state store shares the entry log's writer fence.
            state: Arc::new(PgStateStore::new(Arc::clone(&pool), entries.fence())),
            entries,
            blobs: Arc::new(PgBlobStore::new(Arc::clone(&pool))),
            pool,
            schema: options.schema,
            alg: options.hash_alg,
        })
    }

    /// The entry log.
    pub fn entries(&self) -> &Arc<PgEntryLog> {
        &self.entries
    }

    /// A node store over the node hashes kept in `nodes`.
    pub fn nodes(&self) -> PgNodeStore {
        PgNodeStore::new(Arc::clone(&self.pool))
    }

    /// The Merkle tree as committed now (reads the O(log n) frontier).
    pub fn merkle_log(&self) -> Result<MerkleLog<PgNodeStore>, medledger_chain::Error> {
        MerkleLog::open(self.alg, self.nodes())
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<PgBlobStore> {
        &self.blobs
    }

    /// The state store.
    pub fn state(&self) -> &Arc<PgStateStore> {
        &self.state
    }

    /// The log's hash algorithm.
    pub fn hash_alg(&self) -> HashAlg {
        self.alg
    }
}
