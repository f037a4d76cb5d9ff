//! Identities: registering actors, trusting organizations and loading
//! memberships, each logged.
//!
//! The audit vocabulary (medledger-audit's `Action`) has no identity
//! actions, so the closest ones are used and documented here:
//!
//! | operation | action | actor | patient partition |
//! |---|---|---|---|
//! | first registration of an actor | `create` | the ledger (system) | the registered actor |
//! | re-registration (new label) | `update` | the ledger (system) | the registered actor |
//! | trusting an organization | `grant` | the ledger (system) | the organization |
//! | membership statement | `grant` (commitment = membership id) | the organization | the member |
//!
//! The ledger's own actor id is its checkpoint verifying key, its role
//! `system`, its organization [`LEDGER_ORGANIZATION`]; purpose
//! `HSYSADMIN` (membership: `HOPERAT`). No event carries an actor's id
//! together with its own pseudonym.

use medledger_audit::{
    Action, Actor as AuditActor, AuditEvent, Id32, Outcome, PurposeOfUse, Role as AuditRole,
};
use medledger_chain::NodeStore;
use medledger_grants::{Actor, ActorId, SignedMembership};

use crate::error::{At, Error, Op, Result};
use crate::follow::{change, CHANGED_ACTOR, CHANGED_TRUST, T_CHANGES};
use crate::ledger::{now_ms, Ledger, MAX_ORGANIZATION_LEN, OBJ_MEMBERSHIP, T_ACTORS, T_TRUSTED};

/// The organization label of the ledger's own (system) audit events.
pub const LEDGER_ORGANIZATION: &str = "ledger";

impl<N: NodeStore> Ledger<N> {
    /// An event by the ledger itself about `subject` (logged under
    /// `subject`'s pseudonym). Takes no index lock.
    pub(crate) fn system_event(
        &self,
        op: Op,
        action: Action,
        subject: &ActorId,
    ) -> Result<AuditEvent> {
        Ok(AuditEvent {
            action,
            actor: AuditActor {
                id: Id32(self.signer.verifier().public_key().to_bytes()),
                role: AuditRole::System,
                organization: LEDGER_ORGANIZATION.to_owned(),
            },
            patient: self.pseudonyms.patient_key(subject.as_bytes()).at(op)?,
            record: None,
            time_ms: now_ms(),
            source: self.source.clone(),
            purpose: PurposeOfUse::SystemAdministration,
            outcome: Outcome::Success,
            grant_chain: Vec::new(),
            emergency: None,
            prev_for_patient: None,
            refers_to: None,
            commitment: None,
        })
    }

    /// Registers an actor (patient, clinician, organization, guardian,
    /// auditor, system) with the organization label its audit events carry
    /// (1 to 64 bytes, e.g. `"st-mary"`; never a person's name).
    /// Registering the same actor again updates the label. Logged as a
    /// `create` (first time) or `update` event of the ledger under the
    /// actor's pseudonym, appended before the registration is stored.
    pub fn register(&self, actor: &Actor, organization: &str) -> Result<ActorId> {
        let op = Op::RegisterActor;
        if organization.is_empty() || organization.len() > MAX_ORGANIZATION_LEN {
            return Err(Error::InvalidInput {
                op,
                what: "organization label",
                reason: "must be 1 to 64 bytes",
            });
        }
        let _turn = self.turn(op)?;
        let id = actor.id();
        let mut value = vec![organization.len() as u8];
        value.extend_from_slice(organization.as_bytes());
        value.extend_from_slice(&actor.encode());
        let mut index = self.index_mut();
        let action = if index.actor(&id).is_some() {
            Action::Update
        } else {
            Action::Create
        };
        let logged = self
            .audit
            .append(self.system_event(op, action, &id)?)
            .at(op)?
            .index;
        let change = change(CHANGED_ACTOR, id.as_bytes());
        self.wrote_rows_at(logged);
        self.commit_state(logged, op, &mut |t| {
            t.put(T_ACTORS, id.as_bytes(), &value)?;
            t.put(T_CHANGES, &logged.to_be_bytes(), &change)
        })?;
        index.register_actor(*actor);
        self.organizations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, organization.to_owned());
        Ok(id)
    }

    /// Trusts a registered organization to vouch for emergency roles
    /// (break-the-glass) and appoint guardians. Logged as a `grant` event of
    /// the ledger under the organization's pseudonym.
    pub fn trust_organization(&self, organization: ActorId) -> Result<()> {
        let op = Op::TrustOrganization;
        let _turn = self.turn(op)?;
        let mut index = self.index_mut();
        index.trust_organization(organization).at(op)?;
        let event = self.system_event(op, Action::Grant, &organization)?;
        let logged = self.audit.append(event).at(op)?.index;
        let change = change(CHANGED_TRUST, organization.as_bytes());
        self.wrote_rows_at(logged);
        self.commit_state(logged, op, &mut |t| {
            t.put(T_TRUSTED, organization.as_bytes(), &[])?;
            t.put(T_CHANGES, &logged.to_be_bytes(), &change)
        })
    }

    /// Appends and loads an organization's signed membership statement
    /// (e.g. a clinician's `emergency` role), effective from the log size
    /// before its event. Logged as a `grant` event of the organization
    /// under the member's pseudonym, with the membership id as its
    /// commitment.
    pub fn add_membership(&self, membership: &SignedMembership) -> Result<()> {
        let op = Op::AddMembership;
        let _turn = self.turn(op)?;
        let body = membership.body();
        self.actor(&body.organization, op)?;
        self.actor(&body.member, op)?;
        let event = self.event(
            op,
            Action::Grant,
            &body.organization,
            &body.member,
            None,
            PurposeOfUse::Operations,
            Outcome::Success,
            Vec::new(),
            None,
        )?;
        self.append_object(
            op,
            OBJ_MEMBERSHIP,
            &membership.encode(),
            event,
            *membership.id().0.as_bytes(),
            &mut |index, _, at| index.add_membership(membership, at).map(|_| ()),
        )?;
        Ok(())
    }
}
