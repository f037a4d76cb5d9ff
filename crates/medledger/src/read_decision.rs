//! The decision and audit steps shared by the streaming read and the share
//! export: `Ledger::decide` (the patient and active guardians, then the
//! grants engine). A denial is logged at once; an allowed access is logged
//! by [`Ledger::log_allowed`] only once the caller knows what really
//! happened (the key unwrapped and the ciphertext verified, or not), as
//! `read` does.

use medledger_audit::{Action as AuditAction, Id32, Outcome, RecordRef};
use medledger_chain::NodeStore;
use medledger_grants::{Action, ActorId, Decision, Purpose, RecordMeta};

use crate::access::{deny_code, meta, UNWRAP_FAILED_CODE};
use crate::error::{At, Error, Op, Result};
use crate::ledger::{audit_purpose, Ledger};
use crate::record_state::RecordState;

/// What the audit event of an allowed access that then failed says.
const ALLOWED_BUT_FAILED: &str = "allowed, but the key unwrap or decryption failed";

/// An access the policy allowed, not yet logged.
pub(crate) struct Allowed {
    /// The record's state when it was decided.
    pub(crate) st: RecordState,
    /// The version the access is for.
    pub(crate) version: u64,
    /// Who.
    actor: ActorId,
    /// Why.
    purpose: Purpose,
    /// The grants the decision relied on.
    chain: Vec<Id32>,
}

impl<N: NodeStore> Ledger<N> {
    /// Decides whether `actor` may read `record` (`version`, or the latest)
    /// for `purpose`. A denial is logged as a denied `action` event and
    /// returned as [`Error::AccessDenied`]; an allowance must be logged by
    /// the caller with [`Ledger::log_allowed`].
    pub(crate) fn decide_read(
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
        // Decided with this version's own labels, as `read` does.
        let labels = self.version_labels(record, &st, version, op)?;
        let decision = self.decide(
            *actor,
            st.patient,
            RecordMeta {
                labels,
                ..meta(record, &st, op)?
            },
            Action::Read,
            purpose,
            None,
        );
        match decision {
            Decision::Allow { chain, .. } => Ok(Allowed {
                st,
                version,
                actor: *actor,
                purpose,
                chain: chain.iter().map(|g| Id32(*g.0.as_bytes())).collect(),
            }),
            Decision::Deny(reason) => {
                let outcome = Outcome::Denied {
                    code: deny_code(reason),
                    reason: format!("{reason:?}"),
                };
                let event =
                    self.access_event(&st, record, version, actor, purpose, action, outcome, op)?;
                Err(Error::AccessDenied { op, reason, event })
            }
        }
    }

    /// Logs an allowed access as `action`: a success if `done` is `Ok`,
    /// else a denial with [`UNWRAP_FAILED_CODE`] returned as
    /// [`Error::ReadFailed`]. Returns the success event's log index.
    pub(crate) fn log_allowed<T>(
        &self,
        allowed: &Allowed,
        record: &str,
        action: AuditAction,
        done: Result<T>,
        op: Op,
    ) -> Result<(T, u64)> {
        let outcome = match &done {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Denied {
                code: UNWRAP_FAILED_CODE,
                reason: ALLOWED_BUT_FAILED.to_owned(),
            },
        };
        let event = self.event(
            op,
            action,
            &allowed.actor,
            &allowed.st.patient,
            Some(RecordRef {
                id: record.to_owned(),
                version: allowed.version,
            }),
            audit_purpose(allowed.purpose),
            outcome,
            allowed.chain.clone(),
            None,
        )?;
        let event = self.audit.append(event).at(op)?.index;
        match done {
            Ok(v) => Ok((v, event)),
            Err(source) => Err(Error::ReadFailed {
                op,
                record: record.to_owned(),
                version: allowed.version,
                event,
                source: Box::new(source),
            }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn access_event(
        &self,
        st: &RecordState,
        record: &str,
        version: u64,
        actor: &ActorId,
        purpose: Purpose,
        action: AuditAction,
        outcome: Outcome,
        op: Op,
    ) -> Result<u64> {
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
            Vec::new(),
            None,
        )?;
        Ok(self.audit.append(event).at(op)?.index)
    }
}
