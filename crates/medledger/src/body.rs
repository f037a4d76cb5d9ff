//! Where a version's envelope (its wrapped-key header and ciphertext)
//! lives: small envelopes inline in the state store, larger ones as blobs.
//!
//! A FHIR resource of a few KiB sealed for three recipients is a few
//! hundred bytes more than its body. Stored as a blob it costs, before the
//! log append, a file, its fsync, a rename and a directory fsync; stored
//! inline it rides in the state transaction every write commits anyway
//! (and that commit is shared by concurrent writers). So an envelope of at
//! most [`INLINE_MAX`] bytes is kept in table `inline-bodies` and anything
//! longer streams to the blob store as before.
//!
//! Both are named by a random 32-byte body id in the version state
//! (`BlobId`): an inline body is the row `inline-bodies[id]`, written in
//! the same transaction as the version's other rows; a blob body is the
//! blob `id`, committed (pending) before the log append and named by the
//! row `blobs[id]` in that transaction. Readers go through
//! [`Ledger::open_body`] and never need to know which it is.
//!
//! Both are protected alike: the state store tags every value with a
//! BLAKE3 tag over (table, key, value) and checks it on every
//! read, as the blob store checks each blob's frames, and the ciphertext is
//! checked against the version's logged commitment before any plaintext
//! is released. Deleting either (erasure, rewrap) unlinks it; neither
//! promises that the bytes are gone from the medium (freed database pages
//! and file-system blocks keep them until reused): erasure rests on
//! destroying the record's custody key and commitment nonces.

use std::io::{Cursor, Read, Write};

use medledger_chain::NodeStore;
use medledger_store::{BlobId, BlobStore, BlobWriter, StateTxn};
use rand_core::{OsRng, RngCore};

use crate::error::{At, Op, Result};
use crate::ledger::Ledger;
use crate::record::{T_BLOBS, T_VERSIONS};
use crate::record_state::{version_key, VersionState};
use crate::state_commit::Put;

/// State table of inline envelopes (key = body id, value = envelope).
pub(crate) const T_INLINE: &str = "inline-bodies";

/// Longest envelope kept inline: 64 KiB, one envelope chunk. Longer ones
/// are blobs, so a version's state row never holds a large study.
pub(crate) const INLINE_MAX: usize = 64 * 1024;

/// A fresh random body id.
pub(crate) fn fresh_body_id() -> BlobId {
    let mut id = [0u8; 32];
    OsRng.fill_bytes(&mut id);
    BlobId(id)
}

/// A writer that keeps an envelope in memory while it fits inline and
/// spills it to a new blob (streaming from then on) once it does not.
/// Dropping it before [`BodySink::finish`] aborts a spilled blob.
pub(crate) struct BodySink<'b> {
    blobs: &'b dyn BlobStore,
    id: BlobId,
    to: Target<'b>,
}

enum Target<'b> {
    Memory(Vec<u8>),
    Blob(Box<dyn BlobWriter + 'b>),
}

/// A finished body: inline bytes for the state transaction, or a blob
/// writer still to commit.
pub(crate) enum Finished<'b> {
    /// Kept inline: the `inline-bodies` row's value.
    Inline(Vec<u8>),
    /// Spilled: commit before the log append.
    Blob(Box<dyn BlobWriter + 'b>),
}

impl<'b> BodySink<'b> {
    pub(crate) fn new(blobs: &'b dyn BlobStore) -> Self {
        BodySink {
            blobs,
            id: fresh_body_id(),
            to: Target::Memory(Vec::new()),
        }
    }

    /// The body id this sink writes.
    pub(crate) fn id(&self) -> BlobId {
        self.id
    }

    pub(crate) fn finish(self) -> Finished<'b> {
        match self.to {
            Target::Memory(bytes) => Finished::Inline(bytes),
            Target::Blob(w) => Finished::Blob(w),
        }
    }
}

impl Write for BodySink<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match &mut self.to {
            Target::Memory(buf) if buf.len().saturating_add(data.len()) <= INLINE_MAX => {
                buf.extend_from_slice(data);
            }
            Target::Memory(buf) => {
                let mut w = self.blobs.create(self.id).map_err(std::io::Error::other)?;
                w.write_all(buf)?;
                w.write_all(data)?;
                self.to = Target::Blob(w);
            }
            Target::Blob(w) => w.write_all(data)?,
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.to {
            Target::Memory(_) => Ok(()),
            Target::Blob(w) => w.flush(),
        }
    }
}

/// A body written and durable as far as it goes on its own: a committed
/// (pending) blob, or inline bytes whose row is still to be put.
pub(crate) struct NewBody {
    pub(crate) id: BlobId,
    pub(crate) inline: Option<Vec<u8>>,
}

impl NewBody {
    /// Commits a finished sink's blob (if it spilled).
    pub(crate) fn commit(id: BlobId, finished: Finished<'_>, op: Op) -> Result<Self> {
        match finished {
            Finished::Inline(bytes) => Ok(NewBody {
                id,
                inline: Some(bytes),
            }),
            Finished::Blob(w) => {
                w.commit().at(op)?;
                Ok(NewBody { id, inline: None })
            }
        }
    }

    /// The rows naming this body as version `vk`'s.
    pub(crate) fn rows(self, vk: &[u8]) -> Vec<Put> {
        match self.inline {
            Some(bytes) => vec![Put {
                table: T_INLINE,
                key: self.id.0.to_vec(),
                value: bytes,
            }],
            None => vec![Put {
                table: T_BLOBS,
                key: self.id.0.to_vec(),
                value: vk.to_vec(),
            }],
        }
    }
}

/// Deletes body `id`'s rows in `t` (whichever kind it is). A blob body's
/// blob is deleted by the caller after the transaction commits.
pub(crate) fn delete_body_rows(t: &mut dyn StateTxn, id: &BlobId) -> medledger_store::Result<()> {
    t.delete(T_INLINE, &id.0)?;
    t.delete(T_BLOBS, &id.0)?;
    Ok(())
}

impl<N: NodeStore> Ledger<N> {
    /// Streams body `id`: its inline row, or else its blob.
    pub(crate) fn open_body(&self, id: &BlobId, op: Op) -> Result<Box<dyn Read + Send + '_>> {
        match self.state.get(T_INLINE, &id.0).at(op)? {
            Some(bytes) => Ok(Box::new(Cursor::new(bytes))),
            None => self.blobs.open(id).at(op),
        }
    }

    /// Stores `bytes` as a new body (inline if it fits, else a committed
    /// blob); its rows are for the caller's transaction.
    pub(crate) fn put_body(&self, bytes: &[u8], op: Op) -> Result<NewBody> {
        let mut sink = BodySink::new(self.blobs.as_ref());
        let id = sink.id();
        if let Err(e) = sink.write_all(bytes) {
            return Err(medledger_envelope::Error::from_io(e)).at(op);
        }
        NewBody::commit(id, sink.finish(), op)
    }

    /// Reads body `id` whole (callers hold at most one version in memory).
    pub(crate) fn read_body(&self, id: &BlobId, op: Op) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        if let Err(source) = self.open_body(id, op)?.read_to_end(&mut bytes) {
            return Err(medledger_store::Error::Io {
                op: "read record body",
                path: id.to_hex().into(),
                source,
            })
            .at(op);
        }
        Ok(bytes)
    }

    /// Makes `body` version `version`'s body in one state transaction
    /// (its rows put, the old body's rows deleted), then deletes the old
    /// blob, if it was one. Caller holds the record lock.
    pub(crate) fn swap_body(
        &self,
        record: &str,
        version: u64,
        old: &VersionState,
        body: NewBody,
        op: Op,
    ) -> Result<()> {
        let moved = VersionState {
            blob: body.id,
            ..*old
        };
        let vk = version_key(record, version);
        let vv = moved.encode();
        let rows = body.rows(&vk);
        self.state
            .transact(None, &mut |t| {
                t.put(T_VERSIONS, &vk, &vv)?;
                for row in &rows {
                    t.put(row.table, &row.key, &row.value)?;
                }
                delete_body_rows(t, &old.blob)
            })
            .at(op)?;
        // A committed blob named by its `blobs` row stays pending until the
        // next open marks it (see `write_stream`); an old inline body has
        // no blob, and deleting a missing blob is a no-op.
        self.blobs.delete(&old.blob).at(op)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_store::MemoryBlobStore;

    fn written(len: usize) -> (MemoryBlobStore, BlobId, bool) {
        let blobs = MemoryBlobStore::new();
        let mut sink = BodySink::new(&blobs);
        let id = sink.id();
        let data = vec![7u8; len];
        for piece in data.chunks(1000) {
            sink.write_all(piece).unwrap();
        }
        let inline = match sink.finish() {
            Finished::Inline(bytes) => {
                assert_eq!(bytes, data);
                true
            }
            Finished::Blob(w) => {
                w.commit().unwrap();
                false
            }
        };
        (blobs, id, inline)
    }

    #[test]
    fn bodies_up_to_the_limit_stay_inline_and_longer_ones_spill_whole() {
        let (blobs, id, inline) = written(INLINE_MAX);
        assert!(inline);
        assert!(!blobs.exists(&id).unwrap());
        let (blobs, id, inline) = written(INLINE_MAX + 1);
        assert!(!inline);
        let back = medledger_store::read_blob(&blobs, &id).unwrap();
        assert_eq!(back, vec![7u8; INLINE_MAX + 1]);
    }

    #[test]
    fn a_dropped_sink_leaves_no_blob() {
        let blobs = MemoryBlobStore::new();
        let mut sink = BodySink::new(&blobs);
        let id = sink.id();
        sink.write_all(&vec![1u8; INLINE_MAX + 10]).unwrap();
        drop(sink);
        assert!(!blobs.exists(&id).unwrap());
    }
}
