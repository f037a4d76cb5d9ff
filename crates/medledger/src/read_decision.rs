//! The decision and audit step shared by the streaming read and the share
//! export: `Ledger::decide` (the patient and active guardians, then the
//! grants engine), the attempt is logged either way, and only an allowed attempt
//! returns the state the caller needs to go on. Break-the-glass reads stay
//! with [`crate::Ledger::emergency_read`].

use medledger_audit::{Action as AuditAction, Id32, Outcome, RecordRef};
use medledger_chain::NodeStore;
use medledger_grants::{Action, ActorId, Decision, Purpose};

use crate::access::{deny_code, meta};
use crate::error::{At, Error, Op, Result};
use crate::ledger::{audit_purpose, Ledger};
use crate::record_state::RecordState;

/// An allowed, logged access.
pub(crate) struct Allowed {
    /// The record's state when it was decided.
    pub(crate) st: RecordState,
    /// The version the access is for.
    pub(crate) version: u64,
    /// The log index of the access's audit event.
    pub(crate) event: u64,
}

impl<N: NodeStore> Ledger<N> {
    /// Decides whether `actor` may read `record` (`version`, or the latest)
    /// for `purpose`, appends an audit event with `action` either way, and
    /// returns [`Error::AccessDenied`] on a denial.
    pub(crate) fn authorize_read(
        &self,
        actor: &ActorId,
        record: &str,
        version: Option<u64>,
        purpose: Purpose,
        action: AuditAction,
        op: Op,
    ) -> Result<Allowed> {
        self.actor(actor, op)?;
        let st = self.record_state(record, op)?;
        if st.erased {
            return Err(Error::RecordErased {
                op,
                record: record.to_owned(),
            });
        }
        let version = version.unwrap_or(st.latest);
        if version == 0 || version > st.latest {
            return Err(Error::UnknownRecord {
                op,
                record: record.to_owned(),
                version: Some(version),
            });
        }
        // The one decision path of reads (patient, active guardians, then
        // the grants engine), shared with `read`.
        let decision = self.decide(
            *actor,
            st.patient,
            meta(record, &st, op)?,
            Action::Read,
            purpose,
            None,
        );
        let (outcome, chain) = match &decision {
            Decision::Allow { chain, .. } => (
                Outcome::Success,
                chain.iter().map(|g| Id32(*g.0.as_bytes())).collect(),
            ),
            Decision::Deny(r) => (
                Outcome::Denied {
                    code: deny_code(*r),
                    reason: format!("{r:?}"),
                },
                Vec::new(),
            ),
        };
        let event = self.event(
            op,
            action,
            actor,
            &st.patient,
            Some(RecordRef {
                id: record.to_owned(),
                version,
            }),
            audit_purpose(purpose),
            outcome,
            chain,
            None,
        )?;
        let event = self.audit.append(event).at(op)?.index;
        if let Decision::Deny(reason) = decision {
            return Err(Error::AccessDenied { op, reason, event });
        }
        Ok(Allowed { st, version, event })
    }
}
