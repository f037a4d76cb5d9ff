//! Which records a grant covers and when: [`Scope`], record metadata, the
//! validity window and log positions.

use std::collections::BTreeSet;

use crate::codec::{Reader, Writer};
use crate::error::{Error, Result};
use crate::permission::SensitivitySet;

/// Longest [`Category`] in bytes.
pub const MAX_CATEGORY_LEN: usize = 64;
/// Longest [`RecordId`] in bytes.
pub const MAX_RECORD_ID_LEN: usize = 128;
/// Most categories one scope may list.
pub const MAX_CATEGORIES: usize = 64;
/// Most record ids one scope may list.
pub const MAX_RECORDS: usize = 256;

/// A record category, typically a FHIR resource type (`Observation`,
/// `MedicationRequest`, `DiagnosticReport`). 1–64 bytes of
/// `[A-Za-z0-9._:/-]`; compared exactly (case-sensitive, as FHIR is).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(String);

impl Category {
    /// Validates and wraps a category name.
    pub fn new(name: &str) -> Result<Self> {
        check_text(name, MAX_CATEGORY_LEN, "category", |c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'/' | b'-')
        })?;
        Ok(Category(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A record id as the embedding application names it (for example a FHIR
/// reference `DocumentReference/123`). 1–128 bytes of printable ASCII
/// without spaces.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(String);

impl RecordId {
    /// Validates and wraps a record id.
    pub fn new(id: &str) -> Result<Self> {
        check_text(id, MAX_RECORD_ID_LEN, "record id", |c| c.is_ascii_graphic())?;
        Ok(RecordId(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub(crate) fn check_text(
    s: &str,
    max: usize,
    field: &'static str,
    allowed: impl Fn(u8) -> bool,
) -> Result<()> {
    if s.is_empty() {
        return Err(Error::InvalidField {
            what: "grant",
            field,
            offset: 0,
            reason: "empty",
        });
    }
    if s.len() > max {
        return Err(Error::LimitExceeded {
            what: "grant",
            field,
            offset: 0,
            got: s.len(),
            max,
        });
    }
    if !s.bytes().all(allowed) {
        return Err(Error::InvalidField {
            what: "grant",
            field,
            offset: 0,
            reason: "character outside the allowed set",
        });
    }
    Ok(())
}

/// What a grant covers, before sensitivity labels are applied.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every record of the patient (tag 1).
    All,
    /// Records of these categories (tag 2), 1–64 of them.
    Categories(BTreeSet<Category>),
    /// These records only (tag 3), 1–256 of them.
    Records(BTreeSet<RecordId>),
}

impl Scope {
    /// Whether a record with this metadata is in scope (labels aside).
    pub fn covers(&self, record: &RecordMeta) -> bool {
        match self {
            Scope::All => true,
            Scope::Categories(c) => c.contains(&record.category),
            Scope::Records(r) => r.contains(&record.id),
        }
    }

    /// Whether everything `self` covers is covered by `parent`. A list of
    /// record ids is never inside a list of categories: the grant does not
    /// know the records' categories.
    pub fn is_within(&self, parent: &Scope) -> bool {
        match (self, parent) {
            (_, Scope::All) => true,
            (Scope::Categories(c), Scope::Categories(p)) => c.is_subset(p),
            (Scope::Records(c), Scope::Records(p)) => c.is_subset(p),
            _ => false,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let (n, max, field) = match self {
            Scope::All => return Ok(()),
            Scope::Categories(c) => (c.len(), MAX_CATEGORIES, "scope categories"),
            Scope::Records(r) => (r.len(), MAX_RECORDS, "scope records"),
        };
        if n == 0 {
            return Err(Error::InvalidField {
                what: "grant",
                field,
                offset: 0,
                reason: "empty set",
            });
        }
        if n > max {
            return Err(Error::LimitExceeded {
                what: "grant",
                field,
                offset: 0,
                got: n,
                max,
            });
        }
        Ok(())
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        match self {
            Scope::All => w.u8(1),
            Scope::Categories(c) => {
                w.u8(2);
                w.u16(u16::try_from(c.len()).unwrap_or(u16::MAX));
                for x in c {
                    w.short_bytes(x.0.as_bytes());
                }
            }
            Scope::Records(r) => {
                w.u8(3);
                w.u16(u16::try_from(r.len()).unwrap_or(u16::MAX));
                for x in r {
                    w.short_bytes(x.0.as_bytes());
                }
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let at = r.offset();
        match r.u8("scope tag")? {
            1 => Ok(Scope::All),
            2 => read_set(
                r,
                "scope categories",
                MAX_CATEGORIES,
                MAX_CATEGORY_LEN,
                Category::new,
            )
            .map(Scope::Categories),
            3 => read_set(
                r,
                "scope records",
                MAX_RECORDS,
                MAX_RECORD_ID_LEN,
                RecordId::new,
            )
            .map(Scope::Records),
            _ => Err(r.invalid_at("scope tag", at, "unknown scope tag")),
        }
    }
}

/// Reads a strictly ascending (so duplicate-free) set of short strings.
fn read_set<T: Ord>(
    r: &mut Reader<'_>,
    field: &'static str,
    max_count: usize,
    max_len: usize,
    make: fn(&str) -> Result<T>,
) -> Result<BTreeSet<T>> {
    let n = r.count(field, max_count)?;
    let mut out = BTreeSet::new();
    let mut prev: Option<&[u8]> = None;
    for _ in 0..n {
        let at = r.offset();
        let bytes = r.short_bytes(field, max_len)?;
        if prev.is_some_and(|p| p >= bytes) {
            return Err(r.invalid_at(field, at, "not strictly ascending"));
        }
        prev = Some(bytes);
        let s = core::str::from_utf8(bytes).map_err(|_| r.invalid_at(field, at, "not ASCII"))?;
        let v =
            make(s).map_err(|_| r.invalid_at(field, at, "character outside the allowed set"))?;
        out.insert(v);
    }
    Ok(out)
}

/// What a decision needs to know about the record asked for. The
/// sensitivity labels come from the record's own metadata (for example its
/// FHIR `meta.security`), never from the requester.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// The record's id.
    pub id: RecordId,
    /// The record's category.
    pub category: Category,
    /// The record's sensitivity labels.
    pub labels: SensitivitySet,
}

/// A validity window `[not_before, not_after)` in seconds since the Unix
/// epoch (UTC): valid at `t` iff `not_before <= t < not_after`. The start is
/// inclusive and the end exclusive, so two back-to-back windows never
/// overlap and a window can never be empty (`not_before < not_after`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Validity {
    /// First second at which the object is valid.
    pub not_before: u64,
    /// First second at which it is no longer valid.
    pub not_after: u64,
}

impl Validity {
    /// A window; refuses an empty or inverted one.
    pub fn new(not_before: u64, not_after: u64) -> Result<Self> {
        let v = Validity {
            not_before,
            not_after,
        };
        v.validate("validity")?;
        Ok(v)
    }

    /// Whether `t` lies in the window.
    pub fn contains(&self, t: u64) -> bool {
        self.not_before <= t && t < self.not_after
    }

    /// Whether the window lies inside `outer`.
    pub fn is_within(&self, outer: &Validity) -> bool {
        outer.not_before <= self.not_before && self.not_after <= outer.not_after
    }

    pub(crate) fn validate(&self, what: &'static str) -> Result<()> {
        if self.not_before >= self.not_after {
            return Err(Error::InvalidField {
                what,
                field: "validity",
                offset: 0,
                reason: "not_before must be before not_after",
            });
        }
        Ok(())
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u64(self.not_before);
        w.u64(self.not_after);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        let at = r.offset();
        let v = Validity {
            not_before: r.u64("not_before")?,
            not_after: r.u64("not_after")?,
        };
        if v.not_before >= v.not_after {
            return Err(r.invalid_at("validity", at, "not_before must be before not_after"));
        }
        Ok(v)
    }
}

/// A position (leaf index) in the medledger-chain log. Grants, memberships,
/// appointments and revocations take effect at the position where they were
/// appended; a decision "as of" position `p` sees exactly those at `<= p`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LogPosition(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(names: &[&str]) -> Scope {
        Scope::Categories(names.iter().map(|n| Category::new(n).unwrap()).collect())
    }

    #[test]
    fn validity_bounds_are_inclusive_then_exclusive() {
        let v = Validity::new(100, 200).unwrap();
        assert!(!v.contains(99));
        assert!(v.contains(100));
        assert!(v.contains(199));
        assert!(!v.contains(200));
        assert!(Validity::new(5, 5).is_err());
        assert!(Validity::new(6, 5).is_err());
    }

    #[test]
    fn scope_containment() {
        assert!(cats(&["Observation"]).is_within(&Scope::All));
        assert!(cats(&["Observation"]).is_within(&cats(&["Condition", "Observation"])));
        assert!(!cats(&["Condition", "Observation"]).is_within(&cats(&["Observation"])));
        assert!(!Scope::All.is_within(&cats(&["Observation"])));
        let recs = Scope::Records([RecordId::new("r/1").unwrap()].into_iter().collect());
        assert!(!recs.is_within(&cats(&["Observation"])));
    }

    #[test]
    fn names_are_validated() {
        assert!(Category::new("Observation").is_ok());
        assert!(Category::new("").is_err());
        assert!(Category::new("a b").is_err());
        assert!(Category::new(&"a".repeat(65)).is_err());
        assert!(RecordId::new("DocumentReference/123").is_ok());
        assert!(RecordId::new("x y").is_err());
    }

    #[test]
    fn unsorted_sets_are_refused() {
        let mut w = Writer::default();
        w.u8(2);
        w.u16(2);
        w.short_bytes(b"b");
        w.short_bytes(b"a");
        let bytes = w.finish();
        let mut r = Reader::new(&bytes, "grant");
        assert!(matches!(
            Scope::read(&mut r),
            Err(Error::InvalidField {
                reason: "not strictly ascending",
                ..
            })
        ));
    }
}
