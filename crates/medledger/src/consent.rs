//! Consent: grants (appended, keys rewrapped to the grantee) and
//! revocations (appended, the grantee's wraps removed, key rotation
//! logged; later versions use fresh data keys never wrapped to them).

use medledger_audit::{Action as AuditAction, Id32, Outcome, RecordRef};
use medledger_chain::NodeStore;
use medledger_envelope::Header;
use medledger_grants::{
    Action, ActorId, GrantId, Grantee, RevocationTarget, SignedGrant, SignedRevocation,
};

use crate::access::meta;
use crate::error::{At, Op, Result};
use crate::ledger::{Ledger, OBJ_GRANT, OBJ_REVOCATION};
use crate::record_state::RecordState;

impl<N: NodeStore> Ledger<N> {
    /// Appends a patient-signed (or guardian- or delegate-signed) grant.
    /// For a patient-signed grant of `read` to an actor, the data key of
    /// every record version in its scope is wrapped to the grantee right
    /// away. Other grants (to organizations or roles, or signed by someone
    /// other than the patient) are wrapped lazily, to each grantee on
    /// their first allowed read.
    pub fn grant(&self, grant: &SignedGrant) -> Result<GrantId> {
        let op = Op::Grant;
        let _turn = self.turn(op)?;
        let body = grant.body();
        self.actor(&body.issuer, op)?;
        self.actor(&body.patient, op)?;
        // A delegated grant must attenuate its parent (grants' rule); one
        // signed by hand that widens it is refused before it is logged.
        if let Some(parent) = body.parent.and_then(|p| self.index().grant(&p).cloned()) {
            body.check_attenuates(&parent).at(op)?;
        }
        let event = self.event(
            op,
            AuditAction::Grant,
            &body.issuer,
            &body.patient,
            None,
            medledger_audit::PurposeOfUse::PatientRequested,
            Outcome::Success,
            vec![Id32(*grant.id().0.as_bytes())],
            None,
        )?;
        let mut id = None;
        self.append_object(
            op,
            OBJ_GRANT,
            &grant.encode(),
            event,
            *grant.id().0.as_bytes(),
            &mut |index, _, at| {
                id = Some(index.add_grant(grant, at)?);
                Ok(())
            },
        )?;
        let id = id.unwrap_or_else(|| grant.id());
        // Only the patient's own grants of `read` are wrapped eagerly: a
        // grant from anyone else (a delegate, or an issuer with no
        // authority at all) is logged whatever its authority, so its
        // grantee is wrapped lazily, on a read the decision allows.
        let eager = body.issuer == body.patient && body.actions.contains(Action::Read);
        if let (true, Grantee::Actor(grantee)) = (eager, &body.grantee) {
            let reader = crate::record::x25519_of(&self.actor(grantee, op)?);
            for record in self.records_of(&body.patient)? {
                let _guard = self.record_lock(&record);
                let st = self.record_state(&record, op)?;
                if st.erased || !body.scope.covers(&meta(&record, &st, op)?) {
                    continue;
                }
                for v in 1..=st.latest {
                    // Only versions whose own labels the grant includes.
                    let labels = self.version_labels(&record, &st, v, op)?;
                    if labels.is_subset(body.sensitivity) {
                        self.add_reader(&record, &st, v, &reader, op)?;
                    }
                }
            }
        }
        Ok(id)
    }

    /// Appends a signed revocation. Decisions after it deny. For a grant to
    /// one actor, that grantee's wraps are removed from every version
    /// header of the patient's records, and each record they were removed
    /// from gets a KeyRotation event (`refers_to` the revocation): every
    /// version is sealed under its own data key drawn when it is written,
    /// so versions written after the revocation use keys the revoked
    /// grantee never received.
    ///
    /// What revocation cannot undo: plaintext the grantee already read,
    /// and data keys they already unwrapped — such a key still opens its
    /// version's ciphertext wherever the grantee obtains it (existing
    /// versions are not re-encrypted). For a grant to an organization or a
    /// role, the policy denies its members at once, but wraps made to
    /// members on earlier reads stay in the headers.
    pub fn revoke(&self, revocation: &SignedRevocation) -> Result<u64> {
        let op = Op::Revoke;
        let _turn = self.turn(op)?;
        let body = revocation.body();
        self.actor(&body.revoker, op)?;
        let target = match body.target {
            RevocationTarget::Grant(g) => self.index().grant(&g).cloned(),
            _ => None,
        };
        let patient = match body.target {
            RevocationTarget::Appointment(a) => self.guardians().patient_of(&a),
            _ => target.as_ref().map(|g| g.patient),
        }
        .unwrap_or(body.revoker);
        let event = self.event(
            op,
            AuditAction::Revoke,
            &body.revoker,
            &patient,
            None,
            medledger_audit::PurposeOfUse::PatientRequested,
            Outcome::Success,
            vec![Id32(*body.target.hash().as_bytes())],
            None,
        )?;
        let index = self.append_object(
            op,
            OBJ_REVOCATION,
            &revocation.encode(),
            event,
            *revocation.id().0.as_bytes(),
            &mut |index, guardians, at| {
                index.add_revocation(revocation, at)?;
                if let RevocationTarget::Appointment(a) = body.target {
                    guardians.revoke(&a, at);
                }
                Ok(())
            },
        )?;
        if let Some(g) = target {
            if let Grantee::Actor(grantee) = g.grantee {
                let key = crate::record::x25519_of(&self.actor(&grantee, op)?).key_id();
                for record in self.records_of(&g.patient)? {
                    let _guard = self.record_lock(&record);
                    let st = self.record_state(&record, op)?;
                    if st.erased {
                        continue;
                    }
                    let ctx_custody = self.custody_key(&record, &st, op)?;
                    let mut removed = false;
                    for v in 1..=st.latest {
                        // Every version up to `latest` has a state; a gap
                        // is corruption, and skipping it would let a
                        // corrupt `latest` spin this loop for 2^64 steps.
                        let vs = self.version_state(&record, v, op)?;
                        let bytes = self.read_body(&vs.blob, op)?;
                        let (header, body) = Header::parse_prefix(&bytes).at(op)?;
                        if !header.recipients().any(|k| k == key) {
                            continue;
                        }
                        let ctx = self.context(&record, &st, v, op)?;
                        let dk = header.unwrap_data_key(&ctx_custody, &ctx).at(op)?;
                        let new = header.remove_recipients(&dk, &[key]).at(op)?;
                        self.replace_header(&record, v, &vs, &new, body, op)?;
                        removed = true;
                    }
                    if removed {
                        self.log_key_rotation(&body.revoker, &record, &st, index, op)?;
                    }
                }
            }
        }
        Ok(index)
    }

    /// Logs that `record`'s keys were rotated away from a revoked grantee
    /// (the revocation is log entry `revocation`): their wraps were removed
    /// from versions 1 to `latest`, and versions written later are sealed
    /// under fresh data keys never wrapped to them.
    fn log_key_rotation(
        &self,
        revoker: &ActorId,
        record: &str,
        st: &RecordState,
        revocation: u64,
        op: Op,
    ) -> Result<u64> {
        let mut event = self.event(
            op,
            AuditAction::KeyRotation,
            revoker,
            &st.patient,
            Some(RecordRef {
                id: record.to_owned(),
                version: st.latest,
            }),
            medledger_audit::PurposeOfUse::PatientRequested,
            Outcome::Success,
            Vec::new(),
            None,
        )?;
        event.refers_to = Some(revocation);
        Ok(self.audit.append(event).at(op)?.index)
    }
}
