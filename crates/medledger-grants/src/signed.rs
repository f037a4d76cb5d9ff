//! Signed canonical structures: grants, memberships, guardian appointments
//! and revocations all travel as `body ‖ signature`.
//!
//! The signature is Ed25519 (RFC 8032) by the body's signer over
//! `SIGNATURE_CONTEXT ‖ body`; the id is `BLAKE3(ID_CONTEXT ‖ body)`. Both
//! contexts are distinct per structure, so a signature or id made for one
//! kind of object never verifies or collides as another.

use core::fmt;

use ed25519_dalek::{Signature, SIGNATURE_LENGTH};
use medledger_chain::{Hash, HashAlg};

use crate::actor::{Actor, ActorId, ActorKeys};
use crate::error::{Error, Result};

/// Largest encoded signed object accepted by [`Signed::decode`] (bytes). The
/// biggest valid grant (256 record ids of 128 bytes, 64 categories of 64
/// bytes) stays below it.
pub const MAX_SIGNED_LEN: usize = 40 * 1024;

/// The hash used for every id in this crate (actor, grant, membership,
/// appointment and revocation ids): BLAKE3, the log's default.
pub const ID_HASH: HashAlg = HashAlg::Blake3;

pub(crate) mod sealed {
    /// Keeps [`super::Signable`] implemented only by this crate's types.
    pub trait Sealed {}
}

/// A structure with one canonical encoding that an actor signs.
///
/// Implemented by [`crate::Grant`], [`crate::Membership`],
/// [`crate::GuardianAppointment`] and [`crate::Revocation`]; sealed.
pub trait Signable: Sized + Clone + sealed::Sealed {
    /// The id type (a newtype over the BLAKE3 id hash).
    type Id: From<Hash> + Copy + fmt::Debug + Eq;
    /// Name of the structure in errors.
    const WHAT: &'static str;
    /// Prefix of every signed message.
    const SIGNATURE_CONTEXT: &'static [u8];
    /// Prefix of the id hash input.
    const ID_CONTEXT: &'static [u8];

    /// The actor whose key must sign this body.
    fn signer(&self) -> ActorId;

    /// Checks every invariant the decoder enforces, so that anything signed
    /// can be decoded again.
    fn validate(&self) -> Result<()>;

    /// The canonical encoding.
    fn encode(&self) -> Vec<u8>;

    /// Decodes one canonical body from the start of `bytes`, returning it and
    /// the number of bytes it used.
    fn decode_prefix(bytes: &[u8]) -> Result<(Self, usize)>;

    /// The id of this body: `BLAKE3(ID_CONTEXT ‖ encoding)`.
    fn id(&self) -> Self::Id {
        id_of::<Self>(&self.encode())
    }
}

pub(crate) fn id_of<T: Signable>(encoded: &[u8]) -> T::Id {
    T::Id::from(ID_HASH.digest(&[T::ID_CONTEXT, encoded]))
}

/// A body with its canonical encoding and the signer's signature.
///
/// Only [`Signed::sign`] and [`Signed::decode`] build one, so the encoding
/// always matches the body.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed<T: Signable> {
    body: T,
    encoded: Vec<u8>,
    id: T::Id,
    signature: Signature,
}

impl<T: Signable> Signed<T> {
    /// Validates `body` and signs it with `keys`, which must belong to the
    /// body's signer.
    pub fn sign(body: T, keys: &ActorKeys) -> Result<Self> {
        body.validate()?;
        let encoded = body.encode();
        let id = id_of::<T>(&encoded);
        if keys.id() != body.signer() {
            return Err(Error::NotAuthorized {
                what: T::WHAT,
                id: id_hash::<T>(&encoded),
                reason: "signing keys are not the signer's",
            });
        }
        let signature = keys.sign(&message::<T>(&encoded));
        Ok(Signed {
            body,
            encoded,
            id,
            signature,
        })
    }

    /// Builds a signed object from parts without checking the signature (it
    /// is checked when verified or loaded). Used to carry a signature made
    /// elsewhere, for example by a hardware key.
    pub fn from_parts(body: T, signature: Signature) -> Result<Self> {
        body.validate()?;
        let encoded = body.encode();
        let id = id_of::<T>(&encoded);
        Ok(Signed {
            body,
            encoded,
            id,
            signature,
        })
    }

    /// The signed body.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// The body's canonical encoding (what is hashed for the id).
    pub fn body_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The object's id, `BLAKE3(ID_CONTEXT ‖ body)`.
    pub fn id(&self) -> T::Id {
        self.id
    }

    /// The exact message the signer signed: `SIGNATURE_CONTEXT ‖ body`.
    pub fn signed_message(&self) -> Vec<u8> {
        message::<T>(&self.encoded)
    }

    /// Checks the signature with `signer`'s key (RFC 8032 strict
    /// verification), after checking `signer` is the body's signer.
    pub fn verify(&self, signer: &Actor) -> Result<()> {
        if signer.id() != self.body.signer() {
            return Err(Error::UnknownSigner {
                what: T::WHAT,
                id: id_hash::<T>(&self.encoded),
                signer: self.body.signer(),
            });
        }
        signer
            .verifying_key()
            .verify_strict(&self.signed_message(), &self.signature)
            .map_err(|_| Error::BadSignature {
                what: T::WHAT,
                id: id_hash::<T>(&self.encoded),
            })
    }

    /// `body ‖ signature (64 bytes)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded.len() + SIGNATURE_LENGTH);
        out.extend_from_slice(&self.encoded);
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// Strictly decodes `body ‖ signature` from untrusted bytes: bounded
    /// length, canonical body, exactly 64 signature bytes, nothing after.
    /// The signature is not checked here (see [`Signed::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_SIGNED_LEN {
            return Err(Error::LimitExceeded {
                what: T::WHAT,
                field: "signed object",
                offset: 0,
                got: bytes.len(),
                max: MAX_SIGNED_LEN,
            });
        }
        let (body, used) = T::decode_prefix(bytes)?;
        let (encoded, rest) = bytes.split_at_checked(used).ok_or(Error::Truncated {
            what: T::WHAT,
            field: "body",
            offset: 0,
        })?;
        let sig: [u8; SIGNATURE_LENGTH] =
            <[u8; SIGNATURE_LENGTH]>::try_from(rest).map_err(|_| {
                if rest.len() < SIGNATURE_LENGTH {
                    Error::Truncated {
                        what: T::WHAT,
                        field: "signature",
                        offset: used,
                    }
                } else {
                    Error::TrailingBytes {
                        what: T::WHAT,
                        offset: used + SIGNATURE_LENGTH,
                        extra: rest.len() - SIGNATURE_LENGTH,
                    }
                }
            })?;
        let encoded = encoded.to_vec();
        // Canonical means one encoding per body: re-encoding must reproduce
        // the input exactly.
        if body.encode() != encoded {
            return Err(Error::InvalidField {
                what: T::WHAT,
                field: "body",
                offset: 0,
                reason: "not in canonical form",
            });
        }
        let id = id_of::<T>(&encoded);
        Ok(Signed {
            body,
            encoded,
            id,
            signature: Signature::from_bytes(&sig),
        })
    }
}

impl<T: Signable + fmt::Debug> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("id", &self.id)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

fn message<T: Signable>(encoded: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(T::SIGNATURE_CONTEXT.len() + encoded.len());
    m.extend_from_slice(T::SIGNATURE_CONTEXT);
    m.extend_from_slice(encoded);
    m
}

pub(crate) fn id_hash<T: Signable>(encoded: &[u8]) -> Hash {
    ID_HASH.digest(&[T::ID_CONTEXT, encoded])
}
