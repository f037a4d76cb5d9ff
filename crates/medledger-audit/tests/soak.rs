//! Heavy soaks, ignored by default (command in the README):
//! reopening a 1,000,000-event audit log in the embedded store.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::*;
use medledger_audit::*;
use medledger_store::{EmbeddedStore, StoreOptions};

#[test]
#[ignore = "writes ~250 MB and takes minutes; run in release"]
fn reopen_one_million_events_embedded() {
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    {
        let (store, _) = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
        let log = AuditLog::open_embedded(ORIGIN, Arc::new(store)).unwrap();
        let mut k = 0;
        while k < N {
            let batch: Vec<AuditEvent> = (k..k + 10_000)
                .map(|i| {
                    let p = if i % 10_000 == 0 {
                        patient_a()
                    } else {
                        PatientKey([(i % 251) as u8; 32])
                    };
                    event(Action::Read, p, ((i % 50) as u8, Role::Clinician), T0 + i)
                })
                .collect();
            log.append_batch(batch).unwrap();
            k += 10_000;
        }
        assert_eq!(log.size(), N);
    }
    eprintln!("wrote {N} events in {:?}", t.elapsed());
    let t = Instant::now();
    let (store, report) = EmbeddedStore::open(dir.path(), StoreOptions::default()).unwrap();
    let store_open = t.elapsed();
    assert_eq!(report.entries, N);
    let t = Instant::now();
    let log = AuditLog::open_embedded(ORIGIN, Arc::new(store)).unwrap();
    let audit_open = t.elapsed();
    eprintln!("reopen: EmbeddedStore::open {store_open:?}, AuditLog::open_embedded (index rebuild) {audit_open:?}");
    let t = Instant::now();
    let events = log.patient_events(&patient_a()).unwrap();
    eprintln!(
        "patient report of {} events from disk: {:?}",
        events.len(),
        t.elapsed()
    );
    assert_eq!(events.len(), 100);
}
