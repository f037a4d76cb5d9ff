//! Shared by the PostgreSQL tests: the server from `MEDLEDGER_PG_URL`
//! (started by `scripts/pg-test-cluster`), and one fresh schema per test.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use std::time::Duration;

use medledger_chain::HashAlg;
use medledger_postgres::{Error, PgOptions, PgStore, Turn};

/// The server's connection string, or `None` after saying loudly that the
/// test is skipped.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("MEDLEDGER_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "\n*** SKIPPED {test}: MEDLEDGER_PG_URL is not set; start a server with \
                 `eval \"$(scripts/pg-test-cluster start)\"` to run the PostgreSQL tests ***\n"
            );
            None
        }
    }
}

/// A schema name no other test (or earlier run) uses.
pub fn fresh_schema(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t_{tag}_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn options(schema: &str, alg: HashAlg) -> PgOptions {
    PgOptions {
        schema: schema.to_owned(),
        hash_alg: alg,
        ..PgOptions::default()
    }
}

/// A store in a fresh schema.
pub fn store(url: &str, tag: &str, alg: HashAlg) -> (String, PgStore) {
    let schema = fresh_schema(tag);
    let s = PgStore::open(url, options(&schema, alg)).unwrap();
    (schema, s)
}

/// A plain client (for raw SQL in tests).
pub fn client(url: &str) -> postgres::Client {
    url.parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap()
}

/// Drops a test's schema.
pub fn drop_schema(url: &str, schema: &str) {
    let _ = client(url).batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
}

/// A take that does not wait.
pub const NO_WAIT: Duration = Duration::ZERO;
/// A take that waits a little.
pub const SHORT: Duration = Duration::from_millis(100);

/// Another store on `schema` (another process, as far as the server can
/// tell: its own connections and writer session).
pub fn open(url: &str, schema: &str) -> PgStore {
    PgStore::open(url, options(schema, HashAlg::Blake3)).unwrap()
}

/// The fence error inside a store error, as (ours, current).
pub fn fenced<T: std::fmt::Debug>(r: medledger_store::Result<T>) -> (u64, u64) {
    let e = r.unwrap_err();
    match Error::in_store_error(&e) {
        Some(Error::WriterFenced { ours, current, .. }) => (*ours, *current),
        other => panic!("expected WriterFenced, got {other:?} ({e})"),
    }
}

/// A `Turn`.
pub fn turn(epoch: u64, entries: u64, resumed: bool) -> Turn {
    Turn {
        epoch,
        entries,
        resumed,
    }
}
