//! Revocations: a signed statement that a grant (or a membership, or a
//! guardian appointment) no longer holds, effective from the log position
//! where it was appended.
//!
//! A grant may be revoked by its issuer or by its patient; revoking a grant
//! revokes every grant derived from it. A membership is revoked by its
//! organization, an appointment by its appointer or by the patient.
//!
//! ```text
//! revocation = "MLRV" ‖ version 0x01
//!            ‖ revoker actor id [32]
//!            ‖ target kind u8 (0x01 grant | 0x02 membership | 0x03 guardian appointment)
//!            ‖ target id [32] ‖ issued_at u64
//! signed revocation = revocation ‖ Ed25519 signature [64] by the revoker
//!   over "medledger-grants/v1 revocation-signature\0" ‖ revocation
//! revocation id = BLAKE3("medledger-grants/v1 revocation-id\0" ‖ revocation)
//! ```

use core::fmt;

use medledger_chain::Hash;

use crate::actor::ActorId;
use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::grant::{read_actor, GrantId};
use crate::guardian::AppointmentId;
use crate::membership::MembershipId;
use crate::signed::{sealed, Signable, Signed};

const MAGIC: &[u8; 4] = b"MLRV";
const VERSION: u8 = 1;

/// The id of a revocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct RevocationId(pub Hash);

impl From<Hash> for RevocationId {
    fn from(h: Hash) -> Self {
        RevocationId(h)
    }
}

impl fmt::Display for RevocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

/// What a revocation withdraws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevocationTarget {
    /// A grant and everything derived from it.
    Grant(GrantId),
    /// An organization membership.
    Membership(MembershipId),
    /// A guardian appointment (grants the guardian issued stop allowing).
    Appointment(AppointmentId),
}

impl RevocationTarget {
    /// The target's id hash (ids of different kinds never collide: their
    /// hash inputs carry different contexts).
    pub fn hash(&self) -> Hash {
        match self {
            RevocationTarget::Grant(g) => g.0,
            RevocationTarget::Membership(m) => m.0,
            RevocationTarget::Appointment(a) => a.0,
        }
    }
}

/// `revoker` withdraws `target`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Revocation {
    /// Who revokes (the signer).
    pub revoker: ActorId,
    /// What is revoked.
    pub target: RevocationTarget,
    /// When it was signed (informational; the revocation takes effect at
    /// its log position).
    pub issued_at: u64,
}

/// A revocation with the revoker's signature.
pub type SignedRevocation = Signed<Revocation>;

impl sealed::Sealed for Revocation {}

impl Signable for Revocation {
    type Id = RevocationId;
    const WHAT: &'static str = "revocation";
    const SIGNATURE_CONTEXT: &'static [u8] = b"medledger-grants/v1 revocation-signature\0";
    const ID_CONTEXT: &'static [u8] = b"medledger-grants/v1 revocation-id\0";

    fn signer(&self) -> ActorId {
        self.revoker
    }

    fn validate(&self) -> Result<()> {
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_header(MAGIC, VERSION);
        w.raw(self.revoker.as_bytes());
        let (tag, h) = match self.target {
            RevocationTarget::Grant(g) => (1, g.0),
            RevocationTarget::Membership(m) => (2, m.0),
            RevocationTarget::Appointment(a) => (3, a.0),
        };
        w.u8(tag);
        w.raw(h.as_bytes());
        w.u64(self.issued_at);
        w.finish()
    }

    fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize)> {
        let mut r = Reader::new(bytes, Self::WHAT);
        r.header(MAGIC, VERSION)?;
        let revoker = read_actor(&mut r, "revoker")?;
        let at = r.offset();
        let tag = r.u8("target kind")?;
        let h = Hash(r.array("target")?);
        let target = match tag {
            1 => RevocationTarget::Grant(GrantId(h)),
            2 => RevocationTarget::Membership(MembershipId(h)),
            3 => RevocationTarget::Appointment(AppointmentId(h)),
            _ => return Err(r.invalid_at("target kind", at, "unknown target kind")),
        };
        let issued_at = r.u64("issued_at")?;
        Ok((
            Revocation {
                revoker,
                target,
                issued_at,
            },
            r.offset(),
        ))
    }
}
