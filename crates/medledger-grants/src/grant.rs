//! Grants: the patient's (or a guardian's or delegate's) signed permission
//! for a grantee to act on the patient's records.
//!
//! ```text
//! grant = "MLGR" ‖ version 0x01
//!       ‖ issuer actor id [32] ‖ patient actor id [32]
//!       ‖ grantee:  0x01 ‖ actor id [32]
//!                 | 0x02 ‖ organization actor id [32]
//!                 | 0x03 ‖ organization actor id [32] ‖ role len u8 (1..=64) ‖ role
//!       ‖ parent:   0x00 | 0x01 ‖ parent grant id [32]
//!       ‖ scope:    0x01 (all records)
//!                 | 0x02 ‖ count u16 (1..=64)  ‖ (len u8 (1..=64)  ‖ category)*   strictly ascending
//!                 | 0x03 ‖ count u16 (1..=256) ‖ (len u8 (1..=128) ‖ record id)*  strictly ascending
//!       ‖ included sensitivity labels u16 (bit set)
//!       ‖ actions u8 (bit set, non-empty) ‖ purposes u32 (bit set, non-empty)
//!       ‖ not_before u64 ‖ not_after u64 (not_before < not_after)
//!       ‖ max delegation depth u8 (0..=15)
//!       ‖ issued_at u64 ‖ nonce [16]
//! signed grant = grant ‖ Ed25519 signature [64]
//!   over "medledger-grants/v1 grant-signature\0" ‖ grant
//! grant id = BLAKE3("medledger-grants/v1 grant-id\0" ‖ grant)
//! ```
//! Integers are big-endian; no trailing bytes are accepted.

use core::fmt;

use medledger_chain::Hash;
use rand_core::{OsRng, RngCore as _};

use crate::actor::ActorId;
use crate::actor::ActorKeys;
use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::membership::Role;
use crate::permission::{Action, ActionSet, PurposeSet, SensitivitySet};
use crate::scope::{Scope, Validity};
use crate::signed::{sealed, Signable, Signed};

const MAGIC: &[u8; 4] = b"MLGR";
const VERSION: u8 = 1;

/// Largest `max_delegation_depth` a grant may carry, so a chain is at most
/// [`MAX_CHAIN_LEN`] grants long.
pub const MAX_DELEGATION_DEPTH: u8 = 15;

/// Most grants in a delegation chain (the patient's grant and 15 derived
/// ones): what an audit event can name (medledger-audit's `MAX_GRANTS` is
/// 16), so every read a chain allows can be logged.
pub const MAX_CHAIN_LEN: usize = MAX_DELEGATION_DEPTH as usize + 1;

/// The id of a grant: `BLAKE3("medledger-grants/v1 grant-id\0" ‖ encoding)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId(pub Hash);

impl From<Hash> for GrantId {
    fn from(h: Hash) -> Self {
        GrantId(h)
    }
}

impl fmt::Debug for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrantId({})", self.0.to_hex())
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Grantee {
    /// One actor.
    Actor(ActorId),
    /// Every current member of an organization (any role), as vouched by a
    /// membership the organization signed.
    Organization(ActorId),
    /// Members holding `role` in the organization (for example cardiology
    /// at Hospital A).
    Role {
        /// The organization.
        organization: ActorId,
        /// The role within it.
        role: Role,
    },
}

impl Grantee {
    fn write(&self, w: &mut Writer) {
        match self {
            Grantee::Actor(a) => {
                w.u8(1);
                w.raw(a.as_bytes());
            }
            Grantee::Organization(o) => {
                w.u8(2);
                w.raw(o.as_bytes());
            }
            Grantee::Role { organization, role } => {
                w.u8(3);
                w.raw(organization.as_bytes());
                w.short_bytes(role.as_str().as_bytes());
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let at = r.offset();
        match r.u8("grantee tag")? {
            1 => Ok(Grantee::Actor(read_actor(r, "grantee")?)),
            2 => Ok(Grantee::Organization(read_actor(r, "grantee")?)),
            3 => {
                let organization = read_actor(r, "grantee")?;
                let role = Role::read(r)?;
                Ok(Grantee::Role { organization, role })
            }
            _ => Err(r.invalid_at("grantee tag", at, "unknown grantee tag")),
        }
    }
}

pub(crate) fn read_actor(r: &mut Reader<'_>, field: &'static str) -> Result<ActorId> {
    Ok(ActorId(Hash(r.array(field)?)))
}

/// A grant's content. Fields are public so an application can build one;
/// [`Signed::sign`] validates it before signing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    /// Who signs: the patient, a guardian of the patient, or (for a derived
    /// grant) a grantee of the parent grant holding `share`.
    pub issuer: ActorId,
    /// Whose records.
    pub patient: ActorId,
    /// Who receives the permission.
    pub grantee: Grantee,
    /// The grant this one is derived from, if any.
    pub parent: Option<GrantId>,
    /// Which records.
    pub scope: Scope,
    /// Sensitivity labels the grant includes. A record carrying any label not
    /// in this set is excluded, whatever the scope says.
    pub sensitivity: SensitivitySet,
    /// What the grantee may do (non-empty).
    pub actions: ActionSet,
    /// For which purposes (non-empty).
    pub purposes: PurposeSet,
    /// When.
    pub validity: Validity,
    /// How many further levels of derived grants may follow this one
    /// (0 = none; at most [`MAX_DELEGATION_DEPTH`]). A derived grant's depth
    /// must be strictly smaller than its parent's.
    pub max_delegation_depth: u8,
    /// When the issuer signed it (seconds since the Unix epoch).
    pub issued_at: u64,
    /// Random bytes so that two otherwise identical grants have distinct ids.
    pub nonce: [u8; 16],
}

/// A grant with its issuer's signature.
pub type SignedGrant = Signed<Grant>;

impl Grant {
    /// 16 fresh random bytes for [`Grant::nonce`], from the OS.
    pub fn fresh_nonce() -> [u8; 16] {
        let mut n = [0u8; 16];
        OsRng.fill_bytes(&mut n);
        n
    }

    /// Checks that `self`, derived from `parent`, is no wider: same patient,
    /// parent holds `share` and has depth left, scope, labels, actions,
    /// purposes and validity inside the parent's, depth strictly smaller.
    pub fn check_attenuates(&self, parent: &Grant) -> Result<()> {
        let widens = |field| Err(Error::DelegationWidens { field });
        if self.patient != parent.patient {
            return widens("patient");
        }
        if !parent.actions.contains(Action::Share) {
            return widens("actions (parent lacks share)");
        }
        if self.max_delegation_depth >= parent.max_delegation_depth {
            return widens("max_delegation_depth");
        }
        if !self.scope.is_within(&parent.scope) {
            return widens("scope");
        }
        if !self.sensitivity.is_subset(parent.sensitivity) {
            return widens("sensitivity");
        }
        if !self.actions.is_subset(parent.actions) {
            return widens("actions");
        }
        if !self.purposes.is_subset(parent.purposes) {
            return widens("purposes");
        }
        if !self.validity.is_within(&parent.validity) {
            return widens("validity");
        }
        Ok(())
    }
}

impl Signed<Grant> {
    /// Issues `child` as a grant derived from `parent`: sets its parent id,
    /// checks it attenuates the parent ([`Grant::check_attenuates`]) and
    /// signs it with `keys` (the child's issuer, a grantee of the parent).
    pub fn delegate(parent: &SignedGrant, mut child: Grant, keys: &ActorKeys) -> Result<Self> {
        child.parent = Some(parent.id());
        child.check_attenuates(parent.body())?;
        Signed::sign(child, keys)
    }
}

impl sealed::Sealed for Grant {}

impl Signable for Grant {
    type Id = GrantId;
    const WHAT: &'static str = "grant";
    const SIGNATURE_CONTEXT: &'static [u8] = b"medledger-grants/v1 grant-signature\0";
    const ID_CONTEXT: &'static [u8] = b"medledger-grants/v1 grant-id\0";

    fn signer(&self) -> ActorId {
        self.issuer
    }

    fn validate(&self) -> Result<()> {
        let invalid = |field, reason| {
            Err(Error::InvalidField {
                what: "grant",
                field,
                offset: 0,
                reason,
            })
        };
        self.scope.validate()?;
        self.validity.validate("grant")?;
        if self.actions.is_empty() {
            return invalid("actions", "empty set");
        }
        if self.purposes.is_empty() {
            return invalid("purposes", "empty set");
        }
        if self.max_delegation_depth > MAX_DELEGATION_DEPTH {
            return Err(Error::LimitExceeded {
                what: "grant",
                field: "max_delegation_depth",
                offset: 0,
                got: usize::from(self.max_delegation_depth),
                max: usize::from(MAX_DELEGATION_DEPTH),
            });
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_header(MAGIC, VERSION);
        w.raw(self.issuer.as_bytes());
        w.raw(self.patient.as_bytes());
        self.grantee.write(&mut w);
        match &self.parent {
            None => w.u8(0),
            Some(p) => {
                w.u8(1);
                w.raw(p.0.as_bytes());
            }
        }
        self.scope.write(&mut w);
        w.u16(self.sensitivity.bits());
        w.u8(self.actions.bits());
        w.u32(self.purposes.bits());
        self.validity.write(&mut w);
        w.u8(self.max_delegation_depth);
        w.u64(self.issued_at);
        w.raw(&self.nonce);
        w.finish()
    }

    fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize)> {
        let mut r = Reader::new(bytes, "grant");
        r.header(MAGIC, VERSION)?;
        let issuer = read_actor(&mut r, "issuer")?;
        let patient = read_actor(&mut r, "patient")?;
        let grantee = Grantee::read(&mut r)?;
        let at = r.offset();
        let parent = match r.u8("parent tag")? {
            0 => None,
            1 => Some(GrantId(Hash(r.array("parent")?))),
            _ => return Err(r.invalid_at("parent tag", at, "unknown parent tag")),
        };
        let scope = Scope::read(&mut r)?;
        let at = r.offset();
        let sensitivity = SensitivitySet::from_bits(r.u16("sensitivity")?)
            .ok_or_else(|| r.invalid_at("sensitivity", at, "unknown label bit"))?;
        let at = r.offset();
        let actions = ActionSet::from_bits(r.u8("actions")?)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| r.invalid_at("actions", at, "empty set or unknown bit"))?;
        let at = r.offset();
        let purposes = PurposeSet::from_bits(r.u32("purposes")?)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| r.invalid_at("purposes", at, "empty set or unknown bit"))?;
        let validity = Validity::read(&mut r)?;
        let at = r.offset();
        let max_delegation_depth = r.u8("max_delegation_depth")?;
        if max_delegation_depth > MAX_DELEGATION_DEPTH {
            return Err(Error::LimitExceeded {
                what: "grant",
                field: "max_delegation_depth",
                offset: at,
                got: usize::from(max_delegation_depth),
                max: usize::from(MAX_DELEGATION_DEPTH),
            });
        }
        let issued_at = r.u64("issued_at")?;
        let nonce = r.array("nonce")?;
        let g = Grant {
            issuer,
            patient,
            grantee,
            parent,
            scope,
            sensitivity,
            actions,
            purposes,
            validity,
            max_delegation_depth,
            issued_at,
            nonce,
        };
        Ok((g, r.offset()))
    }
}
