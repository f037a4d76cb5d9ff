//! Keys of signed notes: Ed25519 signers and verifiers with their key names
//! and key IDs, verifier keys (vkeys, signed-note "Verifier keys") and Go's
//! private key encoding.
//!
//! Re-exported from [`crate::note`], where they are used.

use core::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::note::{
    is_valid_key_name, NoteError, NoteSignature, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519,
};

fn malformed(e: NoteError) -> Error {
    Error::Note(e)
}

/// Key ID per signed-note "Signatures": the first four bytes, big endian, of
/// `SHA-256(name ‖ 0x0A ‖ type ‖ public key)`.
pub fn key_id(name: &str, sig_type: u8, public_key: &[u8]) -> u32 {
    let d = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', sig_type])
        .chain_update(public_key)
        .finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(d.get(..4).unwrap_or(&[0; 4]));
    u32::from_be_bytes(id)
}

/// A public key that verifies note signatures of one type, with its key name
/// and key ID.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    sig_type: u8,
    key: VerifyingKey,
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl NoteVerifier {
    /// A verifier for `name` and an Ed25519 public key, of signature type
    /// [`SIG_TYPE_ED25519`] or [`SIG_TYPE_COSIGNATURE_V1`]; the key ID is
    /// computed as the specs require.
    pub fn new(name: &str, sig_type: u8, key: VerifyingKey) -> Result<Self> {
        if !is_valid_key_name(name) {
            return Err(malformed(NoteError::InvalidKeyName {
                context: "verifier",
            }));
        }
        if sig_type != SIG_TYPE_ED25519 && sig_type != SIG_TYPE_COSIGNATURE_V1 {
            return Err(malformed(NoteError::UnsupportedSignatureType(sig_type)));
        }
        Ok(NoteVerifier {
            key_id: key_id(name, sig_type, key.as_bytes()),
            name: name.to_owned(),
            sig_type,
            key,
        })
    }

    /// Parses a vkey `<name>+<hex key ID>+base64(type ‖ public key)`
    /// (signed-note "Verifier keys"). The base64 may itself hold `+`, so the
    /// string is split on its first two `+` only. The key ID must be eight
    /// lowercase hex digits equal to the computed one.
    pub fn from_vkey(vkey: &str) -> Result<Self> {
        let bad = |reason| malformed(NoteError::InvalidVerifierKey { reason });
        let (name, rest) = vkey.split_once('+').ok_or(bad("missing '+'"))?;
        let (hex, b64) = rest.split_once('+').ok_or(bad("missing second '+'"))?;
        if !is_valid_key_name(name) {
            return Err(bad("invalid key name"));
        }
        let id = parse_key_id_hex(hex).ok_or(bad("key ID is not 8 lowercase hex digits"))?;
        let raw = BASE64.decode(b64).map_err(|_| bad("key is not base64"))?;
        let (&sig_type, key) = raw.split_first().ok_or(bad("empty key"))?;
        if sig_type != SIG_TYPE_ED25519 && sig_type != SIG_TYPE_COSIGNATURE_V1 {
            return Err(malformed(NoteError::UnsupportedSignatureType(sig_type)));
        }
        let key: &[u8; 32] = key.try_into().map_err(|_| bad("key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(key).map_err(|_| bad("not an Ed25519 point"))?;
        let v = NoteVerifier::new(name, sig_type, key)?;
        if v.key_id != id {
            return Err(bad("key ID does not match the key"));
        }
        Ok(v)
    }

    /// The vkey string of this verifier.
    pub fn to_vkey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(self.sig_type);
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature type (`0x01` or `0x04`).
    pub fn sig_type(&self) -> u8 {
        self.sig_type
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Checks `sig` (the bytes after the key ID) over the note `text`.
    /// For type `0x04` the signature is a `timestamped_signature` and the
    /// message is `cosignature/v1\ntime <t>\n` ‖ text (tlog-cosignature
    /// "Ed25519 signed message"); its timestamp is returned.
    pub fn verify_signature(&self, text: &[u8], sig: &[u8]) -> Result<Option<u64>> {
        let invalid = || Error::InvalidSignature {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        match self.sig_type {
            SIG_TYPE_COSIGNATURE_V1 => {
                let (ts, sig) = sig.split_first_chunk::<8>().ok_or_else(invalid)?;
                let timestamp = u64::from_be_bytes(*ts);
                if timestamp > i64::MAX as u64 {
                    return Err(Error::CosignatureTimestamp { timestamp });
                }
                let sig = Signature::from_slice(sig).map_err(|_| invalid())?;
                let msg = cosignature_message(text, timestamp);
                self.key.verify_strict(&msg, &sig).map_err(|_| invalid())?;
                Ok(Some(timestamp))
            }
            _ => {
                let sig = Signature::from_slice(sig).map_err(|_| invalid())?;
                self.key.verify_strict(text, &sig).map_err(|_| invalid())?;
                Ok(None)
            }
        }
    }
}

/// The message a `cosignature/v1` signs (tlog-cosignature "Ed25519 signed
/// message"): `cosignature/v1\n`, `time <t>\n`, then the checkpoint body.
pub fn cosignature_message(body: &[u8], timestamp: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(40 + body.len());
    m.extend_from_slice(b"cosignature/v1\ntime ");
    m.extend_from_slice(timestamp.to_string().as_bytes());
    m.push(b'\n');
    m.extend_from_slice(body);
    m
}

fn parse_key_id_hex(hex: &str) -> Option<u32> {
    if hex.len() != 8
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

/// Something that signs note texts under a key name and key ID: an
/// [`Ed25519Signer`] in memory, or a key held in an HSM or KMS.
pub trait NoteSigner {
    /// The key name (no spaces, no `+`).
    fn name(&self) -> &str;
    /// The key ID (signed-note "Signatures").
    fn key_id(&self) -> u32;
    /// The signature over `text` (the bytes after the key ID).
    fn sign(&self, text: &[u8]) -> Result<Vec<u8>>;
}

impl NoteSigner for Ed25519Signer {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn sign(&self, text: &[u8]) -> Result<Vec<u8>> {
        Ok(self.key.sign(text).to_bytes().to_vec())
    }
}

/// An Ed25519 note signer (signature type `0x01`) with its key name.
///
/// The secret key is zeroized on drop and never printed by `Debug`.
pub struct Ed25519Signer {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ed25519Signer({}+{:08x}, secret elided)",
            self.name, self.key_id
        )
    }
}

impl Ed25519Signer {
    /// A signer for `name` holding `key`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self> {
        if !is_valid_key_name(name) {
            return Err(malformed(NoteError::InvalidKeyName { context: "signer" }));
        }
        Ok(Ed25519Signer {
            key_id: key_id(name, SIG_TYPE_ED25519, key.verifying_key().as_bytes()),
            name: name.to_owned(),
            key,
        })
    }

    /// A fresh key for `name` from the operating system's random generator.
    pub fn generate(name: &str) -> Result<Self> {
        Self::new(name, SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            sig_type: SIG_TYPE_ED25519,
            key: self.key.verifying_key(),
        }
    }

    /// Signs a note text (which the caller has checked) and returns the line.
    pub fn sign_text(&self, text: &str) -> NoteSignature {
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        }
    }

    /// Reads Go's `sumdb/note` private key encoding,
    /// `PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 ‖ 32-byte seed)`.
    pub fn from_go_private_key(skey: &str) -> Result<Self> {
        let bad = |reason| malformed(NoteError::InvalidSignerKey { reason });
        let rest = skey
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(bad("missing PRIVATE+KEY+ prefix"))?;
        let (name, rest) = rest.split_once('+').ok_or(bad("missing key ID"))?;
        let (hex, b64) = rest.split_once('+').ok_or(bad("missing key"))?;
        let id = parse_key_id_hex(hex).ok_or(bad("key ID is not 8 lowercase hex digits"))?;
        let raw = Zeroizing::new(BASE64.decode(b64).map_err(|_| bad("key is not base64"))?);
        let (&ty, seed) = raw.split_first().ok_or(bad("empty key"))?;
        if ty != SIG_TYPE_ED25519 {
            return Err(malformed(NoteError::UnsupportedSignatureType(ty)));
        }
        let seed: &[u8; 32] = seed.try_into().map_err(|_| bad("seed is not 32 bytes"))?;
        let signer = Self::new(name, SigningKey::from_bytes(seed))?;
        if signer.key_id != id {
            return Err(bad("key ID does not match the key"));
        }
        Ok(signer)
    }

    /// Writes Go's `sumdb/note` private key encoding (a secret: the result
    /// is zeroized on drop).
    pub fn to_go_private_key(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(Vec::with_capacity(33));
        raw.push(SIG_TYPE_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        // Every buffer that holds the seed is sized up front (no reallocation
        // leaves a copy behind) and zeroized on drop.
        let mut b64 = Zeroizing::new(String::with_capacity(44));
        BASE64.encode_string(&*raw, &mut b64);
        let id = format!("{:08x}", self.key_id);
        let mut out = Zeroizing::new(String::with_capacity(
            "PRIVATE+KEY+".len() + self.name.len() + 1 + id.len() + 1 + b64.len(),
        ));
        for part in ["PRIVATE+KEY+", &self.name, "+", &id, "+", &b64] {
            out.push_str(part);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_private_key_round_trip() {
        let s = Ed25519Signer::generate("x.example/y").unwrap();
        let enc = s.to_go_private_key();
        let back = Ed25519Signer::from_go_private_key(&enc).unwrap();
        assert_eq!(back.verifier(), s.verifier());
        assert!(format!("{s:?}").contains("secret elided"));
    }

    #[test]
    fn cosignature_message_layout() {
        assert_eq!(
            cosignature_message(b"o\n1\nr\n", 1679315147),
            b"cosignature/v1\ntime 1679315147\no\n1\nr\n".to_vec()
        );
    }
}
