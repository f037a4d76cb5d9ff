//! The test server of this crate's unit tests (`MEDLEDGER_PG_URL`, from
//! `scripts/pg-test-cluster`): its URL, plain clients, and dropping a
//! test's schema.

use postgres::Client;

/// The server's URL, or `None` after saying loudly that `what` is skipped.
pub(crate) fn url(what: &str) -> Option<String> {
    let url = std::env::var("MEDLEDGER_PG_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("\n*** SKIPPED {what}: MEDLEDGER_PG_URL is not set ***\n");
    }
    url
}

/// A plain client on the test server.
pub(crate) fn connect(url: &str) -> Client {
    url.parse::<postgres::Config>()
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap()
}

/// Drops a test's schema.
pub(crate) fn drop_schema(url: &str, schema: &str) {
    connect(url)
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .unwrap();
}
