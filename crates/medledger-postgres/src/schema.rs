//! The tables, their creation, and schema versioning.
//!
//! Everything lives in one PostgreSQL schema (namespace) per ledger, named
//! by [`crate::PgOptions::schema`]. Version 1:
//!
//! ```text
//! schema_version (id smallint PK = 0, version integer)
//! log_head      (id smallint PK = 0, entries bigint, leaves bigint, hash_alg smallint)
//! entries       (idx bigint PK, body bytea, hashes bytea)        one row per leaf: the entry and the
//!                                                                node hashes appending it stored
//! batches       (token bytea PK, start bigint, count integer)    one row per append transaction
//! blobs         (gen bigserial PK, id bytea UNIQUE, referenced boolean, length bigint, chunks integer)
//! blob_chunks   (gen bigint FK blobs ON DELETE CASCADE, no integer, data bytea, tag bytea, PK (gen, no))
//! state_meta    (id smallint PK = 0, stamp bigint NULL, undo_seq bigint)
//! state_kv      (tbl text, key bytea, value bytea, PK (tbl, key))
//! state_undo    (idx bigint, seq bigint, step integer, tbl text NULL, key bytea NULL,
//!                old bytea NULL, stamp bigint NULL, PK (idx, seq, step))
//! ```
//!
//! Creation and migration run in one transaction under an advisory lock
//! keyed by the schema name, so servers starting together do not race. A
//! version above [`SCHEMA_VERSION`] is refused with
//! [`Error::SchemaTooNew`]: an older build never writes to a newer layout.

use medledger_chain::HashAlg;
use postgres::Client;

use crate::error::{Error, Result, Stage};

/// The schema version this build creates and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// Version 1's tables (the schema is the connection's `search_path`).
const V1: &str = "
CREATE TABLE log_head (
    id smallint PRIMARY KEY CHECK (id = 0),
    entries bigint NOT NULL CHECK (entries >= 0),
    leaves bigint NOT NULL CHECK (leaves >= 0),
    hash_alg smallint NOT NULL
);
CREATE TABLE entries (
    idx bigint PRIMARY KEY,
    body bytea,
    hashes bytea NOT NULL CHECK (length(hashes) >= 32 AND length(hashes) % 32 = 0)
);
CREATE TABLE batches (token bytea PRIMARY KEY, start bigint NOT NULL, count integer NOT NULL);
CREATE TABLE blobs (
    gen bigserial PRIMARY KEY,
    id bytea NOT NULL UNIQUE CHECK (length(id) = 32),
    referenced boolean NOT NULL DEFAULT false,
    length bigint NOT NULL,
    chunks integer NOT NULL
);
CREATE TABLE blob_chunks (
    gen bigint NOT NULL REFERENCES blobs (gen) ON DELETE CASCADE,
    no integer NOT NULL,
    data bytea NOT NULL,
    tag bytea NOT NULL,
    PRIMARY KEY (gen, no)
);
-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE state_meta (
    id smallint PRIMARY KEY CHECK (id = 0),
    stamp bigint,
    undo_seq bigint NOT NULL
);
INSERT INTO state_meta (id, stamp, undo_seq) VALUES (0, NULL, 0);
CREATE TABLE state_kv (tbl text NOT NULL, key bytea NOT NULL, value bytea NOT NULL, PRIMARY KEY (tbl, key));
CREATE TABLE state_undo (
    idx bigint NOT NULL,
    seq bigint NOT NULL,
    step integer NOT NULL,
    tbl text,
    key bytea,
    old bytea,
    stamp bigint,
    PRIMARY KEY (idx, seq, step)
);
";

fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> Error {
    move |e| Error::from_pg(op, Stage::BeforeCommit, None, e)
}

/// Creates or migrates `schema` and checks the log's hash algorithm. Runs
/// on a connection without `search_path` set.
pub(crate) fn prepare(client: &mut Client, schema: &str, alg: HashAlg) -> Result<()> {
    let op = "create schema";
    let mut tx = client.transaction().map_err(pg(op))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 7305))",
        &[&format!("medledger:{schema}")],
    )
    .map_err(pg(op))?;
    // `schema` passed `check_schema`: quoting it is exact.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\";
         CREATE TABLE IF NOT EXISTS schema_version (id smallint PRIMARY KEY CHECK (id = 0), version integer NOT NULL);"
    ))
    .map_err(pg(op))?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM schema_version WHERE id = 0", &[])
        .map_err(pg(op))?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(pg(op))?;
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(Error::SchemaTooNew {
                schema: schema.to_owned(),
                found: v,
                supported: SCHEMA_VERSION,
            })
        }
        Some(v) if v < 1 => {
            return Err(Error::Inconsistent {
                what: "schema_version",
                reason: format!("version {v} was never written by medledger"),
            })
        }
        Some(_) => {}
        None => {
            tx.batch_execute(V1).map_err(pg(op))?;
            tx.execute(
                "INSERT INTO log_head (id, entries, leaves, hash_alg) VALUES (0, 0, 0, $1)",
                &[&i16::from(alg.id())],
            )
            .map_err(pg(op))?;
            tx.execute(
                "INSERT INTO schema_version (id, version) VALUES (0, $1)",
                &[&SCHEMA_VERSION],
            )
            .map_err(pg(op))?;
        }
    }
    let stored: i16 = tx
        .query_one("SELECT hash_alg FROM log_head WHERE id = 0", &[])
        .and_then(|r| r.try_get(0))
        .map_err(pg(op))?;
    if stored != i16::from(alg.id()) {
        return Err(Error::HashAlgMismatch {
            stored,
            requested: alg,
        });
    }
    tx.commit()
        .map_err(|e| Error::from_pg(op, Stage::Commit, None, e))
}
