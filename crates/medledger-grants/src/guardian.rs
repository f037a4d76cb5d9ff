//! Guardians: a [`GuardianAppointment`] lets a guardian (parent of a minor,
//! legal proxy) issue grants on a patient's behalf.
//!
//! An appointment counts when it is signed by the patient, or by an
//! organization the index trusts as a guardianship authority (a court
//! registry, a hospital's legal office) for a patient who cannot consent.
//!
//! ```text
//! appointment = "MLGA" ‖ version 0x01
//!             ‖ appointer actor id [32] ‖ guardian actor id [32] ‖ patient actor id [32]
//!             ‖ not_before u64 ‖ not_after u64 ‖ issued_at u64
//! signed appointment = appointment ‖ Ed25519 signature [64] by the appointer
//!   over "medledger-grants/v1 guardian-signature\0" ‖ appointment
//! appointment id = BLAKE3("medledger-grants/v1 guardian-id\0" ‖ appointment)
//! ```

use core::fmt;

use medledger_chain::Hash;

use crate::actor::ActorId;
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::grant::read_actor;
use crate::scope::Validity;
use crate::signed::{sealed, Signable, Signed};

const MAGIC: &[u8; 4] = b"MLGA";
const VERSION: u8 = 1;

/// The id of a guardian appointment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct AppointmentId(pub Hash);

impl From<Hash> for AppointmentId {
    fn from(h: Hash) -> Self {
        AppointmentId(h)
    }
}

impl fmt::Display for AppointmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

/// `appointer` makes `guardian` the guardian of `patient` during `validity`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GuardianAppointment {
    /// The patient, or a trusted organization (the signer).
    pub appointer: ActorId,
    /// The guardian.
    pub guardian: ActorId,
    /// The patient.
    pub patient: ActorId,
    /// When the appointment holds. A guardian's authority is checked at
    /// decision time: grants it issued stop allowing when it ends.
    pub validity: Validity,
    /// When it was signed.
    pub issued_at: u64,
}

/// An appointment with the appointer's signature.
pub type SignedGuardianAppointment = Signed<GuardianAppointment>;

impl sealed::Sealed for GuardianAppointment {}

impl Signable for GuardianAppointment {
    type Id = AppointmentId;
    const WHAT: &'static str = "guardian appointment";
    const SIGNATURE_CONTEXT: &'static [u8] = b"medledger-grants/v1 guardian-signature\0";
    const ID_CONTEXT: &'static [u8] = b"medledger-grants/v1 guardian-id\0";

    fn signer(&self) -> ActorId {
        self.appointer
    }

    fn validate(&self) -> Result<()> {
        if self.guardian == self.patient {
            return Err(Error::InvalidField {
                what: Self::WHAT,
                field: "guardian",
                offset: 0,
                reason: "a patient cannot be their own guardian",
            });
        }
        self.validity.validate(Self::WHAT)
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_header(MAGIC, VERSION);
        w.raw(self.appointer.as_bytes());
        w.raw(self.guardian.as_bytes());
        w.raw(self.patient.as_bytes());
        self.validity.write(&mut w);
        w.u64(self.issued_at);
        w.finish()
    }

    fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize)> {
        let mut r = Reader::new(bytes, Self::WHAT);
        r.header(MAGIC, VERSION)?;
        let appointer = read_actor(&mut r, "appointer")?;
        let at = r.offset();
        let guardian = read_actor(&mut r, "guardian")?;
        let patient = read_actor(&mut r, "patient")?;
        if guardian == patient {
            return Err(r.invalid_at("guardian", at, "a patient cannot be their own guardian"));
        }
        let validity = Validity::read(&mut r)?;
        let issued_at = r.u64("issued_at")?;
        Ok((
            GuardianAppointment {
                appointer,
                guardian,
                patient,
                validity,
                issued_at,
            },
            r.offset(),
        ))
    }
}
