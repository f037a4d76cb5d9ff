//! State rows loaded into memory: the actors, signed objects and pending
//! objects that both opening a ledger and catching up with other writers
//! (`follow`) read.

use std::collections::HashMap;

use medledger_grants::{
    Actor, ActorId, GrantIndex, LogPosition, RevocationTarget, SignedGrant,
    SignedGuardianAppointment, SignedMembership, SignedRevocation,
};

use crate::error::{At, Error, Op, Result};
use crate::guardian::Guardians;
use crate::ledger::{
    u64_from, OBJ_APPOINTMENT, OBJ_GRANT, OBJ_MEMBERSHIP, OBJ_REVOCATION, T_ACTORS, T_OBJECTS,
    T_PENDING,
};

/// A `pending-objects` row (see [`Ledger::append_object`]).
pub(crate) struct Pending {
    /// The object's id (its event's commitment).
    pub(crate) id: [u8; 32],
    /// The log position it takes effect from.
    pub(crate) at: u64,
    /// Its `objects` value: tag, then the signed object.
    pub(crate) value: Vec<u8>,
}

impl Pending {
    pub(crate) fn parse(id: &[u8], v: &[u8], op: Op) -> Result<Self> {
        let corrupt = |reason| Error::CorruptState {
            op,
            table: T_PENDING,
            reason,
        };
        let (&tag, rest) = v.split_first().ok_or(corrupt("empty"))?;
        let (at, bytes) = rest.split_at_checked(8).ok_or(corrupt("short"))?;
        let at = u64_from(at).ok_or(corrupt("bad position"))?;
        let id: [u8; 32] = id.try_into().map_err(|_| corrupt("bad id"))?;
        let mut value = vec![tag];
        value.extend_from_slice(bytes);
        Ok(Pending { id, at, value })
    }
}

/// Loads one `actors` row into the grant index and the labels.
pub(crate) fn load_actor(
    index: &mut GrantIndex,
    orgs: &mut HashMap<ActorId, String>,
    v: &[u8],
    op: Op,
) -> Result<()> {
    let (label, actor) = decode_actor(v).ok_or(Error::CorruptState {
        op,
        table: T_ACTORS,
        reason: "bad actor",
    })?;
    orgs.insert(actor.id(), label);
    index.register_actor(actor);
    Ok(())
}

/// Loads one `objects` row (key: its big-endian log position) into the
/// grant index and the guardians.
pub(crate) fn load_object(
    index: &mut GrantIndex,
    guardians: &mut Guardians,
    k: &[u8],
    v: &[u8],
    op: Op,
) -> Result<()> {
    let corrupt = |reason| Error::CorruptState {
        op,
        table: T_OBJECTS,
        reason,
    };
    let pos = u64_from(k).ok_or(corrupt("bad position"))?;
    let (tag, bytes) = v.split_first().ok_or(corrupt("empty"))?;
    let at = LogPosition(pos);
    match *tag {
        OBJ_GRANT => {
            index
                .add_grant(&SignedGrant::decode(bytes).at(op)?, at)
                .at(op)?;
        }
        OBJ_MEMBERSHIP => {
            index
                .add_membership(&SignedMembership::decode(bytes).at(op)?, at)
                .at(op)?;
        }
        OBJ_REVOCATION => {
            let r = SignedRevocation::decode(bytes).at(op)?;
            index.add_revocation(&r, at).at(op)?;
            if let RevocationTarget::Appointment(a) = r.body().target {
                guardians.revoke(&a, at);
            }
        }
        OBJ_APPOINTMENT => {
            let a = SignedGuardianAppointment::decode(bytes).at(op)?;
            let id = index.add_appointment(&a, at).at(op)?;
            guardians.add(id, a.body(), at);
        }
        _ => return Err(corrupt("unknown object tag")),
    }
    Ok(())
}

fn decode_actor(v: &[u8]) -> Option<(String, Actor)> {
    let (len, rest) = v.split_first()?;
    let (label, actor) = rest.split_at_checked(usize::from(*len))?;
    let label = core::str::from_utf8(label).ok()?.to_owned();
    Some((label, Actor::decode(actor).ok()?))
}
