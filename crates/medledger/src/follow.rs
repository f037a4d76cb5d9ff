//! Catching up with the other writers of a shared store at the start of a
//! turn (see [`crate::turns`]).
//!
//! Everything a ledger keeps in memory is derived from the log and from
//! state rows written after their log entries:
//!
//! | in memory | taken in from |
//! |---|---|
//! | tree, audit indexes, patient chains, checkpoints | the new entries ([`medledger_audit::AuditLog::follow`]) |
//! | grants, memberships, revocations, appointments | `objects` rows keyed by a log position in the new range |
//! | actors and their labels, trusted organizations | `changes` rows keyed by the new entries' indexes |
//!
//! A writer finishes an operation's state rows before its turn ends, so
//! they are there when the next writer takes its turn. One exception: a
//! writer that lost its lock mid-operation (its database session died).
//! Its signed object is then still in `pending-objects` (made durable
//! before its entry); if the entry is in the log, catch-up adopts the
//! object as open would. `pending-objects` is read before `objects`, so an
//! object whose row moves from one to the other meanwhile is seen in one
//! of them.

use medledger_chain::NodeStore;

use crate::error::{At, Error, Op, Result};
use crate::ledger::{id_from, Ledger, T_ACTORS, T_OBJECTS, T_PENDING};
use crate::state_rows::{load_actor, load_object, Pending};
use crate::turns::{Taken, TurnGuard};

/// State table `changes`: one row per operation that changed an actor's
/// registration or an organization's trust, keyed by its entry's
/// big-endian log index; value: a kind byte, then the 32-byte actor id.
pub(crate) const T_CHANGES: &str = "changes";
/// A `changes` row for an actor registration (`actors` row).
pub(crate) const CHANGED_ACTOR: u8 = 1;
/// A `changes` row for a trusted organization (`trusted` row).
pub(crate) const CHANGED_TRUST: u8 = 2;

/// The `changes` value of kind `kind` for `id`.
pub(crate) fn change(kind: u8, id: &[u8; 32]) -> [u8; 33] {
    let mut v = [0u8; 33];
    let (k, rest) = v.split_at_mut(1);
    k.copy_from_slice(&[kind]);
    rest.copy_from_slice(id);
    v
}

/// How far other writers' work is taken in.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Caught {
    /// The log length up to which their state rows are loaded.
    pub(crate) len: u64,
    /// A catch-up started and did not finish: the next take must catch up
    /// in full even if nobody else took a turn since.
    pub(crate) stale: bool,
}

impl<N: NodeStore> Ledger<N> {
    /// Runs the calling operation in this ledger's turn (see
    /// [`crate::turns`]); free when the store is not shared.
    pub(crate) fn turn(&self, op: Op) -> Result<TurnGuard<'_>> {
        match &self.turns {
            None => Ok(TurnGuard::none()),
            Some(turns) => turns.enter(op, &|taken| self.catch_up(taken, op)),
        }
    }

    /// Takes in what other writers did up to log length `len`. Reads
    /// everything first and changes memory only after, so a read error
    /// changes nothing and the next turn retries the same range; the
    /// watermark moves only once the whole range is in.
    fn catch_up(&self, taken: Taken, op: Op) -> Result<()> {
        let len = taken.entries;
        let mut caught = self.caught.lock().unwrap_or_else(|e| e.into_inner());
        if len == self.audit.size() && (len == caught.len || (taken.resumed && !caught.stale)) {
            // Nothing new, or only this ledger's own work: no other writer
            // took a turn since its last one, which caught up in full.
            caught.len = len;
            return Ok(());
        }
        caught.stale = true;
        let caught_len = caught.len;
        drop(caught);
        let caught = caught_len;
        let pending = self.state.scan(T_PENDING, b"", usize::MAX).at(op)?;
        self.audit.follow(len).at(op)?;
        // This ledger's own rows of its last turn are loaded already; they
        // sit below every other writer's (which took their turns after).
        let own = *self.rows_end.lock().unwrap_or_else(|e| e.into_inner());
        let lo = caught.max(own);
        // Adopted objects below `lo` (this ledger's own, whose append had
        // an unknown outcome and did land) are loaded here, first: the
        // scan below starts at `lo`.
        let mut objects = Vec::new();
        for (id, v) in pending {
            let p = Pending::parse(&id, &v, op)?;
            if p.at >= len || !self.commitment_logged(&p.id, p.at.max(caught), len, op)? {
                // Not logged (yet): whoever wrote it resolves it, or the
                // next open does.
                continue;
            }
            self.state
                .transact(None, &mut |t| {
                    t.put(T_OBJECTS, &p.at.to_be_bytes(), &p.value)?;
                    t.delete(T_PENDING, &id).map(|_| ())
                })
                .at(op)?;
            if p.at < lo {
                objects.push((p.at.to_be_bytes().to_vec(), p.value));
            }
        }
        objects.sort();
        let (lo, hi) = (lo.to_be_bytes(), len.to_be_bytes());
        let corrupt = |reason| Error::CorruptState {
            op,
            table: T_CHANGES,
            reason,
        };
        let mut changes = Vec::new();
        for (_, v) in self
            .state
            .scan_range(T_CHANGES, &lo, &hi, usize::MAX)
            .at(op)?
        {
            let (kind, id) = v.split_first().ok_or(corrupt("empty"))?;
            let id = id_from(id).ok_or(corrupt("bad id"))?;
            let row = match *kind {
                CHANGED_ACTOR => Some(
                    self.state
                        .get(T_ACTORS, id.as_bytes())
                        .at(op)?
                        .ok_or(corrupt("actor row missing"))?,
                ),
                CHANGED_TRUST => None,
                _ => return Err(corrupt("unknown kind")),
            };
            changes.push((id, row));
        }
        objects.extend(
            self.state
                .scan_range(T_OBJECTS, &lo, &hi, usize::MAX)
                .at(op)?,
        );
        let mut index = self.index_mut();
        let mut guardians = self.guardians_mut();
        let mut orgs = self
            .organizations
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for (id, row) in changes {
            match row {
                Some(row) => load_actor(&mut index, &mut orgs, &row, op)?,
                None => index.trust_organization(id).at(op)?,
            }
        }
        for (k, v) in objects {
            load_object(&mut index, &mut guardians, &k, &v, op)?;
        }
        *self.caught.lock().unwrap_or_else(|e| e.into_inner()) = Caught { len, stale: false };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_rows_are_kind_then_id() {
        let v = change(CHANGED_TRUST, &[7; 32]);
        assert_eq!(v[0], 2);
        assert_eq!(&v[1..], &[7; 32]);
    }
}
