//! [`FileNodeStore`]: medledger-chain's [`NodeStore`] in one append-only
//! file of checksummed hash records, in stored-hash order.
//!
//! ```text
//! header  off len field
//!           0   8 magic "MLEDNODE"
//!           8   2 format version, u16 LE (1)
//!          10   1 hash algorithm id (medledger_chain::HashAlg::id)
//!          11   5 reserved, zero
//!          16   4 CRC-32 (IEEE) of bytes 0..16, u32 LE
//! record  (36 bytes each; record k holds the hash at stored index k)
//!           0  32 node hash
//!          32   4 CRC-32 of (k as u64 LE ‖ hash), u32 LE
//! ```
//!
//! The record checksum covers the position, so a record copied to the wrong
//! place fails like a flipped bit. Appends are not synced: nodes are a pure
//! function of the entries, so after a crash the store recomputes whatever
//! the durable entries imply and the file lacks (see
//! [`crate::EmbeddedStore::open`]). A clean drop syncs the file, so a clean
//! reopen recomputes nothing.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use medledger_chain::node_store::{leaves_for_stored, stored_count};
use medledger_chain::{Hash, HashAlg, NodeId, NodeStore};

use crate::error::{Error, Result};

/// Magic bytes opening the node file.
pub const NODE_MAGIC: [u8; 8] = *b"MLEDNODE";
/// The node file format version.
pub const NODE_VERSION: u16 = 1;
/// Length of the node file header.
pub const NODE_HEADER_LEN: u64 = 20;
/// Length of one node record.
pub const NODE_RECORD_LEN: u64 = 36;

/// The header of a node file for `alg`.
pub fn encode_node_header(alg: HashAlg) -> [u8; NODE_HEADER_LEN as usize] {
    let mut h = [0u8; NODE_HEADER_LEN as usize];
    h[..8].copy_from_slice(&NODE_MAGIC);
    h[8..10].copy_from_slice(&NODE_VERSION.to_le_bytes());
    h[10] = alg.id();
    let crc = crc32fast::hash(&h[..16]);
    h[16..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// The record for the hash at stored index `k`.
pub fn encode_node_record(k: u64, hash: &Hash) -> [u8; NODE_RECORD_LEN as usize] {
    let mut r = [0u8; NODE_RECORD_LEN as usize];
    r[..32].copy_from_slice(hash.as_bytes());
    r[32..].copy_from_slice(&record_crc(k, hash.as_bytes()).to_le_bytes());
    r
}

fn record_crc(k: u64, hash: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&k.to_le_bytes());
    c.update(hash);
    c.finalize()
}

/// Checks record `k`; `None` if its checksum fails.
pub fn decode_node_record(k: u64, record: &[u8]) -> Option<Hash> {
    let (hash, crc) = record.split_at_checked(32)?;
    let crc = <[u8; 4]>::try_from(crc).ok()?;
    (record_crc(k, hash) == u32::from_le_bytes(crc)).then(|| Hash::from_slice(hash))?
}

struct NodeFile {
    path: PathBuf,
    file: File,
    /// Hash records in the file.
    stored: u64,
}

impl Drop for NodeFile {
    fn drop(&mut self) {
        // Best effort: a failure only means recomputation on the next open.
        let _ = self.file.sync_data();
    }
}

/// The durable [`NodeStore`]: a cloneable handle on the store's node file.
///
/// Handles share one file; [`NodeStore::append`] checks that nodes arrive
/// exactly at the stored end, so two logs appending through two handles get
/// [`Error::NodeAppendOutOfOrder`] rather than a corrupt file.
#[derive(Clone)]
pub struct FileNodeStore {
    inner: Arc<Mutex<NodeFile>>,
    /// Keeps the store directory locked while any handle lives.
    _lock: Arc<File>,
}

impl std::fmt::Debug for FileNodeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("FileNodeStore")
            .field("path", &g.path)
            .field("stored", &g.stored)
            .finish()
    }
}

/// What opening the node file found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NodeRepair {
    /// Records dropped (torn, corrupt, or beyond the durable entries).
    pub records_dropped: u64,
    /// Byte offset of the first record that failed its checksum, if any.
    pub corrupt_at: Option<u64>,
}

impl FileNodeStore {
    /// Opens or creates the node file at `path` (rebuilding it if its header
    /// is damaged), verifies every record, and
    /// cuts it back to a whole number of leaves no greater than `max_leaves`
    /// (the durable entry count): whatever follows a torn or corrupt record
    /// is dropped for recomputation.
    pub(crate) fn open(
        path: &Path,
        alg: HashAlg,
        max_leaves: u64,
        lock: Arc<File>,
    ) -> Result<(Self, NodeRepair)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Error::io("open node file", path))?;
        let corrupt = |offset, reason| Error::NodeFileCorrupt {
            path: path.to_owned(),
            offset,
            reason,
        };
        let mut len = file
            .metadata()
            .map_err(Error::io("stat node file", path))?
            .len();
        let mut h = [0u8; NODE_HEADER_LEN as usize];
        if len >= NODE_HEADER_LEN {
            file.read_exact_at(&mut h, 0)
                .map_err(Error::io("read node file header", path))?;
        }
        let header_intact = h[..8] == NODE_MAGIC
            && crc32fast::hash(&h[..16]) == u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
        let mut rebuilt_at = None;
        if !header_intact {
            // New, torn while being created, or damaged: the nodes are a
            // pure function of the entries, so start over and recompute.
            if len > 0 {
                rebuilt_at = Some(0);
            }
            file.set_len(0)
                .map_err(Error::io("truncate node file", path))?;
            h = encode_node_header(alg);
            file.write_all_at(&h, 0)
                .map_err(Error::io("write node file header", path))?;
            file.sync_all()
                .map_err(Error::io("fsync node file", path))?;
            if let Some(dir) = path.parent() {
                crate::sync_dir(dir)?;
            }
            len = NODE_HEADER_LEN;
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version > NODE_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "node file",
                found: u32::from(version),
                supported: u32::from(NODE_VERSION),
            });
        }
        if version == 0 || h[11..16] != [0u8; 5] {
            return Err(corrupt(0, "bad node file version"));
        }
        if h[10] != alg.id() {
            return Err(Error::HashAlgMismatch {
                stored: h[10],
                requested: alg.id(),
            });
        }
        let records = (len - NODE_HEADER_LEN) / NODE_RECORD_LEN;
        // Verify every record, in large reads.
        let mut good = 0u64;
        let mut corrupt_at = None;
        let mut buf = vec![0u8; (NODE_RECORD_LEN as usize) * 4096];
        'verify: while good < records {
            let n = (records - good).min(4096);
            let chunk = buf
                .get_mut(..(n * NODE_RECORD_LEN) as usize)
                .unwrap_or_default();
            file.read_exact_at(chunk, NODE_HEADER_LEN + good * NODE_RECORD_LEN)
                .map_err(Error::io("read node file", path))?;
            for rec in chunk.chunks_exact(NODE_RECORD_LEN as usize) {
                if decode_node_record(good, rec).is_none() {
                    corrupt_at = Some(NODE_HEADER_LEN + good * NODE_RECORD_LEN);
                    break 'verify;
                }
                good += 1;
            }
        }
        // Whole leaves only, and never more than the durable entries.
        // stored_count(n) = 2n - popcount(n) lies in [2n - 64, 2n], so the
        // answer is within 33 of good / 2.
        let mut leaves = good / 2 + 33;
        while leaves > 0 && stored_count(leaves).is_none_or(|c| c > good) {
            leaves -= 1;
        }
        leaves = leaves.min(max_leaves);
        let keep = stored_count(leaves).unwrap_or(0);
        debug_assert_eq!(leaves_for_stored(keep), Some(leaves));
        let keep_len = NODE_HEADER_LEN + keep * NODE_RECORD_LEN;
        if keep_len != len {
            file.set_len(keep_len)
                .map_err(Error::io("truncate node file", path))?;
            file.sync_all()
                .map_err(Error::io("fsync node file", path))?;
        }
        let repair = NodeRepair {
            records_dropped: records - keep,
            corrupt_at: rebuilt_at.or(corrupt_at),
        };
        let store = FileNodeStore {
            inner: Arc::new(Mutex::new(NodeFile {
                path: path.to_owned(),
                file,
                stored: keep,
            })),
            _lock: lock,
        };
        Ok((store, repair))
    }

    fn lock(&self) -> MutexGuard<'_, NodeFile> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Syncs the node file, so a reopen after a power loss need not
    /// recompute (appends alone are not synced).
    pub fn sync(&self) -> Result<()> {
        let g = self.lock();
        g.file
            .sync_data()
            .map_err(Error::io("fsync node file", &g.path))
    }

    /// Hash records stored.
    pub fn stored(&self) -> u64 {
        self.lock().stored
    }
}

impl NodeStore for FileNodeStore {
    fn leaf_count(&self) -> medledger_chain::Result<u64> {
        let stored = self.lock().stored;
        leaves_for_stored(stored).ok_or(medledger_chain::Error::NodeStoreTorn { stored })
    }

    fn get(&self, ids: &[NodeId]) -> medledger_chain::Result<Vec<Hash>> {
        let g = self.lock();
        let mut out = Vec::with_capacity(ids.len());
        let mut rec = [0u8; NODE_RECORD_LEN as usize];
        for id in ids {
            let missing = medledger_chain::Error::MissingNode {
                level: id.level,
                index: id.index,
            };
            let k = id.stored_index().ok_or(missing)?;
            if k >= g.stored {
                return Err(medledger_chain::Error::MissingNode {
                    level: id.level,
                    index: id.index,
                });
            }
            let offset = NODE_HEADER_LEN + k * NODE_RECORD_LEN;
            g.file
                .read_exact_at(&mut rec, offset)
                .map_err(|source| Error::Io {
                    op: "read node file",
                    path: g.path.clone(),
                    source,
                })?;
            let h = decode_node_record(k, &rec).ok_or_else(|| Error::NodeFileCorrupt {
                path: g.path.clone(),
                offset,
                reason: "node record checksum mismatch",
            })?;
            out.push(h);
        }
        Ok(out)
    }

    fn append(&mut self, leaves: u64, nodes: &[(NodeId, Hash)]) -> medledger_chain::Result<()> {
        let mut g = self.lock();
        let out_of_order = Error::NodeAppendOutOfOrder {
            stored: g.stored,
            got: nodes.len(),
            leaves,
        };
        let have = leaves_for_stored(g.stored)
            .ok_or(medledger_chain::Error::NodeStoreTorn { stored: g.stored })?;
        let expected = have
            .checked_add(leaves)
            .and_then(stored_count)
            .and_then(|c| c.checked_sub(g.stored));
        if expected != Some(nodes.len() as u64) {
            return Err(out_of_order.into());
        }
        let mut buf = Vec::with_capacity(nodes.len() * NODE_RECORD_LEN as usize);
        for (k, (id, hash)) in (g.stored..).zip(nodes) {
            if id.stored_index() != Some(k) {
                return Err(out_of_order.into());
            }
            buf.extend_from_slice(&encode_node_record(k, hash));
        }
        let offset = NODE_HEADER_LEN + g.stored * NODE_RECORD_LEN;
        g.file
            .write_all_at(&buf, offset)
            .map_err(|source| Error::Io {
                op: "write node file",
                path: g.path.clone(),
                source,
            })?;
        g.stored += nodes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vectors() {
        let h: String = encode_node_header(HashAlg::Blake3)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(h, "4d4c45444e4f44450100010000000000a0f4ef64");
        let r = encode_node_record(0, &Hash([0u8; 32]));
        assert_eq!(&r[32..], &[0xb1, 0x3d, 0xec, 0xe9]);
    }

    proptest! {
        #[test]
        fn record_round_trip_and_mutations(k in any::<u64>(), h in any::<[u8; 32]>(), bit in 0usize..288, other in any::<u64>()) {
            let r = encode_node_record(k, &Hash(h));
            prop_assert_eq!(decode_node_record(k, &r), Some(Hash(h)));
            let mut bad = r;
            bad[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(decode_node_record(k, &bad), None);
            if other != k {
                prop_assert_eq!(decode_node_record(other, &r), None, "misplaced record");
            }
        }
    }
}
