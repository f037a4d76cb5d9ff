//! Access decisions: [`GrantIndex::decide`] answers one [`Request`] with a
//! [`Decision`], deny by default.
//!
//! A request is checked against every grant naming the actor directly, or
//! naming an organization or organization role the actor holds through a
//! membership active at the request's time and log position. Each candidate
//! grant is checked, and then each of its ancestors up to the patient, in
//! this order (every check passed counts as one step of progress):
//!
//! 1. the record is in the grant's scope (`OutOfScope`), its sensitivity
//!    labels are all included (`ExcludedSensitivity`), the action is
//!    granted (`ActionNotAllowed`; an ancestor must also grant `share`,
//!    `NotDelegable`), the purpose is granted (`PurposeNotAllowed`);
//! 2. the grant's signature verified when it was loaded (`BadSignature`,
//!    or `UnknownIssuer` when the issuer's keys were never registered), as
//!    of the request's log position: a correctly signed copy that replaced
//!    a quarantined one counts from its own position, and an ancestor not
//!    in the log at that position fails with `UnknownIssuer`;
//! 3. the request time lies in `[not_before, not_after)` (`NotYetValid`,
//!    `Expired`);
//! 4. no revocation of the grant is at or before the request's log
//!    position (`Revoked`);
//! 5. for an ancestor: it left delegation depth and the child's depth is
//!    strictly smaller (`DelegationTooDeep`), and the child's issuer is one
//!    of its grantees at that time (`UnknownIssuer`);
//! 6. for the root: its issuer is the patient, or a guardian whose
//!    appointment is active (`UnknownIssuer`, or the appointment's
//!    `NotYetValid`/`Expired`/`Revoked`).
//!
//! The first grant whose whole chain passes allows, naming the chain from
//! the patient down. When none does, the denial names the reason of the
//! grant that came closest (most steps passed; the earliest loaded on a
//! tie), which is the most specific thing to tell a user: an expired grant
//! that covers the record explains more than an unexpired one that does not.

use crate::actor::ActorId;
use crate::grant::{GrantId, Grantee};
use crate::index::{GrantIndex, GrantStatus, StoredGrant};
use crate::membership::{MembershipId, Role};
use crate::permission::{Action, Purpose};
use crate::scope::{LogPosition, RecordMeta};

/// Longest break-the-glass reason accepted (bytes).
pub const MAX_EMERGENCY_REASON_LEN: usize = 1024;

/// One access question: may `actor` do `action` on `record` of `patient`
/// for `purpose`, as of `time` and log `position`?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Who asks.
    pub actor: ActorId,
    /// Whose record.
    pub patient: ActorId,
    /// The record's metadata.
    pub record: RecordMeta,
    /// What they want to do.
    pub action: Action,
    /// Why.
    pub purpose: Purpose,
    /// When (seconds since the Unix epoch, UTC).
    pub time: u64,
    /// The log position the decision is taken as of: only grants,
    /// memberships, appointments and revocations at or before it count.
    pub position: LogPosition,
    /// A stated reason for break-the-glass access, if the actor invokes it.
    pub break_glass: Option<String>,
}

/// Why a request was denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// No grant names the actor (directly or through a membership).
    NoGrant,
    /// The record is outside every candidate grant's scope.
    OutOfScope,
    /// The record carries a sensitivity label the grant does not include.
    ExcludedSensitivity,
    /// The action is not granted.
    ActionNotAllowed,
    /// The purpose of use is not granted.
    PurposeNotAllowed,
    /// A grant in the chain failed signature verification at load.
    BadSignature,
    /// A grant (or the issuing guardian's appointment) is not valid yet.
    NotYetValid,
    /// A grant (or the issuing guardian's appointment) has expired.
    Expired,
    /// A grant in the chain (or the issuing guardian's appointment) was
    /// revoked at or before the decision's log position.
    Revoked,
    /// A grant's issuer had no authority: not the patient, not a guardian,
    /// not a grantee of the parent, or its keys were never registered.
    UnknownIssuer,
    /// A grant was derived from a parent that does not grant `share`.
    NotDelegable,
    /// A grant was derived beyond its parent's delegation depth.
    DelegationTooDeep,
    /// Break-the-glass was invoked with an empty, blank or over-long reason.
    EmergencyReasonInvalid,
    /// Break-the-glass was invoked by an actor without an active emergency
    /// role in a trusted organization.
    NoEmergencyRole,
}

/// Details of a break-the-glass allow, to be audited and reported to the
/// patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Emergency {
    /// The reason the actor stated.
    pub reason: String,
    /// The organization whose emergency role the actor holds.
    pub organization: ActorId,
    /// The membership that gives the role.
    pub membership: MembershipId,
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow {
        /// The grants that allow it, from the patient's grant down to the
        /// one naming the actor (empty for break-the-glass).
        chain: Vec<GrantId>,
        /// Set when this is break-the-glass access.
        emergency: Option<Emergency>,
    },
    /// Denied, with the most specific reason.
    Deny(DenyReason),
}

impl Decision {
    /// Whether access is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The denial reason, if denied.
    pub fn deny_reason(&self) -> Option<DenyReason> {
        match self {
            Decision::Deny(r) => Some(*r),
            Decision::Allow { .. } => None,
        }
    }
}

/// A failed candidate: how far it got and why it stopped.
#[derive(Clone, Copy)]
struct Failure {
    progress: u32,
    reason: DenyReason,
}

impl GrantIndex {
    /// Decides `req`. Deny by default; see the module docs for the checks
    /// and how the reported reason is chosen. Signatures are not verified
    /// here: they were verified once, when each object was loaded.
    pub fn decide(&self, req: &Request) -> Decision {
        let mut best = Failure {
            progress: 0,
            reason: DenyReason::NoGrant,
        };
        if let Some(chain) = self.try_grantee(&Grantee::Actor(req.actor), req, &mut best) {
            return allow(chain);
        }
        for (_, m) in self.active_memberships(req.actor, req.time, req.position) {
            let org = Grantee::Organization(m.organization);
            if let Some(chain) = self.try_grantee(&org, req, &mut best) {
                return allow(chain);
            }
            let role = Grantee::Role {
                organization: m.organization,
                role: m.role.clone(),
            };
            if let Some(chain) = self.try_grantee(&role, req, &mut best) {
                return allow(chain);
            }
        }
        match &req.break_glass {
            Some(reason) => self.break_glass(req, reason),
            None => Decision::Deny(best.reason),
        }
    }

    fn try_grantee(
        &self,
        grantee: &Grantee,
        req: &Request,
        best: &mut Failure,
    ) -> Option<Vec<GrantId>> {
        let list = self.by_grantee.get(&(req.patient, grantee.clone()))?;
        for &gi in list {
            let Some(g) = self.grant_at(gi) else { continue };
            if g.status_at(req.position).is_none() {
                continue;
            }
            match self.evaluate(g, req) {
                Ok(()) => return Some(self.chain_of(g)),
                Err(f) if f.progress > best.progress => *best = f,
                Err(_) => {}
            }
        }
        None
    }

    /// Checks `leaf` and its ancestors against `req`.
    fn evaluate(&self, leaf: &StoredGrant, req: &Request) -> Result<(), Failure> {
        // Being a candidate at all already beats "no grant".
        let mut progress = 1u32;
        let mut step = |ok: bool, reason: DenyReason| {
            if ok {
                progress += 1;
                Ok(())
            } else {
                Err(Failure { progress, reason })
            }
        };
        let mut cur = leaf;
        let mut child: Option<&StoredGrant> = None;
        loop {
            let g = &cur.grant;
            step(g.scope.covers(&req.record), DenyReason::OutOfScope)?;
            step(
                req.record.labels.is_subset(g.sensitivity),
                DenyReason::ExcludedSensitivity,
            )?;
            step(g.actions.contains(req.action), DenyReason::ActionNotAllowed)?;
            if child.is_some() {
                step(g.actions.contains(Action::Share), DenyReason::NotDelegable)?;
            }
            step(
                g.purposes.contains(req.purpose),
                DenyReason::PurposeNotAllowed,
            )?;
            // As of the request's position: a correctly signed copy that
            // replaced a quarantined one counts only from its own position,
            // and an ancestor not yet in the log gives the child's issuer
            // no authority.
            match cur.status_at(req.position) {
                Some(GrantStatus::Verified) => step(true, DenyReason::BadSignature)?,
                Some(GrantStatus::BadSignature) => step(false, DenyReason::BadSignature)?,
                Some(GrantStatus::UnknownIssuer) => step(false, DenyReason::UnknownIssuer)?,
                None => step(false, DenyReason::UnknownIssuer)?,
            }
            step(req.time >= g.validity.not_before, DenyReason::NotYetValid)?;
            step(req.time < g.validity.not_after, DenyReason::Expired)?;
            step(!cur.revoked.by(req.position), DenyReason::Revoked)?;
            if let Some(c) = child {
                step(
                    g.max_delegation_depth >= 1
                        && c.grant.max_delegation_depth < g.max_delegation_depth,
                    DenyReason::DelegationTooDeep,
                )?;
                step(
                    c.grant.patient == g.patient
                        && self.holds(&g.grantee, c.grant.issuer, req.time, req.position),
                    DenyReason::UnknownIssuer,
                )?;
            }
            match (g.parent, cur.parent.and_then(|i| self.grant_at(i))) {
                (None, _) => {
                    return match self.root_authority(g.issuer, g.patient, req) {
                        Ok(()) => Ok(()),
                        Err(reason) => step(false, reason),
                    };
                }
                (Some(_), Some(parent)) => {
                    child = Some(cur);
                    cur = parent;
                }
                // Not reachable: a grant only loads after its parent.
                (Some(_), None) => return step(false, DenyReason::UnknownIssuer),
            }
        }
    }

    /// The chain from the root down to `leaf`.
    fn chain_of(&self, leaf: &StoredGrant) -> Vec<GrantId> {
        let mut chain = vec![leaf.id];
        let mut cur = leaf;
        while let Some(p) = cur.parent.and_then(|i| self.grant_at(i)) {
            chain.push(p.id);
            cur = p;
        }
        chain.reverse();
        chain
    }

    /// Whether the issuer of a root grant may grant for `patient`.
    fn root_authority(
        &self,
        issuer: ActorId,
        patient: ActorId,
        req: &Request,
    ) -> Result<(), DenyReason> {
        if issuer == patient {
            return Ok(());
        }
        let mut reason = DenyReason::UnknownIssuer;
        for a in self.appointments_of(issuer, patient) {
            if a.position > req.position {
                continue;
            }
            if a.revoked.by(req.position) {
                reason = DenyReason::Revoked;
            } else if req.time < a.appointment.validity.not_before {
                reason = DenyReason::NotYetValid;
            } else if req.time >= a.appointment.validity.not_after {
                reason = DenyReason::Expired;
            } else {
                return Ok(());
            }
        }
        Err(reason)
    }

    /// Whether `actor` is covered by `grantee` at `time` and `position`.
    pub(crate) fn holds(
        &self,
        grantee: &Grantee,
        actor: ActorId,
        time: u64,
        position: LogPosition,
    ) -> bool {
        match grantee {
            Grantee::Actor(a) => *a == actor,
            Grantee::Organization(o) => self
                .active_memberships(actor, time, position)
                .any(|(_, m)| m.organization == *o),
            Grantee::Role { organization, role } => self
                .active_memberships(actor, time, position)
                .any(|(_, m)| m.organization == *organization && m.role == *role),
        }
    }

    fn break_glass(&self, req: &Request, reason: &str) -> Decision {
        if reason.trim().is_empty() || reason.len() > MAX_EMERGENCY_REASON_LEN {
            return Decision::Deny(DenyReason::EmergencyReasonInvalid);
        }
        if req.action == Action::Share {
            return Decision::Deny(DenyReason::ActionNotAllowed);
        }
        if !matches!(
            req.purpose,
            Purpose::EmergencyTreat | Purpose::BreakTheGlass
        ) {
            return Decision::Deny(DenyReason::PurposeNotAllowed);
        }
        let found = self
            .active_memberships(req.actor, req.time, req.position)
            .find(|(_, m)| m.role.as_str() == Role::EMERGENCY && self.trusts(&m.organization));
        match found {
            Some((id, m)) => Decision::Allow {
                chain: Vec::new(),
                emergency: Some(Emergency {
                    reason: reason.to_owned(),
                    organization: m.organization,
                    membership: id,
                }),
            },
            None => Decision::Deny(DenyReason::NoEmergencyRole),
        }
    }
}

fn allow(chain: Vec<GrantId>) -> Decision {
    Decision::Allow {
        chain,
        emergency: None,
    }
}
