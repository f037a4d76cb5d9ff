//! Organizations vouch for their members: a [`Membership`] signed by the
//! organization says "this actor holds role R here, in this window".
//!
//! ```text
//! membership = "MLMB" ‖ version 0x01
//!            ‖ organization actor id [32] ‖ member actor id [32]
//!            ‖ role len u8 (1..=64) ‖ role
//!            ‖ not_before u64 ‖ not_after u64 ‖ issued_at u64
//! signed membership = membership ‖ Ed25519 signature [64] by the organization
//!   over "medledger-grants/v1 membership-signature\0" ‖ membership
//! membership id = BLAKE3("medledger-grants/v1 membership-id\0" ‖ membership)
//! ```

use core::fmt;

use medledger_chain::Hash;

use crate::actor::ActorId;
use crate::codec::{Reader, Writer};
use crate::error::Result;
use crate::grant::read_actor;
use crate::scope::{check_text, Validity};
use crate::signed::{sealed, Signable, Signed};

const MAGIC: &[u8; 4] = b"MLMB";
const VERSION: u8 = 1;

/// Longest role name in bytes.
pub const MAX_ROLE_LEN: usize = 64;

/// A role within an organization: 1–64 bytes of `[a-z0-9._-]`
/// (`cardiology`, `emergency`, `records-office`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Role(String);

impl Role {
    /// The role that permits break-the-glass access.
    pub const EMERGENCY: &'static str = "emergency";

    /// Validates and wraps a role name.
    pub fn new(name: &str) -> Result<Self> {
        check_text(name, MAX_ROLE_LEN, "role", |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })?;
        Ok(Role(name.to_owned()))
    }

    /// The emergency role.
    pub fn emergency() -> Self {
        Role(Self::EMERGENCY.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let at = r.offset();
        let bytes = r.short_bytes("role", MAX_ROLE_LEN)?;
        core::str::from_utf8(bytes)
            .ok()
            .and_then(|s| Role::new(s).ok())
            .ok_or_else(|| r.invalid_at("role", at, "character outside [a-z0-9._-]"))
    }
}

/// The id of a membership.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct MembershipId(pub Hash);

impl From<Hash> for MembershipId {
    fn from(h: Hash) -> Self {
        MembershipId(h)
    }
}

impl fmt::Display for MembershipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

/// An organization's statement that `member` holds `role` in it during
/// `validity`. Signed by the organization.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Membership {
    /// The organization vouching (the signer; must be an actor of kind
    /// organization).
    pub organization: ActorId,
    /// The member.
    pub member: ActorId,
    /// The member's role.
    pub role: Role,
    /// When the membership holds.
    pub validity: Validity,
    /// When it was signed.
    pub issued_at: u64,
}

/// A membership with the organization's signature.
pub type SignedMembership = Signed<Membership>;

impl sealed::Sealed for Membership {}

impl Signable for Membership {
    type Id = MembershipId;
    const WHAT: &'static str = "membership";
    const SIGNATURE_CONTEXT: &'static [u8] = b"medledger-grants/v1 membership-signature\0";
    const ID_CONTEXT: &'static [u8] = b"medledger-grants/v1 membership-id\0";

    fn signer(&self) -> ActorId {
        self.organization
    }

    fn validate(&self) -> Result<()> {
        self.validity.validate("membership")
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_header(MAGIC, VERSION);
        w.raw(self.organization.as_bytes());
        w.raw(self.member.as_bytes());
        w.short_bytes(self.role.as_str().as_bytes());
        self.validity.write(&mut w);
        w.u64(self.issued_at);
        w.finish()
    }

    fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize)> {
        let mut r = Reader::new(bytes, "membership");
        r.header(MAGIC, VERSION)?;
        let organization = read_actor(&mut r, "organization")?;
        let member = read_actor(&mut r, "member")?;
        let role = Role::read(&mut r)?;
        let validity = Validity::read(&mut r)?;
        let issued_at = r.u64("issued_at")?;
        Ok((
            Membership {
                organization,
                member,
                role,
                validity,
                issued_at,
            },
            r.offset(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_lowercase_names() {
        assert!(Role::new("cardiology").is_ok());
        assert!(Role::new("Cardiology").is_err());
        assert!(Role::new("").is_err());
        assert_eq!(Role::emergency().as_str(), "emergency");
    }
}
