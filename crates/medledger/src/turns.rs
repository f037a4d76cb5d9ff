//! Turns: several `Ledger`s, in several processes, writing one shared
//! store (PostgreSQL) one at a time.
//!
//! A ledger keeps its audit indexes, per-patient `prev` chains, grant
//! index, guardians and checkpoint chain in memory, and decides every
//! access against them. Two ledgers deciding and appending at once would
//! each miss what the other just did (a revocation, a patient's last
//! event). So on a shared store a ledger runs each operation inside its
//! *turn*:
//!
//! - The first operation of a turn takes the store's writer lock
//!   ([`TurnLock::take`], waiting at most the lock's own limit) and learns
//!   the log's length. If another writer appended since this ledger's last
//!   turn, the ledger first takes those entries in
//!   ([`crate::Ledger`]'s catch-up: the tree, the audit indexes and chains,
//!   checkpoints, and the actors, trust, grants, memberships, revocations
//!   and appointments their state rows hold) and only then decides.
//! - Operations that start while the turn is held join it, so concurrent
//!   operations of one process still share group commits.
//! - When the last operation of the turn ends, the lock is released, so
//!   another process can take its turn. A turn that has lasted
//!   [`MAX_TURN`] lets its operations finish but admits no new one until
//!   it has been released, so a busy process cannot starve the others:
//!   the next operation queues for the lock behind them.
//!
//! The store fences appends by writers whose turn ended (medledger-postgres
//! bumps an epoch in the log head at each take), so an operation that lost
//! its lock mid-way cannot append after another writer's take.
//!
//! Ledgers on a store nobody shares (embedded, in memory) have no turns and
//! pay nothing.

use std::cell::RefCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{Op, Result};

/// The longest a process keeps admitting new operations into one turn
/// while other processes may be waiting for theirs.
pub const MAX_TURN: Duration = Duration::from_millis(50);

/// The store's writer lock, shared by every process writing it.
pub(crate) trait TurnLock: Send + Sync {
    /// Takes the lock, waiting at most `wait`, and returns the log's
    /// length as of the take, with every append of an earlier turn, by any
    /// writer, either in it or fenced out for good.
    fn take(&self, op: Op, wait: Duration) -> Result<Taken>;
    /// Releases the lock.
    fn release(&self, op: Op) -> Result<()>;
    /// The error of an operation that waited its whole limit for a turn.
    fn busy(&self, op: Op) -> crate::Error;
}

/// What a take found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Taken {
    /// The log's length.
    pub(crate) entries: u64,
    /// No other writer took a turn since this one's last.
    pub(crate) resumed: bool,
}

#[derive(Default)]
struct TurnState {
    /// This process holds the lock.
    held: bool,
    /// A take or a release is under way (its result decides `held`).
    busy: bool,
    /// Operations running in the current turn.
    active: usize,
    /// When the current turn was taken.
    since: Option<Instant>,
}

/// The turn state of one ledger (see the module docs).
pub(crate) struct Turns {
    lock: Box<dyn TurnLock>,
    /// The longest an operation waits for its turn, all waits included.
    wait: Duration,
    state: Mutex<TurnState>,
    changed: Condvar,
}

thread_local! {
    /// The `Turns` (by address) this thread runs an operation in: an
    /// operation that calls another joins its own turn without waiting.
    static JOINED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// An operation's place in its ledger's turn; ends it on drop.
pub(crate) struct TurnGuard<'a> {
    turns: Option<&'a Turns>,
    op: Op,
}

impl Turns {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn new(lock: Box<dyn TurnLock>, wait: Duration) -> Self {
        Turns {
            lock,
            wait,
            state: Mutex::new(TurnState::default()),
            changed: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a change until `deadline`; `None` once it has passed.
    fn wait<'a>(
        &self,
        g: MutexGuard<'a, TurnState>,
        deadline: Instant,
    ) -> Option<MutexGuard<'a, TurnState>> {
        let left = deadline.checked_duration_since(Instant::now())?;
        let (g, _) = self
            .changed
            .wait_timeout(g, left)
            .unwrap_or_else(|e| e.into_inner());
        Some(g)
    }

    fn key(&self) -> usize {
        self as *const Turns as usize
    }

    /// Joins the current turn, or takes a new one and runs `catch_up` with
    /// the log length before any operation of the turn starts. Gives up
    /// with the lock's busy error once `self.wait` has passed, whether it
    /// waited for this process's other operations or for the lock.
    pub(crate) fn enter(
        &self,
        op: Op,
        catch_up: &dyn Fn(Taken) -> Result<()>,
    ) -> Result<TurnGuard<'_>> {
        let key = self.key();
        let nested = JOINED.with(|j| j.borrow().contains(&key));
        let deadline = Instant::now() + self.wait;
        let mut g = self.state();
        loop {
            let fresh = g.since.is_none_or(|t| t.elapsed() < MAX_TURN);
            if g.held && !g.busy && (fresh || nested) {
                g.active += 1;
                drop(g);
                JOINED.with(|j| j.borrow_mut().push(key));
                return Ok(TurnGuard {
                    turns: Some(self),
                    op,
                });
            }
            if g.busy || g.held {
                // A take or release is under way, or an old turn drains.
                g = match self.wait(g, deadline) {
                    Some(g) => g,
                    None => return Err(self.lock.busy(op)),
                };
                continue;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| self.lock.busy(op))?;
            g.busy = true;
            drop(g);
            // Whatever happens, including a panic, the lock is released
            // unless the turn is really taken, and `busy` is cleared.
            let taken = catch_unwind(AssertUnwindSafe(|| {
                let taken = self.lock.take(op, left)?;
                catch_up(taken).inspect_err(|_| {
                    // The next operation takes the lock again and catches
                    // up from the last range fully taken in.
                    let _ = self.lock.release(op);
                })
            }));
            g = self.state();
            g.busy = false;
            self.changed.notify_all();
            match taken {
                Ok(Ok(())) => {
                    g.held = true;
                    g.since = Some(Instant::now());
                }
                Ok(Err(e)) => return Err(e),
                Err(panic) => {
                    drop(g);
                    let _ = catch_unwind(AssertUnwindSafe(|| self.lock.release(op)));
                    resume_unwind(panic)
                }
            }
        }
    }

    /// Ends one operation; the last one of a turn releases the lock.
    fn leave(&self, op: Op) {
        let key = self.key();
        // `try_with`: a guard dropped while its thread's locals are torn
        // down has no list left to leave.
        let _ = JOINED.try_with(|j| {
            let mut j = j.borrow_mut();
            if let Some(at) = j.iter().rposition(|k| *k == key) {
                j.remove(at);
            }
        });
        let mut g = self.state();
        g.active = g.active.saturating_sub(1);
        if g.active > 0 || !g.held {
            return;
        }
        g.busy = true;
        drop(g);
        // A release that fails (or panics) leaves the lock with a session
        // that is gone, and so released it, or dropped by the lock, which
        // releases it too: either way the turn has ended here.
        let _ = catch_unwind(AssertUnwindSafe(|| self.lock.release(op)));
        let mut g = self.state();
        g.busy = false;
        g.held = false;
        g.since = None;
        self.changed.notify_all();
    }
}

impl TurnGuard<'_> {
    /// The guard of a ledger without turns.
    pub(crate) fn none() -> Self {
        TurnGuard {
            turns: None,
            op: Op::Open,
        }
    }
}

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.turns {
            t.leave(self.op);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A lock that counts takes and releases and reports a length.
    #[derive(Default)]
    struct Counting {
        takes: AtomicUsize,
        releases: AtomicUsize,
        len: AtomicU64,
        holding: Mutex<bool>,
    }

    impl TurnLock for Arc<Counting> {
        fn take(&self, _op: Op, _wait: Duration) -> Result<Taken> {
            let mut h = self.holding.lock().unwrap();
            assert!(!*h, "taken twice without a release");
            *h = true;
            self.takes.fetch_add(1, Ordering::SeqCst);
            Ok(Taken {
                entries: self.len.load(Ordering::SeqCst),
                resumed: false,
            })
        }
        fn release(&self, _op: Op) -> Result<()> {
            let mut h = self.holding.lock().unwrap();
            assert!(*h, "released without a take");
            *h = false;
            self.releases.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn busy(&self, op: Op) -> crate::Error {
            crate::Error::LedgerInUse {
                op,
                store: "test".into(),
            }
        }
    }

    #[test]
    fn operations_share_a_turn_and_the_last_releases_it() {
        let lock = Arc::new(Counting::default());
        lock.len.store(7, Ordering::SeqCst);
        let turns = Turns::new(Box::new(lock.clone()), Duration::from_secs(5));
        let seen = Mutex::new(Vec::new());
        let catch_up = |t: Taken| {
            seen.lock().unwrap().push(t.entries);
            Ok(())
        };
        let a = turns.enter(Op::Read, &catch_up).unwrap();
        let b = turns.enter(Op::Read, &catch_up).unwrap();
        assert_eq!(lock.takes.load(Ordering::SeqCst), 1);
        assert_eq!(*seen.lock().unwrap(), vec![7], "caught up once per take");
        drop(a);
        assert_eq!(lock.releases.load(Ordering::SeqCst), 0, "b still runs");
        drop(b);
        assert_eq!(lock.releases.load(Ordering::SeqCst), 1);
        let c = turns.enter(Op::Write, &catch_up).unwrap();
        assert_eq!(lock.takes.load(Ordering::SeqCst), 2);
        drop(c);
        assert_eq!(lock.releases.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_catch_up_releases_and_the_next_operation_retries() {
        let lock = Arc::new(Counting::default());
        let turns = Turns::new(Box::new(lock.clone()), Duration::from_secs(5));
        let fail = |_| {
            Err(crate::Error::InvalidInput {
                op: Op::Read,
                what: "catch-up",
                reason: "test",
            })
        };
        assert!(turns.enter(Op::Read, &fail).is_err());
        assert_eq!(lock.takes.load(Ordering::SeqCst), 1);
        assert_eq!(lock.releases.load(Ordering::SeqCst), 1);
        let ok = |_| Ok(());
        let g = turns.enter(Op::Read, &ok).unwrap();
        assert_eq!(lock.takes.load(Ordering::SeqCst), 2);
        drop(g);
    }

    #[test]
    fn a_nested_operation_joins_even_an_old_turn_and_a_new_one_waits() {
        let lock = Arc::new(Counting::default());
        let turns = Arc::new(Turns::new(Box::new(lock.clone()), Duration::from_secs(5)));
        let ok = |_| Ok(());
        let outer = turns.enter(Op::Write, &ok).unwrap();
        std::thread::sleep(MAX_TURN + Duration::from_millis(5));
        // Same thread: joins although the turn is past MAX_TURN.
        let inner = turns.enter(Op::Write, &ok).unwrap();
        drop(inner);
        // Another thread must wait for this turn to be released and take
        // a new one.
        let t = {
            let turns = turns.clone();
            std::thread::spawn(move || {
                let ok = |_| Ok(());
                let g = turns.enter(Op::Read, &ok).unwrap();
                drop(g);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(lock.takes.load(Ordering::SeqCst), 1, "the other waits");
        drop(outer);
        t.join().unwrap();
        assert_eq!(lock.takes.load(Ordering::SeqCst), 2);
        assert_eq!(lock.releases.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn concurrent_operations_never_take_twice() {
        let lock = Arc::new(Counting::default());
        let turns = Arc::new(Turns::new(Box::new(lock.clone()), Duration::from_secs(5)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let turns = turns.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let ok = |_| Ok(());
                        let g = turns.enter(Op::Read, &ok).unwrap();
                        drop(g);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let takes = lock.takes.load(Ordering::SeqCst);
        assert_eq!(takes, lock.releases.load(Ordering::SeqCst));
        assert!(!*lock.holding.lock().unwrap(), "released at the end");
    }

    #[test]
    fn waiting_behind_an_old_turn_ends_with_the_busy_error() {
        let lock = Arc::new(Counting::default());
        let turns = Arc::new(Turns::new(
            Box::new(lock.clone()),
            Duration::from_millis(100),
        ));
        let ok = |_| Ok(());
        let held = turns.enter(Op::Write, &ok).unwrap();
        std::thread::sleep(MAX_TURN + Duration::from_millis(5));
        let other = {
            let turns = turns.clone();
            std::thread::spawn(move || {
                let ok = |_| Ok(());
                let started = Instant::now();
                let r = turns.enter(Op::Read, &ok).map(|_| ());
                (r, started.elapsed())
            })
        };
        let (r, waited) = other.join().unwrap();
        assert!(matches!(
            r,
            Err(crate::Error::LedgerInUse { op: Op::Read, .. })
        ));
        assert!(waited >= Duration::from_millis(100));
        drop(held);
        assert_eq!(lock.releases.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_panicking_catch_up_releases_the_lock_and_leaves_no_take_half_done() {
        let lock = Arc::new(Counting::default());
        let turns = Turns::new(Box::new(lock.clone()), Duration::from_secs(5));
        let boom = |_| -> Result<()> { panic!("catch-up panicked") };
        let r = catch_unwind(AssertUnwindSafe(|| {
            turns.enter(Op::Read, &boom).map(|_| ())
        }));
        assert!(r.is_err(), "the panic reaches the caller");
        assert_eq!(lock.takes.load(Ordering::SeqCst), 1);
        assert_eq!(lock.releases.load(Ordering::SeqCst), 1);
        // The next operation takes a new turn instead of waiting forever.
        let ok = |_| Ok(());
        drop(turns.enter(Op::Read, &ok).unwrap());
        assert_eq!(lock.takes.load(Ordering::SeqCst), 2);
        assert_eq!(lock.releases.load(Ordering::SeqCst), 2);
    }
}
