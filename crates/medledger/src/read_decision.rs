//! The decision and audit steps of every read: the byte read, the
//! emergency read, the streaming read and the share export. Decided by
//! `Ledger::decide` (the patient and active guardians, then the grants
//! engine). A denial is logged at once; an allowed access is logged by
//! [`Ledger::log_allowed`] only once the caller knows what really happened
//! (the key unwrapped and the ciphertext verified, or not).

use medledger_audit::{Action as AuditAction, Id32, Outcome, RecordRef};
use medledger_chain::NodeStore;
use medledger_grants::{Action, ActorId, Decision, Purpose, RecordMeta};

use crate::access::{deny_code, meta, UNWRAP_FAILED_CODE};
use crate::error::{At, Error, Op, Result};
use crate::ledger::{audit_purpose, Ledger};
use crate::record_state::RecordState;

/// What the audit event of an allowed access that then failed says.
const ALLOWED_BUT_FAILED: &str = "allowed, but the key unwrap or decryption failed";

/// What the audit event of a break-the-glass attempt records as its
/// reason when the actor stated none (the attempt is denied).
const NO_REASON: &str = "(no reason stated)";

/// Longest emergency reason an audit event carries (bytes).
const MAX_REASON_LEN: usize = 255;

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_owned()
}

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
    /// The audit action its events carry.
    action: AuditAction,
    /// The emergency reason its events carry (break-the-glass), if any.
    emergency: Option<String>,
    /// Whether the emergency role, rather than a grant or being the
    /// patient, allowed it.
    pub(crate) by_emergency: bool,
}

impl<N: NodeStore> Ledger<N> {
    /// Decides whether `actor` may read `record` (`version`, or the latest)
    /// for `purpose`, breaking the glass with the stated reason if
    /// `break_glass` is given (the events are then `EmergencyAccess`, not
    /// `action`). A denial is logged at once and returned as
    /// [`Error::AccessDenied`]; an allowance must be logged by the caller
    /// with [`Ledger::log_allowed`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn decide_read(
        &self,
        actor: &ActorId,
        record: &str,
        version: Option<u64>,
        purpose: Purpose,
        action: AuditAction,
        break_glass: Option<&str>,
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
            break_glass,
        );
        let action = if break_glass.is_some() {
            AuditAction::EmergencyAccess
        } else {
            action
        };
        let allowed_by = match &decision {
            Decision::Allow { emergency, .. } => emergency.as_ref().map(|e| e.reason.clone()),
            Decision::Deny(_) => None,
        };
        let by_emergency = allowed_by.is_some();
        // An emergency-access event carries the stated reason even when an
        // ordinary grant (or being the patient) allowed the read, and a
        // non-empty one even when none was stated, so that the denied
        // attempt is logged too.
        let emergency =
            allowed_by
                .or_else(|| break_glass.map(str::to_owned))
                .map(|r| match truncate(&r, MAX_REASON_LEN) {
                    t if t.is_empty() => NO_REASON.to_owned(),
                    t => t,
                });
        let (chain, outcome) = match decision {
            Decision::Allow { chain, .. } => (chain, None),
            Decision::Deny(reason) => (Vec::new(), Some(reason)),
        };
        let allowed = Allowed {
            st,
            version,
            actor: *actor,
            purpose,
            chain: chain.iter().map(|g| Id32(*g.0.as_bytes())).collect(),
            action,
            emergency,
            by_emergency,
        };
        match outcome {
            None => Ok(allowed),
            Some(reason) => {
                let outcome = Outcome::Denied {
                    code: deny_code(reason),
                    reason: format!("{reason:?}"),
                };
                let event = self.access_event(&allowed, record, outcome, op)?;
                Err(Error::AccessDenied { op, reason, event })
            }
        }
    }

    /// Logs an allowed access: a success if `done` is `Ok`, else a denial
    /// with [`UNWRAP_FAILED_CODE`] returned as [`Error::ReadFailed`].
    /// Returns the success event's log index.
    pub(crate) fn log_allowed<T>(
        &self,
        allowed: &Allowed,
        record: &str,
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
        let event = self.access_event(allowed, record, outcome, op)?;
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

    /// Appends the audit event of `allowed`'s access with `outcome`.
    fn access_event(
        &self,
        allowed: &Allowed,
        record: &str,
        outcome: Outcome,
        op: Op,
    ) -> Result<u64> {
        let event = self.event(
            op,
            allowed.action,
            &allowed.actor,
            &allowed.st.patient,
            Some(RecordRef {
                id: record.to_owned(),
                version: allowed.version,
            }),
            audit_purpose(allowed.purpose),
            outcome,
            allowed.chain.clone(),
            allowed.emergency.clone(),
        )?;
        Ok(self.audit.append(event).at(op)?.index)
    }
}
