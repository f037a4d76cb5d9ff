//! [`EmbeddedStore`]: the four stores in one local directory, opened
//! together under one lock, with recovery.
//!
//! ```text
//! <dir>/LOCK          exclusive lock (File::try_lock), held while open
//! <dir>/MANIFEST      format version and hash algorithm (20 bytes, below)
//! <dir>/log/          segment files  00000000000000000000.seg, ...
//! <dir>/nodes.dat     Merkle node records (crate::node_file)
//! <dir>/blobs/        tmp/ pending/ data/ (crate::blob_dir)
//! <dir>/state.redb    the redb state database
//! ```
//!
//! Manifest: magic `"MLEDSTOR"` (8) ‖ format version u32 LE (1) ‖ hash
//! algorithm id u8 ‖ three zero bytes ‖ CRC-32 of the preceding 16 bytes,
//! u32 LE. Written once, via a temporary file, fsync, rename and a
//! directory fsync.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use medledger_chain::{HashAlg, MerkleLog};

use crate::blob_dir::DirBlobStore;
use crate::entry_log::EntryLog;
use crate::error::{Error, Result};
use crate::node_file::FileNodeStore;
use crate::redb_state::{RedbStateStore, StateCheck};
use crate::segment_log::{LogOptions, SegmentLog, TornTail};
use crate::state::StateStore;
use crate::sync_dir;

/// Magic bytes of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"MLEDSTOR";
/// The store format version this build writes and reads.
pub const STORE_VERSION: u32 = 1;

/// Options for [`EmbeddedStore::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// The Merkle hash algorithm: fixed when the store is created, checked
    /// on every later open.
    pub hash_alg: HashAlg,
    /// Entry log tuning.
    pub log: LogOptions,
    /// Run redb's full integrity check on open (reads the whole database).
    pub verify_state: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            hash_alg: HashAlg::Blake3,
            log: LogOptions::default(),
            verify_state: true,
        }
    }
}

/// What [`EmbeddedStore::open`] found and repaired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// The directory held no store; one was created.
    pub created: bool,
    /// Durable entries in the log.
    pub entries: u64,
    /// Segment files.
    pub segments: usize,
    /// A torn tail cut from the last segment.
    pub torn_tail: Option<TornTail>,
    /// Node records dropped (torn, failing their checksum, or beyond the
    /// durable entries).
    pub node_records_dropped: u64,
    /// Byte offset of the first node record that failed its checksum.
    pub node_corruption_at: Option<u64>,
    /// Leaves whose nodes were recomputed from the entries.
    pub leaves_recomputed: u64,
    /// Abandoned blob writes removed.
    pub temp_blobs_removed: usize,
    /// Committed blobs still pending (see [`crate::BlobStore::collect_pending`]).
    pub pending_blobs: usize,
    /// The state database's integrity check.
    pub state_check: StateCheck,
    /// State transactions undone because they reflect entries the log does
    /// not hold (written before a crash took their entries).
    pub state_undone: u64,
    /// The last log index the state reflects after reconciling: the caller
    /// replays entries after it.
    pub state_log_index: Option<u64>,
}

/// The embedded default backend: log, nodes, blobs and state in one
/// directory (see the module docs for the layout).
#[derive(Debug)]
pub struct EmbeddedStore {
    dir: PathBuf,
    alg: HashAlg,
    log: SegmentLog,
    nodes: FileNodeStore,
    blobs: DirBlobStore,
    state: RedbStateStore,
    _lock: Arc<File>,
}

fn encode_manifest(alg: HashAlg) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[..8].copy_from_slice(&MANIFEST_MAGIC);
    m[8..12].copy_from_slice(&STORE_VERSION.to_le_bytes());
    m[12] = alg.id();
    let crc = crc32fast::hash(&m[..16]);
    m[16..].copy_from_slice(&crc.to_le_bytes());
    m
}

/// Checks a manifest and returns its hash algorithm id.
fn decode_manifest(path: &Path, m: &[u8]) -> Result<u8> {
    let bad = |reason| Error::BadManifest {
        path: path.to_owned(),
        reason,
    };
    let m: &[u8; 20] = m.try_into().map_err(|_| bad("manifest is not 20 bytes"))?;
    if m[..8] != MANIFEST_MAGIC {
        return Err(bad("bad manifest magic"));
    }
    if crc32fast::hash(&m[..16]) != u32::from_le_bytes([m[16], m[17], m[18], m[19]]) {
        return Err(bad("manifest checksum mismatch"));
    }
    let version = u32::from_le_bytes([m[8], m[9], m[10], m[11]]);
    if version > STORE_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "store",
            found: version,
            supported: STORE_VERSION,
        });
    }
    if version == 0 || m[13..16] != [0, 0, 0] {
        return Err(bad("bad manifest version"));
    }
    Ok(m[12])
}

fn read_or_create_manifest(dir: &Path, alg: HashAlg) -> Result<bool> {
    let path = dir.join("MANIFEST");
    // The manifest is 20 bytes: read at most one more, so a damaged, huge
    // file costs no allocation of its size and still fails the length check.
    let read = File::open(&path).and_then(|f| {
        let mut bytes = Vec::with_capacity(21);
        f.take(21).read_to_end(&mut bytes).map(|_| bytes)
    });
    match read {
        Ok(bytes) => {
            let stored = decode_manifest(&path, &bytes)?;
            if stored != alg.id() {
                return Err(Error::HashAlgMismatch {
                    stored,
                    requested: alg.id(),
                });
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join("log").exists() {
                return Err(Error::BadManifest {
                    path,
                    reason: "manifest missing beside an existing log",
                });
            }
            let tmp = dir.join("MANIFEST.tmp");
            let mut f = File::create(&tmp).map_err(Error::io("create manifest", &tmp))?;
            f.write_all(&encode_manifest(alg))
                .map_err(Error::io("write manifest", &tmp))?;
            f.sync_all().map_err(Error::io("fsync manifest", &tmp))?;
            std::fs::rename(&tmp, &path).map_err(Error::io("rename manifest", &path))?;
            sync_dir(dir)?;
            Ok(true)
        }
        Err(e) => Err(Error::io("read manifest", &path)(e)),
    }
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(Error::io("open lock file", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::AlreadyInUse {
            path: dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock store directory", &path)(e)),
    }
}

impl EmbeddedStore {
    /// Opens the store in `dir` (an existing directory; an empty one gets a
    /// new store), recovering from any crash:
    ///
    /// 1. takes the directory lock ([`Error::AlreadyInUse`] if held);
    /// 2. checks the manifest (version, hash algorithm);
    /// 3. scans the log, cutting a torn tail (corruption before the tail is
    ///    [`Error::SegmentCorrupt`]);
    /// 4. verifies the node file, cuts it to the durable entries, and
    ///    recomputes the nodes of entries it lacks;
    /// 5. removes abandoned blob writes;
    /// 6. opens the state database and reconciles it with the log.
    ///
    /// Pending blobs are left to the caller's
    /// [`crate::BlobStore::collect_pending`] (only the caller knows which
    /// entries reference which blob).
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<(Self, OpenReport)> {
        let dir = dir.as_ref();
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::NotADirectory {
                    path: dir.to_owned(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingDirectory {
                    path: dir.to_owned(),
                })
            }
            Err(e) => return Err(Error::io("stat store directory", dir)(e)),
        }
        let lock = Arc::new(take_lock(dir)?);
        let created = read_or_create_manifest(dir, options.hash_alg)?;
        let log_dir = dir.join("log");
        match std::fs::create_dir(&log_dir) {
            Ok(()) => sync_dir(dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !log_dir.is_dir() {
                    return Err(Error::NotADirectory { path: log_dir });
                }
            }
            Err(e) => return Err(Error::io("create log directory", &log_dir)(e)),
        }
        let (log, torn_tail) = SegmentLog::open(&log_dir, options.log)?;
        let entries = log.len()?;
        let (nodes, repair) = FileNodeStore::open(
            &dir.join("nodes.dat"),
            options.hash_alg,
            entries,
            Arc::clone(&lock),
        )?;
        let have = nodes.stored();
        let leaves = medledger_chain::node_store::leaves_for_stored(have).unwrap_or(0);
        let mut leaves_recomputed = 0;
        if leaves < entries {
            let mut tree = MerkleLog::open(options.hash_alg, nodes.clone())?;
            let mut at = leaves;
            while at < entries {
                let end = entries.min(at + 4096);
                let batch = log.read_range(at..end)?;
                tree.append_batch(batch.iter())?;
                at = end;
            }
            nodes.sync()?;
            leaves_recomputed = entries - leaves;
        }
        let (blobs, temp_blobs_removed) =
            DirBlobStore::open(&dir.join("blobs"), Arc::clone(&lock))?;
        let pending_blobs = crate::BlobStore::pending(&blobs)?.len();
        let (state, state_check) = RedbStateStore::open(
            &dir.join("state.redb"),
            options.verify_state,
            Arc::clone(&lock),
        )?;
        // Makes the entries of blobs/ and state.redb durable if this open
        // created them.
        sync_dir(dir)?;
        let state_undone = state.reconcile(entries)?;
        let state_log_index = state.log_index()?;
        if state_log_index.is_some_and(|i| i >= entries) {
            return Err(Error::StateCorrupt {
                table: "m.meta".into(),
                reason: "state reflects log entries that are not durable and has no journal to undo them",
            });
        }
        let report = OpenReport {
            created,
            entries,
            segments: log.segment_count(),
            torn_tail,
            node_records_dropped: repair.records_dropped,
            node_corruption_at: repair.corrupt_at,
            leaves_recomputed,
            temp_blobs_removed,
            pending_blobs,
            state_check,
            state_undone,
            state_log_index,
        };
        let store = EmbeddedStore {
            dir: dir.to_owned(),
            alg: options.hash_alg,
            log,
            nodes,
            blobs,
            state,
            _lock: lock,
        };
        Ok((store, report))
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry log.
    pub fn log(&self) -> &SegmentLog {
        &self.log
    }

    /// A handle on the node file, for [`MerkleLog::open`].
    pub fn nodes(&self) -> FileNodeStore {
        self.nodes.clone()
    }

    /// The Merkle log over the node file, caught up with the entry log.
    pub fn merkle_log(&self) -> Result<MerkleLog<FileNodeStore>> {
        Ok(MerkleLog::open(self.alg, self.nodes())?)
    }

    /// The blob store.
    pub fn blobs(&self) -> &DirBlobStore {
        &self.blobs
    }

    /// The state store.
    pub fn state(&self) -> &RedbStateStore {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_vector_and_checks() {
        let m = encode_manifest(HashAlg::Blake3);
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        // Checked against Python's zlib.crc32.
        assert_eq!(hex, "4d4c454453544f520100000001000000b23b2e38");
        let p = Path::new("MANIFEST");
        assert_eq!(decode_manifest(p, &m).unwrap(), 1);
        for i in 0..m.len() * 8 {
            let mut bad = m;
            bad[i / 8] ^= 1 << (i % 8);
            assert!(decode_manifest(p, &bad).is_err(), "bit {i}");
        }
        assert!(decode_manifest(p, &m[..19]).is_err());
    }
}
