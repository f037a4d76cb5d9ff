//! The transparency-dev Merkle proof vectors (SHA-256, RFC 6962 / 9162),
//! copied into `tests/data/transparency-dev-merkle/` (see ORIGIN.md there):
//! every `happy-path` case verifies and every `wantErr` case is rejected.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use medledger_chain::{verify_consistency, verify_inclusion, Hash, HashAlg};
use serde::Deserialize;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transparency-dev-merkle/testdata")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    want_err: bool,
}

/// Decodes a base64 hash. Our API is typed: a value that is not exactly 32
/// bytes can never reach a verifier, so it counts as rejected.
fn hash(b64: &str) -> Option<Hash> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Hash::from_slice(&bytes)
}

fn hashes(v: &Option<Vec<String>>) -> Option<Vec<Hash>> {
    v.iter().flatten().map(|s| hash(s)).collect()
}

/// The one case the typed API cannot express: the vector calls two equal
/// 12-byte placeholder roots consistent. A 12-byte string is not a SHA-256
/// root, so we reject it at the type boundary instead.
const UNREPRESENTABLE: &[&str] = &["sizes-are-equal-one-and-proof-is-empty.json"];

#[test]
fn transparency_dev_vectors() {
    let alg = HashAlg::Sha256;
    let mut files = Vec::new();
    json_files(&data_dir(), &mut files);
    let (mut happy, mut rejected, mut unrepresentable) = (0, 0, 0);
    for path in &files {
        let text = fs::read_to_string(path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let is_inclusion = path.components().any(|c| c.as_os_str() == "inclusion");
        let (result, want_err) = if is_inclusion {
            let c: Inclusion = serde_json::from_str(&text).unwrap();
            let r = match (hash(&c.root), hash(&c.leaf_hash), hashes(&c.proof)) {
                (Some(root), Some(leaf), Some(proof)) => {
                    verify_inclusion(alg, c.leaf_idx, c.tree_size, &leaf, &proof, &root).is_ok()
                }
                _ => false,
            };
            (r, c.want_err)
        } else {
            let c: Consistency = serde_json::from_str(&text).unwrap();
            let r = match (hash(&c.root1), hash(&c.root2), hashes(&c.proof)) {
                (Some(r1), Some(r2), Some(proof)) => {
                    verify_consistency(alg, c.size1, c.size2, &r1, &r2, &proof).is_ok()
                }
                _ => false,
            };
            (r, c.want_err)
        };
        if want_err {
            assert!(!result, "{} must be rejected", path.display());
            rejected += 1;
        } else if UNREPRESENTABLE.contains(&name) {
            assert!(!result);
            unrepresentable += 1;
        } else {
            assert!(result, "{} must verify", path.display());
            happy += 1;
        }
    }
    // Every file was read and judged: 5 inclusion and 5 consistency
    // happy paths, one single-entry inclusion case, the rest rejections.
    assert_eq!(files.len(), 196);
    assert_eq!(happy, 11);
    assert_eq!(unrepresentable, 1);
    assert_eq!(rejected, 184);
}

/// Our generated proofs for the vectors' tree (leaves are the RFC 6962 test
/// leaves of transparency-dev's `testonly` package) are byte-identical to the
/// published happy paths.
#[test]
fn generated_proofs_equal_published_happy_paths() {
    let alg = HashAlg::Sha256;
    let leaves: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    let mut log = medledger_chain::MerkleLog::in_memory(alg);
    for l in leaves {
        log.append(l).unwrap();
    }
    let mut checked = 0;
    for kind in ["inclusion", "consistency"] {
        for i in 0..5 {
            let p = data_dir()
                .join(kind)
                .join(i.to_string())
                .join("happy-path.json");
            let text = fs::read_to_string(&p).unwrap();
            if kind == "inclusion" {
                let c: Inclusion = serde_json::from_str(&text).unwrap();
                if c.tree_size > 8 {
                    continue;
                }
                let proof = log.inclusion_proof(c.leaf_idx, c.tree_size).unwrap();
                assert_eq!(Some(proof.path), hashes(&c.proof), "{}", p.display());
                assert_eq!(Some(log.root_at(c.tree_size).unwrap()), hash(&c.root));
            } else {
                let c: Consistency = serde_json::from_str(&text).unwrap();
                if c.size2 > 8 {
                    continue;
                }
                let proof = log.consistency_proof(c.size1, c.size2).unwrap();
                assert_eq!(Some(proof.path), hashes(&c.proof), "{}", p.display());
                assert_eq!(Some(log.root_at(c.size1).unwrap()), hash(&c.root1));
                assert_eq!(Some(log.root_at(c.size2).unwrap()), hash(&c.root2));
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 6,
        "only {checked} happy paths fit the 8-leaf tree"
    );
}
