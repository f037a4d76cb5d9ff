//! The ledger on PostgreSQL (cargo feature `postgres`): the same [`Ledger`]
//! over medledger-postgres's implementations of the storage traits.
//!
//! Several application servers may share the *store*: PostgreSQL orders
//! every append into one Merkle tree with no gaps or duplicates. The
//! facade itself keeps its audit indexes, per-patient `prev` chains, grant
//! index and checkpoints in process, so **one** `Ledger` writes to a
//! schema: `open_postgres` claims the schema's writer (a session advisory
//! lock, [`medledger_postgres::WriterClaim`]), a second `Ledger` on the
//! schema gets [`crate::Error::LedgerInUse`], and every logged operation
//! first confirms the claim (one round trip). See the medledger-postgres
//! README, "Several application servers".

use std::sync::Arc;

use medledger_postgres::{PgNodeStore, PgOptions, PgStore, WriterClaim};

use crate::error::{At, Error, Op};
use crate::ledger::WriterCheck;
use crate::{Ledger, LedgerKey, Result, Stores};

/// Maps the store's claim error to [`Error::LedgerInUse`].
fn claim_error(op: Op, e: medledger_postgres::Error) -> Error {
    match e {
        medledger_postgres::Error::WriterClaimed { schema } => Error::LedgerInUse {
            op,
            store: format!("PostgreSQL schema {schema:?}"),
        },
        other => Error::Store {
            op,
            source: other.into(),
        },
    }
}

impl WriterCheck for WriterClaim {
    fn confirm(&self, op: Op) -> Result<()> {
        WriterClaim::confirm(self).map_err(|e| claim_error(op, e))
    }
}

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
    /// Claims the schema's writer first: [`Error::LedgerInUse`] while
    /// another `Ledger` has it open.
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
        let claim = store.claim_writer().map_err(|e| claim_error(op, e))?;
        let mut ledger = Ledger::with_stores(Stores::postgres(&store).at(op)?, origin, key)?;
        ledger.writer = Some(Box::new(claim));
        Ok(ledger)
    }
}
