//! [`PgStateStore`]: the [`StateStore`] in three tables, with the embedded
//! store's guarantees.
//!
//! - `state_kv (tbl, key, value)`: every value stored wrapped with
//!   medledger-store's 16-byte tag over (table, key, value)
//!   ([`medledger_store::state::wrap_value`]) and checked on every read.
//! - `state_meta`: the log-index stamp and the undo sequence number. Every
//!   transaction starts by locking this one row (`SELECT … FOR UPDATE`), so
//!   writers are serialized exactly as redb's single writer is, in every
//!   process; plain reads are single statements and never wait.
//! - `state_undo`: the undo journal of stamped transactions, keyed by
//!   (log index, transaction sequence, step), undone newest first by
//!   [`StateStore::reconcile`]. A row with `tbl` NULL restores the stamp
//!   (to `stamp`, NULL meaning none); otherwise it restores `key` of `tbl`
//!   to the stored bytes `old` (NULL meaning absent).
//!
//! A transaction rolled back with 40001/40P01 runs `f` again (it is
//! `FnMut`); any other failure leaves nothing written.
//!
//! # The writer fence
//!
//! Once the store's writer claim has taken a turn ([`crate::writer`]),
//! every write transaction ([`StateStore::transact`],
//! [`StateStore::transact_applied`], [`StateStore::reconcile`]) checks,
//! with the `state_meta` lock, that `state_meta.epoch` is still the
//! turn's epoch; if another writer took a turn since, it writes nothing
//! and fails with [`Error::WriterFenced`] (inside
//! [`medledger_store::Error::Backend`]: [`Error::in_store_error`] finds
//! it), before `f` runs. A take sets `state_meta.epoch` in the
//! transaction that bumps the head's epoch, and waits for a state
//! transaction in flight, so a state write of a writer whose turn ended
//! either commits before the take or writes nothing. A store that never
//! took a turn is not fenced. Reads are never fenced.

use std::cell::RefCell;
use std::sync::Arc;

use medledger_store::state::{unwrap_value, wrap_value, MAX_STATE_KEY_LEN, MAX_STATE_VALUE_LEN};
use medledger_store::{StateStore, StateTxn};

use crate::error::{Error, Result, Stage};
use crate::pool::{Conn, Pool};
use crate::sequencer::Fence;

const GET: &str = "SELECT value FROM state_kv WHERE tbl = $1 AND key = $2";
const PUT: &str = "INSERT INTO state_kv (tbl, key, value) VALUES ($1, $2, $3) ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value";
const DELETE: &str = "DELETE FROM state_kv WHERE tbl = $1 AND key = $2 RETURNING value";
const SCAN_TO: &str = "SELECT key, value FROM state_kv WHERE tbl = $1 AND key >= $2 AND key < $3 ORDER BY key LIMIT $4";
const SCAN_FROM: &str =
    "SELECT key, value FROM state_kv WHERE tbl = $1 AND key >= $2 ORDER BY key LIMIT $3";
const LOCK_META: &str = "SELECT stamp, undo_seq, epoch FROM state_meta WHERE id = 0 FOR UPDATE";
const READ_STAMP: &str = "SELECT stamp FROM state_meta WHERE id = 0";
const SET_META: &str = "UPDATE state_meta SET stamp = $1, undo_seq = $2 WHERE id = 0";
const SET_STAMP: &str = "UPDATE state_meta SET stamp = $1 WHERE id = 0";
const INSERT_UNDO: &str = "INSERT INTO state_undo (idx, seq, step, tbl, key, old, stamp) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::integer[], $4::text[], $5::bytea[], $6::bytea[], $7::bigint[])";
const UNDO_FROM: &str = "SELECT tbl, key, old, stamp FROM state_undo WHERE idx >= $1 ORDER BY idx DESC, seq DESC, step DESC";
const RESTORE: &str = "INSERT INTO state_kv (tbl, key, value) VALUES ($1, $2, $3) ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value";
const FORGET: &str = "DELETE FROM state_kv WHERE tbl = $1 AND key = $2";
const CLEAR_UNDO: &str = "DELETE FROM state_undo";
const HAS_UNDO: &str = "SELECT EXISTS (SELECT 1 FROM state_undo)";

fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> Error {
    move |e| Error::from_pg(op, Stage::BeforeCommit, None, e)
}

/// Checks a table name: 1 to 64 of `[a-z0-9_.-]` (medledger-store's rule).
fn check_table(name: &str) -> medledger_store::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(medledger_store::Error::InvalidTableName {
            name: name.chars().take(80).collect(),
        })
    }
}

fn check_sizes(key: &[u8], value: Option<&[u8]>) -> medledger_store::Result<()> {
    if key.len() > MAX_STATE_KEY_LEN {
        return Err(medledger_store::Error::StateTooLarge {
            what: "key",
            len: key.len(),
            max: MAX_STATE_KEY_LEN,
        });
    }
    match value {
        Some(v) if v.len() > MAX_STATE_VALUE_LEN => Err(medledger_store::Error::StateTooLarge {
            what: "value",
            len: v.len(),
            max: MAX_STATE_VALUE_LEN,
        }),
        _ => Ok(()),
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn stamp_of(v: Option<i64>) -> medledger_store::Result<Option<u64>> {
    v.map(|s| {
        u64::try_from(s).map_err(|_| medledger_store::Error::StateCorrupt {
            table: "state_meta".into(),
            reason: "negative stamp",
        })
    })
    .transpose()
}

/// The state store on PostgreSQL (see the module docs).
#[derive(Debug, Clone)]
pub struct PgStateStore {
    pool: Arc<Pool>,
    /// The store's writer fence, shared with its entry log.
    fence: Arc<Fence>,
}

/// One undo step (see the module docs).
enum Undo {
    Stamp(Option<i64>),
    Key {
        table: String,
        key: Vec<u8>,
        old: Option<Vec<u8>>,
    },
}

/// A transaction in progress on one connection. `StateTxn::get` takes
/// `&self` but a query needs the client mutably: a `RefCell`, used from
/// the one thread running the transaction.
struct PgTxn<'a> {
    conn: RefCell<&'a mut Conn>,
    journal: Option<Vec<Undo>>,
}

impl PgTxn<'_> {
    /// The stored (tagged) bytes of `key`.
    fn stored(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        stored(&mut self.conn.borrow_mut(), table, key)
    }
}

/// The stored (tagged) bytes of `key` in `table`, through `conn`.
fn stored(conn: &mut Conn, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
    let s = conn.prepare("read state", GET)?;
    conn.client
        .query_opt(&s, &[&table, &key])
        .map_err(pg("read state"))?
        .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg("read state")))
        .transpose()
}

impl StateTxn for PgTxn<'_> {
    fn get(&self, table: &str, key: &[u8]) -> medledger_store::Result<Option<Vec<u8>>> {
        check_table(table)?;
        self.stored(table, key)?
            .map(|v| unwrap_value(table, key, &v))
            .transpose()
    }

    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> medledger_store::Result<()> {
        check_table(table)?;
        check_sizes(key, Some(value))?;
        if self.journal.is_some() {
            let old = self.stored(table, key)?;
            if let Some(j) = self.journal.as_mut() {
                j.push(Undo::Key {
                    table: table.to_owned(),
                    key: key.to_vec(),
                    old,
                });
            }
        }
        let conn = self.conn.get_mut();
        let s = conn.prepare("write state", PUT)?;
        conn.client
            .execute(&s, &[&table, &key, &wrap_value(table, key, value)])
            .map_err(pg("write state"))?;
        Ok(())
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> medledger_store::Result<bool> {
        check_table(table)?;
        check_sizes(key, None)?;
        let conn = self.conn.get_mut();
        let s = conn.prepare("delete state", DELETE)?;
        let old = conn
            .client
            .query_opt(&s, &[&table, &key])
            .map_err(pg("delete state"))?
            .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg("delete state")))
            .transpose()?;
        let Some(old) = old else {
            return Ok(false);
        };
        if let Some(j) = self.journal.as_mut() {
            j.push(Undo::Key {
                table: table.to_owned(),
                key: key.to_vec(),
                old: Some(old),
            });
        }
        Ok(true)
    }
}

/// Carries a caller's (or a trait-level) error out of a pool transaction,
/// which speaks this crate's [`Error`]: database errors stay typed (so
/// 40001/40P01 are retried), anything else is parked in `slot`.
fn park(slot: &mut Option<medledger_store::Error>, e: medledger_store::Error) -> Error {
    if let Some(pe) = Error::in_store_error(&e) {
        return pe.clone();
    }
    *slot = Some(e);
    Error::Inconsistent {
        what: "state transaction",
        reason: "aborted".into(),
    }
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Inconsistent {
        what: "state_meta",
        reason: format!("{v} does not fit a bigint"),
    })
}

impl PgStateStore {
    pub(crate) fn new(pool: Arc<Pool>, fence: Arc<Fence>) -> Self {
        PgStateStore { pool, fence }
    }

    /// Locks `state_meta` (waiting for a state transaction or a take in
    /// flight) and checks the writer fence: `(stamp, undo_seq)`, or
    /// [`Error::WriterFenced`] if this store took a turn and
    /// `state_meta.epoch` is no longer its epoch.
    fn lock_meta(&self, conn: &mut Conn, op: &'static str) -> Result<(Option<i64>, i64)> {
        let lock = conn.prepare(op, LOCK_META)?;
        let row = conn.client.query_one(&lock, &[]).map_err(pg(op))?;
        let stamp: Option<i64> = row.try_get(0).map_err(pg(op))?;
        let seq: i64 = row.try_get(1).map_err(pg(op))?;
        let epoch: i64 = row.try_get(2).map_err(pg(op))?;
        if let Some(ours) = self.fence.get() {
            let current = u64::try_from(epoch).map_err(|_| Error::Inconsistent {
                what: "state_meta",
                reason: format!("negative writer epoch {epoch}"),
            })?;
            if current != ours {
                return Err(Error::WriterFenced {
                    schema: self.pool.schema().to_owned(),
                    ours,
                    current,
                });
            }
        }
        Ok((stamp, seq))
    }

    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Conn) -> Result<T>,
    ) -> medledger_store::Result<T> {
        let _ = op;
        let mut pooled = self.pool.get()?;
        let r = pooled.conn().and_then(f);
        if let Err(e) = &r {
            pooled.saw(e);
        }
        Ok(r?)
    }

    /// The `(key, value)` rows a scan query returns, values checked.
    fn pairs(
        &self,
        table: &str,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> medledger_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let op = "scan state";
        let rows = self.read(op, |conn| {
            let s = conn.prepare(op, sql)?;
            let rows = conn.client.query(&s, params).map_err(pg(op))?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get::<_, Vec<u8>>(0).map_err(pg(op))?,
                        r.try_get::<_, Vec<u8>>(1).map_err(pg(op))?,
                    ))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(k, v)| {
                let v = unwrap_value(table, &k, &v)?;
                Ok((k, v))
            })
            .collect()
    }

    /// Writes the journal of a stamped transaction and the new stamp.
    fn finish_stamped(conn: &mut Conn, index: u64, seq: i64, journal: &[Undo]) -> Result<()> {
        let op = "write undo journal";
        let insert = conn.prepare(op, INSERT_UNDO)?;
        let set = conn.prepare(op, SET_META)?;
        let n = journal.len();
        let idx = vec![to_i64(index)?; n];
        let seqs = vec![seq; n];
        let steps: Vec<i32> = (0..).take(n).collect();
        let mut tbls: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut keys: Vec<Option<&[u8]>> = Vec::with_capacity(n);
        let mut olds: Vec<Option<&[u8]>> = Vec::with_capacity(n);
        let mut stamps: Vec<Option<i64>> = Vec::with_capacity(n);
        for u in journal {
            match u {
                Undo::Stamp(prev) => {
                    tbls.push(None);
                    keys.push(None);
                    olds.push(None);
                    stamps.push(*prev);
                }
                Undo::Key { table, key, old } => {
                    tbls.push(Some(table));
                    keys.push(Some(key));
                    olds.push(old.as_deref());
                    stamps.push(None);
                }
            }
        }
        conn.client
            .execute(
                &insert,
                &[&idx, &seqs, &steps, &tbls, &keys, &olds, &stamps],
            )
            .map_err(pg(op))?;
        let next = seq.checked_add(1).ok_or(Error::Inconsistent {
            what: "state_meta",
            reason: "undo sequence number overflows".into(),
        })?;
        conn.client
            .execute(&set, &[&to_i64(index)?, &next])
            .map_err(pg(op))?;
        Ok(())
    }
}

impl PgStateStore {
    /// A transaction stamped with `reflects` (if any), journaling undo
    /// steps if `journaled` (see [`StateStore::transact_applied`]).
    fn transact_stamped(
        &self,
        reflects: Option<u64>,
        journaled: bool,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> medledger_store::Result<()>,
    ) -> medledger_store::Result<()> {
        let op = "state transaction";
        let mut parked = None;
        let r = self.pool.transaction(op, None, &mut |conn| {
            parked = None;
            let (current, seq) = self.lock_meta(conn, op)?;
            let current_u = stamp_of(current).map_err(|e| park(&mut parked, e))?;
            if let (Some(cur), Some(req)) = (current_u, reflects) {
                if req < cur {
                    return Err(park(
                        &mut parked,
                        medledger_store::Error::StateIndexRegressed {
                            current: cur,
                            requested: req,
                        },
                    ));
                }
            }
            let mut txn = PgTxn {
                conn: RefCell::new(&mut *conn),
                journal: journaled.then(|| vec![Undo::Stamp(current)]),
            };
            f(&mut txn).map_err(|e| park(&mut parked, e))?;
            let journal = txn.journal.take();
            drop(txn);
            match (reflects, journal) {
                (Some(index), Some(journal)) => Self::finish_stamped(conn, index, seq, &journal)?,
                (Some(index), None) => {
                    let set = conn.prepare(op, SET_STAMP)?;
                    conn.client
                        .execute(&set, &[&Some(to_i64(index)?)])
                        .map_err(pg(op))?;
                }
                (None, _) => {}
            }
            Ok(())
        });
        match (r, parked) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(user)) => Err(user),
            (Err(e), None) => Err(e.into()),
        }
    }
}

impl StateStore for PgStateStore {
    fn get(&self, table: &str, key: &[u8]) -> medledger_store::Result<Option<Vec<u8>>> {
        check_table(table)?;
        let found = self.read("read state", |conn| stored(conn, table, key))?;
        found.map(|v| unwrap_value(table, key, &v)).transpose()
    }

    fn scan(
        &self,
        table: &str,
        prefix: &[u8],
        limit: usize,
    ) -> medledger_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        check_table(table)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        match prefix_end(prefix) {
            Some(end) => self.pairs(table, SCAN_TO, &[&table, &prefix, &end, &limit]),
            None => self.pairs(table, SCAN_FROM, &[&table, &prefix, &limit]),
        }
    }

    fn scan_range(
        &self,
        table: &str,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> medledger_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        check_table(table)?;
        if start >= end {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.pairs(table, SCAN_TO, &[&table, &start, &end, &limit])
    }

    fn transact(
        &self,
        reflects: Option<u64>,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> medledger_store::Result<()>,
    ) -> medledger_store::Result<()> {
        self.transact_stamped(reflects, reflects.is_some(), f)
    }

    /// Stamped without an undo journal, so no put or delete reads the old
    /// value first. Unlike redb, nothing marks such a stamp for
    /// `reconcile`: here the log and the state are one database whose
    /// commits are durable in WAL order, so a later state commit cannot
    /// survive the loss of the log commit before it.
    fn transact_applied(
        &self,
        index: u64,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> medledger_store::Result<()>,
    ) -> medledger_store::Result<()> {
        self.transact_stamped(Some(index), false, f)
    }

    fn log_index(&self) -> medledger_store::Result<Option<u64>> {
        let stamp = self.read("read state stamp", |conn| {
            let s = conn.prepare("read state stamp", READ_STAMP)?;
            conn.client
                .query_one(&s, &[])
                .and_then(|r| r.try_get::<_, Option<i64>>(0))
                .map_err(pg("read state stamp"))
        })?;
        stamp_of(stamp)
    }

    fn reconcile(&self, log_len: u64) -> medledger_store::Result<u64> {
        let op = "reconcile state";
        let any = self.read(op, |conn| {
            let s = conn.prepare(op, HAS_UNDO)?;
            conn.client
                .query_one(&s, &[])
                .and_then(|r| r.try_get::<_, bool>(0))
                .map_err(pg(op))
        })?;
        if !any {
            return Ok(0);
        }
        let from = i64::try_from(log_len).unwrap_or(i64::MAX);
        let r = self.pool.transaction(op, None, &mut |conn| {
            let undo = conn.prepare(op, UNDO_FROM)?;
            let set_stamp = conn.prepare(op, SET_STAMP)?;
            let restore = conn.prepare(op, RESTORE)?;
            let forget = conn.prepare(op, FORGET)?;
            let clear = conn.prepare(op, CLEAR_UNDO)?;
            self.lock_meta(conn, op)?;
            let rows = conn.client.query(&undo, &[&from]).map_err(pg(op))?;
            let mut undone = 0u64;
            for row in rows {
                let tbl: Option<String> = row.try_get(0).map_err(pg(op))?;
                match tbl {
                    None => {
                        let stamp: Option<i64> = row.try_get(3).map_err(pg(op))?;
                        conn.client.execute(&set_stamp, &[&stamp]).map_err(pg(op))?;
                        undone += 1;
                    }
                    Some(tbl) => {
                        let key: Option<Vec<u8>> = row.try_get(1).map_err(pg(op))?;
                        let old: Option<Vec<u8>> = row.try_get(2).map_err(pg(op))?;
                        let key = key.ok_or(Error::Inconsistent {
                            what: "state_undo",
                            reason: "key step without a key".into(),
                        })?;
                        match old {
                            Some(v) => conn.client.execute(&restore, &[&tbl, &key, &v]),
                            None => conn.client.execute(&forget, &[&tbl, &key]),
                        }
                        .map_err(pg(op))?;
                    }
                }
            }
            conn.client.execute(&clear, &[]).map_err(pg(op))?;
            Ok(undone)
        });
        Ok(r?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_bounds() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn names_and_sizes() {
        assert!(check_table("wrapped_keys").is_ok());
        assert!(check_table("Bad Name").is_err());
        assert!(check_table(&"a".repeat(65)).is_err());
        assert!(check_sizes(&[0; MAX_STATE_KEY_LEN + 1], None).is_err());
        assert!(check_sizes(b"k", Some(&vec![0; MAX_STATE_VALUE_LEN + 1])).is_err());
        assert!(check_sizes(b"k", Some(b"v")).is_ok());
    }
}
