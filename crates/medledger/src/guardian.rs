//! Who speaks for a patient: the patient, or a guardian whose appointment
//! (medledger-grants' [`GuardianAppointment`]) is active.
//!
//! The grants engine checks guardians only as the issuers of root grants;
//! it has no query for "is this actor an active guardian of this patient
//! now", which erasure needs. The facade therefore keeps the appointments
//! it loaded (the same ones, at the same log positions, as the grant index)
//! with their revocations, and applies the engine's rule: appointed at or
//! before the decision's log position, its validity window contains the
//! decision's time, not revoked at or before that position.

use std::collections::HashMap;

use medledger_chain::NodeStore;
use medledger_grants::{
    ActorId, AppointmentId, GuardianAppointment, LogPosition, SignedGuardianAppointment,
};

use crate::error::{Op, Result};
use crate::ledger::{now_ms, Ledger, OBJ_APPOINTMENT};

/// One loaded appointment and the position of its first revocation.
#[derive(Clone, Debug)]
struct Appointment {
    appointment: GuardianAppointment,
    position: LogPosition,
    revoked: Option<LogPosition>,
}

/// The guardian appointments loaded into the ledger, by id.
#[derive(Debug, Default)]
pub(crate) struct Guardians(HashMap<AppointmentId, Appointment>);

impl Guardians {
    /// Records an appointment the grant index accepted at `position`.
    pub(crate) fn add(&mut self, id: AppointmentId, a: &GuardianAppointment, at: LogPosition) {
        self.0.insert(
            id,
            Appointment {
                appointment: a.clone(),
                position: at,
                revoked: None,
            },
        );
    }

    /// Records a revocation of `id` (accepted by the grant index) at `at`.
    pub(crate) fn revoke(&mut self, id: &AppointmentId, at: LogPosition) {
        if let Some(a) = self.0.get_mut(id) {
            a.revoked = Some(a.revoked.map_or(at, |r| r.min(at)));
        }
    }

    /// The patient an appointment is for.
    pub(crate) fn patient_of(&self, id: &AppointmentId) -> Option<ActorId> {
        self.0.get(id).map(|a| a.appointment.patient)
    }

    /// Whether `guardian` holds an active appointment for `patient` at
    /// `time` (Unix seconds) as of log position `at`.
    pub(crate) fn is_active(
        &self,
        guardian: &ActorId,
        patient: &ActorId,
        time: u64,
        at: LogPosition,
    ) -> bool {
        self.0.values().any(|a| {
            a.appointment.guardian == *guardian
                && a.appointment.patient == *patient
                && a.position <= at
                && a.appointment.validity.contains(time)
                && a.revoked.is_none_or(|r| r > at)
        })
    }
}

impl<N: NodeStore> Ledger<N> {
    /// Appends a guardian appointment (signed by the patient, or by an
    /// organization trusted with [`Ledger::trust_organization`]) and loads
    /// it: from then on the guardian may issue grants for the patient,
    /// read and write their records and erase them, while the appointment
    /// is valid and unrevoked. Logged as a `grant` event of the appointer
    /// (the audit vocabulary has no closer action) whose `commitment` is
    /// the appointment id.
    pub fn appoint_guardian(
        &self,
        appointment: &SignedGuardianAppointment,
    ) -> Result<AppointmentId> {
        let op = Op::Grant;
        let _turn = self.turn(op)?;
        let body = appointment.body();
        self.actor(&body.appointer, op)?;
        self.actor(&body.guardian, op)?;
        self.actor(&body.patient, op)?;
        let event = self.event(
            op,
            medledger_audit::Action::Grant,
            &body.appointer,
            &body.patient,
            None,
            medledger_audit::PurposeOfUse::Legal,
            medledger_audit::Outcome::Success,
            Vec::new(),
            None,
        )?;
        let mut id = None;
        self.append_object(
            op,
            OBJ_APPOINTMENT,
            &appointment.encode(),
            event,
            *appointment.id().0.as_bytes(),
            &mut |index, guardians, at| {
                let got = index.add_appointment(appointment, at)?;
                guardians.add(got, body, at);
                id = Some(got);
                Ok(())
            },
        )?;
        id.ok_or(crate::error::Error::CorruptState {
            op,
            table: crate::ledger::T_OBJECTS,
            reason: "appointment not loaded",
        })
    }

    /// Whether `actor` speaks for `patient` now: the patient themself or an
    /// active guardian.
    pub(crate) fn speaks_for(&self, actor: &ActorId, patient: &ActorId) -> bool {
        actor == patient
            || self.guardians().is_active(
                actor,
                patient,
                now_ms() / 1000,
                LogPosition(self.audit.size()),
            )
    }
}
