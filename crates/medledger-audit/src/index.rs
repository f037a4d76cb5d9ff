//! In-memory query indexes, rebuilt from the log on open.
//!
//! Every index maps a key to the log indexes of its events, so a query
//! costs a hash lookup (or a B-tree range seek) plus work proportional to
//! the events it returns, never to the log's size.

use std::collections::{BTreeSet, HashMap};

use crate::event::{Action, AuditEvent, Id32};
use crate::pseudonym::PatientKey;

/// The query indexes over the audit events of one log.
#[derive(Debug, Default)]
pub struct Indexes {
    by_patient: HashMap<PatientKey, Vec<u64>>,
    by_actor: HashMap<Id32, Vec<u64>>,
    by_time: BTreeSet<(u64, u64)>,
    emergency_open: BTreeSet<u64>,
    events: u64,
}

/// Inserts `index` keeping `v` ascending (appends are almost always at the
/// end, so this is amortized O(1)).
fn insert_sorted(v: &mut Vec<u64>, index: u64) {
    match v.last() {
        Some(&last) if last > index => {
            let at = v.partition_point(|&x| x < index);
            v.insert(at, index);
        }
        _ => v.push(index),
    }
}

impl Indexes {
    /// Empty indexes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the event stored at log index `index`.
    pub fn add(&mut self, index: u64, event: &AuditEvent) {
        insert_sorted(self.by_patient.entry(event.patient).or_default(), index);
        insert_sorted(self.by_actor.entry(event.actor.id).or_default(), index);
        self.by_time.insert((event.time_ms, index));
        if event.action == Action::EmergencyAccess || event.emergency.is_some() {
            self.emergency_open.insert(index);
        }
        if event.action == Action::EmergencyReview {
            if let Some(r) = event.refers_to {
                self.emergency_open.remove(&r);
            }
        }
        self.events += 1;
    }

    /// Number of audit events indexed.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// Whether no event is indexed.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// Log indexes of a patient's events, ascending.
    pub fn patient(&self, patient: &PatientKey) -> &[u64] {
        self.by_patient.get(patient).map_or(&[], Vec::as_slice)
    }

    /// Each patient with an event below log index `limit`, with the index
    /// of its last such event (the leaves of a heads tree).
    pub fn heads_below(&self, limit: u64) -> impl Iterator<Item = (PatientKey, u64)> + '_ {
        self.by_patient.iter().filter_map(move |(p, v)| {
            let k = v.partition_point(|&i| i < limit).checked_sub(1)?;
            v.get(k).map(|&i| (*p, i))
        })
    }

    /// Log indexes of an actor's events, ascending.
    pub fn actor(&self, actor: &Id32) -> &[u64] {
        self.by_actor.get(actor).map_or(&[], Vec::as_slice)
    }

    /// Log indexes of events with `from_ms <= time < to_ms`, by time.
    pub fn time_range(&self, from_ms: u64, to_ms: u64) -> Vec<u64> {
        if from_ms >= to_ms {
            return Vec::new();
        }
        self.by_time
            .range((from_ms, 0)..(to_ms, 0))
            .map(|(_, i)| *i)
            .collect()
    }

    /// Log indexes of emergency accesses no review event has closed.
    pub fn emergency_open(&self) -> Vec<u64> {
        self.emergency_open.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sorted_keeps_order() {
        let mut v = vec![];
        for i in [1, 5, 3, 9, 0, 7] {
            insert_sorted(&mut v, i);
        }
        assert_eq!(v, [0, 1, 3, 5, 7, 9]);
    }
}
