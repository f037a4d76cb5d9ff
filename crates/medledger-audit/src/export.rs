//! The verifiable export: a JSON bundle of events, one batch inclusion
//! proof for all of them, the checkpoints (signed notes with
//! cosignatures), the consistency proofs between successive checkpoints
//! and, for a patient export, the proof of the patient's committed head.
//!
//! # Schema (`medledger-audit-export/v2`)
//!
//! ```json
//! {
//!   "format": "medledger-audit-export/v2",
//!   "origin": "<log origin line>",
//!   "hash": "blake3 | sha3-256 | sha256",
//!   "patient": "<64 hex pseudonym>" | null,
//!   "from_size": <tree size where the patient range starts: 0 or checkpoints[0]'s size>,
//!   "checkpoints": ["<signed note text>", ...],              // ascending
//!   "consistency": [{"old_size": n, "new_size": m,
//!                    "path": "<base64 of the proof hashes, concatenated>"}, ...],
//!   "events": [{"index": i, "event": "<base64 encoded event>"}, ...],  // ascending index
//!   "heads": null | {"entry": "<base64 heads entry (MLAH)>",
//!                    "leaves": [{"position": k, "leaf": "<base64 40-byte leaf>"}, ...],
//!                    "proof": "<base64 batch proof of the leaves in the heads tree>"},
//!   "proof": "<base64 batch inclusion proof, hashes concatenated>"
//! }
//! ```
//!
//! `proof` is one batch inclusion proof ([`crate::batch_proof`]) against
//! the last checkpoint, of the events' indexes plus, when `heads` is
//! present, the heads entry at index `last size − 1`. `heads` is present in
//! a patient export whose last checkpoint was issued by
//! [`AuditLog::checkpoint_with_heads`]; it holds the patient's leaf in the
//! heads tree, or the one or two leaves around where it would be (no
//! events), see [`crate::heads`].
//!
//! The text is canonical: the field order above, no whitespace, shortest
//! decimal numbers, serde_json's string escaping, canonical padded base64.
//! The reader (module `export_json`) accepts exactly that, so no byte of
//! a bundle can change unnoticed. Any JSON tool reads it.

use medledger_chain::{Hash, NodeStore};

use crate::audit_log::{AuditLog, IssuedCheckpoint};
use crate::base64_codec::{decode_base64, encode_base64};
use crate::batch_proof;
use crate::error::{Error, Result};
use crate::export_json::{write_text, write_u64, Reader};
use crate::pseudonym::PatientKey;

/// The format line of version 2.
pub const FORMAT: &str = "medledger-audit-export/v2";
/// Largest export accepted, in bytes.
pub const MAX_EXPORT_LEN: usize = 256 * 1024 * 1024;
/// Most checkpoints in one export.
pub const MAX_CHECKPOINTS: usize = 4096;
/// Most hashes in one consistency proof (a tree of at most 2^63 leaves
/// needs fewer).
pub const MAX_PROOF_HASHES: usize = 64;

/// A consistency proof between two checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportConsistency {
    /// The earlier checkpoint's size.
    pub old_size: u64,
    /// The later checkpoint's size.
    pub new_size: u64,
    /// The proof hashes, concatenated, base64.
    pub path: String,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportEvent {
    /// Its log index.
    pub index: u64,
    /// Its canonical encoding, base64.
    pub event: String,
}

/// A leaf of the heads tree with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportHeadLeaf {
    /// Its position in the heads tree.
    pub position: u64,
    /// The 40-byte leaf, base64.
    pub leaf: String,
}

/// The proof of the patient's committed head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportHeads {
    /// The heads entry (the log entry just before the last checkpoint), base64.
    pub entry: String,
    /// The patient's leaf, or the leaves around where it would be.
    pub leaves: Vec<ExportHeadLeaf>,
    /// Batch proof of the leaves against the entry's root, base64.
    pub proof: String,
}

/// An export bundle (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// Always [`FORMAT`].
    pub format: String,
    /// The log's origin.
    pub origin: String,
    /// The log's hash algorithm name.
    pub hash: String,
    /// The patient whose complete history between the checkpoints this is,
    /// or `None` for any other query's events (no completeness claim).
    pub patient: Option<String>,
    /// Where the patient range starts.
    pub from_size: u64,
    /// Signed checkpoint notes, ascending.
    pub checkpoints: Vec<String>,
    /// Consistency proofs between successive checkpoints.
    pub consistency: Vec<ExportConsistency>,
    /// The events, ascending by index.
    pub events: Vec<ExportEvent>,
    /// The patient's committed head, if the last checkpoint has heads.
    pub heads: Option<ExportHeads>,
    /// The batch inclusion proof of the events (and the heads entry).
    pub proof: String,
}

pub(crate) fn encode_hashes(path: &[Hash]) -> String {
    let mut raw = Vec::with_capacity(path.len() * 32);
    for h in path {
        raw.extend_from_slice(&h.0);
    }
    encode_base64(&raw)
}

/// Decodes concatenated base64 hashes into `out` (cleared first).
pub(crate) fn decode_hashes(b64: &[u8], out: &mut Vec<Hash>, what: &'static str) -> Result<()> {
    out.clear();
    let mut raw = Vec::new();
    decode_base64(b64, &mut raw).map_err(|_| Error::BadField { what })?;
    if raw.len() % 32 != 0 {
        return Err(Error::BadField { what });
    }
    out.reserve_exact(raw.len() / 32);
    out.extend(raw.chunks_exact(32).filter_map(Hash::from_slice));
    Ok(())
}

/// An export parsed without copying its base64 and hex strings.
pub(crate) struct ExportView<'a> {
    pub format: String,
    pub origin: String,
    pub hash: String,
    pub patient: Option<&'a [u8]>,
    pub from_size: u64,
    pub checkpoints: Vec<String>,
    pub consistency: Vec<(u64, u64, &'a [u8])>,
    pub events: Vec<(u64, &'a [u8])>,
    pub heads: Option<HeadsView<'a>>,
    pub proof: &'a [u8],
}

/// The `heads` object of an [`ExportView`].
pub(crate) struct HeadsView<'a> {
    pub entry: &'a [u8],
    pub leaves: Vec<(u64, &'a [u8])>,
    pub proof: &'a [u8],
}

impl<'a> ExportView<'a> {
    /// Parses the canonical text (size cap, exact grammar, count caps).
    pub(crate) fn parse(json: &'a [u8]) -> Result<Self> {
        if json.len() > MAX_EXPORT_LEN {
            return Err(Error::ExportTooLarge {
                len: json.len(),
                max: MAX_EXPORT_LEN,
            });
        }
        let mut r = Reader::new(json);
        r.lit(b"{\"format\":")?;
        let format = r.text()?;
        if format != FORMAT {
            return Err(Error::ExportMalformed {
                reason: format!(
                    "unknown format {:?}",
                    format.chars().take(64).collect::<String>()
                ),
            });
        }
        r.lit(b",\"origin\":")?;
        let origin = r.text()?;
        r.lit(b",\"hash\":")?;
        let hash = r.text()?;
        r.lit(b",\"patient\":")?;
        let patient = if r.null() { None } else { Some(r.raw()?) };
        r.lit(b",\"from_size\":")?;
        let from_size = r.u64()?;
        r.lit(b",\"checkpoints\":[")?;
        let mut checkpoints = Vec::new();
        if !r.eat(b']') {
            loop {
                if checkpoints.len() == MAX_CHECKPOINTS {
                    return Err(r.fail("at most 4096 checkpoints"));
                }
                checkpoints.push(r.text()?);
                if r.eat(b']') {
                    break;
                }
                r.lit(b",")?;
            }
        }
        r.lit(b",\"consistency\":[")?;
        let mut consistency = Vec::new();
        if !r.eat(b']') {
            loop {
                r.lit(b"{\"old_size\":")?;
                let old = r.u64()?;
                r.lit(b",\"new_size\":")?;
                let new = r.u64()?;
                r.lit(b",\"path\":")?;
                consistency.push((old, new, r.raw()?));
                r.lit(b"}")?;
                if r.eat(b']') {
                    break;
                }
                r.lit(b",")?;
            }
        }
        r.lit(b",\"events\":[")?;
        let mut events = Vec::new();
        if !r.eat(b']') {
            loop {
                r.lit(b"{\"index\":")?;
                let index = r.u64()?;
                r.lit(b",\"event\":")?;
                events.push((index, r.raw()?));
                r.lit(b"}")?;
                if r.eat(b']') {
                    break;
                }
                r.lit(b",")?;
            }
        }
        r.lit(b",\"heads\":")?;
        let heads = if r.null() {
            None
        } else {
            r.lit(b"{\"entry\":")?;
            let entry = r.raw()?;
            r.lit(b",\"leaves\":[")?;
            let mut leaves = Vec::new();
            if !r.eat(b']') {
                loop {
                    if leaves.len() == 2 {
                        return Err(r.fail("at most 2 heads leaves"));
                    }
                    r.lit(b"{\"position\":")?;
                    let position = r.u64()?;
                    r.lit(b",\"leaf\":")?;
                    leaves.push((position, r.raw()?));
                    r.lit(b"}")?;
                    if r.eat(b']') {
                        break;
                    }
                    r.lit(b",")?;
                }
            }
            r.lit(b",\"proof\":")?;
            let proof = r.raw()?;
            r.lit(b"}")?;
            Some(HeadsView {
                entry,
                leaves,
                proof,
            })
        };
        r.lit(b",\"proof\":")?;
        let proof = r.raw()?;
        r.lit(b"}")?;
        r.end()?;
        Ok(ExportView {
            format,
            origin,
            hash,
            patient,
            from_size,
            checkpoints,
            consistency,
            events,
            heads,
            proof,
        })
    }
}

/// A raw string as owned text; only characters the writer emits raw
/// (printable ASCII but `"` and `\`), so parsing round-trips.
fn plain(raw: &[u8]) -> Result<String> {
    if raw
        .iter()
        .any(|&b| !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\')
    {
        return Err(Error::ExportMalformed {
            reason: "a base64 or hex value holds a character outside its alphabet".into(),
        });
    }
    String::from_utf8(raw.to_vec()).map_err(|_| Error::ExportMalformed {
        reason: "not UTF-8".into(),
    })
}

impl Export {
    /// The canonical JSON text.
    pub fn to_json(&self) -> Result<String> {
        let mut o = String::with_capacity(
            1024 + self
                .events
                .iter()
                .map(|e| e.event.len() + 32)
                .sum::<usize>()
                + self.proof.len(),
        );
        o.push_str("{\"format\":");
        write_text(&mut o, &self.format);
        o.push_str(",\"origin\":");
        write_text(&mut o, &self.origin);
        o.push_str(",\"hash\":");
        write_text(&mut o, &self.hash);
        o.push_str(",\"patient\":");
        match &self.patient {
            None => o.push_str("null"),
            Some(p) => write_text(&mut o, p),
        }
        o.push_str(",\"from_size\":");
        write_u64(&mut o, self.from_size);
        o.push_str(",\"checkpoints\":[");
        for (k, c) in self.checkpoints.iter().enumerate() {
            if k > 0 {
                o.push(',');
            }
            write_text(&mut o, c);
        }
        o.push_str("],\"consistency\":[");
        for (k, c) in self.consistency.iter().enumerate() {
            if k > 0 {
                o.push(',');
            }
            o.push_str("{\"old_size\":");
            write_u64(&mut o, c.old_size);
            o.push_str(",\"new_size\":");
            write_u64(&mut o, c.new_size);
            o.push_str(",\"path\":");
            write_text(&mut o, &c.path);
            o.push('}');
        }
        o.push_str("],\"events\":[");
        for (k, e) in self.events.iter().enumerate() {
            if k > 0 {
                o.push(',');
            }
            o.push_str("{\"index\":");
            write_u64(&mut o, e.index);
            o.push_str(",\"event\":");
            write_text(&mut o, &e.event);
            o.push('}');
        }
        o.push_str("],\"heads\":");
        match &self.heads {
            None => o.push_str("null"),
            Some(h) => {
                o.push_str("{\"entry\":");
                write_text(&mut o, &h.entry);
                o.push_str(",\"leaves\":[");
                for (k, l) in h.leaves.iter().enumerate() {
                    if k > 0 {
                        o.push(',');
                    }
                    o.push_str("{\"position\":");
                    write_u64(&mut o, l.position);
                    o.push_str(",\"leaf\":");
                    write_text(&mut o, &l.leaf);
                    o.push('}');
                }
                o.push_str("],\"proof\":");
                write_text(&mut o, &h.proof);
                o.push('}');
            }
        }
        o.push_str(",\"proof\":");
        write_text(&mut o, &self.proof);
        o.push('}');
        Ok(o)
    }

    /// Parses an export strictly: size cap, the exact canonical grammar
    /// (unknown or reordered fields, whitespace and other spellings
    /// refused), format line and count caps. Nothing is verified
    /// cryptographically here (see [`crate::verify_export`]).
    pub fn parse(json: &[u8]) -> Result<Self> {
        let v = ExportView::parse(json)?;
        let heads = match v.heads {
            None => None,
            Some(h) => Some(ExportHeads {
                entry: plain(h.entry)?,
                leaves: h
                    .leaves
                    .iter()
                    .map(|(position, leaf)| {
                        Ok(ExportHeadLeaf {
                            position: *position,
                            leaf: plain(leaf)?,
                        })
                    })
                    .collect::<Result<_>>()?,
                proof: plain(h.proof)?,
            }),
        };
        Ok(Export {
            format: v.format,
            origin: v.origin,
            hash: v.hash,
            patient: v.patient.map(plain).transpose()?,
            from_size: v.from_size,
            checkpoints: v.checkpoints,
            consistency: v
                .consistency
                .iter()
                .map(|(old_size, new_size, path)| {
                    Ok(ExportConsistency {
                        old_size: *old_size,
                        new_size: *new_size,
                        path: plain(path)?,
                    })
                })
                .collect::<Result<_>>()?,
            events: v
                .events
                .iter()
                .map(|(index, event)| {
                    Ok(ExportEvent {
                        index: *index,
                        event: plain(event)?,
                    })
                })
                .collect::<Result<_>>()?,
            heads,
            proof: plain(v.proof)?,
        })
    }
}

impl<S: NodeStore> AuditLog<S> {
    /// Exports `patient`'s complete history in the range between issued
    /// checkpoints `from` and `to` (positions in [`AuditLog::checkpoints`]):
    /// every event of the patient with `checkpoints[from].size <= index <
    /// checkpoints[to].size`. With `from = None` the range starts at 0 and
    /// only checkpoint `to` is included. When checkpoint `to` was issued by
    /// [`AuditLog::checkpoint_with_heads`], the export proves the patient's
    /// committed head, so a withheld tail is detected.
    pub fn export_patient(
        &self,
        patient: &PatientKey,
        from: Option<usize>,
        to: usize,
    ) -> Result<Export> {
        let (cps, from_size, to_size) = self.export_checkpoints(from, to)?;
        let indexes: Vec<u64> = self
            .patient_indexes(patient)
            .into_iter()
            .filter(|i| (from_size..to_size).contains(i))
            .collect();
        self.build_export(Some(patient), from_size, cps, &indexes)
    }

    /// Exports the events at `indexes` (ascending, each below checkpoint
    /// `to`'s size) under checkpoint `to` alone, with no completeness
    /// claim (e.g. an actor's activity or a time range).
    pub fn export_events(&self, indexes: &[u64], to: usize) -> Result<Export> {
        let (cps, _, _) = self.export_checkpoints(None, to)?;
        self.build_export(None, 0, cps, indexes)
    }

    fn export_checkpoints(
        &self,
        from: Option<usize>,
        to: usize,
    ) -> Result<(Vec<IssuedCheckpoint>, u64, u64)> {
        let all = self.checkpoints();
        let start = from.unwrap_or(to);
        let cps = all
            .get(start..=to)
            .ok_or(Error::NoCheckpoint {
                what: "at the requested positions",
            })?
            .to_vec();
        let from_size = match (from, cps.first()) {
            (Some(_), Some(c)) => c.checkpoint.size,
            _ => 0,
        };
        let to_size = cps.last().map_or(0, |c| c.checkpoint.size);
        Ok((cps, from_size, to_size))
    }

    fn build_export(
        &self,
        patient: Option<&PatientKey>,
        from_size: u64,
        cps: Vec<IssuedCheckpoint>,
        indexes: &[u64],
    ) -> Result<Export> {
        let to_size = cps.last().map_or(0, |c| c.checkpoint.size);
        let heads = match (patient, to_size.checked_sub(1)) {
            (Some(p), Some(at)) => match self.heads_at(at)? {
                Some((entry, tree)) => {
                    let hp = tree.prove(p)?;
                    Some((at, entry, hp))
                }
                None => None,
            },
            _ => None,
        };
        let mut proven: Vec<u64> = indexes.to_vec();
        if let Some((at, _, _)) = &heads {
            proven.push(*at);
        }
        let (consistency, proof) = self.with_tree(|tree| {
            let mut consistency = Vec::new();
            for pair in cps.windows(2) {
                if let [a, b] = pair {
                    let (old, new) = (a.checkpoint.size, b.checkpoint.size);
                    let path = if old == 0 || old == new {
                        Vec::new()
                    } else {
                        tree.consistency_proof(old, new)?.path
                    };
                    consistency.push(ExportConsistency {
                        old_size: old,
                        new_size: new,
                        path: encode_hashes(&path),
                    });
                }
            }
            let proof = if proven.is_empty() {
                Vec::new()
            } else {
                batch_proof::prove(tree, &proven, to_size)?
            };
            Ok((consistency, proof))
        })?;
        let mut events = Vec::with_capacity(indexes.len());
        for &i in indexes {
            events.push(ExportEvent {
                index: i,
                event: encode_base64(&self.entry(i)?),
            });
        }
        let heads = match heads {
            None => None,
            Some((_, entry, hp)) => Some(ExportHeads {
                entry: encode_base64(&entry.encode()?),
                leaves: hp
                    .leaves
                    .iter()
                    .map(|(k, l)| ExportHeadLeaf {
                        position: *k,
                        leaf: encode_base64(&l.encode()),
                    })
                    .collect(),
                proof: encode_hashes(&hp.proof),
            }),
        };
        Ok(Export {
            format: FORMAT.to_owned(),
            origin: self.origin().to_owned(),
            hash: self.alg().name().to_owned(),
            patient: patient.map(PatientKey::to_hex),
            from_size,
            checkpoints: cps.into_iter().map(|c| c.note).collect(),
            consistency,
            events,
            heads,
            proof: encode_hashes(&proof),
        })
    }
}
