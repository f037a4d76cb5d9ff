//! Seals, then opens, a large record through the streaming API, to measure
//! peak resident memory (it should stay near one 64 KiB chunk plus the
//! program itself, whatever the record size):
//!
//! ```text
//! cargo build --release -p medledger-envelope --example stream_rss
//! /usr/bin/time -v target/release/examples/stream_rss 1024   # MiB
//! ```
//!
//! The plaintext is generated on the fly by a reader; the envelope goes to
//! a temporary file; the opened plaintext is hashed, never held.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::time::Instant;

use medledger_envelope::{Decryptor, Encryptor, RecipientSecretKey, RecordContext};
use sha2::{Digest, Sha256};

/// `len` bytes of a deterministic pattern, produced on demand.
struct Pattern {
    remaining: u64,
    counter: u8,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        for b in buf.iter_mut().take(n) {
            self.counter = self.counter.wrapping_mul(13).wrapping_add(7);
            *b = self.counter;
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A writer that hashes what it is given and keeps nothing.
struct HashSink(Sha256);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1024);
    let len = mib << 20;
    let key = RecipientSecretKey::generate();
    let ctx = RecordContext::new("rec-imaging-study", "patient-rss", 1, "application/dicom")?;
    let file = tempfile::NamedTempFile::new()?;

    // Seal: generator -> hash tee -> encryptor -> file.
    let start = Instant::now();
    let mut source = Pattern {
        remaining: len,
        counter: 0,
    };
    let mut plain_hash = Sha256::new();
    let mut enc = Encryptor::new(
        BufWriter::new(File::create(file.path())?),
        &ctx,
        &[key.public_key()],
    )?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let piece = buf.get(..n).unwrap_or_default();
        plain_hash.update(piece);
        enc.write_all(piece)?;
    }
    enc.finish()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    let sealed_secs = start.elapsed().as_secs_f64();
    let envelope_len = std::fs::metadata(file.path())?.len();

    // Open: file -> decryptor -> hash sink.
    let start = Instant::now();
    let dec = Decryptor::new(File::open(file.path())?, &ctx, &key)?;
    let mut sink = HashSink(Sha256::new());
    let opened = dec.copy_to(&mut sink)?;
    let opened_secs = start.elapsed().as_secs_f64();

    let same = plain_hash.finalize() == sink.0.finalize();
    println!("plaintext      {len} bytes ({mib} MiB)");
    println!("envelope       {envelope_len} bytes");
    println!(
        "seal           {sealed_secs:.2} s ({:.0} MiB/s incl. file write)",
        mib as f64 / sealed_secs
    );
    println!(
        "open           {opened_secs:.2} s ({:.0} MiB/s incl. file read)",
        mib as f64 / opened_secs
    );
    println!(
        "round trip     {}",
        if same && opened == len {
            "identical"
        } else {
            "MISMATCH"
        }
    );
    if !(same && opened == len) {
        return Err("round trip mismatch".into());
    }
    Ok(())
}
