//! The ledger on PostgreSQL (cargo feature `postgres`): the same [`Ledger`]
//! over medledger-postgres's implementations of the storage traits.
//!
//! Several application servers may share the *store*: PostgreSQL orders
//! every append into one Merkle tree with no gaps or duplicates. The
//! facade itself keeps its audit indexes, per-patient `prev` chains, grant
//! index and checkpoints in process, so run **one** `Ledger` per schema;
//! see the medledger-postgres README, "Several application servers".

use std::sync::Arc;

use medledger_postgres::{PgNodeStore, PgOptions, PgStore};

use crate::error::{At, Op};
use crate::{Ledger, LedgerKey, Result, Stores};

impl Stores<PgNodeStore> {
    /// The stores of `store`, with the tree as committed now.
    pub fn postgres(store: &PgStore) -> medledger_chain::Result<Self> {
        Ok(Stores {
            entries: Arc::clone(store.entries()) as _,
            tree: store.merkle_log()?,
            blobs: Arc::clone(store.blobs()) as _,
            state: Arc::clone(store.state()) as _,
        })
    }
}

impl Ledger<PgNodeStore> {
    /// Opens the ledger `origin` in the PostgreSQL database at `url`
    /// (creating its schema on first use), unsealing its secrets with
    /// `key`. `url` is a `postgresql://` URL or a `key=value` connection
    /// string; `options.schema` names the schema holding this ledger.
    pub fn open_postgres(
        url: &str,
        options: PgOptions,
        origin: &str,
        key: &LedgerKey,
    ) -> Result<Self> {
        let op = Op::Open;
        let store = PgStore::open(url, options)
            .map_err(medledger_store::Error::from)
            .at(op)?;
        Ledger::with_stores(Stores::postgres(&store).at(op)?, origin, key)
    }
}
