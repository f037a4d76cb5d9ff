//! The envelope header: format identification, body parameters, the key
//! commitment, the context tag, the recipient stanzas and the header MAC.
//!
//! Layout, version 1, suite 0x01 (integers big-endian):
//!
//! ```text
//! offset  len   field
//!  0       5    magic "MLENV"
//!  5       1    format version = 0x01
//!  6       1    algorithm suite = 0x01
//!  7       4    header_len: total header length in bytes = 120 + 96·n
//! 11       4    chunk_size: plaintext bytes per body chunk (16 ..= 1 MiB)
//! 15       7    nonce_prefix: random, per record version
//! 22      32    commitment  = HKDF-Expand(dk, "medledger-envelope/v1 commit", 32)
//! 54      32    context_tag = HKDF-Expand(dk, "medledger-envelope/v1 context" ‖ context digest, 32)
//! 86       2    n: recipient count (1 ..= 1024)
//! 88    96·n    stanzas: key_id (16) ‖ ephemeral X25519 key (32) ‖ wrapped dk (48)
//! 88+96n  32    mac = HMAC-SHA256(HKDF-Expand(dk, "medledger-envelope/v1 header", 32),
//!                                 header bytes 0 .. 88+96n)
//! ```
//!
//! The body follows the header immediately. Opening checks, in order: the
//! layout (strictly: exact length, known version and suite, caps, unique key
//! ids), the stanza for the reader's key id, the key commitment, the header
//! MAC and the context tag — all comparisons in constant time — before any
//! body byte is decrypted.

use std::collections::BTreeSet;
use std::io::Read;

use hkdf::hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::context::RecordContext;
use crate::error::{Error, Result};
use crate::keys::{
    DataKey, KeyCommitment, KeyId, RecipientPublicKey, RecipientSecretKey, LABEL_HEADER,
};
use crate::stanza::{Stanza, STANZA_LEN};

/// The five magic bytes every envelope starts with.
pub const MAGIC: &[u8; 5] = b"MLENV";
/// The format version this implementation writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Algorithm suite 0x01: X25519 + HKDF-SHA256 + AES-256-GCM key wrap,
/// HKDF-SHA256 key schedule and commitment, HMAC-SHA256 header MAC,
/// AES-256-GCM STREAM body.
pub const SUITE_X25519_AES256GCM: u8 = 1;
/// Most recipients one header may hold.
pub const MAX_RECIPIENTS: usize = 1024;
/// Smallest accepted chunk size.
pub const MIN_CHUNK_SIZE: u32 = 16;
/// Largest accepted chunk size (bounds a reader's memory).
pub const MAX_CHUNK_SIZE: u32 = 1 << 20;
/// Default chunk size: 64 KiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 16;
/// Bytes a reader needs to learn the header length.
pub const PREAMBLE_LEN: usize = 11;
/// Length of the nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;
const FIXED_LEN: usize = 88;
const MAC_LEN: usize = 32;
/// Largest possible header.
pub const MAX_HEADER_LEN: usize = FIXED_LEN + STANZA_LEN * MAX_RECIPIENTS + MAC_LEN;

type HmacSha256 = Hmac<Sha256>;

/// A parsed envelope header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    chunk_size: u32,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    commitment: [u8; 32],
    context_tag: [u8; 32],
    stanzas: Vec<Stanza>,
    mac: [u8; MAC_LEN],
}

impl Header {
    /// A header for a fresh record version: commits to `dk`, binds
    /// `context`, wraps `dk` to every recipient, draws the nonce prefix
    /// and ephemeral keys from `rng`.
    pub(crate) fn seal(
        dk: &DataKey,
        context: &RecordContext,
        chunk_size: u32,
        recipients: &[RecipientPublicKey],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self> {
        check_chunk_size(chunk_size)?;
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        rng.fill_bytes(&mut nonce_prefix);
        let mut header = Header {
            chunk_size,
            nonce_prefix,
            commitment: *dk.commitment().as_bytes(),
            context_tag: dk.context_tag(&context.digest()),
            stanzas: Vec::new(),
            mac: [0; MAC_LEN],
        };
        header.set_stanzas(dk, wrap_all(dk, recipients, rng)?)?;
        Ok(header)
    }

    /// The plaintext bytes per body chunk.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The per-version nonce prefix.
    pub fn nonce_prefix(&self) -> &[u8; NONCE_PREFIX_LEN] {
        &self.nonce_prefix
    }

    /// The key commitment.
    pub fn commitment(&self) -> KeyCommitment {
        KeyCommitment(self.commitment)
    }

    /// The key ids of the recipients, in stanza order.
    pub fn recipients(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.stanzas.iter().map(|s| s.key_id)
    }

    /// Length of the encoded header.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + STANZA_LEN * self.stanzas.len() + MAC_LEN
    }

    /// The header bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_unmacd();
        out.extend_from_slice(&self.mac);
        out
    }

    fn encode_unmacd(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.push(SUITE_X25519_AES256GCM);
        let len = u32::try_from(self.encoded_len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.nonce_prefix);
        out.extend_from_slice(&self.commitment);
        out.extend_from_slice(&self.context_tag);
        let n = u16::try_from(self.stanzas.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&n.to_be_bytes());
        for stanza in &self.stanzas {
            stanza.encode_into(&mut out);
        }
        out
    }

    /// Reads the preamble and returns the total header length it declares,
    /// after checking magic, version, suite and the size cap.
    pub fn declared_len(preamble: &[u8]) -> Result<usize> {
        let (magic, rest) = preamble.split_first_chunk::<5>().ok_or(Error::BadHeader {
            what: "truncated preamble",
        })?;
        if magic != MAGIC {
            return Err(Error::BadHeader { what: "bad magic" });
        }
        let (&[version, suite], rest) = rest.split_first_chunk::<2>().ok_or(Error::BadHeader {
            what: "truncated preamble",
        })?;
        if version != FORMAT_VERSION {
            return Err(Error::UnknownVersion(version));
        }
        if suite != SUITE_X25519_AES256GCM {
            return Err(Error::UnknownAlgorithm(suite));
        }
        let len = rest.first_chunk::<4>().ok_or(Error::BadHeader {
            what: "truncated preamble",
        })?;
        let len = u32::from_be_bytes(*len);
        if usize::try_from(len).map_or(true, |l| l > MAX_HEADER_LEN) {
            return Err(Error::HeaderTooLarge {
                len: u64::from(len),
                max: MAX_HEADER_LEN,
            });
        }
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len < FIXED_LEN + STANZA_LEN + MAC_LEN {
            return Err(Error::BadHeader {
                what: "header length below the minimum",
            });
        }
        Ok(len)
    }

    /// Parses the header at the front of `bytes`; returns it and the body
    /// that follows.
    pub fn parse_prefix(bytes: &[u8]) -> Result<(Self, &[u8])> {
        let len = Self::declared_len(bytes)?;
        let (header, body) = bytes.split_at_checked(len).ok_or(Error::BadHeader {
            what: "truncated header",
        })?;
        Ok((Self::parse(header)?, body))
    }

    /// Parses exactly one header (no trailing bytes).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let len = Self::declared_len(bytes)?;
        if bytes.len() != len {
            return Err(Error::BadHeader {
                what: "header length does not match declared length",
            });
        }
        let rest = bytes.get(PREAMBLE_LEN..).ok_or(Error::BadHeader {
            what: "truncated header",
        })?;
        let (chunk_size, rest) = rest.split_first_chunk::<4>().ok_or(Error::BadHeader {
            what: "truncated header",
        })?;
        let chunk_size = u32::from_be_bytes(*chunk_size);
        check_chunk_size(chunk_size)?;
        let (nonce_prefix, rest) =
            rest.split_first_chunk::<NONCE_PREFIX_LEN>()
                .ok_or(Error::BadHeader {
                    what: "truncated header",
                })?;
        let (commitment, rest) = rest.split_first_chunk::<32>().ok_or(Error::BadHeader {
            what: "truncated header",
        })?;
        let (context_tag, rest) = rest.split_first_chunk::<32>().ok_or(Error::BadHeader {
            what: "truncated header",
        })?;
        let (count, mut rest) = rest.split_first_chunk::<2>().ok_or(Error::BadHeader {
            what: "truncated header",
        })?;
        let count = usize::from(u16::from_be_bytes(*count));
        if count == 0 {
            return Err(Error::NoRecipients);
        }
        if count > MAX_RECIPIENTS {
            return Err(Error::TooManyRecipients {
                count,
                max: MAX_RECIPIENTS,
            });
        }
        if len != FIXED_LEN + STANZA_LEN * count + MAC_LEN {
            return Err(Error::BadHeader {
                what: "header length does not match recipient count",
            });
        }
        let mut stanzas = Vec::with_capacity(count);
        let mut seen = BTreeSet::new();
        for _ in 0..count {
            let (stanza, tail) = Stanza::decode(rest)?;
            if !seen.insert(stanza.key_id) {
                return Err(Error::BadHeader {
                    what: "duplicate recipient key id",
                });
            }
            stanzas.push(stanza);
            rest = tail;
        }
        let mac = <[u8; MAC_LEN]>::try_from(rest).map_err(|_| Error::BadHeader {
            what: "header MAC length",
        })?;
        Ok(Header {
            chunk_size,
            nonce_prefix: *nonce_prefix,
            commitment: *commitment,
            context_tag: *context_tag,
            stanzas,
            mac,
        })
    }

    /// Reads exactly one header from `reader` (never more bytes than the
    /// header: the body is left in the reader).
    pub fn read_from(reader: &mut impl Read) -> Result<Self> {
        let mut preamble = [0u8; PREAMBLE_LEN];
        read_exact_or(reader, &mut preamble)?;
        let len = Self::declared_len(&preamble)?;
        let mut bytes = vec![0u8; len];
        let (head, tail) = bytes.split_at_mut(PREAMBLE_LEN);
        head.copy_from_slice(&preamble);
        read_exact_or(reader, tail)?;
        Self::parse(&bytes)
    }

    /// Finds this reader's stanza, unwraps the data key and checks, in
    /// constant time, the key commitment, the header MAC and the context
    /// tag. Only a key that passes all three is returned.
    pub fn unwrap_data_key(
        &self,
        secret: &RecipientSecretKey,
        context: &RecordContext,
    ) -> Result<DataKey> {
        let key_id = secret.public_key().key_id();
        let (index, stanza) = self
            .stanzas
            .iter()
            .enumerate()
            .find(|(_, s)| s.key_id == key_id)
            .ok_or(Error::NoMatchingRecipient)?;
        let dk = stanza.unwrap(secret, index)?;
        self.verify(&dk, context)?;
        Ok(dk)
    }

    /// Checks, in constant time, that `dk` is the key this header commits
    /// to, that the header is unmodified, and that it was sealed under
    /// `context` (for a data key kept from an earlier unwrap).
    pub fn verify(&self, dk: &DataKey, context: &RecordContext) -> Result<()> {
        self.verify_data_key(dk)?;
        if !bool::from(dk.context_tag(&context.digest()).ct_eq(&self.context_tag)) {
            return Err(Error::WrongContext);
        }
        Ok(())
    }

    /// Checks that `dk` is the key this header commits to and that the
    /// header is unmodified.
    fn verify_data_key(&self, dk: &DataKey) -> Result<()> {
        if !bool::from(dk.commitment().ct_eq(&self.commitment())) {
            return Err(Error::KeyCommitmentMismatch);
        }
        let mut mac = header_mac(dk);
        mac.update(&self.encode_unmacd());
        mac.verify_slice(&self.mac)
            .map_err(|_| Error::HeaderAuthentication)
    }

    /// The same record, readable by exactly `recipients` (fresh stanzas for
    /// all of them). Body bytes are unaffected: a rewrap rewrites only the
    /// header.
    pub fn rewrap(&self, dk: &DataKey, recipients: &[RecipientPublicKey]) -> Result<Self> {
        self.rewrap_with_rng(dk, recipients, &mut rand_core::OsRng)
    }

    /// [`Header::rewrap`] with the ephemeral keys drawn from `rng`
    /// (deterministic tests only).
    pub fn rewrap_with_rng(
        &self,
        dk: &DataKey,
        recipients: &[RecipientPublicKey],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Self> {
        self.verify_data_key(dk)?;
        let mut header = self.clone();
        header.set_stanzas(dk, wrap_all(dk, recipients, rng)?)?;
        Ok(header)
    }

    /// The same record with `recipients` added (existing stanzas kept).
    pub fn add_recipients(&self, dk: &DataKey, recipients: &[RecipientPublicKey]) -> Result<Self> {
        self.verify_data_key(dk)?;
        let mut stanzas = self.stanzas.clone();
        let offset = stanzas.len();
        for (i, recipient) in recipients.iter().enumerate() {
            stanzas.push(Stanza::wrap(
                dk,
                recipient,
                offset + i,
                &mut rand_core::OsRng,
            )?);
        }
        let mut header = self.clone();
        header.set_stanzas(dk, stanzas)?;
        Ok(header)
    }

    /// The same record with the stanzas of `removed` dropped. Removing a
    /// recipient from the header does not stop them from using a data key
    /// they already unwrapped; for that, [`rotate`](crate::rotate).
    pub fn remove_recipients(&self, dk: &DataKey, removed: &[KeyId]) -> Result<Self> {
        self.verify_data_key(dk)?;
        let stanzas = self
            .stanzas
            .iter()
            .filter(|s| !removed.contains(&s.key_id))
            .cloned()
            .collect();
        let mut header = self.clone();
        header.set_stanzas(dk, stanzas)?;
        Ok(header)
    }

    /// Replaces the stanzas (checking count and uniqueness) and recomputes
    /// the MAC.
    fn set_stanzas(&mut self, dk: &DataKey, stanzas: Vec<Stanza>) -> Result<()> {
        if stanzas.is_empty() {
            return Err(Error::NoRecipients);
        }
        if stanzas.len() > MAX_RECIPIENTS {
            return Err(Error::TooManyRecipients {
                count: stanzas.len(),
                max: MAX_RECIPIENTS,
            });
        }
        let mut seen = BTreeSet::new();
        if !stanzas.iter().all(|s| seen.insert(s.key_id)) {
            return Err(Error::DuplicateRecipient);
        }
        self.stanzas = stanzas;
        let mut mac = header_mac(dk);
        mac.update(&self.encode_unmacd());
        self.mac = mac.finalize().into_bytes().into();
        Ok(())
    }
}

fn wrap_all(
    dk: &DataKey,
    recipients: &[RecipientPublicKey],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<Stanza>> {
    if recipients.len() > MAX_RECIPIENTS {
        return Err(Error::TooManyRecipients {
            count: recipients.len(),
            max: MAX_RECIPIENTS,
        });
    }
    recipients
        .iter()
        .enumerate()
        .map(|(i, r)| Stanza::wrap(dk, r, i, rng))
        .collect()
}

fn header_mac(dk: &DataKey) -> HmacSha256 {
    let key = dk.derive(&[LABEL_HEADER]);
    // HMAC accepts keys of any length: this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key.as_ref())
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()))
}

pub(crate) fn check_chunk_size(chunk_size: u32) -> Result<()> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(Error::BadChunkSize(u64::from(chunk_size)));
    }
    Ok(())
}

/// `read_exact`, with a short read reported as a truncated header.
fn read_exact_or(reader: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::BadHeader {
                what: "truncated header",
            }
        } else {
            Error::Io(e)
        }
    })
}
