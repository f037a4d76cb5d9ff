//! The blob store trait, blob ids, and the chunked blob file format.
//!
//! A blob file (the format of [`crate::DirBlobStore`]):
//!
//! ```text
//! header  off len field
//!           0   8 magic "MLEDBLOB"
//!           8   2 format version, u16 LE (1)
//!          10   2 reserved, zero
//!          12  32 the blob id
//!          44   4 CRC-32 (IEEE) of bytes 0..44, u32 LE
//! chunk   (repeated; 1..=65536 bytes, every chunk but the last exactly 65536)
//!           0   4 data length n, u32 LE
//!           4   4 CRC-32 of (chunk number u64 LE ‖ n u32 LE ‖ data), u32 LE
//!           8   n data
//! end     0   4 zero
//!           4   4 CRC-32 of (chunk number u64 LE ‖ 0u32 ‖ total length u64 LE)
//!           8   8 total data length, u64 LE; nothing may follow
//! ```
//!
//! A reader checks each chunk before handing out any of its bytes, so a
//! flipped bit is an error, never altered data; the end record catches a
//! file cut at a chunk boundary.

use std::fmt;
use std::io::{Read, Write};

use crate::error::{Error, Result};

/// Identifies a blob: 32 bytes the caller chooses (random, or derived from
/// the record and version it holds). Never derived from the content, so two
/// records never share a blob and erasing one never touches another.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    /// Lowercase hex, the blob's file name.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 lowercase hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = hex_digit(*pair.first()?)?;
            let lo = hex_digit(*pair.get(1)?)?;
            *o = hi << 4 | lo;
        }
        Some(BlobId(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.to_hex())
    }
}

/// A blob being written: bytes go in through [`Write`]; nothing is visible
/// until [`BlobWriter::commit`]. Dropping the writer aborts it.
pub trait BlobWriter: Write + Send {
    /// Makes the blob durable and visible as *pending* (see
    /// [`BlobStore::pending`]), atomically: after a crash it is either
    /// wholly there or not at all.
    fn commit(self: Box<Self>) -> Result<()>;

    /// Discards the blob.
    fn abort(self: Box<Self>) -> Result<()>;
}

/// Streaming, id-addressed, immutable blobs (record ciphertexts).
///
/// Life cycle: [`BlobStore::create`] and commit leave the blob *pending*;
/// once the log entry that references it is durable, the caller calls
/// [`BlobStore::mark_referenced`]. After a crash, the caller runs
/// [`BlobStore::collect_pending`] with a test for "is this id referenced by
/// a durable entry": unreferenced pending blobs (written, but the entry
/// never made it) are deleted, referenced ones are kept. Both steps are
/// idempotent, so a crash between the entry and the mark loses nothing.
pub trait BlobStore: Send + Sync {
    /// Starts writing blob `id`. Fails with [`Error::BlobExists`] at commit
    /// (or here) if `id` is already committed.
    fn create(&self, id: BlobId) -> Result<Box<dyn BlobWriter + '_>>;

    /// Streams blob `id`. Corruption surfaces as an `io::Error` of kind
    /// `InvalidData` wrapping [`Error::BlobCorrupt`], before any damaged
    /// byte is returned.
    fn open(&self, id: &BlobId) -> Result<Box<dyn Read + Send + '_>>;

    /// Whether blob `id` is committed (pending or referenced).
    fn exists(&self, id: &BlobId) -> Result<bool>;

    /// Deletes blob `id`; `false` if there was none. Deletion unlinks; it
    /// cannot promise the bytes are gone from the medium (see the crate
    /// docs): erasure of a record is crypto-shredding of its key.
    fn delete(&self, id: &BlobId) -> Result<bool>;

    /// Committed blobs not yet marked referenced.
    fn pending(&self) -> Result<Vec<BlobId>>;

    /// Records that a durable entry references `id` (no-op if already so).
    fn mark_referenced(&self, id: &BlobId) -> Result<()>;

    /// Keeps every pending blob for which `is_referenced` says yes (marking
    /// it referenced) and deletes the rest. Returns the deleted ids.
    fn collect_pending(
        &self,
        is_referenced: &mut dyn FnMut(&BlobId) -> Result<bool>,
    ) -> Result<Vec<BlobId>> {
        let mut deleted = Vec::new();
        for id in self.pending()? {
            if is_referenced(&id)? {
                self.mark_referenced(&id)?;
            } else if self.delete(&id)? {
                deleted.push(id);
            }
        }
        Ok(deleted)
    }
}

/// Reads a whole blob into memory (for small blobs and tests).
pub fn read_blob(store: &dyn BlobStore, id: &BlobId) -> Result<Vec<u8>> {
    let mut r = store.open(id)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .map_err(|e| into_store_error(e, id))?;
    Ok(out)
}

/// Recovers the [`Error`] a blob reader wrapped in an `io::Error`.
pub fn into_store_error(e: std::io::Error, id: &BlobId) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(err) = inner.downcast::<Error>() {
                return *err;
            }
        }
        return Error::BlobCorrupt {
            id: *id,
            offset: 0,
            reason: "unreadable",
        };
    }
    Error::Io {
        op: "read blob",
        path: id.to_hex().into(),
        source: e,
    }
}

/// Magic bytes opening a blob file.
pub const BLOB_MAGIC: [u8; 8] = *b"MLEDBLOB";
/// The blob file format version.
pub const BLOB_VERSION: u16 = 1;
/// Length of the blob file header.
pub const BLOB_HEADER_LEN: usize = 48;
/// Most data bytes in one chunk.
pub const BLOB_CHUNK_LEN: usize = 1 << 16;

/// The header of blob `id`'s file.
pub fn encode_blob_header(id: &BlobId) -> [u8; BLOB_HEADER_LEN] {
    let mut h = [0u8; BLOB_HEADER_LEN];
    h[..8].copy_from_slice(&BLOB_MAGIC);
    h[8..10].copy_from_slice(&BLOB_VERSION.to_le_bytes());
    h[12..44].copy_from_slice(&id.0);
    let crc = crc32fast::hash(&h[..44]);
    h[44..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn chunk_crc(chunk_no: u64, data: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&chunk_no.to_le_bytes());
    c.update(&(data.len() as u32).to_le_bytes());
    c.update(data);
    c.finalize()
}

fn end_crc(chunk_no: u64, total: u64) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&chunk_no.to_le_bytes());
    c.update(&0u32.to_le_bytes());
    c.update(&total.to_le_bytes());
    c.finalize()
}

/// Encodes blob bodies chunk by chunk into any writer.
pub(crate) struct ChunkEncoder {
    chunk_no: u64,
    total: u64,
    buf: Vec<u8>,
}

impl ChunkEncoder {
    pub(crate) fn new() -> Self {
        ChunkEncoder {
            chunk_no: 0,
            total: 0,
            buf: Vec::with_capacity(BLOB_CHUNK_LEN),
        }
    }

    /// Buffers `data`, writing each full chunk to `out`.
    pub(crate) fn push<W: Write>(&mut self, mut data: &[u8], out: &mut W) -> std::io::Result<()> {
        while !data.is_empty() {
            let room = BLOB_CHUNK_LEN - self.buf.len();
            let (now, later) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            data = later;
            if self.buf.len() == BLOB_CHUNK_LEN {
                self.emit(out)?;
            }
        }
        Ok(())
    }

    fn emit<W: Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        out.write_all(&(self.buf.len() as u32).to_le_bytes())?;
        out.write_all(&chunk_crc(self.chunk_no, &self.buf).to_le_bytes())?;
        out.write_all(&self.buf)?;
        self.chunk_no += 1;
        self.total += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the last partial chunk and the end record.
    pub(crate) fn finish<W: Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.emit(out)?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&end_crc(self.chunk_no, self.total).to_le_bytes())?;
        out.write_all(&self.total.to_le_bytes())
    }
}

/// Streams a blob file's data, checking every chunk before releasing it.
pub struct BlobReader<R> {
    inner: R,
    id: BlobId,
    offset: u64,
    chunk_no: u64,
    total: u64,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    /// A chunk shorter than the maximum was read: only the end may follow
    /// (one canonical encoding per body).
    short_seen: bool,
}

impl<R: Read> BlobReader<R> {
    /// Checks the header of the blob file `inner` (which must be blob `id`)
    /// and returns a reader of its data.
    pub fn new(mut inner: R, id: BlobId) -> Result<Self> {
        let mut h = [0u8; BLOB_HEADER_LEN];
        let corrupt = |reason| Error::BlobCorrupt {
            id,
            offset: 0,
            reason,
        };
        read_full(&mut inner, &mut h)
            .map_err(|e| into_store_error(e, &id))?
            .then_some(())
            .ok_or(corrupt("truncated blob header"))?;
        if h[..8] != BLOB_MAGIC {
            return Err(corrupt("bad blob magic"));
        }
        if crc32fast::hash(&h[..44]) != u32::from_le_bytes([h[44], h[45], h[46], h[47]]) {
            return Err(corrupt("blob header checksum mismatch"));
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version > BLOB_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "blob",
                found: u32::from(version),
                supported: u32::from(BLOB_VERSION),
            });
        }
        if version == 0 || h[10..12] != [0, 0] {
            return Err(corrupt("bad blob version"));
        }
        if h[12..44] != id.0 {
            return Err(corrupt("blob file holds another blob id"));
        }
        Ok(BlobReader {
            inner,
            id,
            offset: BLOB_HEADER_LEN as u64,
            chunk_no: 0,
            total: 0,
            buf: Vec::new(),
            pos: 0,
            done: false,
            short_seen: false,
        })
    }

    fn corrupt(&self, reason: &'static str) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::BlobCorrupt {
                id: self.id,
                offset: self.offset,
                reason,
            },
        )
    }

    /// Loads and checks the next chunk (or the end record).
    fn next_chunk(&mut self) -> std::io::Result<()> {
        let mut h = [0u8; 8];
        if !read_full(&mut self.inner, &mut h)? {
            return Err(self.corrupt("blob truncated before its end record"));
        }
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if len == 0 {
            let mut t = [0u8; 8];
            if !read_full(&mut self.inner, &mut t)? {
                return Err(self.corrupt("truncated blob end record"));
            }
            let total = u64::from_le_bytes(t);
            if end_crc(self.chunk_no, total) != crc || total != self.total {
                return Err(self.corrupt("blob end record mismatch"));
            }
            let mut extra = [0u8; 1];
            if read_full(&mut self.inner, &mut extra)? {
                return Err(self.corrupt("bytes after the blob end record"));
            }
            self.done = true;
            return Ok(());
        }
        if len > BLOB_CHUNK_LEN {
            return Err(self.corrupt("blob chunk length over the maximum"));
        }
        if self.short_seen {
            return Err(self.corrupt("short blob chunk before the last"));
        }
        self.short_seen = len < BLOB_CHUNK_LEN;
        self.buf.resize(len, 0);
        if !read_full(&mut self.inner, &mut self.buf)? {
            return Err(self.corrupt("truncated blob chunk"));
        }
        if chunk_crc(self.chunk_no, &self.buf) != crc {
            return Err(self.corrupt("blob chunk checksum mismatch"));
        }
        self.chunk_no += 1;
        self.total += len as u64;
        self.offset += 8 + len as u64;
        self.pos = 0;
        Ok(())
    }
}

/// Fills `buf` entirely (`true`), or hits end of input (`false`).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(buf.get_mut(at..).unwrap_or_default()) {
            Ok(0) => return Ok(false),
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl<R: Read> Read for BlobReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.buf.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            self.buf.clear();
            self.next_chunk()?;
        }
        let avail = self.buf.get(self.pos..).unwrap_or_default();
        let n = avail.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos += n;
        Ok(n)
    }
}

/// Decodes a whole blob file held in memory (for tools and fuzzing).
pub fn decode_blob_file(bytes: &[u8], id: BlobId) -> Result<Vec<u8>> {
    let mut r = BlobReader::new(bytes, id)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .map_err(|e| into_store_error(e, &id))?;
    Ok(out)
}

/// Encodes a whole blob file (for tools, tests and fuzzing).
pub fn encode_blob_file(id: &BlobId, data: &[u8]) -> Vec<u8> {
    let mut out = encode_blob_header(id).to_vec();
    let mut enc = ChunkEncoder::new();
    // Writing to a Vec cannot fail.
    let _ = enc.push(data, &mut out);
    let _ = enc.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vector() {
        let f = encode_blob_file(&BlobId([0xab; 32]), b"hi");
        let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex.len(), 2 * (48 + 8 + 2 + 16));
        assert!(hex.starts_with("4d4c4544424c4f4201000000abab"));
        assert_eq!(
            &hex[96..],
            "020000009fe03905686900000000b6a797280200000000000000"
        );
    }

    #[test]
    fn ids_are_hex_file_names() {
        let id = BlobId([0x0f; 32]);
        assert_eq!(BlobId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(BlobId::from_hex("0F"), None);
        assert_eq!(BlobId::from_hex(&"G".repeat(64)), None);
    }

    proptest! {
        #[test]
        fn round_trip_and_wrong_id(data in proptest::collection::vec(any::<u8>(), 0..140_000)) {
            let id = BlobId([3; 32]);
            let f = encode_blob_file(&id, &data);
            prop_assert_eq!(decode_blob_file(&f, id).unwrap(), data);
            let is_wrong_id = matches!(decode_blob_file(&f, BlobId([4; 32])), Err(Error::BlobCorrupt { .. }));
            prop_assert!(is_wrong_id);
        }
    }
}
