//! A small blocking connection pool, each connection with its prepared
//! statements, and the one place transactions are run and retried.
//!
//! Deliberately small (a `Mutex<Vec<Conn>>` and a `Condvar`) rather than a
//! general pool: every connection is set to the store's schema on connect,
//! caches its prepared statements, and is dropped, with every idle one,
//! the moment any connection is found lost, so a restarted server costs one
//! typed error, not one per stale pooled connection.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, SimpleQueryMessage, SimpleQueryRow, Statement};

use crate::error::{Error, Result, Stage};

/// How often a transaction PostgreSQL rolled back with 40001/40P01 is run
/// in all before [`Error::Conflict`] is returned.
pub(crate) const MAX_ATTEMPTS: u32 = 8;

/// The server process behind a connection: its pid and start time (the
/// pair names it even after the pid is reused). The entry log asks whether
/// a lost connection's backend is gone before it says that a commit in
/// flight did not happen (see [`crate::sequencer`], "Failures").
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Backend {
    /// `pg_backend_pid()`.
    pub(crate) pid: i32,
    /// `pg_stat_activity.backend_start`, as text.
    pub(crate) started: String,
}

/// One open connection and its prepared statements.
pub(crate) struct Conn {
    pub(crate) client: Client,
    /// Its server process, if the server said.
    pub(crate) backend: Option<Backend>,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// The prepared statement for `sql` (prepared once per connection).
    pub(crate) fn prepare(&mut self, op: &'static str, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(sql)
            .map_err(|e| Error::from_pg(op, Stage::BeforeCommit, None, e))?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }
}

struct Slots {
    idle: Vec<Conn>,
    /// Connections checked out or idle.
    open: usize,
    /// Bumped whenever a connection is found lost: older idle ones are
    /// not handed out again.
    generation: u64,
}

/// The pool: up to `max` connections to one schema.
pub(crate) struct Pool {
    config: postgres::Config,
    schema: String,
    max: usize,
    wait: Duration,
    slots: Mutex<Slots>,
    freed: Condvar,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold a password: not printed.
        f.debug_struct("Pool")
            .field("schema", &self.schema)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// A checked-out connection; back to the pool on drop unless lost.
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    generation: u64,
    lost: bool,
}

impl Pooled<'_> {
    /// The connection (present until the guard is dropped).
    pub(crate) fn conn(&mut self) -> Result<&mut Conn> {
        self.conn.as_mut().ok_or(Error::Inconsistent {
            what: "connection pool",
            reason: "connection used after release".into(),
        })
    }

    /// Records that `e` happened on this connection: a lost connection is
    /// dropped, with every idle one.
    pub(crate) fn saw(&mut self, e: &Error) {
        if e.connection_gone() {
            self.lost = true;
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut g = self.pool.lock();
        if self.lost || conn.client.is_closed() {
            g.generation = g.generation.wrapping_add(1);
            let stale = std::mem::take(&mut g.idle);
            g.open = g.open.saturating_sub(1 + stale.len());
            drop(g);
            drop(stale);
            drop(conn);
        } else if self.generation == g.generation {
            g.idle.push(conn);
        } else {
            g.open = g.open.saturating_sub(1);
        }
        self.pool.freed.notify_one();
    }
}

/// Checks a schema name: `[a-z_][a-z0-9_]{0,62}` (safe to quote).
pub(crate) fn check_schema(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes().first().is_some_and(u8::is_ascii_digit);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSchemaName {
            name: name.chars().take(80).collect(),
        })
    }
}

impl Pool {
    pub(crate) fn new(
        config: postgres::Config,
        schema: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Self> {
        check_schema(schema)?;
        Ok(Pool {
            config,
            schema: schema.to_owned(),
            max: max.max(1),
            wait,
            slots: Mutex::new(Slots {
                idle: Vec::new(),
                open: 0,
                generation: 0,
            }),
            freed: Condvar::new(),
        })
    }

    /// Forgets every idle connection (and, as they come back, the checked
    /// out ones): a connection to the same server was found lost, so they
    /// are likely dead too (a restarted server costs one error, not one
    /// per pooled connection).
    pub(crate) fn discard_idle(&self) {
        let mut g = self.lock();
        g.generation = g.generation.wrapping_add(1);
        let stale = std::mem::take(&mut g.idle);
        g.open = g.open.saturating_sub(stale.len());
        drop(g);
        drop(stale);
        self.freed.notify_all();
    }

    /// The schema this pool's connections use.
    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh connection with `search_path` set to the schema.
    pub(crate) fn connect(&self) -> Result<Client> {
        self.open().map(|(client, _)| client)
    }

    /// [`Pool::connect`], and the connection's backend, in the same round
    /// trip.
    fn open(&self) -> Result<(Client, Option<Backend>)> {
        let mut client = self.config.connect(NoTls).map_err(|e| Error::Connect {
            source: std::sync::Arc::new(e),
        })?;
        // The name was checked by `check_schema`, so quoting is exact.
        let messages = client
            .simple_query(&format!(
                "SET search_path TO \"{}\"; SELECT pid, backend_start::text \
                 FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                self.schema
            ))
            .map_err(|e| Error::from_pg("set search_path", Stage::BeforeCommit, None, e))?;
        let backend = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(Backend {
                pid: r.get(0)?.parse().ok()?,
                started: r.get(1)?.to_owned(),
            }),
            _ => None,
        });
        Ok((client, backend))
    }

    /// Checks out a connection, opening one if none is idle.
    pub(crate) fn get(&self) -> Result<Pooled<'_>> {
        let start = Instant::now();
        let mut g = self.lock();
        loop {
            if let Some(conn) = g.idle.pop() {
                let generation = g.generation;
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                    generation,
                    lost: false,
                });
            }
            if g.open < self.max {
                g.open += 1;
                let generation = g.generation;
                drop(g);
                return match self.open() {
                    Ok((client, backend)) => Ok(Pooled {
                        pool: self,
                        conn: Some(Conn {
                            client,
                            backend,
                            statements: HashMap::new(),
                        }),
                        generation,
                        lost: false,
                    }),
                    Err(e) => {
                        let mut g = self.lock();
                        g.open = g.open.saturating_sub(1);
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let waited = start.elapsed();
            let Some(left) = self.wait.checked_sub(waited).filter(|d| !d.is_zero()) else {
                return Err(Error::PoolExhausted {
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                    max: self.max,
                });
            };
            g = self
                .freed
                .wait_timeout(g, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Runs `body` in one transaction and commits it, running it again
    /// (up to [`MAX_ATTEMPTS`] in all) only when PostgreSQL rolled it back
    /// with 40001/40P01. `body` gets the connection with `BEGIN` sent; it
    /// must not commit. `batch` names an entry-log batch for
    /// [`Error::OutcomeUnknown`].
    pub(crate) fn transaction<T>(
        &self,
        op: &'static str,
        batch: Option<crate::BatchToken>,
        body: &mut dyn FnMut(&mut Conn) -> Result<T>,
    ) -> Result<T> {
        self.transaction_from(op, batch, "BEGIN", &mut |conn, _| body(conn))
    }

    /// [`Pool::transaction`], with `begin` (`"BEGIN; <one statement>"`)
    /// sent as one simple query, so the transaction's first statement
    /// costs no extra round trip; `body` gets its rows (as text).
    pub(crate) fn transaction_from<T>(
        &self,
        op: &'static str,
        batch: Option<crate::BatchToken>,
        begin: &'static str,
        body: &mut dyn FnMut(&mut Conn, Vec<SimpleQueryRow>) -> Result<T>,
    ) -> Result<T> {
        self.transaction_tracked(op, batch, begin, &mut None, body)
    }

    /// [`Pool::transaction_from`], leaving in `used` the backend of the
    /// connection the last attempt ran on (to settle an unknown outcome).
    pub(crate) fn transaction_tracked<T>(
        &self,
        op: &'static str,
        batch: Option<crate::BatchToken>,
        begin: &'static str,
        used: &mut Option<Backend>,
        body: &mut dyn FnMut(&mut Conn, Vec<SimpleQueryRow>) -> Result<T>,
    ) -> Result<T> {
        let mut attempt = 1u32;
        loop {
            let mut pooled = self.get()?;
            let r = pooled.conn().and_then(|conn| {
                used.clone_from(&conn.backend);
                run_once(conn, op, batch, begin, body)
            });
            if let Err(e) = &r {
                pooled.saw(e);
            }
            drop(pooled);
            match r {
                Err(Error::Conflict { .. }) if attempt < MAX_ATTEMPTS => {
                    // Back off a little, growing, so contenders spread out.
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 2));
                    attempt += 1;
                }
                Err(Error::Conflict { sqlstate, .. }) => {
                    return Err(Error::Conflict {
                        op,
                        sqlstate,
                        attempts: attempt,
                    })
                }
                other => return other,
            }
        }
    }
}

/// One attempt: `begin`, `body`, `COMMIT` (or `ROLLBACK` on error).
fn run_once<T>(
    conn: &mut Conn,
    op: &'static str,
    batch: Option<crate::BatchToken>,
    begin: &str,
    body: &mut dyn FnMut(&mut Conn, Vec<SimpleQueryRow>) -> Result<T>,
) -> Result<T> {
    let rows = conn
        .client
        .simple_query(begin)
        .map_err(|e| Error::from_pg(op, Stage::BeforeCommit, batch, e))?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    match body(conn, rows) {
        Ok(v) => {
            conn.client
                .batch_execute("COMMIT")
                .map_err(|e| Error::from_pg(op, Stage::Commit, batch, e))?;
            Ok(v)
        }
        Err(e) => {
            if !e.connection_gone() {
                // A failed rollback leaves the client closed, so the pool
                // drops it; the original error is the one to report.
                let _ = conn.client.batch_execute("ROLLBACK");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool on the test server's `public` schema, or `None` (skipped).
    fn pool() -> Option<Pool> {
        let Ok(url) = std::env::var("MEDLEDGER_PG_URL") else {
            eprintln!("\n*** SKIPPED pool tests: MEDLEDGER_PG_URL is not set ***\n");
            return None;
        };
        let config: postgres::Config = url.parse().unwrap();
        Some(Pool::new(config, "public", 2, Duration::from_secs(5)).unwrap())
    }

    fn raise(conn: &mut Conn, sqlstate: &str) -> Result<()> {
        conn.client
            .batch_execute(&format!(
                "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$"
            ))
            .map_err(|e| Error::from_pg("test", Stage::BeforeCommit, None, e))
    }

    #[test]
    fn serialization_failures_and_deadlocks_are_retried() {
        let Some(pool) = pool() else { return };
        for code in ["40001", "40P01"] {
            let mut runs = 0;
            let r = pool.transaction("test", None, &mut |conn| {
                runs += 1;
                if runs < 3 {
                    raise(conn, code)?;
                }
                Ok(runs)
            });
            assert_eq!(r.unwrap(), 3, "{code}: ran until it committed");
            let mut runs = 0;
            let r = pool.transaction("test", None, &mut |conn| {
                runs += 1;
                raise(conn, code)
            });
            assert_eq!(runs, MAX_ATTEMPTS);
            assert!(
                matches!(r, Err(Error::Conflict { sqlstate, attempts: MAX_ATTEMPTS, .. }) if sqlstate == code),
                "{code}: {r:?}"
            );
        }
    }

    #[test]
    fn other_errors_are_not_retried() {
        let Some(pool) = pool() else { return };
        let mut runs = 0;
        let r = pool.transaction("test", None, &mut |conn| {
            runs += 1;
            raise(conn, "23505")
        });
        assert_eq!(runs, 1);
        assert!(
            matches!(&r, Err(Error::Server { sqlstate, .. }) if sqlstate == "23505"),
            "{r:?}"
        );
        // The connection was rolled back and is usable again.
        let r = pool.transaction("test", None, &mut |conn| {
            conn.client
                .query_one("SELECT 1", &[])
                .map(|row| row.get::<_, i32>(0))
                .map_err(|e| Error::from_pg("test", Stage::BeforeCommit, None, e))
        });
        assert_eq!(r.unwrap(), 1);
    }

    #[test]
    fn an_error_at_commit_that_the_server_reports_is_not_an_unknown_outcome() {
        let Some(pool) = pool() else { return };
        // A deferred unique constraint fails at COMMIT: PostgreSQL rolled
        // back and says so, so the outcome is known.
        let r = pool.transaction("test", None, &mut |conn| {
            conn.client
                .batch_execute(
                    "CREATE TEMP TABLE IF NOT EXISTS deferred_once \
                     (k int UNIQUE DEFERRABLE INITIALLY DEFERRED); \
                     INSERT INTO deferred_once VALUES (1), (1);",
                )
                .map_err(|e| Error::from_pg("test", Stage::BeforeCommit, None, e))
        });
        assert!(
            matches!(&r, Err(Error::Server { sqlstate, .. }) if sqlstate == "23505"),
            "{r:?}"
        );
    }

    #[test]
    fn a_lost_connection_empties_the_pool() {
        let Some(pool) = pool() else { return };
        let pid = |p: &mut Pooled<'_>| -> i32 {
            p.conn()
                .unwrap()
                .client
                .query_one("SELECT pg_backend_pid()", &[])
                .unwrap()
                .get(0)
        };
        let (a, b) = {
            let mut x = pool.get().unwrap();
            let mut y = pool.get().unwrap();
            (pid(&mut x), pid(&mut y))
        };
        assert_ne!(a, b);
        assert_eq!(pool.lock().idle.len(), 2);
        let mut killer = pool.connect().unwrap();
        for p in [a, b] {
            killer
                .execute("SELECT pg_terminate_backend($1)", &[&p])
                .unwrap();
        }
        // The next transaction meets a dead connection: typed, nothing sent.
        let r = pool.transaction("test", None, &mut |_| Ok(()));
        assert!(matches!(r, Err(Error::ConnectionLost { .. })), "{r:?}");
        assert!(pool.lock().idle.is_empty(), "stale connections dropped");
        // One error, then it works again.
        pool.transaction("test", None, &mut |_| Ok(())).unwrap();
    }

    #[test]
    fn schema_names() {
        assert!(check_schema("medledger").is_ok());
        assert!(check_schema("t_1").is_ok());
        for bad in ["", "1abc", "Caps", "a-b", "a\"b", &"a".repeat(64)] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
    }
}
