//! [`PgBlobStore`]: ciphertext blobs as rows of at most
//! [`BLOB_CHUNK_LEN`] bytes, written and read as streams.
//!
//! A writer holds one connection with an open transaction: it inserts the
//! `blobs` row first (a committed blob with the same id makes that
//! [`medledger_store::Error::BlobExists`]), then one `blob_chunks` row per
//! full chunk as bytes arrive, and at commit the length and chunk count.
//! Nothing is visible before `COMMIT`; a crash, a lost connection or a
//! dropped writer rolls it all back. Memory stays bounded by one chunk on
//! each side, whatever the blob's size.
//!
//! Each chunk row carries a 16-byte BLAKE3 tag over (blob id, chunk number,
//! data), checked before any of its bytes are returned, so a damaged or
//! misplaced row is [`medledger_store::Error::BlobCorrupt`], never wrong
//! data (PostgreSQL's page checksums are off unless the cluster was
//! initialised with them). A reader follows the blob's `gen` (a fresh
//! number per stored blob), so deleting and re-creating an id while a
//! reader streams it ends that reader with an error instead of mixing two
//! blobs.
//!
//! Deletion is `DELETE` (chunks cascade). PostgreSQL keeps the bytes as
//! dead tuples until `VACUUM` reuses the space, in its WAL until recycled,
//! on replicas until they replay, and in base backups and WAL archives for
//! as long as those are retained. Erasure of a record is therefore
//! crypto-shredding (its wrapped keys are deleted); deleting the
//! ciphertext is tidiness, exactly as on the embedded store.

use std::io::{Read, Write};
use std::sync::Arc;

use medledger_store::{BlobId, BlobStore, BlobWriter};

use crate::error::{Error, Result, Stage};
use crate::pool::{Pool, Pooled};

/// Most data bytes in one `blob_chunks` row: 1 MiB.
pub const BLOB_CHUNK_LEN: usize = 1 << 20;
const TAG_LEN: usize = 16;

const EXISTS: &str = "SELECT 1 FROM blobs WHERE id = $1 AND chunks >= 0";
const INSERT_BLOB: &str =
    "INSERT INTO blobs (id, referenced, length, chunks) VALUES ($1, false, -1, -1) ON CONFLICT (id) DO NOTHING RETURNING gen";
const INSERT_CHUNK: &str = "INSERT INTO blob_chunks (gen, no, data, tag) VALUES ($1, $2, $3, $4)";
const FINISH_BLOB: &str = "UPDATE blobs SET length = $2, chunks = $3 WHERE gen = $1";
const OPEN_BLOB: &str = "SELECT gen, length, chunks FROM blobs WHERE id = $1";
const SELECT_CHUNK: &str = "SELECT data, tag FROM blob_chunks WHERE gen = $1 AND no = $2";
const DELETE_BLOB: &str = "DELETE FROM blobs WHERE id = $1";
const PENDING: &str = "SELECT id FROM blobs WHERE NOT referenced ORDER BY id";
const MARK: &str = "UPDATE blobs SET referenced = true WHERE id = $1";

fn tag(id: &BlobId, no: u32, data: &[u8]) -> [u8; TAG_LEN] {
    let mut h = blake3::Hasher::new_derive_key("medledger-postgres blob chunk v1");
    h.update(&id.0);
    h.update(&no.to_le_bytes());
    h.update(&(data.len() as u64).to_le_bytes());
    h.update(data);
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(
        h.finalize()
            .as_bytes()
            .get(..TAG_LEN)
            .unwrap_or(&[0; TAG_LEN]),
    );
    out
}

fn pg(op: &'static str) -> impl FnOnce(postgres::Error) -> Error {
    move |e| Error::from_pg(op, Stage::BeforeCommit, None, e)
}

/// The blob store on PostgreSQL (see the module docs).
#[derive(Debug, Clone)]
pub struct PgBlobStore {
    pool: Arc<Pool>,
}

impl PgBlobStore {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        PgBlobStore { pool }
    }

    fn query<T>(
        &self,
        op: &'static str,
        sql: &'static str,
        f: impl FnOnce(&mut postgres::Client, &postgres::Statement) -> Result<T>,
    ) -> medledger_store::Result<T> {
        let mut pooled = self.pool.get()?;
        let r = pooled.conn().and_then(|c| {
            let s = c.prepare(op, sql)?;
            f(&mut c.client, &s)
        });
        if let Err(e) = &r {
            pooled.saw(e);
        }
        Ok(r?)
    }
}

/// A blob being written (see the module docs).
struct PgBlobWriter<'a> {
    pooled: Pooled<'a>,
    id: BlobId,
    gen: i64,
    buf: Vec<u8>,
    chunks: u32,
    length: u64,
    /// Set once the transaction ended (committed, rolled back or failed).
    done: bool,
}

impl PgBlobWriter<'_> {
    fn flush_chunk(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let op = "write blob chunk";
        let no = self.chunks;
        let t = tag(&self.id, no, &self.buf);
        let no_i = i32::try_from(no).map_err(|_| Error::Inconsistent {
            what: "blob_chunks",
            reason: "over 2^31 chunks".into(),
        })?;
        let r = self.pooled.conn().and_then(|c| {
            let s = c.prepare(op, INSERT_CHUNK)?;
            c.client
                .execute(&s, &[&self.gen, &no_i, &self.buf, &&t[..]])
                .map_err(pg(op))
        });
        if let Err(e) = &r {
            self.fail(e);
        }
        r?;
        self.length += self.buf.len() as u64;
        self.chunks += 1;
        self.buf.clear();
        Ok(())
    }

    /// Ends the transaction after `e`: a live connection is rolled back,
    /// a lost one dropped by the pool.
    fn fail(&mut self, e: &Error) {
        self.pooled.saw(e);
        if e.connection_gone() {
            self.done = true;
        } else {
            self.rollback();
        }
    }

    fn rollback(&mut self) {
        if !self.done {
            self.done = true;
            if let Ok(c) = self.pooled.conn() {
                if c.client.batch_execute("ROLLBACK").is_err() {
                    self.pooled.saw(&Error::Inconsistent {
                        what: "blob writer",
                        reason: "rollback failed".into(),
                    });
                }
            }
        }
    }
}

impl Write for PgBlobWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.done {
            return Err(std::io::Error::other("blob writer already failed"));
        }
        let room = BLOB_CHUNK_LEN - self.buf.len();
        let n = room.min(data.len());
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buf.len() == BLOB_CHUNK_LEN {
            self.flush_chunk()
                .map_err(|e| std::io::Error::other(medledger_store::Error::from(e)))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobWriter for PgBlobWriter<'_> {
    fn commit(mut self: Box<Self>) -> medledger_store::Result<()> {
        if self.done {
            return Err(Error::Inconsistent {
                what: "blob writer",
                reason: "commit after a failed write".into(),
            }
            .into());
        }
        self.flush_chunk()?;
        let op = "commit blob";
        let (gen, length, chunks) = (self.gen, self.length, self.chunks);
        let r = self.pooled.conn().and_then(|c| {
            let s = c.prepare(op, FINISH_BLOB)?;
            let length = i64::try_from(length).map_err(|_| Error::Inconsistent {
                what: "blobs",
                reason: "length over 2^63".into(),
            })?;
            let chunks = i32::try_from(chunks).map_err(|_| Error::Inconsistent {
                what: "blobs",
                reason: "over 2^31 chunks".into(),
            })?;
            c.client
                .execute(&s, &[&gen, &length, &chunks])
                .map_err(pg(op))?;
            c.client
                .batch_execute("COMMIT")
                .map_err(|e| Error::from_pg(op, Stage::Commit, None, e))
        });
        match &r {
            Ok(()) => self.done = true,
            Err(e) => self.fail(e),
        }
        Ok(r?)
    }

    fn abort(mut self: Box<Self>) -> medledger_store::Result<()> {
        self.rollback();
        Ok(())
    }
}

impl Drop for PgBlobWriter<'_> {
    fn drop(&mut self) {
        self.rollback();
    }
}

/// Streams a blob chunk by chunk (see the module docs).
struct PgBlobReader<'a> {
    store: &'a PgBlobStore,
    id: BlobId,
    gen: i64,
    length: u64,
    chunks: u32,
    next: u32,
    served: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl PgBlobReader<'_> {
    fn corrupt(&self, reason: &'static str) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            medledger_store::Error::BlobCorrupt {
                id: self.id,
                offset: u64::from(self.next) * BLOB_CHUNK_LEN as u64,
                reason,
            },
        )
    }

    fn load_next(&mut self) -> std::io::Result<()> {
        let (gen, no) = (self.gen, self.next);
        let no_i = i32::try_from(no).map_err(|_| self.corrupt("chunk number out of range"))?;
        let row = self
            .store
            .query("read blob chunk", SELECT_CHUNK, |c, s| {
                c.query_opt(s, &[&gen, &no_i])
                    .map_err(pg("read blob chunk"))?
                    .map(|r| {
                        Ok::<_, Error>((
                            r.try_get::<_, Vec<u8>>(0).map_err(pg("read blob chunk"))?,
                            r.try_get::<_, Vec<u8>>(1).map_err(pg("read blob chunk"))?,
                        ))
                    })
                    .transpose()
            })
            .map_err(std::io::Error::other)?;
        let Some((data, stored_tag)) = row else {
            // Deleted (or re-created) while being read.
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                medledger_store::Error::BlobNotFound { id: self.id },
            ));
        };
        let last = no + 1 == self.chunks;
        let expected_len = if last {
            self.length - self.served
        } else {
            BLOB_CHUNK_LEN as u64
        };
        if data.len() as u64 != expected_len || data.is_empty() {
            return Err(self.corrupt("blob chunk has the wrong length"));
        }
        if stored_tag.as_slice() != tag(&self.id, no, &data) {
            return Err(self.corrupt("blob chunk fails its tag"));
        }
        self.served += data.len() as u64;
        self.next += 1;
        self.buf = data;
        self.pos = 0;
        Ok(())
    }
}

impl Read for PgBlobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            if self.next >= self.chunks {
                return Ok(0);
            }
            self.load_next()?;
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}

impl BlobStore for PgBlobStore {
    fn create(&self, id: BlobId) -> medledger_store::Result<Box<dyn BlobWriter + '_>> {
        let op = "create blob";
        let mut pooled = self.pool.get()?;
        let r = pooled.conn().and_then(|c| {
            let s = c.prepare(op, INSERT_BLOB)?;
            c.client.batch_execute("BEGIN").map_err(pg(op))?;
            let row = c.client.query_opt(&s, &[&&id.0[..]]);
            match row {
                Ok(Some(r)) => Ok(Some(r.try_get::<_, i64>(0).map_err(pg(op))?)),
                Ok(None) => {
                    let _ = c.client.batch_execute("ROLLBACK");
                    Ok(None)
                }
                Err(e) => Err(pg(op)(e)),
            }
        });
        if let Err(e) = &r {
            pooled.saw(e);
        }
        let Some(gen) = r? else {
            return Err(medledger_store::Error::BlobExists { id });
        };
        Ok(Box::new(PgBlobWriter {
            pooled,
            id,
            gen,
            buf: Vec::new(),
            chunks: 0,
            length: 0,
            done: false,
        }))
    }

    fn open(&self, id: &BlobId) -> medledger_store::Result<Box<dyn Read + Send + '_>> {
        let op = "open blob";
        let row = self.query(op, OPEN_BLOB, |c, s| {
            c.query_opt(s, &[&&id.0[..]])
                .map_err(pg(op))?
                .map(|r| {
                    Ok::<_, Error>((
                        r.try_get::<_, i64>(0).map_err(pg(op))?,
                        r.try_get::<_, i64>(1).map_err(pg(op))?,
                        r.try_get::<_, i32>(2).map_err(pg(op))?,
                    ))
                })
                .transpose()
        })?;
        let Some((gen, length, chunks)) = row else {
            return Err(medledger_store::Error::BlobNotFound { id: *id });
        };
        let corrupt = |reason| medledger_store::Error::BlobCorrupt {
            id: *id,
            offset: 0,
            reason,
        };
        let length = u64::try_from(length).map_err(|_| corrupt("negative blob length"))?;
        let chunks = u32::try_from(chunks).map_err(|_| corrupt("negative chunk count"))?;
        if length.div_ceil(BLOB_CHUNK_LEN as u64) != u64::from(chunks) {
            return Err(corrupt("blob length and chunk count disagree"));
        }
        Ok(Box::new(PgBlobReader {
            store: self,
            id: *id,
            gen,
            length,
            chunks,
            next: 0,
            served: 0,
            buf: Vec::new(),
            pos: 0,
        }))
    }

    fn exists(&self, id: &BlobId) -> medledger_store::Result<bool> {
        self.query("check blob", EXISTS, |c, s| {
            Ok(c.query_opt(s, &[&&id.0[..]])
                .map_err(pg("check blob"))?
                .is_some())
        })
    }

    fn delete(&self, id: &BlobId) -> medledger_store::Result<bool> {
        self.query("delete blob", DELETE_BLOB, |c, s| {
            Ok(c.execute(s, &[&&id.0[..]]).map_err(pg("delete blob"))? > 0)
        })
    }

    fn pending(&self) -> medledger_store::Result<Vec<BlobId>> {
        let ids = self.query("list pending blobs", PENDING, |c, s| {
            let rows = c.query(s, &[]).map_err(pg("list pending blobs"))?;
            rows.iter()
                .map(|r| r.try_get::<_, Vec<u8>>(0).map_err(pg("list pending blobs")))
                .collect::<Result<Vec<_>>>()
        })?;
        ids.into_iter()
            .map(|b| {
                <[u8; 32]>::try_from(b.as_slice()).map(BlobId).map_err(|_| {
                    Error::Inconsistent {
                        what: "blobs",
                        reason: "blob id is not 32 bytes".into(),
                    }
                    .into()
                })
            })
            .collect()
    }

    fn mark_referenced(&self, id: &BlobId) -> medledger_store::Result<()> {
        let n = self.query("mark blob referenced", MARK, |c, s| {
            c.execute(s, &[&&id.0[..]])
                .map_err(pg("mark blob referenced"))
        })?;
        if n == 0 {
            return Err(medledger_store::Error::BlobNotFound { id: *id });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn chunk_tag_vector_and_binding() {
        let id = BlobId([0; 32]);
        let t = tag(&id, 0, b"abc");
        assert_eq!(hex(&t), "58fe61a7ab1039a09f0ab8475f0467d3");
        // Bound to the blob, the chunk number and the bytes.
        assert_ne!(tag(&BlobId([1; 32]), 0, b"abc"), t);
        assert_ne!(tag(&id, 1, b"abc"), t);
        assert_ne!(tag(&id, 0, b"abd"), t);
    }
}
