//! A commit whose outcome is unknown: the connection drops while `COMMIT`
//! is in flight and the server cannot be reached to ask. The caller gets
//! [`Error::OutcomeUnknown`] carrying its batch token; after reopening, the
//! batch is wholly there or wholly absent, and `batch_outcome` says which.
//!
//! And when the server *can* be asked: the answer "nothing was written"
//! ([`Error::ConnectionLost`]) comes only once nothing can still commit
//! the batch — not while the head row is held (the old backend still
//! committing), and not while a `COMMIT` that was sent is still on its way
//! to the old backend.
//!
//! A small proxy on a Unix socket stands between the log and the server.
//! Once armed, it cuts the connection at the message that commits the
//! append — the `COMMIT` of the locked path, or the self-committing
//! statement (`Execute` + `Sync`) of the one-round-trip path — either just
//! before forwarding it (the server never commits) or just after (the
//! server commits, the client never hears), and refuses every later
//! connection, so the log's follow-up question cannot be answered.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use medledger_chain::{HashAlg, MerkleLog};
use medledger_postgres::sequencer::OUTCOME_WAIT;
use medledger_postgres::{BatchToken, Error, PgStore};
use medledger_store::EntryLog;

/// The simple-query message `COMMIT` as the client sends it.
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";
/// `Execute` of the unnamed portal, all rows, then `Sync`: how the client
/// runs a prepared statement (a self-committing one outside `BEGIN`).
const EXECUTE_SYNC: &[u8] = b"E\0\0\0\x09\0\0\0\0\0S\0\0\0\x04";

/// Which append path the cut hits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    /// `BEGIN`, the head lock, the write, `COMMIT` (a fresh log).
    Locked,
    /// The one self-committing statement (a log that wrote the head).
    OneStatement,
}

impl Path {
    fn pattern(self) -> &'static [u8] {
        match self {
            Path::Locked => COMMIT,
            Path::OneStatement => EXECUTE_SYNC,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cut {
    /// Drop the connection instead of forwarding `COMMIT`.
    BeforeCommit,
    /// Forward `COMMIT`, then drop the client's side.
    AfterCommit,
    /// Drop the client's side first, and forward `COMMIT` to the server
    /// only after this delay (a commit still on its way when the client
    /// gives up), then close the server's side.
    Delayed(Duration),
}

/// Run when the proxy cuts, after the server got what it gets and before
/// the client's side is dropped.
type Hook = Arc<dyn Fn() + Send + Sync>;

/// What the proxy does with connections after the cut.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum After {
    /// Refuse them: the server is unreachable.
    Refuse,
    /// Forward them faithfully: the log can ask.
    Pass,
}

struct Proxy {
    dir: PathBuf,
    url: String,
    armed: Arc<AtomicBool>,
    tripped: Arc<AtomicBool>,
    /// The server answered the forwarded `COMMIT` (or closed).
    answered: Arc<AtomicBool>,
    /// A delayed `COMMIT` was forwarded (or could not be).
    delivered: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn server_socket(url: &str) -> PathBuf {
    let config: postgres::Config = url.parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(postgres::config::Host::Unix(dir)) => dir.join(format!(".s.PGSQL.{port}")),
        other => panic!("these tests need a Unix-socket server, got {other:?}"),
    }
}

/// What a connection's client-to-server pump needs.
struct Pump {
    cut: Cut,
    pattern: &'static [u8],
    armed: Arc<AtomicBool>,
    tripped: Arc<AtomicBool>,
    /// This connection was cut (its server side's answers are swallowed).
    here: Arc<AtomicBool>,
    delivered: Arc<AtomicBool>,
    hook: Option<Hook>,
}

fn pump_to_server(mut client: UnixStream, mut server: UnixStream, p: Pump) {
    let Pump {
        cut,
        pattern,
        armed,
        tripped,
        here,
        delivered,
        hook,
    } = p;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let at = chunk.windows(pattern.len()).position(|w| w == pattern);
        let at = at.filter(|_| armed.swap(false, Ordering::SeqCst));
        if let Some(at) = at {
            here.store(true, Ordering::SeqCst);
            tripped.store(true, Ordering::SeqCst);
            match cut {
                Cut::BeforeCommit => {
                    let _ = server.write_all(&chunk[..at]);
                    let _ = server.shutdown(std::net::Shutdown::Both);
                }
                Cut::AfterCommit => {
                    let _ = server.write_all(&chunk[..at + pattern.len()]);
                }
                Cut::Delayed(delay) => {
                    let _ = server.write_all(&chunk[..at]);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    std::thread::sleep(delay);
                    let _ = server.write_all(&chunk[at..at + pattern.len()]);
                    let _ = server.shutdown(std::net::Shutdown::Write);
                    delivered.store(true, Ordering::SeqCst);
                    return;
                }
            }
            if let Some(hook) = hook {
                hook();
            }
            let _ = client.shutdown(std::net::Shutdown::Both);
            return;
        }
        if server.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
}

fn pump_to_client(
    mut server: UnixStream,
    mut client: UnixStream,
    tripped: Arc<AtomicBool>,
    answered: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tripped.load(Ordering::SeqCst) {
            // Only the answer to the forwarded COMMIT can come now.
            answered.store(true, Ordering::SeqCst);
            continue;
        }
        let _ = client.write_all(&buf[..n]);
    }
    if tripped.load(Ordering::SeqCst) {
        answered.store(true, Ordering::SeqCst);
    }
}

impl Proxy {
    fn start(
        url: &str,
        cut: Cut,
        pattern: &'static [u8],
        after: After,
        hook: Option<Hook>,
    ) -> Proxy {
        let target = server_socket(url);
        let dir = std::env::temp_dir().join(common::fresh_schema("proxy"));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = UnixListener::bind(dir.join(".s.PGSQL.5432")).unwrap();
        let config: postgres::Config = url.parse().unwrap();
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let dbname = config.get_dbname().unwrap_or("postgres").to_owned();
        let proxy = Proxy {
            url: format!(
                "host={} port=5432 user={user} dbname={dbname}",
                dir.display()
            ),
            dir,
            armed: Arc::new(AtomicBool::new(false)),
            tripped: Arc::new(AtomicBool::new(false)),
            answered: Arc::new(AtomicBool::new(false)),
            delivered: Arc::new(AtomicBool::new(false)),
        };
        let (armed, tripped, answered, delivered) = (
            Arc::clone(&proxy.armed),
            Arc::clone(&proxy.tripped),
            Arc::clone(&proxy.answered),
            Arc::clone(&proxy.delivered),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if after == After::Refuse && tripped.load(Ordering::SeqCst) {
                    // The server is "unreachable" from now on.
                    drop(client);
                    continue;
                }
                let Ok(server) = UnixStream::connect(&target) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let here = Arc::new(AtomicBool::new(false));
                let pump = Pump {
                    here: Arc::clone(&here),
                    cut,
                    pattern,
                    armed: Arc::clone(&armed),
                    tripped: Arc::clone(&tripped),
                    delivered: Arc::clone(&delivered),
                    hook: hook.clone(),
                };
                std::thread::spawn(move || pump_to_server(client, server, pump));
                let an = Arc::clone(&answered);
                std::thread::spawn(move || pump_to_client(s2, c2, here, an));
            }
        });
        proxy
    }
}

fn entry(i: u64) -> Vec<u8> {
    format!("unknown-outcome entry {i}").into_bytes()
}

fn run(path: Path, cut: Cut, size: u64) {
    let test = format!("outcome_unknown::{path:?}::{cut:?}::{size}");
    let Some(url) = common::url(&test) else {
        return;
    };
    // A log with a few entries, written directly.
    let (schema, direct) = common::store(&url, "unknown", HashAlg::Blake3);
    let before: Vec<Vec<u8>> = (0..5).map(entry).collect();
    let refs: Vec<&[u8]> = before.iter().map(Vec::as_slice).collect();
    direct.entries().append_batch(&refs).unwrap();
    drop(direct);

    let proxy = Proxy::start(&url, cut, path.pattern(), After::Refuse, None);
    let via = PgStore::open(&proxy.url, common::options(&schema, HashAlg::Blake3)).unwrap();
    let mut expected: Vec<Vec<u8>> = before;
    if path == Path::OneStatement {
        // A normal append through the proxy first (it forwards faithfully):
        // now the log knows the head and appends in one statement.
        assert_eq!(via.entries().append(b"through the proxy").unwrap(), 5);
        expected.push(b"through the proxy".to_vec());
    }
    let at = expected.len() as u64;
    proxy.armed.store(true, Ordering::SeqCst);

    let batch: Vec<Vec<u8>> = (100..100 + size).map(entry).collect();
    let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    let token = BatchToken([0x5a; 16]);
    let e = via.entries().append_with_token(&refs, token).unwrap_err();
    assert!(
        matches!(&e, Error::OutcomeUnknown { batch: Some(t), .. } if *t == token),
        "{e:?}"
    );
    assert!(proxy.tripped.load(Ordering::SeqCst));
    // The server stays unreachable through the proxy: a typed error.
    let again = via.entries().append(b"still unreachable").unwrap_err();
    assert!(
        matches!(Error::in_store_error(&again), Some(Error::Connect { .. })),
        "{again:?}"
    );
    drop(via);
    if cut == Cut::AfterCommit {
        // Let the server finish the COMMIT it was sent.
        let start = Instant::now();
        while !proxy.answered.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(20), "no answer");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    // Reopened directly: wholly there or wholly absent, and said so.
    let reopened = PgStore::open(&url, common::options(&schema, HashAlg::Blake3)).unwrap();
    let log = reopened.entries();
    let outcome = log.batch_outcome(&token).unwrap();
    match cut {
        Cut::BeforeCommit => assert_eq!(outcome, None),
        Cut::AfterCommit => {
            assert_eq!(outcome, Some(at..at + size));
            expected.extend(batch);
        }
        Cut::Delayed(_) => unreachable!("not used here"),
    }
    let n = log.len().unwrap();
    assert_eq!(n, expected.len() as u64);
    assert_eq!(log.read_range(0..n).unwrap(), expected);
    let mut mem = MerkleLog::in_memory(HashAlg::Blake3);
    mem.append_batch(expected.iter()).unwrap();
    assert_eq!(reopened.merkle_log().unwrap().root(), mem.root());
    // And the log takes appends again at the right index.
    assert_eq!(log.append(b"after").unwrap(), n);
    drop(reopened);
    common::drop_schema(&url, &schema);
}

#[test]
fn a_commit_cut_before_it_reached_the_server_is_wholly_absent() {
    run(Path::Locked, Cut::BeforeCommit, 3);
    run(Path::OneStatement, Cut::BeforeCommit, 3);
}

#[test]
fn a_commit_cut_after_it_reached_the_server_is_wholly_there() {
    run(Path::Locked, Cut::AfterCommit, 3);
    run(Path::OneStatement, Cut::AfterCommit, 3);
}

#[test]
fn a_large_batch_cut_at_commit_is_wholly_there_or_wholly_absent() {
    run(Path::OneStatement, Cut::BeforeCommit, 500);
    run(Path::OneStatement, Cut::AfterCommit, 500);
    run(Path::Locked, Cut::AfterCommit, 500);
}

/// A log of five entries in a fresh schema, and a store on it through a
/// proxy that forwards every connection after the cut (so the log can ask
/// about the outcome); on [`Path::OneStatement`] it appended once through
/// the proxy, so its next append is the one self-committing statement.
fn through_pass_proxy(
    url: &str,
    path: Path,
    cut: Cut,
    hook: Option<Hook>,
    schema: &str,
) -> (Proxy, PgStore, Vec<Vec<u8>>) {
    let direct = PgStore::open(url, common::options(schema, HashAlg::Blake3)).unwrap();
    let mut expected: Vec<Vec<u8>> = (0..5).map(entry).collect();
    let refs: Vec<&[u8]> = expected.iter().map(Vec::as_slice).collect();
    direct.entries().append_batch(&refs).unwrap();
    drop(direct);
    let proxy = Proxy::start(url, cut, path.pattern(), After::Pass, hook);
    let via = PgStore::open(&proxy.url, common::options(schema, HashAlg::Blake3)).unwrap();
    if path == Path::OneStatement {
        assert_eq!(via.entries().append(b"through the proxy").unwrap(), 5);
        expected.push(b"through the proxy".to_vec());
    }
    proxy.armed.store(true, Ordering::SeqCst);
    (proxy, via, expected)
}

#[test]
fn a_commit_still_on_its_way_is_never_reported_as_not_written() {
    let Some(url) = common::url("outcome_unknown::a_commit_still_on_its_way") else {
        return;
    };
    for path in [Path::Locked, Path::OneStatement] {
        let schema = common::fresh_schema("onitsway");
        let delay = Duration::from_millis(700);
        let (proxy, via, mut expected) =
            through_pass_proxy(&url, path, Cut::Delayed(delay), None, &schema);
        let at = expected.len() as u64;
        let batch: Vec<Vec<u8>> = (200..203).map(entry).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let token = BatchToken([0x3c; 16]);
        let r = via.entries().append_with_token(&refs, token);
        assert!(proxy.tripped.load(Ordering::SeqCst), "{path:?}");
        // Let the delayed COMMIT reach the server (if its backend is still
        // there to take it) and be processed.
        let start = Instant::now();
        while !proxy.delivered.load(Ordering::SeqCst) {
            assert!(start.elapsed() < Duration::from_secs(20), "never delivered");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(300));
        let direct = PgStore::open(&url, common::options(&schema, HashAlg::Blake3)).unwrap();
        let outcome = direct.entries().batch_outcome(&token).unwrap();
        // Whatever the log answered, it is what happened: above all, never
        // "nothing was written" for a batch that then committed.
        match &r {
            Ok(range) => {
                assert_eq!(*range, at..at + 3, "{path:?}");
                assert_eq!(outcome, Some(at..at + 3), "{path:?}");
                expected.extend(batch);
            }
            Err(Error::ConnectionLost { .. }) => assert_eq!(outcome, None, "{path:?}"),
            Err(e) => panic!("{path:?}: the outcome should have been settled, got {e:?}"),
        }
        let n = direct.entries().len().unwrap();
        assert_eq!(
            direct.entries().read_range(0..n).unwrap(),
            expected,
            "{path:?}"
        );
        // The store through the proxy goes on appending at the right index.
        assert_eq!(via.entries().append(b"after").unwrap(), n, "{path:?}");
        drop((via, direct, proxy));
        common::drop_schema(&url, &schema);
    }
}

#[test]
fn an_outcome_asked_while_the_head_is_held_stays_unknown_until_it_is_released() {
    let Some(url) = common::url("outcome_unknown::an_outcome_asked_while_the_head_is_held") else {
        return;
    };
    for (path, cut) in [
        (Path::Locked, Cut::BeforeCommit),
        (Path::OneStatement, Cut::AfterCommit),
    ] {
        let schema = common::fresh_schema("headheld");
        // Another session takes the head row as soon as the cut append's
        // transaction has ended (as a commit still in flight would hold it
        // while someone asks).
        let blocker = Arc::new(std::sync::Mutex::new(common::client(&url)));
        let token = BatchToken([0x7e; 16]);
        let hook: Hook = {
            let (blocker, schema) = (Arc::clone(&blocker), schema.clone());
            Arc::new(move || {
                let mut c = blocker.lock().unwrap();
                if cut == Cut::AfterCommit {
                    // The forwarded statement commits first (else the
                    // blocker could take the head before it, and the log
                    // would rightly end it uncommitted).
                    let start = Instant::now();
                    let find = format!("SELECT 1 FROM \"{schema}\".batches WHERE token = $1");
                    while c.query_opt(&find, &[&&token.0[..]]).unwrap().is_none() {
                        assert!(start.elapsed() < Duration::from_secs(10), "never committed");
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                c.batch_execute(&format!(
                    "BEGIN; SELECT 1 FROM \"{schema}\".log_head WHERE id = 0 FOR UPDATE"
                ))
                .unwrap();
            })
        };
        let (proxy, via, mut expected) = through_pass_proxy(&url, path, cut, Some(hook), &schema);
        let at = expected.len() as u64;
        let batch: Vec<Vec<u8>> = (300..304).map(entry).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        // The append's own check knows the lost backend: once it is gone the
        // answer is certain, whoever holds the head.
        let r = via.entries().append_with_token(&refs, token);
        assert!(proxy.tripped.load(Ordering::SeqCst));
        match cut {
            Cut::BeforeCommit => assert!(
                matches!(&r, Err(Error::ConnectionLost { .. })),
                "{path:?} {cut:?}: {r:?}"
            ),
            _ => assert_eq!(r.unwrap(), at..at + 4, "{path:?} {cut:?}"),
        }
        if cut == Cut::BeforeCommit {
            // Asked later, without the backend, while the head is held past
            // the timeout: unknown (with the token), never "not written".
            let began = Instant::now();
            let e = via.entries().batch_outcome(&token).unwrap_err();
            let waited = began.elapsed();
            assert!(
                matches!(&e, Error::OutcomeUnknown { batch: Some(t), .. } if *t == token),
                "{e:?}"
            );
            assert!(waited >= OUTCOME_WAIT, "{waited:?}");
            assert!(waited < OUTCOME_WAIT * 4, "bounded: {waited:?}");
        }
        blocker.lock().unwrap().batch_execute("ROLLBACK").unwrap();
        // Released: the answer is certain, and right.
        let outcome = via.entries().batch_outcome(&token).unwrap();
        match cut {
            Cut::BeforeCommit => assert_eq!(outcome, None),
            _ => {
                assert_eq!(outcome, Some(at..at + 4));
                expected.extend(batch);
            }
        }
        let n = via.entries().len().unwrap();
        assert_eq!(via.entries().read_range(0..n).unwrap(), expected);
        assert_eq!(via.entries().append(b"after").unwrap(), n);
        drop((via, proxy));
        common::drop_schema(&url, &schema);
    }
}
