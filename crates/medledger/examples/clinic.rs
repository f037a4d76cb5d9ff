//! The main job: a patient, two hospitals, a clinician, records written, a
//! grant, an allowed read, a denied read with its reason, a revocation, an
//! emergency access, the patient's disclosure report, a checkpoint
//! cosigned by a witness, tampering that verification catches, and a share
//! package another organization verifies offline and imports.
//!
//! Writes its store to `target/medledger-clinic` (recreated on every run)
//! and the patient's export to `target/medledger-clinic/export.json`, which
//! `cargo run --release --example auditor` verifies.

use std::error::Error as StdError;
use std::path::Path;

use medledger::chain::{CosignatureSigner, Witness};
use medledger::grants::*;
use medledger::{Error, Ledger, LedgerKey, NewRecord};

const DIR: &str = "target/medledger-clinic";
const ORIGIN: &str = "st-mary.example/ledger";
/// Demo only: a real deployment takes its key from a KMS or HSM.
const PASSPHRASE: &str = "demo passphrase, never use in production";

fn main() -> Result<(), Box<dyn StdError>> {
    let dir = Path::new(DIR);
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let key = LedgerKey::from_passphrase(PASSPHRASE);
    let ledger = Ledger::open(dir, ORIGIN, &key)?;
    println!("1. St Mary's opened its ledger in {DIR} (secrets sealed under an Argon2id key).");

    let alice = ActorKeys::generate(ActorKind::Patient)?;
    let st_mary = ActorKeys::generate(ActorKind::Organization)?;
    let riverside = ActorKeys::generate(ActorKind::Organization)?;
    let dr_bob = ActorKeys::generate(ActorKind::Clinician)?;
    let dr_carol = ActorKeys::generate(ActorKind::Clinician)?;
    ledger.register(alice.actor(), "patients")?;
    ledger.register(st_mary.actor(), "st-mary")?;
    ledger.register(riverside.actor(), "riverside")?;
    ledger.register(dr_bob.actor(), "st-mary")?;
    ledger.register(dr_carol.actor(), "riverside")?;
    ledger.trust_organization(riverside.id())?;
    let now = now();
    let emergency_role = SignedMembership::sign(
        Membership {
            organization: riverside.id(),
            member: dr_carol.id(),
            role: Role::emergency(),
            validity: Validity::new(now - 3600, now + 365 * 86400)?,
            issued_at: now,
        },
        &riverside,
    )?;
    ledger.add_membership(&emergency_role)?;
    println!("2. Registered patient Alice, St Mary's, Riverside, Dr Bob (St Mary's) and Dr Carol (Riverside ER, emergency role).");

    let keeping = SignedGrant::sign(
        Grant {
            issuer: alice.id(),
            patient: alice.id(),
            grantee: Grantee::Actor(st_mary.id()),
            parent: None,
            scope: Scope::All,
            sensitivity: SensitivitySet::all(),
            actions: ActionSet::empty().with(Action::Write),
            purposes: PurposeSet::empty().with(Purpose::Treat),
            validity: Validity::new(now - 60, now + 365 * 86400)?,
            max_delegation_depth: 0,
            issued_at: now,
            nonce: Grant::fresh_nonce(),
        },
        &alice,
    )?;
    ledger.grant(&keeping)?;
    println!("   Alice signed a grant letting St Mary's write her records (write only, not read).");

    let obs = br#"{"resourceType":"Observation","code":{"text":"blood pressure"},"valueString":"120/80"}"#;
    let cond = br#"{"resourceType":"Condition","code":{"text":"HIV infection"}}"#;
    let w1 = ledger.write(&NewRecord {
        id: "Observation/bp-1",
        patient: alice.id(),
        author: st_mary.id(),
        content_type: "application/fhir+json",
        category: "Observation",
        labels: SensitivitySet::empty(),
        body: obs,
    })?;
    let w2 = ledger.write(&NewRecord {
        id: "Condition/c-1",
        patient: alice.id(),
        author: st_mary.id(),
        content_type: "application/fhir+json",
        category: "Condition",
        labels: SensitivitySet::empty().with(Sensitivity::Hiv),
        body: cond,
    })?;
    println!(
        "3. St Mary's wrote two records; the log holds only commitments (entry {}: {}…).",
        w1.event,
        hex(&w1.commitment[..8])
    );
    let _ = w2;

    match ledger.read(&dr_bob, "Observation/bp-1", Purpose::Treat) {
        Err(Error::AccessDenied { reason, event, .. }) => {
            println!("4. Dr Bob tried to read the observation: denied ({reason:?}), logged as entry {event}.")
        }
        other => return Err(format!("expected a denial, got {other:?}").into()),
    }

    let grant = SignedGrant::sign(
        Grant {
            issuer: alice.id(),
            patient: alice.id(),
            grantee: Grantee::Actor(dr_bob.id()),
            parent: None,
            scope: Scope::All,
            sensitivity: SensitivitySet::empty(),
            actions: ActionSet::empty().with(Action::Read),
            purposes: PurposeSet::empty().with(Purpose::Treat),
            validity: Validity::new(now - 60, now + 30 * 86400)?,
            max_delegation_depth: 0,
            issued_at: now,
            nonce: Grant::fresh_nonce(),
        },
        &alice,
    )?;
    let grant_id = ledger.grant(&grant)?;
    println!("5. Alice signed a grant: Dr Bob may read her records for treatment for 30 days, sensitive ones excluded.");

    let rec = ledger.read(&dr_bob, "Observation/bp-1", Purpose::Treat)?;
    println!(
        "6. Dr Bob read the observation (entry {}): {}",
        rec.event,
        String::from_utf8_lossy(&rec.body)
    );
    match ledger.read(&dr_bob, "Condition/c-1", Purpose::Treat) {
        Err(Error::AccessDenied { reason, .. }) => {
            println!("7. Dr Bob tried the HIV-labelled condition: denied ({reason:?}).")
        }
        other => return Err(format!("expected a denial, got {other:?}").into()),
    }
    match ledger.read(&dr_bob, "Observation/bp-1", Purpose::Research) {
        Err(Error::AccessDenied { reason, .. }) => {
            println!("   ...and the observation for research: denied ({reason:?}).")
        }
        other => return Err(format!("expected a denial, got {other:?}").into()),
    }

    ledger.revoke(&SignedRevocation::sign(
        Revocation {
            revoker: alice.id(),
            target: RevocationTarget::Grant(grant_id),
            issued_at: now,
        },
        &alice,
    )?)?;
    match ledger.read(&dr_bob, "Observation/bp-1", Purpose::Treat) {
        Err(Error::AccessDenied { reason, .. }) => {
            println!("8. Alice revoked the grant; Dr Bob is now denied ({reason:?}) and his key wraps are gone.")
        }
        other => return Err(format!("expected a denial, got {other:?}").into()),
    }

    let er = ledger.emergency_read(
        &dr_carol,
        "Condition/c-1",
        "unconscious patient in the ER, checking conditions",
    )?;
    println!(
        "9. Dr Carol broke the glass at Riverside's ER and read the condition (entry {}, flagged for review).",
        er.event
    );

    println!("10. Alice's disclosure report:");
    for d in ledger.disclosure_report(&alice.id())? {
        println!(
            "    #{:<3} {} {} for {}{}",
            d.index,
            d.what,
            d.recipient
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .trim_matches(|c| c == '(' || c == ','),
            d.purpose,
            d.emergency
                .map(|r| format!(" — EMERGENCY: {r}"))
                .unwrap_or_default()
        );
    }

    let mut witness = Witness::in_memory(CosignatureSigner::generate("riverside.example/witness")?);
    witness.add_log(ledger.log_key()?);
    let cp = ledger.checkpoint(&[&witness])?;
    println!(
        "11. Checkpoint of {} entries signed by St Mary's and cosigned by Riverside's witness:\n{}",
        cp.checkpoint.size,
        indent(&cp.note)
    );

    let export = ledger.export_patient(&alice.id())?;
    std::fs::write(dir.join("export.json"), &export)?;
    let args = format!(
        "--log-key {}\n--origin {}\n--witness {}\n",
        ledger.log_key()?.verifier().to_vkey(),
        ORIGIN,
        witness.signer().verifier()?.to_vkey()
    );
    std::fs::write(dir.join("auditor-args.txt"), args)?;
    println!("12. Alice's verifiable export written to {DIR}/export.json (auditor: cargo run --release --example auditor).");

    let report = ledger.verify()?;
    println!(
        "13. Self-verification: {} entries re-hashed, {} checkpoint(s), {} record versions match their commitments.",
        report.entries, report.checkpoints, report.versions
    );

    // Tampering: an insider edits the exported history, then a stored record.
    let forged = forge_last_event(&export).ok_or("export has no event")?;
    let policy =
        medledger::chain::Policy::new(ledger.log_key()?, vec![witness.signer().verifier()?], 1)?;
    match medledger::audit::verify_export(forged.as_bytes(), &policy) {
        Err(e) => println!("14. A forged copy of the export (one byte of the emergency access altered) is rejected: {e}"),
        Ok(_) => return Err("forged export verified".into()),
    }
    drop(ledger);
    // Records up to 64 KiB keep their envelope (wrapped keys and
    // ciphertext) in the state database: flip one bit inside every stored
    // copy of an envelope there (copy-on-write pages may hold older ones).
    let db = dir.join("state.redb");
    let original = std::fs::read(&db)?;
    let mut bad = original.clone();
    let mut flipped = 0;
    for (i, _) in original
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"MLENV")
    {
        if let Some(b) = bad.get_mut(i + 100) {
            *b ^= 0x01;
            flipped += 1;
        }
    }
    if flipped == 0 {
        return Err("no stored envelope found".into());
    }
    std::fs::write(&db, &bad)?;
    match Ledger::open(dir, ORIGIN, &key) {
        Err(e) => {
            println!("15. One flipped bit in a stored record is caught as the ledger opens: {e}")
        }
        Ok(ledger) => match ledger.verify() {
            Err(e) => {
                println!("15. One flipped bit in a stored record is caught by verification: {e}")
            }
            Ok(_) => return Err("tampered record verified".into()),
        },
    }
    std::fs::write(&db, &original)?;
    match Ledger::open(dir, ORIGIN, &LedgerKey::from_passphrase("guess")) {
        Err(e) => println!("16. Opening with a wrong passphrase fails: {e}"),
        Ok(_) => return Err("wrong passphrase accepted".into()),
    }
    let ledger = Ledger::open(dir, ORIGIN, &key)?;
    ledger.verify()?;
    println!("17. The record restored, the reopened ledger verifies again.");

    // Sharing with another organization: Riverside's own ledger imports
    // Alice's observation for Dr Carol after verifying it offline.
    let riverside_ledger =
        Ledger::in_memory("riverside.example/ledger", &LedgerKey::from_bytes([42; 32]))?;
    riverside_ledger.register(alice.actor(), "patients")?;
    riverside_ledger.register(dr_carol.actor(), "riverside")?;
    riverside_ledger.trust_log(&ledger.log_key()?, &[witness.signer().verifier()?], 1)?;
    ledger.grant(&observations_for(&alice, &dr_carol, Action::Read)?)?;
    let package = ledger.export_share(&dr_carol.id(), "Observation/bp-1", 1, Purpose::Treat)?;
    riverside_ledger.grant(&observations_for(&alice, &dr_carol, Action::Write)?)?;
    riverside_ledger.grant(&observations_for(&alice, &dr_carol, Action::Read)?)?;
    let mut tampered = package.clone();
    if let Some(b) = tampered
        .len()
        .checked_sub(100)
        .and_then(|i| tampered.get_mut(i))
    {
        *b ^= 0x01;
    }
    match riverside_ledger.import_share(&tampered, &dr_carol, "st-mary/Observation/bp-1") {
        Err(e) => println!(
            "18. A share package with one flipped ciphertext byte is refused by Riverside: {e}"
        ),
        Ok(_) => return Err("tampered share package imported".into()),
    }
    let imported =
        riverside_ledger.import_share(&package, &dr_carol, "st-mary/Observation/bp-1")?;
    let shared = riverside_ledger.read(&dr_carol, &imported.record, Purpose::Treat)?;
    println!(
        "19. St Mary's exported the observation for Dr Carol ({} bytes: ciphertext wrapped to her, its log entry {}, inclusion proof, checkpoint of {} entries cosigned by the witness); Riverside's ledger checked all of it offline, stored it as {:?} and Dr Carol reads it there ({} bytes). Done.",
        package.len(),
        imported.origin_event,
        imported.checkpoint_size,
        imported.record,
        shared.body.len()
    );
    Ok(())
}

/// Alice's grant of `action` on her observations to `clinician`, for
/// treatment, for a year.
fn observations_for(
    alice: &ActorKeys,
    clinician: &ActorKeys,
    action: Action,
) -> Result<SignedGrant, Box<dyn StdError>> {
    let now = now();
    Ok(SignedGrant::sign(
        Grant {
            issuer: alice.id(),
            patient: alice.id(),
            grantee: Grantee::Actor(clinician.id()),
            parent: None,
            scope: Scope::Categories([Category::new("Observation")?].into()),
            sensitivity: SensitivitySet::empty(),
            actions: ActionSet::empty().with(action),
            purposes: PurposeSet::empty().with(Purpose::Treat),
            validity: Validity::new(now - 60, now + 365 * 86400)?,
            max_delegation_depth: 0,
            issued_at: now,
            nonce: Grant::fresh_nonce(),
        },
        alice,
    )?)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Alters one base64 character inside the export's last event.
fn forge_last_event(export: &str) -> Option<String> {
    let at = export.rfind("\"event\":\"")? + 60;
    let c = export.get(at..at + 1)?;
    let swapped = if c == "A" { "B" } else { "A" };
    Some(format!(
        "{}{swapped}{}",
        export.get(..at)?,
        export.get(at + 1..)?
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}\n")).collect()
}
