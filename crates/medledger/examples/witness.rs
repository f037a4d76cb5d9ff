//! Two organizations witness each other: each cosigns the other's
//! checkpoints after checking a consistency proof, and a forked history
//! (a split view) is refused and turned into evidence anyone can check.
//!
//! Stores go to `target/medledger-witness/` (recreated on every run).

use std::error::Error as StdError;
use std::path::Path;

use medledger::chain::{CosignatureSigner, MemoryWitnessStateStore, SplitViewEvidence, Witness};
use medledger::grants::*;
use medledger::{Ledger, LedgerKey, NewRecord};

const DIR: &str = "target/medledger-witness";

fn main() -> Result<(), Box<dyn StdError>> {
    let root = Path::new(DIR);
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    // Demo keys only: a real deployment takes them from a KMS or HSM.
    let key_a = LedgerKey::from_bytes([0xa1; 32]);
    let key_b = LedgerKey::from_bytes([0xb2; 32]);
    let a = Ledger::open(root.join("st-mary"), "st-mary.example/ledger", &key_a)?;
    let b = Ledger::open(root.join("riverside"), "riverside.example/ledger", &key_b)?;

    // Each organization runs a witness for the other's log.
    let mut witness_at_a =
        Witness::in_memory(CosignatureSigner::generate("st-mary.example/witness")?);
    let mut witness_at_b =
        Witness::in_memory(CosignatureSigner::generate("riverside.example/witness")?);
    witness_at_a.add_log(b.log_key()?);
    witness_at_b.add_log(a.log_key()?);
    println!("St Mary's and Riverside each run a witness for the other's log.");

    let patient = ActorKeys::generate(ActorKind::Patient)?;
    for ledger in [&a, &b] {
        ledger.register(patient.actor(), "patients")?;
    }
    for round in 1..=2 {
        for (name, ledger) in [("a", &a), ("b", &b)] {
            ledger.write(&record(
                &format!("Observation/{name}-{round}"),
                &patient,
                b"{}",
            ))?;
        }
        let ca = a.checkpoint(&[&witness_at_b])?;
        let cb = b.checkpoint(&[&witness_at_a])?;
        println!(
            "round {round}: St Mary's checkpoint (size {}) cosigned by Riverside; Riverside's (size {}) cosigned by St Mary's.",
            ca.checkpoint.size, cb.checkpoint.size
        );
    }

    // St Mary's operator forks its log: a copy of the store, with the same
    // sealed keys, gets a different history.
    let log_key = a.log_key()?;
    drop(a);
    copy_dir(&root.join("st-mary"), &root.join("st-mary-fork"))?;
    let a = Ledger::open(root.join("st-mary"), "st-mary.example/ledger", &key_a)?;
    let fork = Ledger::open(root.join("st-mary-fork"), "st-mary.example/ledger", &key_a)?;
    a.write(&record("Observation/real", &patient, b"{\"value\":1}"))?;
    fork.write(&record("Observation/rewritten", &patient, b"{\"value\":2}"))?;
    let honest = a.checkpoint(&[&witness_at_b])?;
    println!(
        "St Mary's shows the world a checkpoint of size {}, cosigned.",
        honest.checkpoint.size
    );
    // The operator shows the fork to someone without a witness (a
    // checkpoint of the same size: its write and heads entry mirror the
    // honest ones); the two signed checkpoints together are proof of
    // misbehaviour.
    let forked = fork.checkpoint::<MemoryWitnessStateStore>(&[])?;
    match fork.checkpoint(&[&witness_at_b]) {
        Err(e) => println!("The forked checkpoint is refused by Riverside's witness: {e}"),
        Ok(_) => return Err("a witness cosigned a fork".into()),
    }
    let evidence = SplitViewEvidence::from_failed_proof(&log_key, &honest.note, &forked.note, &[])?;
    evidence.verify(&log_key)?;
    let text = evidence.to_text();
    std::fs::write(root.join("split-view.txt"), &text)?;
    println!(
        "Split view caught: two checkpoints of size {} with different roots, both signed by St Mary's key.\n\
         Evidence ({} bytes) written to {DIR}/split-view.txt; anyone with the log key can check it.",
        honest.checkpoint.size,
        text.len()
    );
    Ok(())
}

fn record<'a>(id: &'a str, patient: &ActorKeys, body: &'a [u8]) -> NewRecord<'a> {
    NewRecord {
        id,
        patient: patient.id(),
        author: patient.id(),
        content_type: "application/fhir+json",
        category: "Observation",
        labels: SensitivitySet::empty(),
        body,
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}
