//! [`RedbStateStore`]: the [`StateStore`] in one redb database file.
//!
//! User table `name` is the redb table `t.name`; `m.meta` holds the stamp
//! (`stamp`), the journal sequence (`undo_seq`) and the highest index
//! applied without a journal (`applied`, see
//! [`StateStore::transact_applied`]); `m.undo` the undo
//! journal, keyed by (log index u64 BE ‖ transaction sequence u64 BE ‖ step
//! u32 BE) so a reverse range scan undoes newest first. Every value, meta
//! and journal included, is stored wrapped with its tag
//! ([`crate::state::wrap_value`]).

use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableError, WriteTransaction,
};

use crate::error::{Error, Result};
use crate::state::{
    check_sizes, check_table, unwrap_value, wrap_value, StateStore, StateTxn, UndoOp,
};

type Bytes<'n> = TableDefinition<'n, &'static [u8], &'static [u8]>;
const META_NAME: &str = "m.meta";
const UNDO_NAME: &str = "m.undo";
const META: Bytes<'static> = TableDefinition::new(META_NAME);
const UNDO: Bytes<'static> = TableDefinition::new(UNDO_NAME);
const STAMP_KEY: &[u8] = b"stamp";
const SEQ_KEY: &[u8] = b"undo_seq";
/// The highest log index applied without an undo journal
/// (`transact_applied`): the log must always hold it.
const APPLIED_KEY: &[u8] = b"applied";

/// The durable [`StateStore`] on redb.
pub struct RedbStateStore {
    db: Database,
    path: PathBuf,
    _lock: Arc<File>,
}

impl std::fmt::Debug for RedbStateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStateStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Maps a redb error to ours: corruption is [`Error::StateCorrupt`].
fn db_err<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> Error {
    move |e| match e.into() {
        redb::Error::Corrupted(_) => Error::StateCorrupt {
            table: "<database>".into(),
            reason: "redb reports a corrupted page",
        },
        other => Error::Backend {
            op,
            source: other.to_string().into(),
        },
    }
}

/// Runs `f`, turning a panic inside redb (a damaged file can provoke one)
/// into [`Error::StateCorrupt`].
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::StateCorrupt {
            table: "<database>".into(),
            reason: "database engine panicked reading a damaged file",
        })
    })
}

fn table_name(table: &str) -> Result<String> {
    check_table(table)?;
    Ok(format!("t.{table}"))
}

fn read_u64(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<u64>> {
    let Some(v) = t.get(key).map_err(db_err("read state meta"))? else {
        return Ok(None);
    };
    let raw = unwrap_value(META_NAME, key, v.value())?;
    let arr = <[u8; 8]>::try_from(raw.as_slice()).map_err(|_| Error::StateCorrupt {
        table: META_NAME.into(),
        reason: "meta value is not 8 bytes",
    })?;
    Ok(Some(u64::from_le_bytes(arr)))
}

fn put_u64(
    t: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
    v: u64,
) -> Result<()> {
    t.insert(key, wrap_value(META_NAME, key, &v.to_le_bytes()).as_slice())
        .map_err(db_err("write state meta"))?;
    Ok(())
}

/// Whether the database passed redb's integrity check when opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateCheck {
    /// Not checked (option off).
    Skipped,
    /// Every page checksum held.
    Clean,
    /// redb found damage and repaired it (rolled back to the last intact
    /// commit); state caught up from the log afterwards.
    Repaired,
}

impl RedbStateStore {
    /// Up to `limit` checked `(key, value)` rows of `table` in `range`,
    /// stopping at the first key `within` refuses.
    fn pairs<'a>(
        &self,
        table: &str,
        range: impl std::ops::RangeBounds<&'a [u8]>,
        within: &dyn Fn(&[u8]) -> bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let name = table_name(table)?;
        guarded(|| {
            let txn = self.db.begin_read().map_err(db_err("begin state read"))?;
            let t = match txn.open_table(Bytes::new(&name)) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db_err("open state table")(e)),
            };
            let mut out = Vec::new();
            for item in t.range::<&[u8]>(range).map_err(db_err("scan state"))? {
                if out.len() >= limit {
                    break;
                }
                let (k, v) = item.map_err(db_err("scan state"))?;
                let key = k.value();
                if !within(key) {
                    break;
                }
                out.push((key.to_vec(), unwrap_value(table, key, v.value())?));
            }
            Ok(out)
        })
    }

    /// Opens or creates the database at `path`; with `verify`, runs redb's
    /// full integrity check (reads every page).
    pub(crate) fn open(path: &Path, verify: bool, lock: Arc<File>) -> Result<(Self, StateCheck)> {
        guarded(|| {
            let mut db = Database::create(path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => Error::AlreadyInUse {
                    path: path.to_owned(),
                },
                redb::DatabaseError::Storage(redb::StorageError::Io(source)) => Error::Io {
                    op: "open state database",
                    path: path.to_owned(),
                    source,
                },
                other => db_err("open state database")(other),
            })?;
            let check = if verify {
                match db
                    .check_integrity()
                    .map_err(db_err("check state database"))?
                {
                    true => StateCheck::Clean,
                    false => StateCheck::Repaired,
                }
            } else {
                StateCheck::Skipped
            };
            Ok((
                RedbStateStore {
                    db,
                    path: path.to_owned(),
                    _lock: lock,
                },
                check,
            ))
        })
    }

    /// Raw access for benchmarks and tests that compare against redb
    /// itself. Writing through it bypasses the value tags.
    #[doc(hidden)]
    pub fn raw_database(&self) -> &Database {
        &self.db
    }
}

/// A transaction in progress.
struct RedbTxn<'a> {
    txn: &'a WriteTransaction,
    /// Undo steps, if the transaction is stamped.
    journal: Option<Vec<UndoOp>>,
}

impl StateTxn for RedbTxn<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let name = table_name(table)?;
        let t = self
            .txn
            .open_table(Bytes::new(&name))
            .map_err(db_err("open state table"))?;
        let v = t.get(key).map_err(db_err("read state"))?;
        v.map(|v| unwrap_value(table, key, v.value())).transpose()
    }

    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        check_sizes(key, Some(value))?;
        if self.journal.is_some() {
            let old = self.get(table, key)?;
            if let Some(j) = self.journal.as_mut() {
                j.push(UndoOp::Key {
                    table: table.to_owned(),
                    key: key.to_vec(),
                    old,
                });
            }
        }
        let name = table_name(table)?;
        let mut t = self
            .txn
            .open_table(Bytes::new(&name))
            .map_err(db_err("open state table"))?;
        t.insert(key, wrap_value(table, key, value).as_slice())
            .map_err(db_err("write state"))?;
        Ok(())
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        check_sizes(key, None)?;
        let old = self.get(table, key)?;
        let Some(old) = old else {
            return Ok(false);
        };
        if let Some(j) = self.journal.as_mut() {
            j.push(UndoOp::Key {
                table: table.to_owned(),
                key: key.to_vec(),
                old: Some(old),
            });
        }
        let name = table_name(table)?;
        let mut t = self
            .txn
            .open_table(Bytes::new(&name))
            .map_err(db_err("open state table"))?;
        t.remove(key).map_err(db_err("delete state"))?;
        Ok(true)
    }
}

fn undo_key(index: u64, seq: u64, step: u32) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..8].copy_from_slice(&index.to_be_bytes());
    k[8..16].copy_from_slice(&seq.to_be_bytes());
    k[16..].copy_from_slice(&step.to_be_bytes());
    k
}

impl RedbStateStore {
    /// A transaction stamped with `reflects` (if any), journaling undo
    /// steps if `journaled` (see [`StateStore::transact_applied`]).
    fn transact_stamped(
        &self,
        reflects: Option<u64>,
        journaled: bool,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> Result<()>,
    ) -> Result<()> {
        let mut user_panic = None;
        let r = guarded(|| {
            let txn = self
                .db
                .begin_write()
                .map_err(db_err("begin state transaction"))?;
            let (current, seq) = {
                let meta = txn.open_table(META).map_err(db_err("open state meta"))?;
                (
                    read_u64(&meta, STAMP_KEY)?,
                    read_u64(&meta, SEQ_KEY)?.unwrap_or(0),
                )
            };
            if let (Some(cur), Some(req)) = (current, reflects) {
                if req < cur {
                    return Err(Error::StateIndexRegressed {
                        current: cur,
                        requested: req,
                    });
                }
            }
            let mut t = RedbTxn {
                txn: &txn,
                journal: journaled.then(|| vec![UndoOp::Stamp(current)]),
            };
            match std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut t))) {
                Ok(r) => r?,
                Err(p) => {
                    user_panic = Some(p);
                    return Ok(());
                }
            }
            if let Some(journal) = t.journal.take() {
                let index = reflects.unwrap_or(0);
                let mut undo = txn.open_table(UNDO).map_err(db_err("open undo journal"))?;
                for (step, op) in (0u32..).zip(&journal) {
                    let k = undo_key(index, seq, step);
                    undo.insert(
                        k.as_slice(),
                        wrap_value(UNDO_NAME, &k, &op.encode()).as_slice(),
                    )
                    .map_err(db_err("write undo journal"))?;
                }
                drop(undo);
                let next_seq = seq.checked_add(1).ok_or(Error::StateCorrupt {
                    table: META_NAME.into(),
                    reason: "undo sequence number overflows u64",
                })?;
                let mut meta = txn.open_table(META).map_err(db_err("open state meta"))?;
                put_u64(&mut meta, SEQ_KEY, next_seq)?;
            }
            if let Some(index) = reflects {
                let mut meta = txn.open_table(META).map_err(db_err("open state meta"))?;
                put_u64(&mut meta, STAMP_KEY, index)?;
                if !journaled {
                    put_u64(&mut meta, APPLIED_KEY, index)?;
                }
            }
            txn.commit().map_err(db_err("commit state transaction"))
        });
        if let Some(p) = user_panic {
            std::panic::resume_unwind(p);
        }
        r
    }
}

impl StateStore for RedbStateStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let name = table_name(table)?;
        guarded(|| {
            let txn = self.db.begin_read().map_err(db_err("begin state read"))?;
            let t = match txn.open_table(Bytes::new(&name)) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(db_err("open state table")(e)),
            };
            let v = t.get(key).map_err(db_err("read state"))?;
            v.map(|v| unwrap_value(table, key, v.value())).transpose()
        })
    }

    fn scan(&self, table: &str, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.pairs(table, prefix.., &|key| key.starts_with(prefix), limit)
    }

    fn scan_range(
        &self,
        table: &str,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            table_name(table)?;
            return Ok(Vec::new());
        }
        self.pairs(table, start..end, &|_| true, limit)
    }

    fn transact(
        &self,
        reflects: Option<u64>,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> Result<()>,
    ) -> Result<()> {
        self.transact_stamped(reflects, reflects.is_some(), f)
    }

    fn transact_applied(
        &self,
        index: u64,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> Result<()>,
    ) -> Result<()> {
        self.transact_stamped(Some(index), false, f)
    }

    fn log_index(&self) -> Result<Option<u64>> {
        guarded(|| {
            let txn = self.db.begin_read().map_err(db_err("begin state read"))?;
            match txn.open_table(META) {
                Ok(meta) => read_u64(&meta, STAMP_KEY),
                Err(TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(db_err("open state meta")(e)),
            }
        })
    }

    fn reconcile(&self, log_len: u64) -> Result<u64> {
        // A transaction applied without a journal (see `transact_applied`)
        // cannot be undone: its entry was durable once, so a log without
        // it lost a durable entry.
        let applied = guarded(|| {
            let txn = self.db.begin_read().map_err(db_err("begin state read"))?;
            match txn.open_table(META) {
                Ok(meta) => read_u64(&meta, APPLIED_KEY),
                Err(TableError::TableDoesNotExist(_)) => Ok(None),
                Err(e) => Err(db_err("open state meta")(e)),
            }
        })?;
        match applied {
            Some(stamp) if stamp >= log_len => Err(Error::StateAheadOfLog { stamp, log_len }),
            _ => self.undo_from(log_len),
        }
    }
}

impl RedbStateStore {
    /// Undoes every journaled transaction stamped `>= log_len`, newest
    /// first, and drops the journal (the body of `reconcile`).
    fn undo_from(&self, log_len: u64) -> Result<u64> {
        guarded(|| {
            {
                let txn = self.db.begin_read().map_err(db_err("begin state read"))?;
                match txn.open_table(UNDO) {
                    Ok(t) if t.is_empty().map_err(db_err("read undo journal"))? => return Ok(0),
                    Ok(_) => {}
                    Err(TableError::TableDoesNotExist(_)) => return Ok(0),
                    Err(e) => return Err(db_err("open undo journal")(e)),
                }
            }
            let txn = self
                .db
                .begin_write()
                .map_err(db_err("begin state transaction"))?;
            let mut steps = Vec::new();
            let mut all_keys = Vec::new();
            {
                let undo = txn.open_table(UNDO).map_err(db_err("open undo journal"))?;
                let from = log_len.to_be_bytes();
                for item in undo.iter().map_err(db_err("read undo journal"))? {
                    let (k, v) = item.map_err(db_err("read undo journal"))?;
                    let key = k.value().to_vec();
                    if key.get(..8).is_some_and(|p| p >= from.as_slice()) {
                        let raw = unwrap_value(UNDO_NAME, &key, v.value())?;
                        let op = UndoOp::decode(&raw).ok_or(Error::StateCorrupt {
                            table: UNDO_NAME.into(),
                            reason: "undo journal record malformed",
                        })?;
                        steps.push(op);
                    }
                    all_keys.push(key);
                }
            }
            let mut undone = 0u64;
            for op in steps.into_iter().rev() {
                match op {
                    UndoOp::Stamp(prev) => {
                        undone += 1;
                        let mut meta = txn.open_table(META).map_err(db_err("open state meta"))?;
                        match prev {
                            Some(p) => put_u64(&mut meta, STAMP_KEY, p)?,
                            None => {
                                meta.remove(STAMP_KEY).map_err(db_err("write state meta"))?;
                            }
                        }
                    }
                    UndoOp::Key { table, key, old } => {
                        let name = table_name(&table)?;
                        let mut t = txn
                            .open_table(Bytes::new(&name))
                            .map_err(db_err("open state table"))?;
                        match old {
                            Some(v) => {
                                t.insert(key.as_slice(), wrap_value(&table, &key, &v).as_slice())
                                    .map_err(db_err("write state"))?;
                            }
                            None => {
                                t.remove(key.as_slice()).map_err(db_err("delete state"))?;
                            }
                        }
                    }
                }
            }
            {
                let mut undo = txn.open_table(UNDO).map_err(db_err("open undo journal"))?;
                for k in &all_keys {
                    undo.remove(k.as_slice())
                        .map_err(db_err("write undo journal"))?;
                }
            }
            txn.commit().map_err(db_err("commit state transaction"))?;
            Ok(undone)
        })
    }
}
