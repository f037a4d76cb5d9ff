//! The auditor's command: verify an export file offline under a policy
//! given on the command line, and print the disclosure report. The
//! `verify_export` example is a thin `main` around [`run`].

use medledger_chain::{HashAlg, LogKey, NoteVerifier, Policy};

use crate::error::{Error, Result};
use crate::pseudonym::PatientKey;
use crate::verify::{verify_export, Report};

/// Usage text of the auditor command.
pub const USAGE: &str = "usage: verify_export EXPORT.json --log-key VKEY [--origin ORIGIN] \
[--hash blake3|sha3-256|sha256] [--witness VKEY]... [--quorum K] [--strict] \
[--patient HEX] [--allow-uncommitted-tail]";

/// Parsed command-line arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditorArgs {
    /// The export file.
    pub export: String,
    /// The log's vkey.
    pub log_key: String,
    /// The log's origin (default: the log key's name).
    pub origin: Option<String>,
    /// The log's hash algorithm (default BLAKE3).
    pub hash: HashAlg,
    /// Witness vkeys.
    pub witnesses: Vec<String>,
    /// Cosignatures required (default: all witnesses).
    pub quorum: Option<usize>,
    /// Refuse signature lines from keys outside the policy.
    pub strict: bool,
    /// The patient the export must be about (pseudonym).
    pub patient: Option<PatientKey>,
    /// Accept a patient export whose last checkpoint does not commit to
    /// the patient's head (its tail is then unproven).
    pub allow_uncommitted_tail: bool,
}

fn usage(reason: &str) -> Error {
    Error::ExportMalformed {
        reason: format!("{reason}\n{USAGE}"),
    }
}

impl AuditorArgs {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut export = None;
        let mut log_key = None;
        let mut origin = None;
        let mut hash = HashAlg::Blake3;
        let mut witnesses = Vec::new();
        let mut quorum = None;
        let mut strict = false;
        let mut patient = None;
        let mut allow_uncommitted_tail = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| usage(&format!("{a} needs a value")))
            };
            match a.as_str() {
                "--log-key" => log_key = Some(value()?),
                "--origin" => origin = Some(value()?),
                "--hash" => {
                    hash = HashAlg::from_name(&value()?).ok_or_else(|| usage("unknown hash"))?;
                }
                "--witness" => witnesses.push(value()?),
                "--quorum" => {
                    quorum = Some(
                        value()?
                            .parse()
                            .map_err(|_| usage("--quorum needs a number"))?,
                    );
                }
                "--strict" => strict = true,
                "--allow-uncommitted-tail" => allow_uncommitted_tail = true,
                "--patient" => {
                    patient = Some(
                        PatientKey::from_hex(&value()?)
                            .ok_or_else(|| usage("--patient needs 64 lowercase hex digits"))?,
                    );
                }
                s if s.starts_with("--") => return Err(usage(&format!("unknown option {s}"))),
                _ if export.is_none() => export = Some(a.clone()),
                _ => return Err(usage("more than one export file")),
            }
        }
        Ok(AuditorArgs {
            export: export.ok_or_else(|| usage("no export file"))?,
            log_key: log_key.ok_or_else(|| usage("no --log-key"))?,
            origin,
            hash,
            witnesses,
            quorum,
            strict,
            patient,
            allow_uncommitted_tail,
        })
    }

    /// The verification policy these arguments describe.
    pub fn policy(&self) -> Result<Policy> {
        let log_verifier = NoteVerifier::from_vkey(&self.log_key)?;
        let origin = self
            .origin
            .clone()
            .unwrap_or_else(|| log_verifier.name().to_owned());
        let log = LogKey::new(&origin, log_verifier, self.hash)?;
        let witnesses = self
            .witnesses
            .iter()
            .map(|w| NoteVerifier::from_vkey(w))
            .collect::<medledger_chain::Result<Vec<_>>>()?;
        let quorum = self.quorum.unwrap_or(witnesses.len());
        let policy = Policy::new(log, witnesses, quorum)?;
        Ok(if self.strict { policy.strict() } else { policy })
    }
}

/// Reads and verifies the export named in `args`; returns the report. A
/// patient export must commit to the patient's head unless
/// `allow_uncommitted_tail` is set, and must be `patient`'s if one is named.
pub fn run(args: &AuditorArgs) -> Result<Report> {
    let policy = args.policy()?;
    let meta = std::fs::metadata(&args.export).map_err(|source| Error::Io {
        path: args.export.clone(),
        source,
    })?;
    let max = crate::export::MAX_EXPORT_LEN;
    if meta.len() > max as u64 {
        return Err(Error::ExportTooLarge {
            len: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            max,
        });
    }
    let bytes = std::fs::read(&args.export).map_err(|source| Error::Io {
        path: args.export.clone(),
        source,
    })?;
    let report = verify_export(&bytes, &policy)?;
    if let Some(p) = &args.patient {
        if report.patient.as_ref() != Some(p) {
            return Err(Error::NotThePatient);
        }
    }
    if report.patient.is_some() && report.head.is_none() && !args.allow_uncommitted_tail {
        return Err(Error::TailNotCommitted);
    }
    Ok(report)
}

/// Writes a sample export of a small scripted history to `dir/export.json`
/// (fixed demo keys, never for production) and returns the command line
/// that verifies it.
pub fn write_demo(dir: &std::path::Path) -> Result<String> {
    use crate::event::{Action, Actor, AuditEvent, Id32, Outcome, PurposeOfUse, RecordRef, Role};
    use medledger_chain::{CosignatureSigner, Ed25519Signer, MerkleLog, Witness};
    use std::sync::Arc;

    let origin = "demo.medledger.example/audit";
    let signer = Ed25519Signer::generate(origin)?;
    let mut witness = Witness::in_memory(CosignatureSigner::generate("witness.demo.example")?);
    witness.add_log(LogKey::new(origin, signer.verifier(), HashAlg::Blake3)?);
    let log = crate::AuditLog::open(
        origin,
        Arc::new(medledger_store::MemoryLog::new()),
        MerkleLog::in_memory(HashAlg::Blake3),
    )?;
    let secret = crate::LedgerSecret::generate();
    let patient = secret.patient_key(b"demo-patient-1")?;
    let other = secret.patient_key(b"demo-patient-2")?;
    let t0 = 1_764_307_200_000;
    let ev = |action, p, actor: u8, role, purpose, k: u64| AuditEvent {
        action,
        actor: Actor {
            id: Id32([actor; 32]),
            role,
            organization: "st-mary".into(),
        },
        patient: p,
        record: Some(RecordRef {
            id: "lab-2025-117".into(),
            version: 1,
        }),
        time_ms: t0 + k * 60_000,
        source: "node-a".into(),
        purpose,
        outcome: Outcome::Success,
        grant_chain: vec![Id32([0xa0; 32])],
        emergency: (action == Action::EmergencyAccess).then(|| "unconscious on arrival".into()),
        prev_for_patient: None,
        refers_to: None,
        commitment: None,
    };
    log.append(ev(
        Action::Create,
        patient,
        1,
        Role::Clinician,
        PurposeOfUse::Treatment,
        0,
    ))?;
    log.append(ev(
        Action::Read,
        other,
        1,
        Role::Clinician,
        PurposeOfUse::Treatment,
        1,
    ))?;
    log.checkpoint_with_heads(&signer, t0 / 1000 + 120, &[&witness])?;
    log.append(ev(
        Action::Read,
        patient,
        2,
        Role::Clinician,
        PurposeOfUse::Treatment,
        2,
    ))?;
    let mut denied = ev(
        Action::Read,
        patient,
        3,
        Role::Researcher,
        PurposeOfUse::Research,
        3,
    );
    denied.outcome = Outcome::Denied {
        code: 403,
        reason: "no grant covers research".into(),
    };
    log.append(denied)?;
    log.append(ev(
        Action::EmergencyAccess,
        patient,
        4,
        Role::Nurse,
        PurposeOfUse::EmergencyTreatment,
        4,
    ))?;
    log.checkpoint_with_heads(&signer, t0 / 1000 + 300, &[&witness])?;
    let json = log.export_patient(&patient, None, 1)?.to_json()?;
    let path = dir.join("export.json");
    std::fs::write(&path, json).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(format!(
        "{} --log-key {} --witness {}",
        path.display(),
        signer.verifier().to_vkey(),
        witness.signer().verifier()?.to_vkey()
    ))
}
