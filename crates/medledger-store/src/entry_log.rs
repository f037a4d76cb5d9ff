//! The append-only entry log trait.

use core::ops::Range;

use crate::error::Result;

/// An append-only log of opaque entries, indexed from 0.
///
/// Implemented by [`crate::SegmentLog`] (segment files), by
/// [`crate::MemoryLog`], and by networked backends. Nothing here assumes a
/// local file. All methods take `&self`: implementations synchronize
/// internally, so one log is shared between threads and concurrent appends
/// can share one durable commit (group commit).
pub trait EntryLog: Send + Sync {
    /// Appends one entry and returns its index once the entry is durable.
    fn append(&self, entry: &[u8]) -> Result<u64>;

    /// Appends entries in order, contiguously, with one durable commit.
    /// Returns their index range once all are durable. An empty batch
    /// returns an empty range at the current length.
    fn append_batch(&self, entries: &[&[u8]]) -> Result<Range<u64>>;

    /// The entry at `index`; [`crate::Error::IndexOutOfRange`] at or past
    /// [`EntryLog::len`].
    fn read(&self, index: u64) -> Result<Vec<u8>>;

    /// Number of durable entries.
    fn len(&self) -> Result<u64>;

    /// Whether the log holds no durable entry.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The entries in `range`, in order (every index must be below
    /// [`EntryLog::len`]).
    fn read_range(&self, range: Range<u64>) -> Result<Vec<Vec<u8>>> {
        range.map(|i| self.read(i)).collect()
    }
}
