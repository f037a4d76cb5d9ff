//! Running the audit log on medledger-store's embedded default.

use std::ops::Range;
use std::sync::Arc;

use medledger_store::{EmbeddedStore, EntryLog, FileNodeStore};

use crate::audit_log::AuditLog;
use crate::error::Result;

/// The entry log of a shared [`EmbeddedStore`], usable as an
/// `Arc<dyn EntryLog>` (the store hands out only a borrow of its log).
#[derive(Debug, Clone)]
pub struct EmbeddedEntries(pub Arc<EmbeddedStore>);

impl EntryLog for EmbeddedEntries {
    fn append(&self, entry: &[u8]) -> medledger_store::Result<u64> {
        self.0.log().append(entry)
    }

    fn append_batch(&self, entries: &[&[u8]]) -> medledger_store::Result<Range<u64>> {
        self.0.log().append_batch(entries)
    }

    fn read(&self, index: u64) -> medledger_store::Result<Vec<u8>> {
        self.0.log().read(index)
    }

    fn len(&self) -> medledger_store::Result<u64> {
        self.0.log().len()
    }

    fn read_range(&self, range: Range<u64>) -> medledger_store::Result<Vec<Vec<u8>>> {
        self.0.log().read_range(range)
    }
}

impl AuditLog<FileNodeStore> {
    /// The audit log over an embedded store's entry log and node file
    /// (durable appends with group commit; indexes rebuilt on open).
    pub fn open_embedded(origin: &str, store: Arc<EmbeddedStore>) -> Result<Self> {
        let tree = store.merkle_log()?;
        AuditLog::open(origin, Arc::new(EmbeddedEntries(store)), tree)
    }
}
