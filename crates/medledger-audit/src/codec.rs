//! The canonical binary encoding of an [`AuditEvent`] (version 2).
//!
//! Big-endian integers, one-byte length prefixes, a cap on every length and
//! count, and nothing after the last field. Each event has exactly one
//! encoding: decoding accepts only what encoding produces.
//!
//! ```text
//! off  len  field
//!   0    4  magic "MLAE"
//!   4    1  version 0x02
//!   5    1  action code (1..=11)
//!   6   32  actor id
//!  38    1  actor role code (1..=9)
//!  39    1  organization length n (1..=64), then n bytes UTF-8
//!       32  patient key (pseudonym)
//!        1  record tag: 0 none | 1 then [1 len m (1..=64), m bytes UTF-8 id, 8 version]
//!        8  time, Unix ms (< 2^63)
//!        1  source node length (1..=64), then bytes UTF-8
//!        1  purpose of use code (1..=9)
//!        1  outcome tag: 0 success | 1 denied then [2 code, 1 len (0..=255), text UTF-8]
//!        1  grant count g (0..=16), then g × 32 grant ids
//!        1  emergency tag: 0 | 1 then [1 len (1..=255), reason UTF-8]
//!        1  prev-for-patient tag: 0 | 1 then [8 log index (< 2^63)]
//!        1  refers-to tag: 0 | 1 then [8 log index (< 2^63)]
//!        1  commitment tag: 0 | 1 then [32 commitment]
//! ```
//!
//! Version 1, written by development builds before any release, lacked the
//! commitment field; it is not read.
//!
//! An [`Action::EmergencyAccess`] event must carry an emergency reason.

use crate::error::{Error, Result};
use crate::event::{Action, Actor, AuditEvent, Id32, Outcome, PurposeOfUse, RecordRef, Role};
use crate::pseudonym::PatientKey;

/// The magic bytes that open every encoded event.
pub const MAGIC: [u8; 4] = *b"MLAE";
/// The encoding version this build writes and reads.
pub const VERSION: u8 = 2;
/// Longest organization, record id or source node id, in bytes.
pub const MAX_ID_LEN: usize = 64;
/// Longest denial or emergency reason, in bytes.
pub const MAX_TEXT_LEN: usize = 255;
/// Most grants in a grant chain.
pub const MAX_GRANTS: usize = 16;
/// Largest possible encoded event.
pub const MAX_EVENT_LEN: usize = 4
    + 1
    + 1
    + 32
    + 1
    + 1
    + MAX_ID_LEN
    + 32
    + 1
    + 1
    + MAX_ID_LEN
    + 8
    + 8
    + 1
    + MAX_ID_LEN
    + 1
    + 1
    + 2
    + 1
    + MAX_TEXT_LEN
    + 1
    + 32 * MAX_GRANTS
    + 1
    + 1
    + MAX_TEXT_LEN
    + 1
    + 8
    + 1
    + 8
    + 1
    + 32;

const MAX_INDEX: u64 = i64::MAX as u64;

/// What is wrong with an encoded event; offsets count from its first byte.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than [`MAX_EVENT_LEN`].
    #[error("{len} bytes is longer than any event")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Does not start with `MLAE`.
    #[error("not an audit event (bad magic)")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// Ends inside a field.
    #[error("truncated in {field} at offset {offset}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where.
        offset: usize,
    },
    /// An unknown enumeration code or tag.
    #[error("unknown {field} code {code} at offset {offset}")]
    UnknownCode {
        /// The field.
        field: &'static str,
        /// The byte found.
        code: u8,
        /// Where.
        offset: usize,
    },
    /// A length outside the field's bounds.
    #[error("{field} length {len} out of bounds at offset {offset}")]
    BadLength {
        /// The field.
        field: &'static str,
        /// The length found.
        len: usize,
        /// Where.
        offset: usize,
    },
    /// A string that is not UTF-8.
    #[error("{field} is not UTF-8 at offset {offset}")]
    InvalidUtf8 {
        /// The field.
        field: &'static str,
        /// Where.
        offset: usize,
    },
    /// A number at or above 2^63.
    #[error("{field} out of range at offset {offset}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Where.
        offset: usize,
    },
    /// Bytes after the last field.
    #[error("trailing bytes from offset {offset}")]
    TrailingBytes {
        /// Where the event should have ended.
        offset: usize,
    },
    /// An emergency access without an emergency reason.
    #[error("emergency access without an emergency reason")]
    EmergencyWithoutReason,
}

fn invalid(field: &'static str, reason: &'static str) -> Error {
    Error::InvalidEvent { field, reason }
}

fn put_str(out: &mut Vec<u8>, s: &str, field: &'static str, min: usize, max: usize) -> Result<()> {
    let len = u8::try_from(s.len())
        .ok()
        .filter(|l| (min..=max).contains(&usize::from(*l)))
        .ok_or(invalid(field, "length is out of bounds"))?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_index(out: &mut Vec<u8>, v: Option<u64>, field: &'static str) -> Result<()> {
    match v {
        None => out.push(0),
        Some(i) if i <= MAX_INDEX => {
            out.push(1);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Some(_) => return Err(invalid(field, "is at or above 2^63")),
    }
    Ok(())
}

impl AuditEvent {
    /// The canonical encoding (module docs). Fails on a field over its cap.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.action.code());
        out.extend_from_slice(&self.actor.id.0);
        out.push(self.actor.role.code());
        put_str(
            &mut out,
            &self.actor.organization,
            "organization",
            1,
            MAX_ID_LEN,
        )?;
        out.extend_from_slice(&self.patient.0);
        match &self.record {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                put_str(&mut out, &r.id, "record id", 1, MAX_ID_LEN)?;
                out.extend_from_slice(&r.version.to_be_bytes());
            }
        }
        if self.time_ms > MAX_INDEX {
            return Err(invalid("time", "is at or above 2^63"));
        }
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        put_str(&mut out, &self.source, "source", 1, MAX_ID_LEN)?;
        out.push(self.purpose.code());
        match &self.outcome {
            Outcome::Success => out.push(0),
            Outcome::Denied { code, reason } => {
                out.push(1);
                out.extend_from_slice(&code.to_be_bytes());
                put_str(&mut out, reason, "denial reason", 0, MAX_TEXT_LEN)?;
            }
        }
        if self.grant_chain.len() > MAX_GRANTS {
            return Err(invalid("grant chain", "has more than 16 grants"));
        }
        out.push(self.grant_chain.len() as u8);
        for g in &self.grant_chain {
            out.extend_from_slice(&g.0);
        }
        match &self.emergency {
            None if self.action == Action::EmergencyAccess => {
                return Err(invalid(
                    "emergency",
                    "reason is required for emergency access",
                ))
            }
            None => out.push(0),
            Some(r) => {
                out.push(1);
                put_str(&mut out, r, "emergency reason", 1, MAX_TEXT_LEN)?;
            }
        }
        put_index(&mut out, self.prev_for_patient, "prev_for_patient")?;
        put_index(&mut out, self.refers_to, "refers_to")?;
        match &self.commitment {
            None => out.push(0),
            Some(c) => {
                out.push(1);
                out.extend_from_slice(&c.0);
            }
        }
        Ok(out)
    }

    /// Decodes one event strictly (module docs): bounded, no trailing
    /// bytes, every code known, every string UTF-8.
    pub fn decode(bytes: &[u8]) -> core::result::Result<Self, DecodeError> {
        EventRef::decode(bytes).map(|e| e.to_event())
    }
}

/// An event decoded in place: the strings and grant ids borrowed from its
/// encoding. The verifier checks events this way, without allocating.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EventRef<'a> {
    pub action: Action,
    pub actor_id: Id32,
    pub role: Role,
    pub organization: &'a str,
    pub patient: PatientKey,
    pub record: Option<(&'a str, u64)>,
    pub time_ms: u64,
    pub source: &'a str,
    pub purpose: PurposeOfUse,
    pub denied: Option<(u16, &'a str)>,
    /// The grant ids, 32 bytes each.
    pub grants: &'a [u8],
    pub emergency: Option<&'a str>,
    pub prev_for_patient: Option<u64>,
    pub refers_to: Option<u64>,
    pub commitment: Option<Id32>,
}

impl<'a> EventRef<'a> {
    /// [`AuditEvent::decode`] without copying.
    pub(crate) fn decode(bytes: &'a [u8]) -> core::result::Result<Self, DecodeError> {
        if bytes.len() > MAX_EVENT_LEN {
            return Err(DecodeError::TooLong { len: bytes.len() });
        }
        let mut r = Reader { bytes, at: 0 };
        if r.take(4, "magic")? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let v = r.u8("version")?;
        if v != VERSION {
            return Err(DecodeError::UnsupportedVersion(v));
        }
        let action = r.code("action", Action::from_code)?;
        let actor_id = Id32(r.array32("actor id")?);
        let role = r.code("role", Role::from_code)?;
        let organization = r.string("organization", 1, MAX_ID_LEN)?;
        let patient = PatientKey(r.array32("patient")?);
        let record = if r.tag("record")? {
            let rid = r.string("record id", 1, MAX_ID_LEN)?;
            let version = r.u64("record version")?;
            Some((rid, version))
        } else {
            None
        };
        let time_ms = r.index("time")?;
        let source = r.string("source", 1, MAX_ID_LEN)?;
        let purpose = r.code("purpose", PurposeOfUse::from_code)?;
        let denied = if r.tag("outcome")? {
            let hi = r.u8("denial code")?;
            let lo = r.u8("denial code")?;
            let reason = r.string("denial reason", 0, MAX_TEXT_LEN)?;
            Some((u16::from_be_bytes([hi, lo]), reason))
        } else {
            None
        };
        let at = r.at;
        let count = usize::from(r.u8("grant count")?);
        if count > MAX_GRANTS {
            return Err(DecodeError::BadLength {
                field: "grant count",
                len: count,
                offset: at,
            });
        }
        let grants = r.take(32 * count, "grant id")?;
        let emergency = if r.tag("emergency")? {
            Some(r.string("emergency reason", 1, MAX_TEXT_LEN)?)
        } else {
            None
        };
        let prev_for_patient = if r.tag("prev_for_patient")? {
            Some(r.index("prev_for_patient")?)
        } else {
            None
        };
        let refers_to = if r.tag("refers_to")? {
            Some(r.index("refers_to")?)
        } else {
            None
        };
        let commitment = if r.tag("commitment")? {
            Some(Id32(r.array32("commitment")?))
        } else {
            None
        };
        if r.at != bytes.len() {
            return Err(DecodeError::TrailingBytes { offset: r.at });
        }
        if action == Action::EmergencyAccess && emergency.is_none() {
            return Err(DecodeError::EmergencyWithoutReason);
        }
        Ok(EventRef {
            action,
            actor_id,
            role,
            organization,
            patient,
            record,
            time_ms,
            source,
            purpose,
            denied,
            grants,
            emergency,
            prev_for_patient,
            refers_to,
            commitment,
        })
    }

    /// The owned event.
    pub(crate) fn to_event(self) -> AuditEvent {
        AuditEvent {
            action: self.action,
            actor: Actor {
                id: self.actor_id,
                role: self.role,
                organization: self.organization.to_owned(),
            },
            patient: self.patient,
            record: self.record.map(|(id, version)| RecordRef {
                id: id.to_owned(),
                version,
            }),
            time_ms: self.time_ms,
            source: self.source.to_owned(),
            purpose: self.purpose,
            outcome: match self.denied {
                None => Outcome::Success,
                Some((code, reason)) => Outcome::Denied {
                    code,
                    reason: reason.to_owned(),
                },
            },
            grant_chain: self
                .grants
                .chunks_exact(32)
                .filter_map(|g| <[u8; 32]>::try_from(g).ok().map(Id32))
                .collect(),
            emergency: self.emergency.map(str::to_owned),
            prev_for_patient: self.prev_for_patient,
            refers_to: self.refers_to,
            commitment: self.commitment,
        }
    }
}

/// Whether `bytes` claim to be an audit event (start with the magic), so a
/// log shared with other entry kinds can skip the others.
pub fn is_audit_entry(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> core::result::Result<&'a [u8], DecodeError> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        let (head, _) = rest.split_at_checked(n).ok_or(DecodeError::Truncated {
            field,
            offset: self.at,
        })?;
        self.at += n;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> core::result::Result<u8, DecodeError> {
        let b = self.take(1, field)?;
        b.first().copied().ok_or(DecodeError::Truncated {
            field,
            offset: self.at,
        })
    }

    fn array32(&mut self, field: &'static str) -> core::result::Result<[u8; 32], DecodeError> {
        let at = self.at;
        <[u8; 32]>::try_from(self.take(32, field)?)
            .map_err(|_| DecodeError::Truncated { field, offset: at })
    }

    fn u64(&mut self, field: &'static str) -> core::result::Result<u64, DecodeError> {
        let at = self.at;
        let b = <[u8; 8]>::try_from(self.take(8, field)?)
            .map_err(|_| DecodeError::Truncated { field, offset: at })?;
        Ok(u64::from_be_bytes(b))
    }

    fn index(&mut self, field: &'static str) -> core::result::Result<u64, DecodeError> {
        let at = self.at;
        let v = self.u64(field)?;
        if v > MAX_INDEX {
            return Err(DecodeError::OutOfRange { field, offset: at });
        }
        Ok(v)
    }

    fn code<T>(
        &mut self,
        field: &'static str,
        from: fn(u8) -> Option<T>,
    ) -> core::result::Result<T, DecodeError> {
        let at = self.at;
        let c = self.u8(field)?;
        from(c).ok_or(DecodeError::UnknownCode {
            field,
            code: c,
            offset: at,
        })
    }

    fn tag(&mut self, field: &'static str) -> core::result::Result<bool, DecodeError> {
        let at = self.at;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            code => Err(DecodeError::UnknownCode {
                field,
                code,
                offset: at,
            }),
        }
    }

    fn string(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> core::result::Result<&'a str, DecodeError> {
        let at = self.at;
        let len = usize::from(self.u8(field)?);
        if !(min..=max).contains(&len) {
            return Err(DecodeError::BadLength {
                field,
                len,
                offset: at,
            });
        }
        let body_at = self.at;
        let b = self.take(len, field)?;
        core::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8 {
            field,
            offset: body_at,
        })
    }
}
