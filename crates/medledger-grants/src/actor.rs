//! Identities: actors, their public keys, and the ids derived from them.
//!
//! An [`ActorId`] is `BLAKE3("medledger-grants/v1 actor-id\0" ‖ encoding)`
//! over the 70-byte actor encoding below, so it names one kind and one pair
//! of keys; it is self-certifying (anyone holding the keys can recompute it)
//! and reveals nothing beyond the public keys.
//!
//! ```text
//! actor = "MLAC" ‖ version 0x01 ‖ kind u8 ‖ ed25519 verifying key [32] ‖ x25519 public key [32]
//! ```

use core::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use medledger_chain::Hash;
use rand_core::{CryptoRngCore, OsRng};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::signed::ID_HASH;

const MAGIC: &[u8; 4] = b"MLAC";
const VERSION: u8 = 1;
const ID_CONTEXT: &[u8] = b"medledger-grants/v1 actor-id\0";

/// Length of an encoded [`Actor`].
pub const ACTOR_LEN: usize = 4 + 1 + 1 + 32 + 32;

/// What an actor is. The kind is part of the actor id, so the same keys
/// used as a clinician and as an organization are two different actors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActorKind {
    /// The person the records are about (code 1).
    Patient,
    /// A guardian or legal proxy acting for a patient (code 2).
    Guardian,
    /// A clinician or other individual care provider (code 3).
    Clinician,
    /// A hospital, clinic, lab or other organization (code 4).
    Organization,
    /// An auditor or privacy officer (code 5).
    Auditor,
    /// A software system acting on its own behalf (code 6).
    System,
}

impl ActorKind {
    /// Every kind, in code order.
    pub const ALL: [ActorKind; 6] = [
        ActorKind::Patient,
        ActorKind::Guardian,
        ActorKind::Clinician,
        ActorKind::Organization,
        ActorKind::Auditor,
        ActorKind::System,
    ];

    /// The one-byte code in the encoding.
    pub const fn code(self) -> u8 {
        match self {
            ActorKind::Patient => 1,
            ActorKind::Guardian => 2,
            ActorKind::Clinician => 3,
            ActorKind::Organization => 4,
            ActorKind::Auditor => 5,
            ActorKind::System => 6,
        }
    }

    /// The kind with code `code`, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        ActorKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

/// The 32-byte id of an actor (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ActorId(pub Hash);

impl ActorId {
    /// The id as bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({})", self.0.to_hex())
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

/// The public side of an actor: its kind, Ed25519 verifying key (for
/// signatures) and X25519 public key (for wrapped record keys).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    kind: ActorKind,
    signing: VerifyingKey,
    encryption: [u8; 32],
}

impl Actor {
    /// An actor from its public keys. Refuses an Ed25519 key of small order
    /// (a "weak" key, which would let one signature verify for many
    /// messages) and an all-zero X25519 key.
    pub fn new(kind: ActorKind, signing: VerifyingKey, encryption: X25519Public) -> Result<Self> {
        if signing.is_weak() {
            return Err(Error::InvalidField {
                what: "actor",
                field: "signing key",
                offset: 6,
                reason: "Ed25519 key of small order",
            });
        }
        if encryption.as_bytes() == &[0u8; 32] {
            return Err(Error::InvalidField {
                what: "actor",
                field: "encryption key",
                offset: 38,
                reason: "all-zero X25519 key",
            });
        }
        Ok(Actor {
            kind,
            signing,
            encryption: *encryption.as_bytes(),
        })
    }

    /// The actor's kind.
    pub fn kind(&self) -> ActorKind {
        self.kind
    }

    /// The Ed25519 key that verifies what the actor signs.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.signing
    }

    /// The X25519 key record keys are wrapped to.
    pub fn encryption_key(&self) -> X25519Public {
        X25519Public::from(self.encryption)
    }

    /// The 70-byte canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_header(MAGIC, VERSION);
        w.u8(self.kind.code());
        w.raw(self.signing.as_bytes());
        w.raw(&self.encryption);
        w.finish()
    }

    /// Strictly decodes an actor from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "actor");
        r.header(MAGIC, VERSION)?;
        let at = r.offset();
        let kind = ActorKind::from_code(r.u8("kind")?)
            .ok_or_else(|| r.invalid_at("kind", at, "unknown actor kind"))?;
        let at = r.offset();
        let vk: [u8; 32] = r.array("signing key")?;
        let signing = VerifyingKey::from_bytes(&vk)
            .map_err(|_| r.invalid_at("signing key", at, "not an Ed25519 point"))?;
        let enc: [u8; 32] = r.array("encryption key")?;
        r.finish()?;
        Actor::new(kind, signing, X25519Public::from(enc))
    }

    /// The actor id: `BLAKE3("medledger-grants/v1 actor-id\0" ‖ encoding)`.
    pub fn id(&self) -> ActorId {
        ActorId(ID_HASH.digest(&[ID_CONTEXT, &self.encode()]))
    }
}

impl fmt::Debug for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Actor")
            .field("kind", &self.kind)
            .field("id", &self.id())
            .finish()
    }
}

/// An actor's secret keys. Zeroized on drop (by the dalek types); `Debug`
/// shows only the public id; not `Clone`.
pub struct ActorKeys {
    signing: SigningKey,
    encryption: StaticSecret,
    actor: Actor,
    id: ActorId,
}

impl ActorKeys {
    /// Fresh keys from the operating system's random source.
    pub fn generate(kind: ActorKind) -> Result<Self> {
        Self::generate_with(kind, &mut OsRng)
    }

    /// Fresh keys from `rng` (tests and benchmarks use a seeded generator;
    /// production code uses [`ActorKeys::generate`]).
    pub fn generate_with(kind: ActorKind, rng: &mut impl CryptoRngCore) -> Result<Self> {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let signing = SigningKey::from_bytes(&seed);
        zeroize::Zeroize::zeroize(&mut seed);
        let encryption = StaticSecret::random_from_rng(rng);
        Self::from_keys(kind, signing, encryption)
    }

    /// Keys from existing secrets (for example loaded from a key store).
    pub fn from_keys(
        kind: ActorKind,
        signing: SigningKey,
        encryption: StaticSecret,
    ) -> Result<Self> {
        let actor = Actor::new(
            kind,
            signing.verifying_key(),
            X25519Public::from(&encryption),
        )?;
        let id = actor.id();
        Ok(ActorKeys {
            signing,
            encryption,
            actor,
            id,
        })
    }

    /// The public actor.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The actor id.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// The X25519 secret, for unwrapping record keys wrapped to this actor.
    pub fn encryption_secret(&self) -> &StaticSecret {
        &self.encryption
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }
}

impl fmt::Debug for ActorKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorKeys")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(kind: ActorKind) -> ActorKeys {
        ActorKeys::from_keys(
            kind,
            SigningKey::from_bytes(&[1; 32]),
            StaticSecret::from([2; 32]),
        )
        .unwrap()
    }

    #[test]
    fn encoding_round_trips_and_is_70_bytes() {
        let a = *fixed(ActorKind::Clinician).actor();
        let e = a.encode();
        assert_eq!(e.len(), ACTOR_LEN);
        assert_eq!(&e[..6], b"MLAC\x01\x03");
        assert_eq!(Actor::decode(&e).unwrap(), a);
    }

    #[test]
    fn kind_is_part_of_the_id() {
        assert_ne!(
            fixed(ActorKind::Clinician).id(),
            fixed(ActorKind::Organization).id()
        );
    }

    #[test]
    fn decode_refuses_bad_kind_weak_key_and_trailing_bytes() {
        let mut e = fixed(ActorKind::Patient).actor().encode();
        e[5] = 9;
        assert!(matches!(
            Actor::decode(&e),
            Err(Error::InvalidField { field: "kind", .. })
        ));
        let mut e = fixed(ActorKind::Patient).actor().encode();
        // The identity point (y = 1) is of small order.
        e[6..38].copy_from_slice(&{
            let mut p = [0u8; 32];
            p[0] = 1;
            p
        });
        assert!(matches!(
            Actor::decode(&e),
            Err(Error::InvalidField {
                field: "signing key",
                ..
            })
        ));
        let mut e = fixed(ActorKind::Patient).actor().encode();
        e.push(0);
        assert!(matches!(
            Actor::decode(&e),
            Err(Error::TrailingBytes { .. })
        ));
    }

    #[test]
    fn debug_shows_no_secret() {
        let k = fixed(ActorKind::Patient);
        let s = format!("{k:?}");
        assert!(s.contains("ActorKeys"));
        assert!(!s.contains("0101"));
    }
}
