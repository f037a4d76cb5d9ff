//! Group commit of the state rows of concurrent writes.
//!
//! Every write ends with one durable state transaction (its record,
//! version, labels and blob rows). The embedded state store (redb) commits
//! one transaction at a time, each with its own sync, so under concurrent
//! writers that commit became the bottleneck although the log appends
//! before it already share syncs. Writers therefore queue their rows; the
//! first to find no commit in progress becomes the leader, takes every
//! queued job and applies them all in one transaction stamped with the
//! highest log index among them (every one of those entries is durable),
//! then wakes the others. If that transaction fails, the leader retries
//! each job alone so that each writer gets its own outcome.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

use medledger_chain::NodeStore;

use crate::error::{Op, Result};
use crate::ledger::Ledger;

/// One row to put.
pub(crate) struct Put {
    pub(crate) table: &'static str,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

struct Job {
    ticket: u64,
    index: u64,
    rows: Vec<Put>,
}

/// The queue of state jobs and the outcomes of finished ones.
#[derive(Default)]
pub(crate) struct StateQueue {
    jobs: Vec<Job>,
    next_ticket: u64,
    leading: bool,
    /// Finished tickets and their outcome: `None` on success.
    done: HashMap<u64, Option<crate::Error>>,
}

fn lock(m: &Mutex<StateQueue>) -> std::sync::MutexGuard<'_, StateQueue> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The queue and the condition writers wait on.
#[derive(Default)]
pub(crate) struct StateCommits {
    queue: Mutex<StateQueue>,
    finished: Condvar,
}

impl<N: NodeStore> Ledger<N> {
    /// Puts `rows` in one durable state transaction reflecting log entry
    /// `index` (already durable), shared with concurrent writers' rows.
    pub(crate) fn commit_rows(&self, index: u64, op: Op, rows: Vec<Put>) -> Result<()> {
        let commits = &self.state_commits;
        let mut q = lock(&commits.queue);
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.jobs.push(Job {
            ticket,
            index,
            rows,
        });
        loop {
            if let Some(outcome) = q.done.remove(&ticket) {
                return outcome.map_or(Ok(()), Err);
            }
            if q.leading {
                q = commits.finished.wait(q).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            q.leading = true;
            let jobs = std::mem::take(&mut q.jobs);
            drop(q);
            let outcomes = self.commit_jobs(&jobs, op);
            q = lock(&commits.queue);
            q.leading = false;
            q.done.extend(outcomes);
            commits.finished.notify_all();
        }
    }

    /// Applies `jobs` in one transaction, or each alone if that fails.
    fn commit_jobs(&self, jobs: &[Job], op: Op) -> Vec<(u64, Option<crate::Error>)> {
        let top = jobs.iter().map(|j| j.index).max().unwrap_or(0);
        let all = self.commit_state(top, op, &mut |t| {
            for row in jobs.iter().flat_map(|j| &j.rows) {
                t.put(row.table, &row.key, &row.value)?;
            }
            Ok(())
        });
        if all.is_ok() || jobs.len() == 1 {
            let err = all.err();
            return match (jobs.first(), err) {
                (Some(j), Some(e)) if jobs.len() == 1 => vec![(j.ticket, Some(e))],
                _ => jobs.iter().map(|j| (j.ticket, None)).collect(),
            };
        }
        jobs.iter()
            .map(|j| {
                let one = self.commit_state(j.index, op, &mut |t| {
                    for row in &j.rows {
                        t.put(row.table, &row.key, &row.value)?;
                    }
                    Ok(())
                });
                (j.ticket, one.err())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LedgerKey;

    fn put(table: &'static str, key: &[u8]) -> Put {
        Put {
            table,
            key: key.to_vec(),
            value: b"v".to_vec(),
        }
    }

    #[test]
    fn a_failing_job_in_a_batch_fails_alone() {
        let ledger = Ledger::in_memory("t.example/l", &LedgerKey::from_bytes([1; 32])).unwrap();
        let jobs = [
            Job {
                ticket: 1,
                index: 0,
                rows: vec![put("group-test", b"a")],
            },
            Job {
                ticket: 2,
                index: 0,
                rows: vec![put("Not A Table", b"b")],
            },
            Job {
                ticket: 3,
                index: 0,
                rows: vec![put("group-test", b"c")],
            },
        ];
        let outcomes = ledger.commit_jobs(&jobs, Op::Write);
        let failed: Vec<(u64, bool)> = outcomes.iter().map(|(t, e)| (*t, e.is_some())).collect();
        assert_eq!(failed, [(1, false), (2, true), (3, false)]);
        for key in [b"a", b"c"] {
            assert!(ledger.state.get("group-test", key).unwrap().is_some());
        }
    }

    #[test]
    fn concurrent_writers_all_commit() {
        let ledger = Ledger::in_memory("t.example/l", &LedgerKey::from_bytes([1; 32])).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let ledger = &ledger;
                s.spawn(move || {
                    for i in 0..25u8 {
                        ledger
                            .commit_rows(0, Op::Write, vec![put("group-test", &[t, i])])
                            .unwrap();
                    }
                });
            }
        });
        let rows = ledger.state.scan("group-test", b"", usize::MAX).unwrap();
        assert_eq!(rows.len(), 100);
    }
}
