//! The ledger on PostgreSQL (cargo feature `postgres`): the same [`Ledger`]
//! over medledger-postgres's implementations of the storage traits.
//!
//! Several application servers may open the same ledger (the same schema)
//! and write it at once: PostgreSQL orders every append into one Merkle
//! tree with no gaps or duplicates, and the ledgers take *turns* (see the
//! crate's `turns` module): each operation runs while its process holds
//! the schema's writer lock ([`medledger_postgres::WriterClaim`]), and a
//! process that takes the lock after another wrote first takes in what it
//! wrote (log entries, grants, revocations, actors, checkpoints). Turns
//! are handed over between operations, operations of one process share a
//! turn (and its group commits), and the store fences appends of a
//! writer whose turn ended. See the medledger-postgres README, "Several
//! application servers".

use std::sync::Arc;
use std::time::Duration;

use medledger_postgres::{PgNodeStore, PgOptions, PgStore, WriterClaim};

use crate::error::{At, Error, Op};
use crate::turns::{Taken, TurnLock, Turns};
use crate::{Ledger, LedgerKey, Result, Stores};

/// The longest an operation waits for another process's turn to end
/// before failing with [`Error::LedgerInUse`].
pub const TURN_WAIT: Duration = Duration::from_secs(30);

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

/// The schema's writer lock as the ledger's turn lock.
struct PgTurns {
    claim: WriterClaim,
    /// The schema, for errors.
    schema: String,
}

impl TurnLock for PgTurns {
    fn take(&self, op: Op, wait: Duration) -> Result<Taken> {
        self.claim
            .take(wait)
            .map(|turn| Taken {
                entries: turn.entries,
                resumed: turn.resumed,
            })
            .map_err(|e| claim_error(op, e))
    }
    fn release(&self, op: Op) -> Result<()> {
        self.claim.release().map_err(|e| claim_error(op, e))
    }
    fn busy(&self, op: Op) -> Error {
        Error::LedgerInUse {
            op,
            store: format!("PostgreSQL schema {:?}", self.schema),
        }
    }
}

impl Stores<PgNodeStore> {
    /// The stores of `store`, with the tree as committed now. Crate-private:
    /// a `Ledger` on a shared schema must take turns
    /// ([`Ledger::open_postgres`]).
    pub(crate) fn postgres(store: &PgStore) -> medledger_chain::Result<Self> {
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
    ///
    /// Other processes may have the same ledger open: opening takes a turn
    /// (waiting at most [`TURN_WAIT`] for another process's turn to end,
    /// else [`Error::LedgerInUse`]) so that it reads a state no operation
    /// is half-way through, and every operation of the returned ledger
    /// takes turns with theirs.
    pub fn open_postgres(
        url: &str,
        options: PgOptions,
        origin: &str,
        key: &LedgerKey,
    ) -> Result<Self> {
        let op = Op::Open;
        let schema = options.schema.clone();
        let store = PgStore::open(url, options)
            .map_err(medledger_store::Error::from)
            .at(op)?;
        let turns = PgTurns {
            claim: store.writer(),
            schema,
        };
        turns.take(op, TURN_WAIT)?;
        let opened = Stores::postgres(&store)
            .at(op)
            .and_then(|stores| Ledger::with_stores(stores, origin, key));
        let released = turns.release(op);
        let mut ledger = opened?;
        released?;
        ledger.turns = Some(Turns::new(Box::new(turns), TURN_WAIT));
        Ok(ledger)
    }
}
