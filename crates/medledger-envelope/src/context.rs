//! The record context every envelope is bound to, and its canonical
//! encoding.
//!
//! The context is *not* stored in the envelope (it names the patient); the
//! caller supplies it when sealing and again when opening, and opening under
//! any other context fails. Canonical encoding, version 1 (all integers
//! big-endian, strings UTF-8, no trailing bytes):
//!
//! ```text
//! u8   encoding version = 0x01
//! u16  len ‖ record_id      (len ≤ 1024)
//! u16  len ‖ patient_id     (len ≤ 1024)
//! u64  record version
//! u16  len ‖ content_type   (len ≤ 1024)
//! u32  len ‖ extra          (len ≤ 65536, caller-defined bytes, may be empty)
//! ```
//!
//! The envelope binds `SHA-256("medledger-envelope/v1 context" ‖ encoding)`.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Version byte of the canonical context encoding.
pub const CONTEXT_ENCODING_VERSION: u8 = 1;
/// Cap on `record_id`, `patient_id` and `content_type`, in bytes.
pub const MAX_CONTEXT_ID_LEN: usize = 1024;
/// Cap on `extra`, in bytes.
pub const MAX_CONTEXT_EXTRA_LEN: usize = 65536;

const DIGEST_LABEL: &[u8] = b"medledger-envelope/v1 context";

/// What a record is: the associated data its ciphertext is bound to.
///
/// `Debug` shows the version, the media type and lengths only: the record
/// and patient ids identify a patient and must not reach logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RecordContext {
    record_id: String,
    patient_id: String,
    version: u64,
    content_type: String,
    extra: Vec<u8>,
}

impl std::fmt::Debug for RecordContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordContext")
            .field("record_id_len", &self.record_id.len())
            .field("patient_id_len", &self.patient_id.len())
            .field("version", &self.version)
            .field("content_type", &self.content_type)
            .field("extra_len", &self.extra.len())
            .finish()
    }
}

impl RecordContext {
    /// A context for version `version` of record `record_id` of patient
    /// `patient_id`, holding a body of media type `content_type`.
    pub fn new(
        record_id: impl Into<String>,
        patient_id: impl Into<String>,
        version: u64,
        content_type: impl Into<String>,
    ) -> Result<Self> {
        let ctx = RecordContext {
            record_id: record_id.into(),
            patient_id: patient_id.into(),
            version,
            content_type: content_type.into(),
            extra: Vec::new(),
        };
        check_len("record_id", ctx.record_id.len(), MAX_CONTEXT_ID_LEN)?;
        check_len("patient_id", ctx.patient_id.len(), MAX_CONTEXT_ID_LEN)?;
        check_len("content_type", ctx.content_type.len(), MAX_CONTEXT_ID_LEN)?;
        Ok(ctx)
    }

    /// Adds caller-defined bytes (e.g. a tenant id) to bind as well.
    pub fn with_extra(mut self, extra: impl Into<Vec<u8>>) -> Result<Self> {
        let extra = extra.into();
        check_len("extra", extra.len(), MAX_CONTEXT_EXTRA_LEN)?;
        self.extra = extra;
        Ok(self)
    }

    /// The record id.
    pub fn record_id(&self) -> &str {
        &self.record_id
    }
    /// The patient id.
    pub fn patient_id(&self) -> &str {
        &self.patient_id
    }
    /// The record version.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// The body's media type.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }
    /// The caller-defined extra bytes.
    pub fn extra(&self) -> &[u8] {
        &self.extra
    }

    /// The canonical encoding (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            1 + 2
                + self.record_id.len()
                + 2
                + self.patient_id.len()
                + 8
                + 2
                + self.content_type.len()
                + 4
                + self.extra.len(),
        );
        out.push(CONTEXT_ENCODING_VERSION);
        // Lengths were capped at construction, so these conversions hold.
        put_u16_bytes(&mut out, self.record_id.as_bytes());
        put_u16_bytes(&mut out, self.patient_id.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        put_u16_bytes(&mut out, self.content_type.as_bytes());
        let extra_len = u32::try_from(self.extra.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&extra_len.to_be_bytes());
        out.extend_from_slice(&self.extra);
        out
    }

    /// Parses a canonical encoding strictly (no trailing bytes, caps
    /// enforced, UTF-8 checked).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut rest = bytes;
        let version = take_array::<1>(&mut rest, "encoding version")?;
        if version != [CONTEXT_ENCODING_VERSION] {
            return Err(Error::BadContext {
                what: "unknown encoding version",
            });
        }
        let record_id = take_string(&mut rest, "record_id")?;
        let patient_id = take_string(&mut rest, "patient_id")?;
        let record_version = u64::from_be_bytes(take_array::<8>(&mut rest, "version")?);
        let content_type = take_string(&mut rest, "content_type")?;
        let extra_len = u32::from_be_bytes(take_array::<4>(&mut rest, "extra length")?);
        let extra_len = usize::try_from(extra_len).unwrap_or(usize::MAX);
        check_len("extra", extra_len, MAX_CONTEXT_EXTRA_LEN)?;
        let (extra, rest) = rest.split_at_checked(extra_len).ok_or(Error::BadContext {
            what: "extra truncated",
        })?;
        if !rest.is_empty() {
            return Err(Error::BadContext {
                what: "trailing bytes",
            });
        }
        RecordContext::new(record_id, patient_id, record_version, content_type)?
            .with_extra(extra.to_vec())
    }

    /// The digest the envelope binds.
    pub fn digest(&self) -> ContextDigest {
        let digest = Sha256::new()
            .chain_update(DIGEST_LABEL)
            .chain_update(self.encode())
            .finalize();
        ContextDigest(digest.into())
    }
}

/// `SHA-256("medledger-envelope/v1 context" ‖ canonical encoding)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextDigest([u8; 32]);

impl ContextDigest {
    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn check_len(field: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::ContextFieldTooLong { field, len, max });
    }
    Ok(())
}

fn put_u16_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take_array<const N: usize>(rest: &mut &[u8], what: &'static str) -> Result<[u8; N]> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or(Error::BadContext { what })?;
    *rest = tail;
    Ok(*head)
}

fn take_string(rest: &mut &[u8], field: &'static str) -> Result<String> {
    let len = usize::from(u16::from_be_bytes(take_array::<2>(rest, field)?));
    check_len(field, len, MAX_CONTEXT_ID_LEN)?;
    let (bytes, tail) = rest
        .split_at_checked(len)
        .ok_or(Error::BadContext { what: field })?;
    *rest = tail;
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::BadContext {
        what: "field is not UTF-8",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids stay out of `Debug` (they used to be printed in full).
    #[test]
    fn debug_hides_the_ids() {
        let ctx = RecordContext::new(
            "Observation/obs-4711",
            "patient-0042",
            3,
            "application/fhir+json",
        )
        .unwrap()
        .with_extra(b"tenant-9".to_vec())
        .unwrap();
        let shown = format!("{ctx:?}");
        for secret in ["obs-4711", "patient-0042", "tenant-9"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(
            shown,
            "RecordContext { record_id_len: 20, patient_id_len: 12, version: 3, \
             content_type: \"application/fhir+json\", extra_len: 8 }"
        );
    }
    use proptest::prelude::*;

    #[test]
    fn encoding_matches_the_documented_layout() {
        let ctx = RecordContext::new("r1", "p", 7, "text/plain")
            .unwrap()
            .with_extra(vec![0xee])
            .unwrap();
        let mut want = vec![
            1, 0, 2, b'r', b'1', 0, 1, b'p', 0, 0, 0, 0, 0, 0, 0, 7, 0, 10,
        ];
        want.extend_from_slice(b"text/plain");
        want.extend_from_slice(&[0, 0, 0, 1, 0xee]);
        assert_eq!(ctx.encode(), want);
    }

    #[test]
    fn caps_are_enforced() {
        let long = "x".repeat(MAX_CONTEXT_ID_LEN + 1);
        assert!(matches!(
            RecordContext::new(long, "p", 1, "t"),
            Err(Error::ContextFieldTooLong {
                field: "record_id",
                ..
            })
        ));
        let ctx = RecordContext::new("r", "p", 1, "t").unwrap();
        assert!(ctx.with_extra(vec![0; MAX_CONTEXT_EXTRA_LEN + 1]).is_err());
    }

    #[test]
    fn fields_do_not_run_into_each_other() {
        let a = RecordContext::new("ab", "c", 1, "t").unwrap();
        let b = RecordContext::new("a", "bc", 1, "t").unwrap();
        assert_ne!(a.digest(), b.digest());
    }

    fn arb_context() -> impl Strategy<Value = RecordContext> {
        (
            ".{0,20}",
            ".{0,20}",
            any::<u64>(),
            "[a-z/+.-]{0,20}",
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(r, p, v, c, e)| {
                RecordContext::new(r, p, v, c)
                    .unwrap()
                    .with_extra(e)
                    .unwrap()
            })
    }

    proptest! {
        #[test]
        fn round_trips(ctx in arb_context()) {
            let bytes = ctx.encode();
            prop_assert_eq!(RecordContext::decode(&bytes).unwrap(), ctx);
        }

        #[test]
        fn any_mutation_is_rejected_or_changes_the_context(
            ctx in arb_context(),
            pos in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut bytes = ctx.encode();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            if let Ok(other) = RecordContext::decode(&bytes) {
                prop_assert_ne!(&other, &ctx);
                prop_assert_ne!(other.digest(), ctx.digest());
            }
        }

        #[test]
        fn truncation_is_rejected(ctx in arb_context(), cut in any::<prop::sample::Index>()) {
            let bytes = ctx.encode();
            let n = cut.index(bytes.len());
            prop_assert!(RecordContext::decode(&bytes[..n]).is_err());
        }
    }
}
