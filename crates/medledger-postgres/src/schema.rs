//! The tables, their creation, and schema versioning.
//!
//! Everything lives in one PostgreSQL schema (namespace) per ledger, named
//! by [`crate::PgOptions::schema`]. Version 4:
//!
//! ```text
//! schema_version (id smallint PK = 0, version integer)
//! log_head      (id smallint PK = 0, entries bigint, leaves bigint, hash_alg smallint,
//!                epoch bigint DEFAULT 0)                         the writer epoch (version 2)
//! entries       (idx bigint PK, body bytea NOT NULL, hashes bytea NULL)
//!                                                                one row per entry, with the node hashes
//!                                                                its leaf stored if its append was small
//! nodes         (pos bigint PK, hashes bytea STORAGE PLAIN)      runs of ≤ 240 node hashes in stored-hash
//!                                                                order, from position pos (version 3)
//! batches       (token bytea PK, start bigint, count integer)    one row per append transaction
//! blobs         (gen bigserial PK, id bytea UNIQUE, referenced boolean, length bigint, chunks integer)
//! blob_chunks   (gen bigint FK blobs ON DELETE CASCADE, no integer, data bytea, tag bytea, PK (gen, no))
//! state_meta    (id smallint PK = 0, stamp bigint NULL, undo_seq bigint,
//!                epoch bigint DEFAULT 0)                         the writer epoch state writes are
//!                                                                fenced with (version 4)
//! state_kv      (tbl text, key bytea, value bytea, PK (tbl, key))
//! state_undo    (idx bigint, seq bigint, step integer, tbl text NULL, key bytea NULL,
//!                old bytea NULL, stamp bigint NULL, PK (idx, seq, step))
//! ```
//!
//! Version 2 added `log_head.epoch`, the writer epoch a store that takes
//! writer turns fences its appends with ([`crate::writer`]); a version 1
//! schema is migrated in place (`ALTER TABLE … ADD COLUMN`, epoch 0).
//!
//! Version 3 moved the node hashes of appends of 64 entries or more out
//! of the entry rows into `nodes` (see [`crate::nodes`] for the layout and
//! how a node is found): their entry rows are `(idx, body)` with `hashes`
//! NULL. Migrating a version 2 schema leaves the entry rows' `hashes` where
//! they are (they read as before), turns the rows without a body (written
//! by a node store used without an entry log) into one run each, at
//! position `2·idx − popcount(idx)`, deletes them, and makes `hashes`
//! nullable and `body` not.
//!
//! Version 4 added `state_meta.epoch`: each take that bumps
//! `log_head.epoch` sets it to the new epoch in the same transaction, and
//! a store that takes turns writes state only while it equals its turn
//! ([`crate::writer`]). Migrating a version 3 (or older, through the
//! chain) schema adds the column with the head's current epoch.
//!
//! Creation and migration run in one transaction under an advisory lock
//! keyed by the schema name, so servers starting together do not race. A
//! version above [`SCHEMA_VERSION`] is refused with
//! [`Error::SchemaTooNew`]: an older build never writes to a newer layout
//! (so a build without the fence cannot append to a fenced schema).

use medledger_chain::HashAlg;
use postgres::Client;

use crate::error::{Error, Result, Stage};

/// The schema version this build creates and reads.
pub const SCHEMA_VERSION: i32 = 4;

/// Version 1's tables (the schema is the connection's `search_path`); a
/// new schema is created as version 1, then migrated.
pub(crate) const V1: &str = "
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

/// Version 1 to version 2: the writer epoch.
const V1_TO_V2: &str =
    "ALTER TABLE log_head ADD COLUMN epoch bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0)";

/// Version 2 to version 3: node hashes of large appends in runs of their
/// own ([`crate::nodes`]); the entry rows keep theirs.
const V2_TO_V3: &str = "
CREATE TABLE nodes (
    pos bigint PRIMARY KEY CHECK (pos >= 0),
    hashes bytea NOT NULL CHECK (length(hashes) BETWEEN 32 AND 7680 AND length(hashes) % 32 = 0)
);
ALTER TABLE nodes ALTER COLUMN hashes SET STORAGE PLAIN;
INSERT INTO nodes (pos, hashes) SELECT 2 * idx - bit_count(idx::bit(64)), hashes FROM entries WHERE body IS NULL;
DELETE FROM entries WHERE body IS NULL;
ALTER TABLE entries ALTER COLUMN hashes DROP NOT NULL;
ALTER TABLE entries ALTER COLUMN body SET NOT NULL;
";

/// Version 3 to version 4: the writer epoch state writes are fenced
/// with, starting at the head's (0 while `log_head` has no row yet).
const V3_TO_V4: &str = "
ALTER TABLE state_meta ADD COLUMN epoch bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0);
UPDATE state_meta SET epoch = COALESCE((SELECT epoch FROM log_head WHERE id = 0), 0);
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
        Some(v @ 1..=3) => {
            if v == 1 {
                tx.batch_execute(V1_TO_V2).map_err(pg(op))?;
            }
            if v <= 2 {
                tx.batch_execute(V2_TO_V3).map_err(pg(op))?;
            }
            tx.batch_execute(V3_TO_V4).map_err(pg(op))?;
            tx.execute(
                "UPDATE schema_version SET version = $1 WHERE id = 0",
                &[&SCHEMA_VERSION],
            )
            .map_err(pg(op))?;
        }
        Some(_) => {}
        None => {
            tx.batch_execute(V1).map_err(pg(op))?;
            tx.batch_execute(V1_TO_V2).map_err(pg(op))?;
            tx.batch_execute(V2_TO_V3).map_err(pg(op))?;
            tx.batch_execute(V3_TO_V4).map_err(pg(op))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_store::EntryLog;

    use crate::test_server::connect;

    fn url() -> Option<String> {
        crate::test_server::url("schema migration tests")
    }

    fn version(c: &mut Client, schema: &str) -> i32 {
        c.query_one(
            &format!("SELECT version FROM \"{schema}\".schema_version WHERE id = 0"),
            &[],
        )
        .unwrap()
        .get(0)
    }

    fn state_epoch(c: &mut Client, schema: &str) -> i64 {
        c.query_one(
            &format!("SELECT epoch FROM \"{schema}\".state_meta WHERE id = 0"),
            &[],
        )
        .unwrap()
        .get(0)
    }

    /// Recreates `schema` as a build of `version` left it: `ddl` (that
    /// version's tables), then `version` in `schema_version`; the
    /// connection's `search_path` is left on it.
    fn old_schema(c: &mut Client, schema: &str, ddl: &str, version: i32) {
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE;
             CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\";
             CREATE TABLE schema_version (id smallint PRIMARY KEY CHECK (id = 0), version integer NOT NULL);
             {ddl};
             INSERT INTO schema_version (id, version) VALUES (0, {version});"
        ))
        .unwrap();
    }

    #[test]
    fn a_new_schema_has_the_state_epoch() {
        let Some(url) = url() else { return };
        let schema = format!("t_new_{}", std::process::id());
        let mut c = connect(&url);
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .unwrap();
        let options = crate::PgOptions {
            schema: schema.clone(),
            ..crate::PgOptions::default()
        };
        drop(crate::PgStore::open(&url, options).unwrap());
        assert_eq!(version(&mut c, &schema), SCHEMA_VERSION);
        assert_eq!(state_epoch(&mut c, &schema), 0);
        c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .unwrap();
    }

    #[test]
    fn a_version_3_schema_gets_the_state_epoch_of_its_head() {
        use medledger_store::StateStore;
        let Some(url) = url() else { return };
        let schema = format!("t_v3_{}", std::process::id());
        let mut c = connect(&url);
        // A version 3 schema whose writers took 7 turns, with a state row.
        old_schema(&mut c, &schema, &format!("{V1} {V1_TO_V2}; {V2_TO_V3}"), 3);
        c.batch_execute("UPDATE state_meta SET stamp = 4, undo_seq = 2")
            .unwrap();
        c.execute(
            "INSERT INTO log_head (id, entries, leaves, hash_alg, epoch) VALUES (0, 0, 0, $1, 7)",
            &[&i16::from(HashAlg::Blake3.id())],
        )
        .unwrap();
        c.batch_execute("RESET search_path").unwrap();
        let options = crate::PgOptions {
            schema: schema.clone(),
            ..crate::PgOptions::default()
        };
        let store = crate::PgStore::open(&url, options).unwrap();
        assert_eq!(version(&mut c, &schema), SCHEMA_VERSION);
        assert_eq!(state_epoch(&mut c, &schema), 7);
        assert_eq!(store.state().log_index().unwrap(), Some(4));
        // A take bumps both epochs, and state writes under it succeed.
        let turn = store.writer().take(std::time::Duration::ZERO).unwrap();
        assert_eq!((turn.epoch, turn.resumed), (8, false));
        assert_eq!(state_epoch(&mut c, &schema), 8);
        store
            .state()
            .transact(Some(5), &mut |t| t.put("t", b"k", b"v"))
            .unwrap();
        assert_eq!(store.state().get("t", b"k").unwrap(), Some(b"v".to_vec()));
        drop(store);
        c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .unwrap();
    }

    #[test]
    fn a_version_1_schema_is_migrated_to_the_current_version_and_a_newer_one_refused() {
        let Some(url) = url() else { return };
        let schema = format!("t_v1_{}", std::process::id());
        let mut c = connect(&url);
        // A schema exactly as a version 1 build left it, with two entries
        // appended through the v1 statements' columns.
        old_schema(&mut c, &schema, V1, 1);
        c.execute(
            "INSERT INTO log_head (id, entries, leaves, hash_alg) VALUES (0, 0, 0, $1)",
            &[&i16::from(HashAlg::Blake3.id())],
        )
        .unwrap();
        let has_epoch = |c: &mut Client| -> bool {
            c.query_one(
                "SELECT count(*) FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = 'log_head' AND column_name = 'epoch'",
                &[&schema],
            )
            .unwrap()
            .get::<_, i64>(0)
                == 1
        };
        assert!(!has_epoch(&mut c));
        c.batch_execute("RESET search_path").unwrap();

        let options = crate::PgOptions {
            schema: schema.clone(),
            ..crate::PgOptions::default()
        };
        let store = crate::PgStore::open(&url, options.clone()).unwrap();
        assert_eq!(version(&mut c, &schema), SCHEMA_VERSION);
        assert!(has_epoch(&mut c));
        let epoch: i64 = c
            .query_one(&format!("SELECT epoch FROM \"{schema}\".log_head"), &[])
            .unwrap()
            .get(0);
        assert_eq!(epoch, 0);
        assert_eq!(state_epoch(&mut c, &schema), 0);
        // The migrated schema works: appends, and a turn bumps the epoch.
        assert_eq!(store.entries().append_batch(&[b"a", b"b"]).unwrap(), 0..2);
        let turn = store.writer().take(std::time::Duration::ZERO).unwrap();
        assert_eq!((turn.epoch, turn.entries, turn.resumed), (1, 2, false));
        assert_eq!(store.entries().append(b"c").unwrap(), 2);
        assert_eq!(
            state_epoch(&mut c, &schema),
            1,
            "the take set the state epoch too"
        );
        drop(store);
        // Opening again leaves the version as it is.
        drop(crate::PgStore::open(&url, options.clone()).unwrap());
        assert_eq!(version(&mut c, &schema), SCHEMA_VERSION);

        // A version 5 row (a newer build) is refused.
        c.execute(
            &format!("UPDATE \"{schema}\".schema_version SET version = 5"),
            &[],
        )
        .unwrap();
        let e = crate::PgStore::open(&url, options).unwrap_err();
        assert!(
            matches!(
                &e,
                Error::SchemaTooNew {
                    found: 5,
                    supported: 4,
                    ..
                }
            ),
            "{e:?}"
        );
        c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .unwrap();
    }

    /// The hashes appending leaf `i` stored (its leaf, then one node per
    /// trailing one bit), as a version 1 or 2 entry row held them.
    fn v2_row_hashes(
        mem: &medledger_chain::MerkleLog<medledger_chain::MemoryNodeStore>,
        i: u64,
    ) -> Vec<u8> {
        use medledger_chain::{NodeId, NodeStore};
        let ids: Vec<NodeId> = (0..=i.trailing_ones())
            .map(|l| NodeId::new(l as u8, i >> l))
            .collect();
        mem.store()
            .get(&ids)
            .unwrap()
            .iter()
            .flat_map(|h| h.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn a_version_2_schema_with_entries_is_migrated_and_reads_identically() {
        use medledger_chain::{MerkleLog, NodeId, NodeStore};
        let Some(url) = url() else { return };
        let schema = format!("t_v2_{}", std::process::id());
        let mut c = connect(&url);
        old_schema(&mut c, &schema, &format!("{V1} {V1_TO_V2}"), 2);
        // 77 entries as version 2 wrote them: each row with its leaf's
        // stored hashes, one `batches` row, the head.
        let alg = HashAlg::Sha256;
        let n = 77u64;
        let bodies: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
        let mut mem = MerkleLog::in_memory(alg);
        mem.append_batch(bodies.iter()).unwrap();
        for (i, body) in bodies.iter().enumerate() {
            c.execute(
                "INSERT INTO entries (idx, body, hashes) VALUES ($1, $2, $3)",
                &[&(i as i64), body, &v2_row_hashes(&mem, i as u64)],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO batches (token, start, count) VALUES ($1, 0, 77)",
            &[&vec![7u8; 16]],
        )
        .unwrap();
        c.execute(
            "INSERT INTO log_head (id, entries, leaves, hash_alg, epoch) VALUES (0, 77, 77, $1, 0)",
            &[&i16::from(alg.id())],
        )
        .unwrap();
        c.batch_execute("RESET search_path").unwrap();

        let options = crate::PgOptions {
            schema: schema.clone(),
            hash_alg: alg,
            ..crate::PgOptions::default()
        };
        let store = crate::PgStore::open(&url, options.clone()).unwrap();
        assert_eq!(version(&mut c, &schema), SCHEMA_VERSION);
        let runs: i64 = c
            .query_one(&format!("SELECT count(*) FROM \"{schema}\".nodes"), &[])
            .unwrap()
            .get(0);
        assert_eq!(runs, 0, "the entry rows keep their hashes");
        // Every node, every root and the entries read as before.
        let all: Vec<NodeId> = (0u8..7)
            .flat_map(|l| (0..n >> l).map(move |i| NodeId::new(l, i)))
            .collect();
        assert_eq!(
            store.nodes().get(&all).unwrap(),
            mem.store().get(&all).unwrap()
        );
        assert_eq!(store.entries().read_range(0..n).unwrap(), bodies);
        assert_eq!(
            store
                .entries()
                .batch_outcome(&crate::BatchToken([7; 16]))
                .unwrap(),
            Some(0..77)
        );
        let tree = store.merkle_log().unwrap();
        assert_eq!(tree.size(), n);
        for size in [1, 2, 63, 64, 76, 77] {
            assert_eq!(tree.root_at(size).unwrap(), mem.root_at(size).unwrap());
        }
        // Appends continue in the new layout, across the migrated rows.
        let more: Vec<Vec<u8>> = (n..n + 300)
            .map(|i| format!("entry {i}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = more.iter().map(Vec::as_slice).collect();
        assert_eq!(store.entries().append_batch(&refs).unwrap(), n..n + 300);
        mem.append_batch(refs.iter()).unwrap();
        let tree = store.merkle_log().unwrap();
        assert_eq!(tree.root(), mem.root());
        assert_eq!(
            tree.inclusion_proof(5, n + 300).unwrap(),
            mem.inclusion_proof(5, n + 300).unwrap()
        );
        drop(store);
        c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .unwrap();
    }

    #[test]
    fn a_version_2_node_store_used_alone_is_migrated_to_runs() {
        use medledger_chain::{MerkleLog, NodeId, NodeStore};
        let Some(url) = url() else { return };
        let schema = format!("t_v2alone_{}", std::process::id());
        let mut c = connect(&url);
        old_schema(&mut c, &schema, &format!("{V1} {V1_TO_V2}"), 2);
        // 21 leaves' nodes as a version 2 node store alone wrote them: rows
        // without a body, the head's `leaves` moved, `entries` not.
        let alg = HashAlg::Blake3;
        let n = 21u64;
        let mut mem = MerkleLog::in_memory(alg);
        mem.append_batch((0..n).map(|i| i.to_le_bytes())).unwrap();
        for i in 0..n {
            c.execute(
                "INSERT INTO entries (idx, body, hashes) VALUES ($1, NULL, $2)",
                &[&(i as i64), &v2_row_hashes(&mem, i)],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO log_head (id, entries, leaves, hash_alg, epoch) VALUES (0, 0, 21, $1, 0)",
            &[&i16::from(alg.id())],
        )
        .unwrap();
        c.batch_execute("RESET search_path").unwrap();
        let store = crate::PgStore::open(
            &url,
            crate::PgOptions {
                schema: schema.clone(),
                hash_alg: alg,
                ..crate::PgOptions::default()
            },
        )
        .unwrap();
        let count = |c: &mut Client, table: &str| -> i64 {
            c.query_one(&format!("SELECT count(*) FROM \"{schema}\".{table}"), &[])
                .unwrap()
                .get(0)
        };
        assert_eq!((count(&mut c, "entries"), count(&mut c, "nodes")), (0, 21));
        let all: Vec<NodeId> = (0u8..5)
            .flat_map(|l| (0..n >> l).map(move |i| NodeId::new(l, i)))
            .collect();
        assert_eq!(
            store.nodes().get(&all).unwrap(),
            mem.store().get(&all).unwrap()
        );
        let tree = store.merkle_log().unwrap();
        assert_eq!((tree.size(), tree.root()), (n, mem.root()));
        drop(store);
        c.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .unwrap();
    }
}
