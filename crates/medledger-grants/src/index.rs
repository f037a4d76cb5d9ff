//! [`GrantIndex`]: the loaded state decisions are taken against, with the
//! per-patient and per-grantee indexes that keep [`GrantIndex::decide`]
//! independent of the total number of grants.
//!
//! Every signature is verified once, when its object is loaded (one by one
//! or in Ed25519 batches); decisions never verify signatures. Objects must
//! be loaded in log order: actors first, then memberships, appointments,
//! grants (a parent before its children) and revocations as they appear.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::{Signature, VerifyingKey};
use medledger_chain::Hash;

use crate::actor::{Actor, ActorId, ActorKind};
use crate::error::{Error, Result};
use crate::grant::{Grant, GrantId, Grantee, SignedGrant};
use crate::guardian::{AppointmentId, GuardianAppointment, SignedGuardianAppointment};
use crate::membership::{Membership, MembershipId, SignedMembership};
use crate::revocation::{Revocation, RevocationId, RevocationTarget, SignedRevocation};
use crate::scope::LogPosition;
use crate::signed::{Signable, Signed};

/// How many signatures one Ed25519 batch holds.
const BATCH_SIZE: usize = 256;

/// What loading found out about a grant's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrantStatus {
    /// The issuer's signature verified.
    Verified,
    /// Quarantined: the signature did not verify.
    BadSignature,
    /// Quarantined: the issuer's keys are not registered.
    UnknownIssuer,
}

/// Earliest log position of a valid revocation of an object, kept beside
/// the object so that decisions need no lookup to check it.
#[derive(Clone, Copy, Default)]
pub(crate) struct RevokedAt(Option<LogPosition>);

impl RevokedAt {
    /// Whether the object was revoked at or before `position`.
    pub(crate) fn by(self, position: LogPosition) -> bool {
        self.0.is_some_and(|at| at <= position)
    }

    fn record(&mut self, position: LogPosition) -> bool {
        let first = self.0.is_none();
        self.0 = Some(self.0.map_or(position, |at| at.min(position)));
        first
    }
}

pub(crate) struct StoredGrant {
    pub(crate) grant: Grant,
    pub(crate) id: GrantId,
    /// Where the copy with `status` was appended.
    pub(crate) position: LogPosition,
    pub(crate) status: GrantStatus,
    /// A quarantined copy appended before the correctly signed one that
    /// replaced it: its position and status. Between the two positions the
    /// log held only the quarantined copy.
    pub(crate) quarantined: Option<(LogPosition, GrantStatus)>,
    /// Index of the parent grant (present at load: parents load first).
    pub(crate) parent: Option<u32>,
    pub(crate) revoked: RevokedAt,
}

impl StoredGrant {
    /// The grant's status as of log position `position`: `None` if no copy
    /// of it was in the log yet, the quarantined copy's status if only that
    /// one was.
    pub(crate) fn status_at(&self, position: LogPosition) -> Option<GrantStatus> {
        if self.position <= position {
            return Some(self.status);
        }
        match self.quarantined {
            Some((at, status)) if at <= position => Some(status),
            _ => None,
        }
    }
}

pub(crate) struct StoredMembership {
    pub(crate) membership: Membership,
    pub(crate) id: MembershipId,
    pub(crate) position: LogPosition,
    pub(crate) revoked: RevokedAt,
}

pub(crate) struct StoredAppointment {
    pub(crate) appointment: GuardianAppointment,
    pub(crate) position: LogPosition,
    pub(crate) revoked: RevokedAt,
}

/// How [`GrantIndex::add_grants`] verifies signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Each signature on its own, with RFC 8032 strict verification.
    OneByOne,
    /// Ed25519 batch verification (`ed25519_dalek::verify_batch`) in
    /// batches of 256; a batch that fails is re-checked one by one to find
    /// the bad signatures. Batch verification checks the cofactored
    /// equation, so a signature crafted with small-order components could
    /// pass a batch yet fail the strict one-by-one check; honest signatures
    /// pass both, and actors with small-order keys are refused at
    /// registration.
    Batch,
}

/// The outcome of [`GrantIndex::add_grants`].
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Ids of grants loaded with a verified signature, in input order.
    pub loaded: Vec<GrantId>,
    /// Grants refused or quarantined: input position and why.
    pub failed: Vec<(usize, Error)>,
}

/// Loaded actors, memberships, guardian appointments, grants and
/// revocations, indexed for decisions.
#[derive(Default)]
pub struct GrantIndex {
    actors: HashMap<ActorId, Actor>,
    trusted: HashSet<ActorId>,
    grants: Vec<StoredGrant>,
    grant_ids: HashMap<GrantId, u32>,
    pub(crate) by_grantee: HashMap<(ActorId, Grantee), Vec<u32>>,
    by_patient: HashMap<ActorId, Vec<u32>>,
    memberships: Vec<StoredMembership>,
    membership_ids: HashMap<MembershipId, u32>,
    by_member: HashMap<ActorId, Vec<u32>>,
    appointments: Vec<StoredAppointment>,
    appointment_ids: HashMap<AppointmentId, u32>,
    by_guardian: HashMap<(ActorId, ActorId), Vec<u32>>,
    revoked_objects: usize,
}

impl GrantIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    // --- actors and trust ---------------------------------------------------

    /// Registers an actor's public keys (self-certifying: the id is derived
    /// from them) and returns its id.
    pub fn register_actor(&mut self, actor: Actor) -> ActorId {
        let id = actor.id();
        self.actors.insert(id, actor);
        id
    }

    /// The registered actor with this id.
    pub fn actor(&self, id: &ActorId) -> Option<&Actor> {
        self.actors.get(id)
    }

    /// Trusts a registered organization to vouch for emergency roles
    /// (break-the-glass) and to appoint guardians for patients who cannot
    /// consent. Memberships of untrusted organizations still count for
    /// grants that name the organization: the patient chose it.
    pub fn trust_organization(&mut self, organization: ActorId) -> Result<()> {
        match self.actors.get(&organization) {
            Some(a) if a.kind() == ActorKind::Organization => {
                self.trusted.insert(organization);
                Ok(())
            }
            _ => Err(Error::NotAuthorized {
                what: "organization",
                id: organization.0,
                reason: "only a registered organization can be trusted",
            }),
        }
    }

    pub(crate) fn trusts(&self, organization: &ActorId) -> bool {
        self.trusted.contains(organization)
    }

    fn verify<T: Signable>(&self, s: &Signed<T>) -> Result<&Actor> {
        let signer = s.body().signer();
        let actor = self.actors.get(&signer).ok_or(Error::UnknownSigner {
            what: T::WHAT,
            id: crate::signed::id_hash::<T>(s.body_bytes()),
            signer,
        })?;
        s.verify(actor)?;
        Ok(actor)
    }

    // --- memberships and guardians --------------------------------------------

    /// Verifies and loads an organization's membership statement, effective
    /// from `position`.
    pub fn add_membership(
        &mut self,
        m: &SignedMembership,
        position: LogPosition,
    ) -> Result<MembershipId> {
        let signer = self.verify(m)?;
        let id = m.id();
        if signer.kind() != ActorKind::Organization {
            return Err(Error::NotAuthorized {
                what: "membership",
                id: id.0,
                reason: "signer is not an organization",
            });
        }
        if self.membership_ids.contains_key(&id) {
            return Err(Error::Duplicate {
                what: "membership",
                id: id.0,
            });
        }
        let idx = index_u32(self.memberships.len())?;
        self.membership_ids.insert(id, idx);
        self.by_member.entry(m.body().member).or_default().push(idx);
        self.memberships.push(StoredMembership {
            membership: m.body().clone(),
            id,
            position,
            revoked: RevokedAt::default(),
        });
        Ok(id)
    }

    /// Verifies and loads a guardian appointment, signed by the patient or
    /// by a trusted organization, effective from `position`.
    pub fn add_appointment(
        &mut self,
        a: &SignedGuardianAppointment,
        position: LogPosition,
    ) -> Result<AppointmentId> {
        let signer = self.verify(a)?;
        let id = a.id();
        let body = a.body();
        let by_patient = body.appointer == body.patient;
        let by_authority = signer.kind() == ActorKind::Organization && self.trusts(&body.appointer);
        if !by_patient && !by_authority {
            return Err(Error::NotAuthorized {
                what: "guardian appointment",
                id: id.0,
                reason: "appointer is neither the patient nor a trusted organization",
            });
        }
        if self.appointment_ids.contains_key(&id) {
            return Err(Error::Duplicate {
                what: "guardian appointment",
                id: id.0,
            });
        }
        let idx = index_u32(self.appointments.len())?;
        self.appointment_ids.insert(id, idx);
        self.by_guardian
            .entry((body.guardian, body.patient))
            .or_default()
            .push(idx);
        self.appointments.push(StoredAppointment {
            appointment: body.clone(),
            position,
            revoked: RevokedAt::default(),
        });
        Ok(id)
    }

    // --- grants ---------------------------------------------------------------

    /// Verifies and loads one grant appended at `position`.
    ///
    /// A grant whose signature fails, or whose issuer is not registered, is
    /// kept *quarantined* (it never allows anything; it only lets a decision
    /// name [`crate::DenyReason::BadSignature`] or
    /// [`crate::DenyReason::UnknownIssuer`]) and the error is returned. A
    /// correctly signed copy loaded later replaces a quarantined one.
    pub fn add_grant(&mut self, g: &SignedGrant, position: LogPosition) -> Result<GrantId> {
        let status = match self.verify(g) {
            Ok(_) => Ok(GrantStatus::Verified),
            Err(e @ Error::UnknownSigner { .. }) => Err((GrantStatus::UnknownIssuer, e)),
            Err(e) => Err((GrantStatus::BadSignature, e)),
        };
        match status {
            Ok(s) => self.insert(g.body(), g.id(), position, s),
            Err((s, e)) => {
                self.insert(g.body(), g.id(), position, s)?;
                Err(e)
            }
        }
    }

    /// Loads grants in order, verifying their signatures one by one or in
    /// batches. Failures do not stop the load; they are reported.
    pub fn add_grants(
        &mut self,
        items: &[(SignedGrant, LogPosition)],
        mode: Verification,
    ) -> LoadReport {
        let mut report = LoadReport::default();
        let mut keys: Vec<Option<VerifyingKey>> = Vec::with_capacity(items.len());
        for (g, _) in items {
            keys.push(
                self.actors
                    .get(&g.body().issuer)
                    .map(|a| *a.verifying_key()),
            );
        }
        let ok = verify_all(items, &keys, mode);
        for (i, ((g, position), (key, good))) in items.iter().zip(keys.iter().zip(ok)).enumerate() {
            let status = match (key, good) {
                (None, _) => GrantStatus::UnknownIssuer,
                (Some(_), false) => GrantStatus::BadSignature,
                (Some(_), true) => GrantStatus::Verified,
            };
            let id = g.id();
            match self.insert(g.body(), id, *position, status) {
                Err(e) => report.failed.push((i, e)),
                Ok(_) if status == GrantStatus::Verified => report.loaded.push(id),
                Ok(_) if status == GrantStatus::UnknownIssuer => report.failed.push((
                    i,
                    Error::UnknownSigner {
                        what: "grant",
                        id: id.0,
                        signer: g.body().issuer,
                    },
                )),
                Ok(_) => report.failed.push((
                    i,
                    Error::BadSignature {
                        what: "grant",
                        id: id.0,
                    },
                )),
            }
        }
        report
    }

    /// Loads a grant whose signature the caller has already verified (for
    /// example when reopening a store that verified every grant as it was
    /// appended), skipping signature verification. Structure checks still
    /// apply. Never pass grants from an untrusted source here.
    pub fn add_verified_grant(&mut self, g: Grant, position: LogPosition) -> Result<GrantId> {
        g.validate()?;
        let id = g.id();
        self.insert(&g, id, position, GrantStatus::Verified)
    }

    fn insert(
        &mut self,
        g: &Grant,
        id: GrantId,
        position: LogPosition,
        status: GrantStatus,
    ) -> Result<GrantId> {
        if let Some(&idx) = self.grant_ids.get(&id) {
            let existing = self.grants.get_mut(idx as usize);
            return match existing {
                Some(e) if e.status != GrantStatus::Verified && status == GrantStatus::Verified => {
                    // The grant is valid only from the correct copy's
                    // position; decisions before it see the quarantined one.
                    if position > e.position {
                        e.quarantined = Some((e.position, e.status));
                    }
                    e.position = position;
                    e.status = status;
                    Ok(id)
                }
                _ => Err(Error::Duplicate {
                    what: "grant",
                    id: id.0,
                }),
            };
        }
        let mut parent_idx = None;
        if let Some(pid) = g.parent {
            let pi = *self.grant_ids.get(&pid).ok_or(Error::UnknownObject {
                what: "parent grant",
                id: pid.0,
            })?;
            parent_idx = Some(pi);
            let parent_position = self.grant_at(pi).map_or(position, |p| p.position);
            if parent_position > position {
                return Err(Error::InvalidField {
                    what: "grant",
                    field: "parent",
                    offset: 0,
                    reason: "parent appended after its child",
                });
            }
        }
        let idx = index_u32(self.grants.len())?;
        self.grant_ids.insert(id, idx);
        self.by_grantee
            .entry((g.patient, g.grantee.clone()))
            .or_default()
            .push(idx);
        self.by_patient.entry(g.patient).or_default().push(idx);
        self.grants.push(StoredGrant {
            grant: g.clone(),
            id,
            position,
            status,
            quarantined: None,
            parent: parent_idx,
            revoked: RevokedAt::default(),
        });
        Ok(id)
    }

    pub(crate) fn grant_at(&self, idx: u32) -> Option<&StoredGrant> {
        self.grants.get(idx as usize)
    }

    pub(crate) fn grant_by_id(&self, id: &GrantId) -> Option<&StoredGrant> {
        self.grant_ids.get(id).and_then(|&i| self.grant_at(i))
    }

    /// The grant with this id, if loaded (quarantined ones included).
    pub fn grant(&self, id: &GrantId) -> Option<&Grant> {
        self.grant_by_id(id).map(|s| &s.grant)
    }

    /// Every grant loaded for `patient`, in load order, with its id and log
    /// position (of the correctly signed copy, if one replaced a
    /// quarantined copy): what a patient's consent overview lists.
    pub fn grants_for_patient(
        &self,
        patient: &ActorId,
    ) -> impl Iterator<Item = (GrantId, LogPosition, &Grant)> {
        self.by_patient
            .get(patient)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.grant_at(i))
            .map(|s| (s.id, s.position, &s.grant))
    }

    /// Number of grants loaded (quarantined ones included).
    pub fn grant_count(&self) -> usize {
        self.grants.len()
    }

    // --- revocations ------------------------------------------------------------

    /// Verifies and loads a revocation appended at `position`. It must be
    /// signed by someone allowed to revoke its target (see
    /// [`crate::revocation`]).
    pub fn add_revocation(
        &mut self,
        r: &SignedRevocation,
        position: LogPosition,
    ) -> Result<RevocationId> {
        self.verify(r)?;
        self.add_verified_revocation(r.body(), position)?;
        Ok(r.id())
    }

    /// Loads a revocation whose signature the caller has already verified.
    /// Authority is still checked. Never pass revocations from an untrusted
    /// source here.
    pub fn add_verified_revocation(&mut self, r: &Revocation, position: LogPosition) -> Result<()> {
        let deny = |reason| Error::NotAuthorized {
            what: "revocation",
            id: r.target.hash(),
            reason,
        };
        let unknown = |what, id: Hash| Error::UnknownObject { what, id };
        let slot = match r.target {
            RevocationTarget::Grant(gid) => {
                let i = *self.grant_ids.get(&gid).ok_or(unknown("grant", gid.0))?;
                let g = &self.grant_at(i).ok_or(unknown("grant", gid.0))?.grant;
                let guardian = self.appointments_of(r.revoker, g.patient).any(|a| {
                    a.position <= position
                        && a.appointment.validity.contains(r.issued_at)
                        && !a.revoked.by(position)
                });
                if r.revoker != g.issuer && r.revoker != g.patient && !guardian {
                    return Err(deny("revoker is not the issuer, the patient or a guardian"));
                }
                self.grants.get_mut(i as usize).map(|g| &mut g.revoked)
            }
            RevocationTarget::Membership(mid) => {
                let i = *self
                    .membership_ids
                    .get(&mid)
                    .ok_or(unknown("membership", mid.0))?;
                let m = self
                    .memberships
                    .get_mut(i as usize)
                    .ok_or(unknown("membership", mid.0))?;
                if r.revoker != m.membership.organization {
                    return Err(deny("revoker is not the organization"));
                }
                Some(&mut m.revoked)
            }
            RevocationTarget::Appointment(aid) => {
                let what = "guardian appointment";
                let i = *self.appointment_ids.get(&aid).ok_or(unknown(what, aid.0))?;
                let a = self
                    .appointments
                    .get_mut(i as usize)
                    .ok_or(unknown(what, aid.0))?;
                if r.revoker != a.appointment.appointer && r.revoker != a.appointment.patient {
                    return Err(deny("revoker is not the appointer or the patient"));
                }
                Some(&mut a.revoked)
            }
        };
        if slot.is_some_and(|s| s.record(position)) {
            self.revoked_objects += 1;
        }
        Ok(())
    }

    /// Number of distinct objects revoked.
    pub fn revocation_count(&self) -> usize {
        self.revoked_objects
    }

    // --- lookups for decisions ---------------------------------------------------

    /// Memberships of `actor` active at `time` and `position`, with their ids.
    pub(crate) fn active_memberships(
        &self,
        actor: ActorId,
        time: u64,
        position: LogPosition,
    ) -> impl Iterator<Item = (MembershipId, &Membership)> {
        self.by_member
            .get(&actor)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.memberships.get(i as usize))
            .filter(move |m| {
                m.position <= position
                    && m.membership.validity.contains(time)
                    && !m.revoked.by(position)
            })
            .map(|m| (m.id, &m.membership))
    }

    pub(crate) fn appointments_of(
        &self,
        guardian: ActorId,
        patient: ActorId,
    ) -> impl Iterator<Item = &StoredAppointment> {
        self.by_guardian
            .get(&(guardian, patient))
            .into_iter()
            .flatten()
            .filter_map(|&i| self.appointments.get(i as usize))
    }
}

fn index_u32(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::LimitExceeded {
        what: "index",
        field: "entries",
        offset: 0,
        got: len,
        max: u32::MAX as usize,
    })
}

/// Verifies every grant whose issuer key is known; `false` where it fails or
/// the key is missing.
fn verify_all(
    items: &[(SignedGrant, LogPosition)],
    keys: &[Option<VerifyingKey>],
    mode: Verification,
) -> Vec<bool> {
    let one = |(g, _): &(SignedGrant, LogPosition), key: &Option<VerifyingKey>| {
        key.is_some_and(|k| k.verify_strict(&g.signed_message(), g.signature()).is_ok())
    };
    match mode {
        Verification::OneByOne => items.iter().zip(keys).map(|(i, k)| one(i, k)).collect(),
        Verification::Batch => {
            let mut out = Vec::with_capacity(items.len());
            for (chunk, kchunk) in items.chunks(BATCH_SIZE).zip(keys.chunks(BATCH_SIZE)) {
                let mut msgs: Vec<Vec<u8>> = Vec::with_capacity(chunk.len());
                let mut sigs: Vec<Signature> = Vec::with_capacity(chunk.len());
                let mut vks: Vec<VerifyingKey> = Vec::with_capacity(chunk.len());
                for ((g, _), k) in chunk.iter().zip(kchunk) {
                    if let Some(k) = k {
                        msgs.push(g.signed_message());
                        sigs.push(*g.signature());
                        vks.push(*k);
                    }
                }
                let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                if ed25519_dalek::verify_batch(&refs, &sigs, &vks).is_ok() {
                    out.extend(kchunk.iter().map(Option::is_some));
                } else {
                    out.extend(chunk.iter().zip(kchunk).map(|(i, k)| one(i, k)));
                }
            }
            out
        }
    }
}
