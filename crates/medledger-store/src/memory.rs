//! In-memory implementations of every trait, for tests and for users who
//! want no disk. They follow the same contracts (and pass the same
//! conformance suite) as the durable ones; "durable" means "until drop".

use core::ops::Range;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::blob::{BlobId, BlobStore, BlobWriter};
use crate::entry_log::EntryLog;
use crate::error::{Error, Result};
use crate::segment::MAX_ENTRY_LEN;
use crate::state::{check_sizes, check_table, StateStore, StateTxn, UndoOp};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An [`EntryLog`] in memory.
#[derive(Debug, Default)]
pub struct MemoryLog {
    entries: Mutex<Vec<Vec<u8>>>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

fn check_entry(e: &[u8]) -> Result<()> {
    if e.len() > MAX_ENTRY_LEN {
        return Err(Error::EntryTooLarge {
            len: e.len(),
            max: MAX_ENTRY_LEN,
        });
    }
    Ok(())
}

impl EntryLog for MemoryLog {
    fn append(&self, entry: &[u8]) -> Result<u64> {
        check_entry(entry)?;
        let mut g = lock(&self.entries);
        g.push(entry.to_vec());
        Ok(g.len() as u64 - 1)
    }

    fn append_batch(&self, entries: &[&[u8]]) -> Result<Range<u64>> {
        entries.iter().try_for_each(|e| check_entry(e))?;
        let mut g = lock(&self.entries);
        let start = g.len() as u64;
        g.extend(entries.iter().map(|e| e.to_vec()));
        Ok(start..g.len() as u64)
    }

    fn read(&self, index: u64) -> Result<Vec<u8>> {
        let g = lock(&self.entries);
        usize::try_from(index)
            .ok()
            .and_then(|i| g.get(i))
            .cloned()
            .ok_or(Error::IndexOutOfRange {
                index,
                len: g.len() as u64,
            })
    }

    fn len(&self) -> Result<u64> {
        Ok(lock(&self.entries).len() as u64)
    }
}

#[derive(Debug, Default)]
struct Blobs {
    /// Blob bytes and whether it is still pending.
    map: HashMap<BlobId, (Arc<Vec<u8>>, bool)>,
}

/// A [`BlobStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: Mutex<Blobs>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

struct MemoryBlobWriter<'a> {
    store: &'a MemoryBlobStore,
    id: BlobId,
    buf: Vec<u8>,
}

impl Write for MemoryBlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobWriter for MemoryBlobWriter<'_> {
    fn commit(self: Box<Self>) -> Result<()> {
        let mut g = lock(&self.store.blobs);
        if g.map.contains_key(&self.id) {
            return Err(Error::BlobExists { id: self.id });
        }
        g.map.insert(self.id, (Arc::new(self.buf), true));
        Ok(())
    }

    fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// Reads a shared blob body.
struct SharedReader {
    data: Arc<Vec<u8>>,
    pos: usize,
}

impl Read for SharedReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(out.len());
        if let (Some(d), Some(s)) = (out.get_mut(..n), rest.get(..n)) {
            d.copy_from_slice(s);
        }
        self.pos += n;
        Ok(n)
    }
}

impl BlobStore for MemoryBlobStore {
    fn create(&self, id: BlobId) -> Result<Box<dyn BlobWriter + '_>> {
        if lock(&self.blobs).map.contains_key(&id) {
            return Err(Error::BlobExists { id });
        }
        Ok(Box::new(MemoryBlobWriter {
            store: self,
            id,
            buf: Vec::new(),
        }))
    }

    fn open(&self, id: &BlobId) -> Result<Box<dyn Read + Send + '_>> {
        let g = lock(&self.blobs);
        let (data, _) = g.map.get(id).ok_or(Error::BlobNotFound { id: *id })?;
        Ok(Box::new(SharedReader {
            data: Arc::clone(data),
            pos: 0,
        }))
    }

    fn exists(&self, id: &BlobId) -> Result<bool> {
        Ok(lock(&self.blobs).map.contains_key(id))
    }

    fn delete(&self, id: &BlobId) -> Result<bool> {
        Ok(lock(&self.blobs).map.remove(id).is_some())
    }

    fn pending(&self) -> Result<Vec<BlobId>> {
        let g = lock(&self.blobs);
        let mut out: Vec<BlobId> = g.map.iter().filter(|(_, v)| v.1).map(|(k, _)| *k).collect();
        out.sort_unstable();
        Ok(out)
    }

    fn mark_referenced(&self, id: &BlobId) -> Result<()> {
        let mut g = lock(&self.blobs);
        let entry = g.map.get_mut(id).ok_or(Error::BlobNotFound { id: *id })?;
        entry.1 = false;
        Ok(())
    }
}

type Tables = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Default)]
struct State {
    tables: Tables,
    stamp: Option<u64>,
    /// Stamped transactions: (index, undo steps in order).
    journal: Vec<(u64, Vec<UndoOp>)>,
}

/// A [`StateStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    state: Mutex<State>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Writes apply in place; the journal (always kept) undoes them if the
/// transaction fails, and is kept for [`StateStore::reconcile`] if stamped.
struct MemoryTxn<'a> {
    tables: &'a mut Tables,
    journal: Vec<UndoOp>,
}

fn apply_undo(tables: &mut Tables, stamp: &mut Option<u64>, steps: Vec<UndoOp>) {
    for op in steps.into_iter().rev() {
        match op {
            UndoOp::Stamp(prev) => *stamp = prev,
            UndoOp::Key { table, key, old } => {
                let t = tables.entry(table).or_default();
                match old {
                    Some(v) => {
                        t.insert(key, v);
                    }
                    None => {
                        t.remove(&key);
                    }
                }
            }
        }
    }
}

impl StateTxn for MemoryTxn<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_table(table)?;
        Ok(self.tables.get(table).and_then(|t| t.get(key)).cloned())
    }

    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        check_table(table)?;
        check_sizes(key, Some(value))?;
        let old = self
            .tables
            .entry(table.to_owned())
            .or_default()
            .insert(key.to_vec(), value.to_vec());
        self.journal.push(UndoOp::Key {
            table: table.to_owned(),
            key: key.to_vec(),
            old,
        });
        Ok(())
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        check_table(table)?;
        check_sizes(key, None)?;
        let old = self.tables.get_mut(table).and_then(|t| t.remove(key));
        let found = old.is_some();
        if found {
            self.journal.push(UndoOp::Key {
                table: table.to_owned(),
                key: key.to_vec(),
                old,
            });
        }
        Ok(found)
    }
}

impl StateStore for MemoryStateStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_table(table)?;
        Ok(lock(&self.state)
            .tables
            .get(table)
            .and_then(|t| t.get(key))
            .cloned())
    }

    fn scan(&self, table: &str, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        check_table(table)?;
        let g = lock(&self.state);
        Ok(g.tables
            .get(table)
            .map(|t| {
                t.range(prefix.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn scan_range(
        &self,
        table: &str,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        check_table(table)?;
        let g = lock(&self.state);
        Ok(g.tables
            .get(table)
            .map(|t| {
                t.range(start.to_vec()..)
                    .take_while(|(k, _)| k.as_slice() < end)
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn transact(
        &self,
        reflects: Option<u64>,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> Result<()>,
    ) -> Result<()> {
        let mut g = lock(&self.state);
        if let (Some(cur), Some(req)) = (g.stamp, reflects) {
            if req < cur {
                return Err(Error::StateIndexRegressed {
                    current: cur,
                    requested: req,
                });
            }
        }
        let st = &mut *g;
        let mut txn = MemoryTxn {
            tables: &mut st.tables,
            journal: vec![UndoOp::Stamp(st.stamp)],
        };
        let r = f(&mut txn);
        let journal = txn.journal;
        if let Err(e) = r {
            apply_undo(&mut st.tables, &mut st.stamp, journal);
            return Err(e);
        }
        if let Some(index) = reflects {
            st.journal.push((index, journal));
            st.stamp = Some(index);
        }
        Ok(())
    }

    fn log_index(&self) -> Result<Option<u64>> {
        Ok(lock(&self.state).stamp)
    }

    fn reconcile(&self, log_len: u64) -> Result<u64> {
        let mut g = lock(&self.state);
        let st = &mut *g;
        let journal = std::mem::take(&mut st.journal);
        let mut undone = 0;
        for (index, steps) in journal.into_iter().rev() {
            if index >= log_len {
                undone += 1;
                apply_undo(&mut st.tables, &mut st.stamp, steps);
            }
        }
        Ok(undone)
    }
}
