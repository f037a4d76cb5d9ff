//! The state store trait: small mutable key-value state in named tables,
//! written in transactions stamped with the log index they reflect.
//!
//! # Log index stamps and the undo journal
//!
//! The log is the source of truth. A transaction that applies entry `i` to
//! the state passes `reflects: Some(i)`; [`StateStore::log_index`] returns
//! the highest stamp committed. Two crash orders are possible, and both end
//! consistent after [`StateStore::reconcile`] (which
//! [`crate::EmbeddedStore::open`] calls with the durable log length):
//!
//! - *entry first, then state* (the recommended order): a crash between the
//!   two leaves the state behind the log; the caller replays entries
//!   `log_index() + 1 ..` (the open report says how many).
//! - *state first, then entry*: a crash between the two leaves the state
//!   stamped with an index the log never reached. Every stamped
//!   transaction also journals the previous values of what it changed, so
//!   `reconcile(len)` undoes, newest first, every transaction stamped
//!   `>= len` and drops the journal of those below it.
//!
//! Stored values carry a 16-byte BLAKE3 tag over (table, key, value) and
//! are checked on every read: redb checks its page checksums only when
//! repairing, so without the tag a damaged page could hand back a wrong
//! wrapped key.

use crate::error::{Error, Result};

/// Longest state key: 4 KiB.
pub const MAX_STATE_KEY_LEN: usize = 4096;
/// Longest state value: 1 MiB (state is small; bodies go to blobs).
pub const MAX_STATE_VALUE_LEN: usize = 1 << 20;

/// Reads and writes inside one transaction.
pub trait StateTxn {
    /// The value of `key` in `table`, seeing this transaction's own writes.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Sets `key` in `table`.
    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key` from `table`; `false` if it was absent.
    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool>;
}

/// Transactional key-value state in named tables (see the module docs).
///
/// Table names are 1 to 64 characters of `[a-z0-9_.-]`. Implemented by
/// [`crate::RedbStateStore`], [`crate::MemoryStateStore`] and networked
/// backends; nothing here assumes a local file.
pub trait StateStore: Send + Sync {
    /// The value of `key` in `table` (`None` if absent or the table is new).
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Up to `limit` entries of `table` whose key starts with `prefix`, in
    /// key order.
    fn scan(&self, table: &str, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Up to `limit` entries of `table` whose key `k` has
    /// `start <= k < end` (byte order), in key order. Tables keyed by a
    /// big-endian log index read "what changed between two log sizes"
    /// with it.
    fn scan_range(
        &self,
        table: &str,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Runs `f` in one atomic, durable transaction. If `f` returns an error
    /// nothing is written and the error is returned. `reflects: Some(i)`
    /// stamps the transaction with the last log index it reflects (never
    /// below the current stamp: [`Error::StateIndexRegressed`]).
    fn transact(
        &self,
        reflects: Option<u64>,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> Result<()>,
    ) -> Result<()>;

    /// Runs `f` in one atomic, durable transaction applying log entry
    /// `index`, which the caller has already made durable (the *entry
    /// first* order). Stamped and checked like `transact(Some(index), f)`,
    /// but a store may skip the undo journal: reconciling against a log
    /// that holds `index` never undoes the transaction, so its journal
    /// would only grow until the next reconcile and cost every commit
    /// more pages. [`crate::RedbStateStore`] skips it, and then reports a
    /// log that lost such an entry as [`Error::StateAheadOfLog`] in
    /// [`StateStore::reconcile`] instead of undoing it. The default
    /// journals, as `transact` does.
    fn transact_applied(
        &self,
        index: u64,
        f: &mut dyn FnMut(&mut dyn StateTxn) -> Result<()>,
    ) -> Result<()> {
        self.transact(Some(index), f)
    }

    /// The highest log index a committed transaction reflects.
    fn log_index(&self) -> Result<Option<u64>>;

    /// Makes the state agree with a log of `log_len` durable entries: undoes
    /// every transaction stamped `>= log_len` (newest first) and forgets the
    /// undo journal below it. Returns how many transactions it undid.
    fn reconcile(&self, log_len: u64) -> Result<u64>;
}

/// Checks a table name.
pub(crate) fn check_table(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidTableName {
            name: name.chars().take(80).collect(),
        })
    }
}

/// Checks key and value sizes.
pub(crate) fn check_sizes(key: &[u8], value: Option<&[u8]>) -> Result<()> {
    if key.len() > MAX_STATE_KEY_LEN {
        return Err(Error::StateTooLarge {
            what: "key",
            len: key.len(),
            max: MAX_STATE_KEY_LEN,
        });
    }
    if let Some(v) = value {
        if v.len() > MAX_STATE_VALUE_LEN {
            return Err(Error::StateTooLarge {
                what: "value",
                len: v.len(),
                max: MAX_STATE_VALUE_LEN,
            });
        }
    }
    Ok(())
}

/// Version byte of a stored value.
const VALUE_VERSION: u8 = 1;
/// Length of the tag on a stored value.
const TAG_LEN: usize = 16;

fn value_tag(table: &str, key: &[u8], value: &[u8]) -> [u8; TAG_LEN] {
    let mut h = blake3::Hasher::new_derive_key("medledger-store state value v1");
    h.update(&(table.len() as u32).to_le_bytes());
    h.update(table.as_bytes());
    h.update(&(key.len() as u32).to_le_bytes());
    h.update(key);
    h.update(value);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(
        h.finalize()
            .as_bytes()
            .get(..TAG_LEN)
            .unwrap_or(&[0u8; TAG_LEN]),
    );
    tag
}

/// A value as stored: version byte, 16-byte tag, value.
pub fn wrap_value(table: &str, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + TAG_LEN + value.len());
    out.push(VALUE_VERSION);
    out.extend_from_slice(&value_tag(table, key, value));
    out.extend_from_slice(value);
    out
}

/// Checks and strips a stored value's tag.
pub fn unwrap_value(table: &str, key: &[u8], stored: &[u8]) -> Result<Vec<u8>> {
    let corrupt = |reason| Error::StateCorrupt {
        table: table.to_owned(),
        reason,
    };
    let (&version, rest) = stored.split_first().ok_or(corrupt("empty stored value"))?;
    if version != VALUE_VERSION {
        return Err(corrupt("unknown stored value version"));
    }
    let (tag, value) = rest
        .split_at_checked(TAG_LEN)
        .ok_or(corrupt("stored value shorter than its tag"))?;
    if tag != value_tag(table, key, value) {
        return Err(corrupt("stored value fails its checksum"));
    }
    Ok(value.to_vec())
}

/// One step of the undo journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum UndoOp {
    /// Restore the stamp to this (absent if `None`).
    Stamp(Option<u64>),
    /// Restore `key` of `table` to `old` (delete if `None`).
    Key {
        table: String,
        key: Vec<u8>,
        old: Option<Vec<u8>>,
    },
}

/// The undo record encoding (one encoding per value; [`UndoOp::decode`]
/// refuses every other byte string):
///
/// ```text
/// stamp  0x00 ‖ 0x00 ‖ 8 zero bytes                 (no previous stamp)
///        0x00 ‖ 0x01 ‖ previous stamp u64 LE
/// key    0x01 ‖ table length u8 ‖ table ‖ key length u32 LE ‖ key
///             ‖ 0x00                               (key was absent)
///             ‖ 0x01 ‖ previous value (to the end)
/// ```
impl UndoOp {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            UndoOp::Stamp(prev) => {
                out.push(0);
                out.push(u8::from(prev.is_some()));
                out.extend_from_slice(&prev.unwrap_or(0).to_le_bytes());
            }
            UndoOp::Key { table, key, old } => {
                out.push(1);
                out.push(table.len() as u8);
                out.extend_from_slice(table.as_bytes());
                out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                out.extend_from_slice(key);
                out.push(u8::from(old.is_some()));
                if let Some(v) = old {
                    out.extend_from_slice(v);
                }
            }
        }
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let (&kind, rest) = b.split_first()?;
        match kind {
            0 => {
                let (&present, rest) = rest.split_first()?;
                let prev = u64::from_le_bytes(<[u8; 8]>::try_from(rest).ok()?);
                // An absent stamp is written with a zero field; any other
                // field would be a second encoding of the same record.
                match (present, prev) {
                    (0, 0) => Some(UndoOp::Stamp(None)),
                    (1, prev) => Some(UndoOp::Stamp(Some(prev))),
                    _ => None,
                }
            }
            1 => {
                let (&tlen, rest) = rest.split_first()?;
                let (table, rest) = rest.split_at_checked(usize::from(tlen))?;
                let table = std::str::from_utf8(table).ok()?.to_owned();
                check_table(&table).ok()?;
                let (klen, rest) = rest.split_at_checked(4)?;
                let klen = u32::from_le_bytes(<[u8; 4]>::try_from(klen).ok()?) as usize;
                if klen > MAX_STATE_KEY_LEN {
                    return None;
                }
                let (key, rest) = rest.split_at_checked(klen)?;
                let (&present, old) = rest.split_first()?;
                let old = match present {
                    0 if old.is_empty() => None,
                    1 => Some(old.to_vec()),
                    _ => return None,
                };
                Some(UndoOp::Key {
                    table,
                    key: key.to_vec(),
                    old,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_names() {
        assert!(check_table("wrapped_keys").is_ok());
        assert!(check_table("idx.patient-1").is_ok());
        for bad in ["", "Upper", "sp ace", "t/x", &"a".repeat(65)] {
            assert!(
                matches!(check_table(bad), Err(Error::InvalidTableName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn value_vector() {
        let w = wrap_value("keys", b"k", b"v");
        assert_eq!(w.len(), 1 + 16 + 1);
        assert_eq!(w[0], 1);
        assert_eq!(unwrap_value("keys", b"k", &w).unwrap(), b"v");
        // Bound to table and key: moving a value elsewhere is detected.
        assert!(unwrap_value("keys", b"j", &w).is_err());
        assert!(unwrap_value("other", b"k", &w).is_err());
    }

    proptest! {
        #[test]
        fn value_round_trip_and_any_bit_flip_rejected(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            value in proptest::collection::vec(any::<u8>(), 0..100),
            bit in any::<usize>(),
        ) {
            let w = wrap_value("t", &key, &value);
            prop_assert_eq!(unwrap_value("t", &key, &w).unwrap(), value);
            let mut bad = w.clone();
            let i = bit % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            prop_assert!(unwrap_value("t", &key, &bad).is_err());
        }

        #[test]
        fn undo_round_trip(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            old in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            stamp in proptest::option::of(any::<u64>()),
            junk in proptest::collection::vec(any::<u8>(), 0..60),
        ) {
            let ops = [UndoOp::Stamp(stamp), UndoOp::Key { table: "t.x".into(), key, old }];
            for op in ops {
                prop_assert_eq!(UndoOp::decode(&op.encode()), Some(op));
            }
            // Whatever decodes is the one encoding of its value.
            if let Some(op) = UndoOp::decode(&junk) {
                prop_assert_eq!(op.encode(), junk);
            }
        }

        /// Any byte changed in an encoded record is refused or decodes to
        /// a different record that encodes to exactly the changed bytes:
        /// no value has two encodings.
        #[test]
        fn undo_encoding_is_canonical(
            key in proptest::collection::vec(any::<u8>(), 0..8),
            old in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            stamp in proptest::option::of(any::<u64>()),
            at in any::<usize>(),
            byte in any::<u8>(),
        ) {
            let ops = [UndoOp::Stamp(stamp), UndoOp::Key { table: "t.x".into(), key, old }];
            for op in ops {
                let mut bytes = op.encode();
                let i = at % bytes.len();
                if bytes[i] == byte {
                    continue;
                }
                bytes[i] = byte;
                match UndoOp::decode(&bytes) {
                    None => {}
                    Some(other) => {
                        prop_assert_ne!(&other, &op);
                        prop_assert_eq!(other.encode(), bytes);
                    }
                }
            }
        }
    }

    /// `Stamp(None)` has exactly one encoding: the previous-stamp field
    /// must be zero (it was ignored, so ten byte strings decoded to it).
    #[test]
    fn absent_stamp_has_one_encoding() {
        let canonical = UndoOp::Stamp(None).encode();
        assert_eq!(canonical, [0u8; 10]);
        assert_eq!(UndoOp::decode(&canonical), Some(UndoOp::Stamp(None)));
        for i in 2..10 {
            let mut b = canonical.clone();
            b[i] = 1;
            assert_eq!(UndoOp::decode(&b), None, "byte {i}");
        }
        assert_eq!(
            UndoOp::decode(&[0, 1, 7, 0, 0, 0, 0, 0, 0, 0]),
            Some(UndoOp::Stamp(Some(7)))
        );
    }
}
