//! The four storage traits the ledger runs on, bundled; the embedded
//! default's parts as trait objects.

use std::io::Read;
use std::sync::Arc;

use medledger_audit::embedded::EmbeddedEntries;
use medledger_chain::{HashAlg, MemoryNodeStore, MerkleLog, NodeStore};
use medledger_store::{
    BlobId, BlobStore, BlobWriter, EmbeddedStore, EntryLog, MemoryBlobStore, MemoryLog,
    MemoryStateStore, StateStore, StateTxn,
};

/// The stores a [`crate::Ledger`] is built on: any implementation of
/// medledger-store's traits (embedded, in memory, PostgreSQL).
pub struct Stores<N: NodeStore> {
    /// The append-only entry log (source of truth). The ledger must be its
    /// only writer.
    pub entries: Arc<dyn EntryLog>,
    /// The Merkle tree over the entries.
    pub tree: MerkleLog<N>,
    /// Record ciphertexts.
    pub blobs: Arc<dyn BlobStore>,
    /// Small mutable state: sealed keys, record metadata, grant objects.
    pub state: Arc<dyn StateStore>,
}

impl Stores<MemoryNodeStore> {
    /// Everything in memory (tests, examples).
    pub fn in_memory(alg: HashAlg) -> Self {
        Stores {
            entries: Arc::new(MemoryLog::new()),
            tree: MerkleLog::in_memory(alg),
            blobs: Arc::new(MemoryBlobStore::new()),
            state: Arc::new(MemoryStateStore::new()),
        }
    }
}

/// The blob store of a shared [`EmbeddedStore`].
#[derive(Debug, Clone)]
pub(crate) struct EmbeddedBlobs(pub(crate) Arc<EmbeddedStore>);

impl BlobStore for EmbeddedBlobs {
    fn create(&self, id: BlobId) -> medledger_store::Result<Box<dyn BlobWriter + '_>> {
        self.0.blobs().create(id)
    }
    fn open(&self, id: &BlobId) -> medledger_store::Result<Box<dyn Read + Send + '_>> {
        self.0.blobs().open(id)
    }
    fn exists(&self, id: &BlobId) -> medledger_store::Result<bool> {
        self.0.blobs().exists(id)
    }
    fn delete(&self, id: &BlobId) -> medledger_store::Result<bool> {
        self.0.blobs().delete(id)
    }
    fn pending(&self) -> medledger_store::Result<Vec<BlobId>> {
        self.0.blobs().pending()
    }
    fn mark_referenced(&self, id: &BlobId) -> medledger_store::Result<()> {
        self.0.blobs().mark_referenced(id)
    }
}

/// The state store of a shared [`EmbeddedStore`].
#[derive(Debug, Clone)]
pub(crate) struct EmbeddedState(pub(crate) Arc<EmbeddedStore>);

impl StateStore for EmbeddedState {
    fn get(&self, table: &str, key: &[u8]) -> medledger_store::Result<Option<Vec<u8>>> {
        self.0.state().get(table, key)
    }
    fn scan(
        &self,
        table: &str,
        prefix: &[u8],
        limit: usize,
    ) -> medledger_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.state().scan(table, prefix, limit)
    }
    fn scan_range(
        &self,
        table: &str,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> medledger_store::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.state().scan_range(table, start, end, limit)
    }
    fn transact(
        &self,
        reflects: Option<u64>,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> medledger_store::Result<()>,
    ) -> medledger_store::Result<()> {
        self.0.state().transact(reflects, f)
    }
    fn transact_applied(
        &self,
        index: u64,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> medledger_store::Result<()>,
    ) -> medledger_store::Result<()> {
        self.0.state().transact_applied(index, f)
    }
    fn log_index(&self) -> medledger_store::Result<Option<u64>> {
        self.0.state().log_index()
    }
    fn reconcile(&self, log_len: u64) -> medledger_store::Result<u64> {
        self.0.state().reconcile(log_len)
    }
}

/// The embedded store's parts as [`Stores`].
pub(crate) fn embedded(
    store: Arc<EmbeddedStore>,
) -> medledger_store::Result<Stores<medledger_store::FileNodeStore>> {
    Ok(Stores {
        tree: store.merkle_log()?,
        entries: Arc::new(EmbeddedEntries(store.clone())),
        blobs: Arc::new(EmbeddedBlobs(store.clone())),
        state: Arc::new(EmbeddedState(store)),
    })
}
