//! C2SP signed notes (c2sp.org/signed-note): text signed by one or more keys.
//!
//! A note is a UTF-8 text ending in a newline, a blank line, then one or more
//! signature lines `— <key name> base64(key ID ‖ signature)` (signed-note
//! "Format"). This module parses and writes notes, holds Ed25519 signers
//! (signature type `0x01`) and verifiers of type `0x01` and `0x04` (the
//! timestamped cosignatures of c2sp.org/tlog-cosignature), and reads and
//! writes verifier keys (`vkey`s, signed-note "Verifier keys").
//!
//! # Limits
//!
//! A note is at most [`MAX_NOTE_LEN`] bytes and carries at most
//! [`MAX_SIGNATURES`] signature lines (Go's `sumdb/note` cap; the spec asks
//! for at least 16). Ed25519 signatures are checked with
//! `verify_strict` (RFC 8032 with canonical encodings and no small-order
//! keys), so a weak or malleated signature is refused.

use core::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::error::{Error, Result};
pub use crate::note_key::{cosignature_message, key_id, Ed25519Signer, NoteSigner, NoteVerifier};

/// Largest note accepted, in bytes (64 KiB). Enough for 100 Ed25519
/// signatures with room to spare; bounds every allocation of the parser.
pub const MAX_NOTE_LEN: usize = 64 * 1024;

/// Most signature lines accepted in one note (as Go's `sumdb/note`).
pub const MAX_SIGNATURES: usize = 100;

/// Signature type `0x01`: Ed25519 over the note text (signed-note
/// "Ed25519 signatures").
pub const SIG_TYPE_ED25519: u8 = 0x01;

/// Signature type `0x04`: timestamped Ed25519 checkpoint cosignature
/// (tlog-cosignature "Format").
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;

/// The em dash and space that open every signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// What is malformed about a note, key or signature line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is longer than [`MAX_NOTE_LEN`].
    #[error("note is {len} bytes, above the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes that are not UTF-8.
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Offset of the first bad byte.
        offset: usize,
    },
    /// An ASCII control character other than newline.
    #[error("control character at byte {offset}")]
    ControlCharacter {
        /// Its offset.
        offset: usize,
    },
    /// No blank line followed by signature lines.
    #[error("no signature block after a blank line")]
    MissingSignatures,
    /// The last signature line does not end in a newline.
    #[error("the last signature line has no final newline")]
    UnterminatedSignature,
    /// A line in the signature block that is not `— <name> <base64>`.
    #[error("signature line {line} is not `\u{2014} <name> <base64>`")]
    NotASignatureLine {
        /// Zero-based line number within the signature block.
        line: usize,
    },
    /// A key name that is empty or holds a space or `+`.
    #[error("invalid key name in {context}")]
    InvalidKeyName {
        /// Where the name was found.
        context: &'static str,
    },
    /// Base64 that does not decode canonically, or decodes to too few bytes.
    #[error("bad base64 in signature line {line}")]
    InvalidSignatureEncoding {
        /// Zero-based line number within the signature block.
        line: usize,
    },
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("more than {max} signatures")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// Two signature lines with the same key name and key ID.
    #[error("two signatures from {name}+{key_id:08x}")]
    DuplicateSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// A text to sign that is empty or does not end in a newline.
    #[error("note text must end in a newline")]
    TextNotTerminated,
    /// A verifier key (vkey) that is malformed.
    #[error("malformed verifier key: {reason}")]
    InvalidVerifierKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// A private key string that is malformed.
    #[error("malformed private key: {reason}")]
    InvalidSignerKey {
        /// What is wrong.
        reason: &'static str,
    },
    /// A cosignature whose bytes after the key ID are not a 72-byte
    /// `timestamped_signature`.
    #[error("cosignature is {len} bytes after the key ID, not 72")]
    CosignatureLength {
        /// The length found.
        len: usize,
    },
    /// A signature type this crate does not implement.
    #[error("unsupported signature type 0x{0:02x}")]
    UnsupportedSignatureType(u8),
}

fn malformed(e: NoteError) -> Error {
    Error::Note(e)
}

/// Checks a key name: non-empty, no Unicode space, no `+` (signed-note
/// "Format"). Control characters are spaces or rejected by the note parser.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// Checks the whole-note rules: size cap, UTF-8, no control character but
/// newline (signed-note "Format").
fn check_text_bytes(bytes: &[u8]) -> Result<&str> {
    if bytes.len() > MAX_NOTE_LEN {
        return Err(malformed(NoteError::TooLarge {
            len: bytes.len(),
            max: MAX_NOTE_LEN,
        }));
    }
    let s = core::str::from_utf8(bytes).map_err(|e| {
        malformed(NoteError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })
    })?;
    if let Some(offset) = s.bytes().position(|b| b < 0x20 && b != b'\n') {
        return Err(malformed(NoteError::ControlCharacter { offset }));
    }
    Ok(s)
}

/// One signature line of a note: key name, key ID, and the signature bytes
/// that follow the key ID.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The 32-bit key ID.
    pub key_id: u32,
    /// The signature bytes after the key ID (for type `0x04`, the timestamp
    /// and the Ed25519 signature).
    pub signature: Vec<u8>,
}

impl fmt::Debug for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSignature({}+{:08x})", self.name, self.key_id)
    }
}

impl NoteSignature {
    /// The signature line, `— <name> base64(key ID ‖ signature)` plus newline.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.signature);
        format!("{SIG_PREFIX}{} {}\n", self.name, BASE64.encode(raw))
    }

    /// Parses one signature line without its newline; `line` numbers errors.
    fn parse_line(text: &str, line: usize) -> Result<Self> {
        let rest = text
            .strip_prefix(SIG_PREFIX)
            .ok_or(malformed(NoteError::NotASignatureLine { line }))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(malformed(NoteError::NotASignatureLine { line }))?;
        if !is_valid_key_name(name) {
            return Err(malformed(NoteError::InvalidKeyName {
                context: "signature line",
            }));
        }
        let raw = BASE64
            .decode(b64)
            .map_err(|_| malformed(NoteError::InvalidSignatureEncoding { line }))?;
        let (id, sig) = raw
            .split_first_chunk::<4>()
            .filter(|(_, sig)| !sig.is_empty())
            .ok_or(malformed(NoteError::InvalidSignatureEncoding { line }))?;
        Ok(NoteSignature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes(*id),
            signature: sig.to_vec(),
        })
    }

    /// Parses signature lines only (for example a witness's response to
    /// add-checkpoint, tlog-witness "add-checkpoint"): one or more lines each
    /// ending in a newline.
    pub fn parse_lines(bytes: &[u8]) -> Result<Vec<Self>> {
        let s = check_text_bytes(bytes)?;
        parse_signature_block(s)
    }
}

fn parse_signature_block(block: &str) -> Result<Vec<NoteSignature>> {
    let body = block
        .strip_suffix('\n')
        .ok_or(malformed(NoteError::UnterminatedSignature))?;
    let mut sigs: Vec<NoteSignature> = Vec::new();
    for (line, text) in body.split('\n').enumerate() {
        if line >= MAX_SIGNATURES {
            return Err(malformed(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            }));
        }
        let sig = NoteSignature::parse_line(text, line)?;
        if sigs
            .iter()
            .any(|s| s.name == sig.name && s.key_id == sig.key_id)
        {
            return Err(malformed(NoteError::DuplicateSignature {
                name: sig.name,
                key_id: sig.key_id,
            }));
        }
        sigs.push(sig);
    }
    Ok(sigs)
}

/// A parsed signed note: the text and its signature lines, none verified yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note (signed-note "Format"). The text is everything up
    /// to and including the newline before the *last* blank line.
    ///
    /// Duplicate signature lines (same key name and key ID) are refused, so a
    /// note has one meaning.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let s = check_text_bytes(bytes)?;
        let split = s
            .rfind("\n\n")
            .ok_or(malformed(NoteError::MissingSignatures))?;
        let (text, block) = s.split_at(split + 1);
        let block = block.get(1..).unwrap_or("");
        if block.is_empty() {
            return Err(malformed(NoteError::MissingSignatures));
        }
        let signatures = parse_signature_block(block)?;
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// An unsigned note over `text`, which must end in a newline and obey the
    /// note's character and size rules.
    pub fn new(text: &str) -> Result<Self> {
        check_text_bytes(text.as_bytes())?;
        if !text.ends_with('\n') {
            return Err(malformed(NoteError::TextNotTerminated));
        }
        Ok(Note {
            text: text.to_owned(),
            signatures: Vec::new(),
        })
    }

    /// The signed text (the body), including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in note order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line; one with the same name and key ID is replaced.
    pub fn add_signature(&mut self, sig: NoteSignature) -> Result<()> {
        if !is_valid_key_name(&sig.name) {
            return Err(malformed(NoteError::InvalidKeyName {
                context: "added signature",
            }));
        }
        if let Some(old) = self
            .signatures
            .iter_mut()
            .find(|s| s.name == sig.name && s.key_id == sig.key_id)
        {
            *old = sig;
            return Ok(());
        }
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(malformed(NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            }));
        }
        self.signatures.push(sig);
        Ok(())
    }

    /// Signs the text with `signer` and adds the signature line.
    pub fn sign<S: NoteSigner + ?Sized>(&mut self, signer: &S) -> Result<()> {
        let sig = NoteSignature {
            name: signer.name().to_owned(),
            key_id: signer.key_id(),
            signature: signer.sign(self.text.as_bytes())?,
        };
        self.add_signature(sig)
    }

    /// The note as text: body, blank line, signature lines. Fails when the
    /// note has no signature (an unsigned note is not a signed note) or would
    /// exceed [`MAX_NOTE_LEN`].
    pub fn to_text(&self) -> Result<String> {
        if self.signatures.is_empty() {
            return Err(malformed(NoteError::MissingSignatures));
        }
        let mut out = String::with_capacity(self.text.len() + 1 + 100 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        if out.len() > MAX_NOTE_LEN {
            return Err(malformed(NoteError::TooLarge {
                len: out.len(),
                max: MAX_NOTE_LEN,
            }));
        }
        Ok(out)
    }

    /// Verifies the note against `known` (signed-note "Signatures"):
    /// signatures from unknown keys are ignored, a known key whose signature
    /// fails rejects the whole note, and at least one known key must have
    /// signed. Returns, for each verified signature, the index into `known`
    /// of its verifier and the index of the signature in [`Note::signatures`].
    pub fn verify(&self, known: &[NoteVerifier]) -> Result<Vec<VerifiedSignature>> {
        for (i, a) in known.iter().enumerate() {
            if known
                .iter()
                .skip(i + 1)
                .any(|b| a.name() == b.name() && a.key_id() == b.key_id())
            {
                return Err(Error::AmbiguousKey {
                    name: a.name().to_owned(),
                    key_id: a.key_id(),
                });
            }
        }
        let mut verified = Vec::new();
        for (sig_index, sig) in self.signatures.iter().enumerate() {
            let Some(verifier_index) = known
                .iter()
                .position(|v| v.name() == sig.name && v.key_id() == sig.key_id)
            else {
                continue;
            };
            let v = known.get(verifier_index).ok_or(Error::NoKnownSignature)?;
            let timestamp = v.verify_signature(self.text.as_bytes(), &sig.signature)?;
            verified.push(VerifiedSignature {
                verifier_index,
                signature_index: sig_index,
                timestamp,
            });
        }
        if verified.is_empty() {
            return Err(Error::NoKnownSignature);
        }
        Ok(verified)
    }
}

/// A signature that verified under one of the known keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// Index of the verifier in the list given to [`Note::verify`].
    pub verifier_index: usize,
    /// Index of the signature in [`Note::signatures`].
    pub signature_index: usize,
    /// The cosignature timestamp, for type `0x04`; `None` for type `0x01`.
    pub timestamp: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    #[test]
    fn spec_example_verifies_and_round_trips() {
        let v = NoteVerifier::from_vkey(SPEC_VKEY).unwrap();
        assert_eq!(v.key_id(), 0x530d903a);
        assert_eq!(v.to_vkey(), SPEC_VKEY);
        let n = Note::parse(SPEC_NOTE.as_bytes()).unwrap();
        assert_eq!(n.text(), "This is an example message.\n");
        let ok = n.verify(&[v]).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(n.to_text().unwrap(), SPEC_NOTE);
    }

    #[test]
    fn text_may_hold_blank_lines_and_splits_on_last() {
        let s = Ed25519Signer::generate("a.example/k").unwrap();
        let mut n = Note::new("one\n\ntwo\n").unwrap();
        n.sign(&s).unwrap();
        let t = n.to_text().unwrap();
        let p = Note::parse(t.as_bytes()).unwrap();
        assert_eq!(p.text(), "one\n\ntwo\n");
        p.verify(&[s.verifier()]).unwrap();
    }

    #[test]
    fn rejects_control_characters_and_bad_utf8() {
        assert!(matches!(
            Note::parse(b"\x01a\n\n\xe2\x80\x94 k AAAAAAA=\n"),
            Err(Error::Note(NoteError::ControlCharacter { offset: 0 }))
        ));
        assert!(matches!(
            Note::parse(b"\xffa\n"),
            Err(Error::Note(NoteError::InvalidUtf8 { offset: 0 }))
        ));
        assert!(matches!(
            Note::new("a\tb\n"),
            Err(Error::Note(NoteError::ControlCharacter { offset: 1 }))
        ));
    }
}
