//! Interop with a peer we did not write: Go's golang.org/x/mod `sumdb/note`
//! and `sumdb/tlog`, driven through tests/go/main.go.
//!
//! Needs `go` and golang.org/x/mod in a GOPATH (Debian: golang-go and
//! golang-golang-x-mod-dev, which put it in /usr/share/gocode; override with
//! `MEDLEDGER_GOPATH`). Without them the tests print that they were skipped
//! and pass, unless `CI` is set, where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use medledger_chain::{
    Checkpoint, Cosignature, CosignatureSigner, Ed25519Signer, HashAlg, MerkleLog, Note,
};

struct Go {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// Builds the Go program once; `None` when Go is unavailable outside CI.
fn go() -> Option<&'static Go> {
    static GO: OnceLock<Option<Go>> = OnceLock::new();
    GO.get_or_init(|| {
        let gopath = std::env::var("MEDLEDGER_GOPATH").unwrap_or("/usr/share/gocode".into());
        let have_go = Command::new("go").arg("version").output().is_ok_and(|o| o.status.success());
        let have_mod = Path::new(&gopath).join("src/golang.org/x/mod/sumdb/note").is_dir();
        if !(have_go && have_mod) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but Go or golang.org/x/mod is missing (go: {have_go}, x/mod in {gopath}: {have_mod})"
            );
            eprintln!(
                "\n!!!!! SKIPPED: Go interop tests need `go` and golang.org/x/mod in {gopath} \
                 (go: {have_go}, x/mod: {have_mod}) !!!!!\n"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("interop");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/main.go");
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(&src)
            .env("GO111MODULE", "off")
            .env("GOPATH", &gopath)
            .env("GOFLAGS", "")
            .env("GOCACHE", dir.path().join("gocache"))
            .env("GOTOOLCHAIN", "local")
            .output()
            .unwrap();
        assert!(out.status.success(), "go build failed: {}", String::from_utf8_lossy(&out.stderr));
        Some(Go { bin, dir })
    })
    .as_ref()
}

impl Go {
    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// Runs the program; Ok(stdout) or Err(stderr).
    fn run(&self, args: &[&std::ffi::OsStr]) -> Result<String, String> {
        let out = Command::new(&self.bin).args(args).output().unwrap();
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn go_verifies_our_signed_checkpoint_and_rejects_a_tampered_one() {
    let Some(go) = go() else { return };
    let signer =
        Ed25519Signer::new("hospital.example/ledger", SigningKey::from_bytes(&[42; 32])).unwrap();
    let mut log = MerkleLog::in_memory(HashAlg::Sha256);
    log.append(b"entry").unwrap();
    let cp = Checkpoint::first(
        "hospital.example/ledger",
        HashAlg::Sha256,
        1,
        log.root(),
        1_780_000_000,
    );
    let note = cp.sign(&signer).unwrap();
    let vkey = signer.verifier().to_vkey();
    let f = go.file("ours.note", note.as_bytes());
    let text = go.run(&[os("verify"), os(&vkey), f.as_os_str()]).unwrap();
    assert_eq!(text, cp.to_body());
    let bad = note.replacen("ledger\n1\n", "ledger\n2\n", 1);
    let f = go.file("tampered.note", bad.as_bytes());
    let err = go
        .run(&[os("verify"), os(&vkey), f.as_os_str()])
        .unwrap_err();
    assert!(err.contains("invalid signature"), "{err}");
}

#[test]
fn we_verify_a_note_go_signed_with_a_key_we_generated() {
    let Some(go) = go() else { return };
    let signer = Ed25519Signer::generate("witness.example/interop").unwrap();
    let text = "medledger interop\nline two\n";
    let f = go.file("text.txt", text.as_bytes());
    let signed = go
        .run(&[os("sign"), os(&signer.to_go_private_key()), f.as_os_str()])
        .unwrap();
    let n = Note::parse(signed.as_bytes()).unwrap();
    assert_eq!(n.text(), text);
    n.verify(&[signer.verifier()]).unwrap();
    // Same key, same text: Ed25519 is deterministic, so the notes are equal.
    let mut ours = Note::new(text).unwrap();
    ours.sign(&signer).unwrap();
    assert_eq!(ours.to_text().unwrap(), signed);
}

#[test]
fn cosignatures_check_both_ways() {
    let Some(go) = go() else { return };
    let log = Ed25519Signer::new("o.example", SigningKey::from_bytes(&[1; 32])).unwrap();
    let cp = Checkpoint::first(
        "o.example",
        HashAlg::Sha256,
        0,
        HashAlg::Sha256.empty_root(),
        7,
    );
    let mut note = Note::parse(cp.sign(&log).unwrap().as_bytes()).unwrap();
    let w = CosignatureSigner::new("w.example", SigningKey::from_bytes(&[2; 32])).unwrap();
    note.add_signature(
        w.cosign(note.text(), 1_780_000_123)
            .unwrap()
            .to_note_signature(),
    )
    .unwrap();
    let vkey = w.verifier().unwrap().to_vkey();
    let f = go.file("cosigned.note", note.to_text().unwrap().as_bytes());
    assert_eq!(
        go.run(&[os("cosig-verify"), os(&vkey), f.as_os_str()])
            .unwrap(),
        "ok 1780000123\n"
    );

    // Go cosigns with seed 0x03..; we verify the line.
    let seed = [3u8; 32];
    let body = go.file("body.txt", note.text().as_bytes());
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let line = go
        .run(&[
            os("cosign"),
            os(&hex),
            os("go.example/w"),
            os("1780000999"),
            body.as_os_str(),
        ])
        .unwrap();
    let c = &Cosignature::parse_lines(line.as_bytes()).unwrap()[0];
    assert_eq!(c.timestamp, 1_780_000_999);
    let v = CosignatureSigner::new("go.example/w", SigningKey::from_bytes(&seed))
        .unwrap()
        .verifier()
        .unwrap();
    c.verify(&v, note.text()).unwrap();
    assert!(c.verify(&v, "o.example\n1\nAAAA\n").is_err());
}

#[test]
fn go_tlog_agrees_on_roots_and_proofs() {
    let Some(go) = go() else { return };
    let n = 70u64;
    let mut log = MerkleLog::in_memory(HashAlg::Sha256);
    for i in 0..n {
        log.append(format!("leaf {i}").as_bytes()).unwrap();
    }
    let b64 = |hs: &[medledger_chain::Hash]| -> String {
        hs.iter()
            .map(|h| format!(" {}", BASE64.encode(h.0)))
            .collect()
    };
    let mut file = format!("leaves {n}\n");
    let mut lines = 0;
    for size in 1..=n {
        file.push_str(&format!(
            "root {size}{}\n",
            b64(&[log.root_at(size).unwrap()])
        ));
        lines += 1;
        for i in [0, size / 2, size - 1] {
            let p = log.inclusion_proof(i, size).unwrap();
            file.push_str(&format!("incl {i} {size}{}\n", b64(&p.path)));
            lines += 1;
        }
        for m in [1, size / 3 + 1, size - 1]
            .into_iter()
            .filter(|m| *m >= 1 && *m <= size)
        {
            let p = log.consistency_proof(m, size).unwrap();
            file.push_str(&format!("cons {m} {size}{}\n", b64(&p.path)));
            lines += 1;
        }
    }
    let f = go.file("tlog.txt", file.as_bytes());
    assert_eq!(
        go.run(&[os("tlog"), f.as_os_str()]).unwrap(),
        format!("ok {}\n", lines + 1)
    );
    // A wrong proof is caught by Go too (the harness is not vacuous).
    let mut p = log.inclusion_proof(5, n).unwrap();
    p.path[0].0[0] ^= 1;
    let f = go.file(
        "bad.txt",
        format!("leaves {n}\nincl 5 {n}{}\n", b64(&p.path)).as_bytes(),
    );
    assert!(go
        .run(&[os("tlog"), f.as_os_str()])
        .unwrap_err()
        .contains("CheckRecord"));
}
