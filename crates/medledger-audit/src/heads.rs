//! The per-patient head commitment: before a checkpoint, the log appends a
//! *heads entry* holding the root of a Merkle tree over every patient's
//! last event index, and the checkpoint is signed at the size just after
//! it. A patient export proves the patient's leaf (or its absence) in that
//! tree, so a withheld tail of the patient's events is detected.
//!
//! # Heads entry (version 1), 53 bytes
//!
//! ```text
//! off  len  field
//!   0    4  magic "MLAH"
//!   4    1  version 0x01
//!   5    8  size: the entry's own log index; the heads cover events below it (< 2^63)
//!  13    8  patients: number of leaves n (<= size)
//!  21   32  root of the heads tree (RFC 9162, the log's hash; the empty root if n = 0)
//! ```
//!
//! # Heads tree
//!
//! Leaf `k` is the 40 bytes `pseudonym (32) ‖ u64 BE index of that
//! patient's last event below size`, leaves sorted by pseudonym (bytewise,
//! strictly ascending: one leaf per patient with events), hashed as RFC
//! 9162 leaves (`H(0x00 ‖ leaf)`). A patient's proof is its leaf with a
//! batch inclusion proof ([`crate::batch_proof`]); absence is proven by the
//! two adjacent leaves around the pseudonym (or the first or last leaf when
//! it sorts before or after every leaf; nothing when n = 0).
//!
//! Building the tree costs a sort of the patients plus one leaf hash and
//! about one node hash per patient (README: ~0.1 s for 100,000 patients on
//! the dev VM); it is kept in memory until the next checkpoint.

use medledger_chain::{Hash, HashAlg, MemoryNodeStore, MerkleLog};

use crate::batch_proof;
use crate::codec::DecodeError;
use crate::error::{Error, Result};
use crate::pseudonym::PatientKey;

/// The magic bytes of a heads entry.
pub const HEADS_MAGIC: [u8; 4] = *b"MLAH";
/// The heads entry version this build writes and reads.
pub const HEADS_VERSION: u8 = 1;
/// The length of an encoded heads entry.
pub const HEADS_ENTRY_LEN: usize = 53;
/// The length of a heads-tree leaf.
pub const HEAD_LEAF_LEN: usize = 40;

const MAX_INDEX: u64 = i64::MAX as u64;

/// Whether a log entry is a heads entry (by its magic).
pub fn is_heads_entry(bytes: &[u8]) -> bool {
    bytes.starts_with(&HEADS_MAGIC)
}

/// A heads entry (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadsEntry {
    /// The entry's own log index: the heads cover events below it.
    pub size: u64,
    /// The number of patients (leaves).
    pub patients: u64,
    /// The heads tree's root.
    pub root: Hash,
}

fn read_u64(bytes: &[u8], at: usize, field: &'static str) -> Result<u64, DecodeError> {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or(DecodeError::Truncated { field, offset: at })
}

impl HeadsEntry {
    /// The canonical encoding; fails on a size at or above 2^63 or more
    /// patients than events below the entry.
    pub fn encode(&self) -> Result<[u8; HEADS_ENTRY_LEN]> {
        if self.size > MAX_INDEX || self.patients > self.size {
            return Err(Error::InvalidEvent {
                field: "heads entry",
                reason: "size at or above 2^63, or more patients than entries",
            });
        }
        let mut out = [0u8; HEADS_ENTRY_LEN];
        let (magic, rest) = out.split_at_mut(4);
        magic.copy_from_slice(&HEADS_MAGIC);
        let (version, rest) = rest.split_at_mut(1);
        version.copy_from_slice(&[HEADS_VERSION]);
        let (size, rest) = rest.split_at_mut(8);
        size.copy_from_slice(&self.size.to_be_bytes());
        let (patients, root) = rest.split_at_mut(8);
        patients.copy_from_slice(&self.patients.to_be_bytes());
        root.copy_from_slice(&self.root.0);
        Ok(out)
    }

    /// Decodes exactly [`HEADS_ENTRY_LEN`] bytes of a version-1 entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > HEADS_ENTRY_LEN {
            return Err(DecodeError::TrailingBytes {
                offset: HEADS_ENTRY_LEN,
            });
        }
        match bytes.get(..4) {
            Some(m) if m == HEADS_MAGIC => {}
            Some(_) => return Err(DecodeError::BadMagic),
            None => {
                return Err(DecodeError::Truncated {
                    field: "magic",
                    offset: 0,
                })
            }
        }
        match bytes.get(4) {
            Some(&HEADS_VERSION) => {}
            Some(&v) => return Err(DecodeError::UnsupportedVersion(v)),
            None => {
                return Err(DecodeError::Truncated {
                    field: "version",
                    offset: 4,
                })
            }
        }
        let size = read_u64(bytes, 5, "heads size")?;
        let patients = read_u64(bytes, 13, "heads patients")?;
        let root = bytes
            .get(21..HEADS_ENTRY_LEN)
            .and_then(Hash::from_slice)
            .ok_or(DecodeError::Truncated {
                field: "heads root",
                offset: 21,
            })?;
        if size > MAX_INDEX {
            return Err(DecodeError::OutOfRange {
                field: "heads size",
                offset: 5,
            });
        }
        if patients > size {
            return Err(DecodeError::OutOfRange {
                field: "heads patients",
                offset: 13,
            });
        }
        Ok(HeadsEntry {
            size,
            patients,
            root,
        })
    }
}

/// One leaf of the heads tree: a patient and its last event's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLeaf {
    /// The patient's pseudonym.
    pub patient: PatientKey,
    /// The log index of its last event below the heads entry.
    pub head: u64,
}

impl HeadLeaf {
    /// The 40-byte leaf.
    pub fn encode(&self) -> [u8; HEAD_LEAF_LEN] {
        let mut out = [0u8; HEAD_LEAF_LEN];
        let (p, h) = out.split_at_mut(32);
        p.copy_from_slice(&self.patient.0);
        h.copy_from_slice(&self.head.to_be_bytes());
        out
    }

    /// Decodes exactly 40 bytes (index below 2^63).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (p, h) = bytes
            .split_first_chunk::<32>()
            .ok_or(DecodeError::Truncated {
                field: "head leaf",
                offset: 0,
            })?;
        let h = <[u8; 8]>::try_from(h).map_err(|_| DecodeError::BadLength {
            field: "head leaf",
            len: bytes.len(),
            offset: 0,
        })?;
        let head = u64::from_be_bytes(h);
        if head > MAX_INDEX {
            return Err(DecodeError::OutOfRange {
                field: "head index",
                offset: 32,
            });
        }
        Ok(HeadLeaf {
            patient: PatientKey(*p),
            head,
        })
    }
}

/// The proof of one patient's head (or of its absence) in a heads tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadsProof {
    /// The patient's leaf, or the one or two leaves around where it would
    /// be, with their positions (ascending).
    pub leaves: Vec<(u64, HeadLeaf)>,
    /// The batch inclusion proof of those leaves.
    pub proof: Vec<Hash>,
}

/// What a heads proof shows about a patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommittedHead {
    /// The patient had no event below the heads entry.
    NoEvents,
    /// The patient's last event below the heads entry is at this index.
    At(u64),
}

/// A built heads tree (module docs).
#[derive(Debug)]
pub struct HeadsTree {
    leaves: Vec<HeadLeaf>,
    tree: MerkleLog<MemoryNodeStore>,
}

impl HeadsTree {
    /// Builds the tree over `heads` (patient, last event index); sorted here.
    pub fn build(alg: HashAlg, heads: impl IntoIterator<Item = (PatientKey, u64)>) -> Result<Self> {
        let mut leaves: Vec<HeadLeaf> = heads
            .into_iter()
            .map(|(patient, head)| HeadLeaf { patient, head })
            .collect();
        leaves.sort_unstable_by_key(|a| a.patient.0);
        if leaves
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.patient == b.patient))
        {
            return Err(Error::BadHeads {
                reason: "two leaves for one patient",
            });
        }
        let mut tree = MerkleLog::in_memory(alg);
        tree.append_batch(leaves.iter().map(HeadLeaf::encode))?;
        Ok(HeadsTree { leaves, tree })
    }

    /// The tree's root.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The number of leaves (patients).
    pub fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Whether no patient has events.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The heads entry for this tree at log index `size`.
    pub fn entry(&self, size: u64) -> HeadsEntry {
        HeadsEntry {
            size,
            patients: self.len(),
            root: self.root(),
        }
    }

    /// The proof of `patient`'s head, or of its absence.
    pub fn prove(&self, patient: &PatientKey) -> Result<HeadsProof> {
        let n = self.leaves.len();
        if n == 0 {
            return Ok(HeadsProof {
                leaves: Vec::new(),
                proof: Vec::new(),
            });
        }
        let positions: Vec<usize> = match self
            .leaves
            .binary_search_by(|l| l.patient.0.cmp(&patient.0))
        {
            Ok(k) => vec![k],
            Err(0) => vec![0],
            Err(k) if k == n => vec![n - 1],
            Err(k) => vec![k - 1, k],
        };
        let mut leaves = Vec::with_capacity(positions.len());
        for &k in &positions {
            let leaf = self.leaves.get(k).copied().ok_or(Error::BadHeads {
                reason: "leaf position out of range",
            })?;
            leaves.push((k as u64, leaf));
        }
        let idx: Vec<u64> = leaves.iter().map(|(k, _)| *k).collect();
        let proof = batch_proof::prove(&self.tree, &idx, self.len())?;
        Ok(HeadsProof { leaves, proof })
    }
}

fn bad(reason: &'static str) -> Error {
    Error::BadHeads { reason }
}

/// Checks `proof` against `entry` and says what it shows about `patient`.
pub fn verify_head(
    alg: HashAlg,
    entry: &HeadsEntry,
    patient: &PatientKey,
    proof: &HeadsProof,
) -> Result<CommittedHead> {
    let n = entry.patients;
    if n == 0 {
        if !proof.leaves.is_empty() || !proof.proof.is_empty() || entry.root != alg.empty_root() {
            return Err(bad("an empty heads tree has no leaves, proof or root"));
        }
        return Ok(CommittedHead::NoEvents);
    }
    if proof.leaves.is_empty() || proof.leaves.len() > 2 {
        return Err(bad("needs the patient's leaf or the one or two around it"));
    }
    let idx: Vec<u64> = proof.leaves.iter().map(|(k, _)| *k).collect();
    let hashes: Vec<Hash> = proof
        .leaves
        .iter()
        .map(|(_, l)| alg.leaf_hash(&l.encode()))
        .collect();
    batch_proof::verify(alg, n, &idx, &hashes, &proof.proof, &entry.root)?;
    if proof.leaves.iter().any(|(_, l)| l.head >= entry.size) {
        return Err(bad("a head is not below the heads entry"));
    }
    let p = &patient.0;
    match proof.leaves.as_slice() {
        [(_, l)] if l.patient == *patient => Ok(CommittedHead::At(l.head)),
        [(0, l)] if *p < l.patient.0 => Ok(CommittedHead::NoEvents),
        [(k, l)] if *k == n - 1 && l.patient.0 < *p => Ok(CommittedHead::NoEvents),
        [(j, a), (k, b)] if j + 1 == *k && a.patient.0 < *p && *p < b.patient.0 => {
            Ok(CommittedHead::NoEvents)
        }
        _ => Err(bad("the leaves neither hold nor bracket the patient")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pk(b: u8) -> PatientKey {
        PatientKey([b; 32])
    }

    #[test]
    fn presence_and_absence_verify() {
        let alg = HashAlg::Blake3;
        let t = HeadsTree::build(alg, [(pk(30), 7), (pk(10), 3), (pk(20), 5)]).unwrap();
        let e = t.entry(9);
        let head = |b| verify_head(alg, &e, &pk(b), &t.prove(&pk(b)).unwrap());
        assert_eq!(head(10).unwrap(), CommittedHead::At(3));
        assert_eq!(head(30).unwrap(), CommittedHead::At(7));
        for absent in [1, 15, 25, 99] {
            assert_eq!(head(absent).unwrap(), CommittedHead::NoEvents, "{absent}");
        }
        // Another patient's leaf is not a proof of absence or presence.
        let p20 = t.prove(&pk(20)).unwrap();
        assert!(verify_head(alg, &e, &pk(10), &p20).is_err());
        // Non-adjacent leaves do not prove absence.
        let mut gap = t.prove(&pk(15)).unwrap();
        gap.leaves[1] = t.prove(&pk(30)).unwrap().leaves[0];
        assert!(verify_head(alg, &e, &pk(15), &gap).is_err());
        let empty = HeadsTree::build(alg, []).unwrap();
        let p = empty.prove(&pk(1)).unwrap();
        assert_eq!(
            verify_head(alg, &empty.entry(0), &pk(1), &p).unwrap(),
            CommittedHead::NoEvents
        );
    }

    /// The pinned vector of the README.
    #[test]
    fn heads_entry_vector() {
        let e = HeadsEntry {
            size: 9,
            patients: 2,
            root: Hash([0x5c; 32]),
        };
        let hex: String = e
            .encode()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "4d4c414801\
             0000000000000009\
             0000000000000002\
             5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c"
        );
        let leaf = HeadLeaf {
            patient: pk(0x33),
            head: 4,
        };
        assert_eq!(&leaf.encode()[32..], &[0, 0, 0, 0, 0, 0, 0, 4]);
        assert_eq!(HeadLeaf::decode(&leaf.encode()).unwrap(), leaf);
    }

    proptest! {
        #[test]
        fn heads_entry_round_trips(size in 0..=MAX_INDEX, p in any::<u64>(), root in any::<[u8; 32]>()) {
            let e = HeadsEntry { size, patients: p % (size + 1).max(1), root: Hash(root) };
            let bytes = e.encode().unwrap();
            prop_assert_eq!(HeadsEntry::decode(&bytes).unwrap(), e);
        }

        #[test]
        fn any_decodable_mutation_re_encodes_to_itself(
            pos in 0usize..HEADS_ENTRY_LEN, x in 1u8..=255, cut in 0usize..=HEADS_ENTRY_LEN + 1,
        ) {
            let e = HeadsEntry { size: 9, patients: 2, root: Hash([0x5c; 32]) };
            let mut m = e.encode().unwrap().to_vec();
            m[pos] ^= x;
            match HeadsEntry::decode(&m) {
                // A changed field decodes to a different entry, never the same.
                Ok(d) => {
                    prop_assert_ne!(d, e);
                    prop_assert_eq!(d.encode().unwrap().to_vec(), m);
                }
                Err(_) => prop_assert!(pos < 21),
            }
            let mut t = e.encode().unwrap().to_vec();
            t.resize(cut, 0);
            prop_assert_eq!(HeadsEntry::decode(&t).is_ok(), cut == HEADS_ENTRY_LEN);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(e) = HeadsEntry::decode(&bytes) {
                prop_assert_eq!(e.encode().unwrap().to_vec(), bytes.clone());
            }
            if let Ok(l) = HeadLeaf::decode(&bytes) {
                prop_assert_eq!(l.encode().to_vec(), bytes);
            }
        }

        #[test]
        fn every_patient_gets_one_verifiable_answer(
            keys in proptest::collection::btree_set(any::<u8>(), 0..20), probe in any::<u8>(),
        ) {
            let alg = HashAlg::Sha256;
            let t = HeadsTree::build(alg, keys.iter().map(|&k| (pk(k), u64::from(k)))).unwrap();
            let e = t.entry(300);
            let got = verify_head(alg, &e, &pk(probe), &t.prove(&pk(probe)).unwrap()).unwrap();
            let want = if keys.contains(&probe) { CommittedHead::At(u64::from(probe)) } else { CommittedHead::NoEvents };
            prop_assert_eq!(got, want);
        }
    }
}
