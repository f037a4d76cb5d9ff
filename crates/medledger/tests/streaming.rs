//! Streaming record bodies through the public API: a 64 MiB body that
//! never exists in memory whole, written from a generating reader and read
//! back into a hashing writer; denials, failing readers and the byte API
//! agreeing with the stream API.

mod common;

use std::io::{Read, Write};

use common::*;
use medledger::grants::*;
use medledger::{Error, Ledger, LedgerKey, NewRecord, StreamedRecord};

const BODY_LEN: u64 = 64 << 20;

/// Generates `left` pseudo-random bytes (xorshift) and hashes what it hands
/// out, so the body never exists whole.
struct Generator {
    state: u64,
    left: u64,
    hash: blake3::Hasher,
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hashes and counts what is written to it.
#[derive(Default)]
struct Hashing {
    hash: blake3::Hasher,
    len: u64,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hash.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Peak resident set size of this process, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `patient`'s grant to `doctor` of reading all their records for
/// treatment, valid from the epoch on (whatever the clock says).
fn grant(patient: &ActorKeys, doctor: &ActorKeys) -> SignedGrant {
    let body = Grant {
        scope: Scope::All,
        validity: Validity::new(0, u64::MAX / 2).unwrap(),
        issued_at: 0,
        ..grant_body(patient, patient, doctor)
    };
    SignedGrant::sign(body, patient).unwrap()
}

fn meta<'a>(id: &'a str, patient: &ActorKeys) -> StreamedRecord<'a> {
    StreamedRecord {
        id,
        patient: patient.id(),
        author: patient.id(),
        content_type: "application/dicom",
        category: "ImagingStudy",
        labels: SensitivitySet::empty(),
    }
}

/// Set in the child process that runs the memory test alone.
const ALONE: &str = "MEDLEDGER_STREAMING_TEST_ALONE";

/// The peak resident set size is process-wide, so the test runs itself in
/// a child process where no other test of this binary allocates meanwhile.
#[test]
fn a_64_mib_body_streams_in_and_out_in_bounded_memory() {
    if std::env::var_os(ALONE).is_none() {
        let name = "a_64_mib_body_streams_in_and_out_in_bounded_memory";
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--test-threads=1", "--nocapture"])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child run failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(
        dir.path(),
        "stream.example/ledger",
        &LedgerKey::from_bytes([3; 32]),
    )
    .unwrap();
    let patient = actor(&ledger, ActorKind::Patient, "patients");
    // Granted before the write, so the doctor's first read adds their
    // wrap: the header is rewritten and the 64 MiB body copied through.
    let doctor = actor(&ledger, ActorKind::Clinician, "st-mary");
    ledger.grant(&grant(&patient, &doctor)).unwrap();
    let before = peak_rss();
    let mut body = Generator {
        state: 0x9e37_79b9_7f4a_7c15,
        left: BODY_LEN,
        hash: blake3::Hasher::new(),
    };
    let written = ledger
        .write_from(&meta("ImagingStudy/1", &patient), &mut body)
        .unwrap();
    assert_eq!((written.version, body.left), (1, 0));
    let mut out = Hashing::default();
    let read = ledger
        .read_to(&doctor, "ImagingStudy/1", None, Purpose::Treat, &mut out)
        .unwrap();
    assert_eq!((read.bytes, out.len), (BODY_LEN, BODY_LEN));
    assert_eq!(read.content_type, "application/dicom");
    assert_eq!(out.hash.finalize(), body.hash.finalize());
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        // Holding the body once would add 64 MiB; the stream needs a few
        // chunk buffers.
        let grew = after.saturating_sub(before);
        assert!(grew < 24 << 20, "peak RSS grew by {grew} bytes");
    }
    // The logged commitment matches the stored ciphertext.
    assert_eq!(ledger.verify().unwrap().versions, 1);
}

fn small_ledger() -> (Ledger<medledger::chain::MemoryNodeStore>, ActorKeys) {
    let ledger = memory_ledger("stream.example/ledger", 4);
    let patient = actor(&ledger, ActorKind::Patient, "patients");
    (ledger, patient)
}

#[test]
fn stream_and_byte_apis_read_each_others_records() {
    let (ledger, patient) = small_ledger();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ledger
        .write_from(&meta("ImagingStudy/1", &patient), &mut &body[..])
        .unwrap();
    let r = ledger
        .read(&patient, "ImagingStudy/1", Purpose::PatientRequest)
        .unwrap();
    assert_eq!(&r.body[..], &body[..]);
    ledger
        .write(&NewRecord {
            content_type: "application/dicom",
            category: "ImagingStudy",
            ..record("ImagingStudy/1", &patient, &patient, b"version two")
        })
        .unwrap();
    let mut out = Vec::new();
    let read = ledger
        .read_to(
            &patient,
            "ImagingStudy/1",
            None,
            Purpose::PatientRequest,
            &mut out,
        )
        .unwrap();
    assert_eq!((read.version, &out[..]), (2, &b"version two"[..]));
    out.clear();
    ledger
        .read_to(
            &patient,
            "ImagingStudy/1",
            Some(1),
            Purpose::PatientRequest,
            &mut out,
        )
        .unwrap();
    assert_eq!(out, body);
    // An empty body is a record too.
    ledger
        .write_from(&meta("ImagingStudy/2", &patient), &mut std::io::empty())
        .unwrap();
    out.clear();
    let read = ledger
        .read_to(
            &patient,
            "ImagingStudy/2",
            None,
            Purpose::PatientRequest,
            &mut out,
        )
        .unwrap();
    assert_eq!((read.bytes, out.len()), (0, 0));
    assert_eq!(ledger.verify().unwrap().versions, 3);
}

#[test]
fn a_denied_stream_read_is_logged_and_writes_nothing() {
    let (ledger, patient) = small_ledger();
    let doctor = actor(&ledger, ActorKind::Clinician, "st-mary");
    ledger
        .write_from(&meta("ImagingStudy/1", &patient), &mut &b"scan"[..])
        .unwrap();
    let size = ledger.size();
    let mut out = Vec::new();
    let err = ledger
        .read_to(&doctor, "ImagingStudy/1", None, Purpose::Treat, &mut out)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::AccessDenied {
            reason: DenyReason::NoGrant,
            ..
        }
    ));
    assert!(out.is_empty());
    assert_eq!(ledger.size(), size + 1);
    let events = ledger.patient_events(&patient.id()).unwrap();
    let last = &events.last().unwrap().1;
    assert_eq!(last.action, medledger::audit::Action::Read);
    assert!(matches!(
        last.outcome,
        medledger::audit::Outcome::Denied { code: 1, .. }
    ));
}

#[test]
fn a_streamed_write_is_authorized_like_a_byte_write() {
    let (ledger, patient) = small_ledger();
    let doctor = actor(&ledger, ActorKind::Clinician, "st-mary");
    let mut rec = meta("ImagingStudy/1", &patient);
    rec.author = doctor.id();
    let err = ledger.write_from(&rec, &mut &b"scan"[..]).unwrap_err();
    assert!(matches!(
        err,
        Error::AccessDenied {
            reason: DenyReason::NoGrant,
            ..
        }
    ));
    assert!(ledger.records_of(&patient.id()).unwrap().is_empty());
    let mut events = ledger.patient_events(&patient.id()).unwrap();
    events.retain(|(_, e)| e.record.is_some());
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1.action, medledger::audit::Action::Create);
    assert!(matches!(
        events[0].1.outcome,
        medledger::audit::Outcome::Denied { code: 1, .. }
    ));
    // With the patient's grant of write, the same write goes through.
    let mut g = grant(&patient, &doctor);
    let body = g.body().clone();
    g = SignedGrant::sign(
        Grant {
            actions: body.actions.with(Action::Write),
            nonce: Grant::fresh_nonce(),
            ..body
        },
        &patient,
    )
    .unwrap();
    ledger.grant(&g).unwrap();
    assert_eq!(
        ledger.write_from(&rec, &mut &b"scan"[..]).unwrap().version,
        1
    );
}

/// Hands out some bytes, then fails.
struct Failing(u32);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("disk went away"));
        }
        self.0 -= 1;
        buf.fill(7);
        Ok(buf.len())
    }
}

#[test]
fn a_failing_body_stores_and_logs_nothing() {
    let (ledger, patient) = small_ledger();
    let size = ledger.size();
    let err = ledger
        .write_from(&meta("ImagingStudy/1", &patient), &mut Failing(3))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Envelope {
                op: medledger::Op::Write,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(ledger.size(), size);
    assert!(ledger.records_of(&patient.id()).unwrap().is_empty());
    assert_eq!(ledger.verify().unwrap().versions, 0);
}

#[test]
fn a_stream_read_whose_key_does_not_open_is_logged_as_failed() {
    let (ledger, patient) = small_ledger();
    let other = actor(&ledger, ActorKind::Clinician, "st-mary");
    ledger
        .write_from(&meta("ImagingStudy/1", &patient), &mut &b"scan"[..])
        .unwrap();
    let mut out = Vec::new();
    let err = ledger
        .read_to(
            &Impostor {
                claimed: patient.id(),
                keys: &other,
            },
            "ImagingStudy/1",
            None,
            Purpose::PatientRequest,
            &mut out,
        )
        .unwrap_err();
    let Error::ReadFailed { event, .. } = err else {
        panic!("not ReadFailed: {err}");
    };
    assert!(out.is_empty());
    let logged = ledger.audit_log().event(event).unwrap();
    assert!(matches!(
        logged.outcome,
        medledger::audit::Outcome::Denied {
            code: medledger::UNWRAP_FAILED_CODE,
            ..
        }
    ));
}
