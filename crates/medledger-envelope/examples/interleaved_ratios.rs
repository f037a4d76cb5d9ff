//! Interleaved A/B timing of the envelope body against raw AES-256-GCM over
//! the same bytes, and of wrapping a data key for n recipients against n raw
//! X25519 agreements, for a shared, loaded machine where criterion's
//! one-benchmark-after-another medians drift with the load: each round
//! times raw and ours back to back, and the ratio is taken per round, so
//! load changes hit both sides alike. Complements (does not replace)
//! `benches/benches/envelope.rs`.
//!
//! ```text
//! cargo run --release -p medledger-envelope --example interleaved_ratios
//! ```

use std::hint::black_box;
use std::io;
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use medledger_envelope::{seal, Decryptor, Encryptor, Header, RecipientSecretKey, RecordContext};
use rand_core::OsRng;
use x25519_dalek::{EphemeralSecret, PublicKey};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn time<T>(f: impl FnOnce() -> T) -> Duration {
    let start = Instant::now();
    black_box(f());
    start.elapsed()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = RecipientSecretKey::generate();
    let ctx = RecordContext::new("rec-bench", "patient-bench", 1, "application/dicom")?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&[7u8; 32]));
    let nonce = Nonce::from([1u8; 12]);
    println!("| op | size | rounds | raw median | ours median | median of per-round ratios (raw time / ours) |");
    println!("|---|---|---|---|---|---|");
    for (name, size, rounds) in [
        ("1 KiB", 1usize << 10, 2001),
        ("64 KiB", 1 << 16, 401),
        ("1 MiB", 1 << 20, 101),
        ("64 MiB", 1 << 26, 9),
    ] {
        let plain = vec![0x5au8; size];
        let mut sealed_raw = plain.clone();
        let tag = cipher
            .encrypt_in_place_detached(&nonce, b"aad", &mut sealed_raw)
            .map_err(|_| "encrypt")?;
        let envelope = seal(&plain, &ctx, &[key.public_key()])?;
        let (mut seal_raw, mut seal_ours, mut seal_ratio) = (vec![], vec![], vec![]);
        let (mut open_raw, mut open_ours, mut open_ratio) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            // Seal: headers are built outside the timed region.
            let mut buf = plain.clone();
            let enc = Encryptor::new(io::sink(), &ctx, &[key.public_key()])?;
            let raw = time(|| cipher.encrypt_in_place_detached(&nonce, b"aad", &mut buf));
            let ours = time(|| -> Result<(), medledger_envelope::Error> {
                let mut enc = enc;
                enc.write_plaintext(&plain)?;
                enc.finish()?;
                Ok(())
            });
            seal_raw.push(raw.as_secs_f64());
            seal_ours.push(ours.as_secs_f64());
            seal_ratio.push(raw.as_secs_f64() / ours.as_secs_f64());

            // Open: the data key is unwrapped outside the timed region.
            let mut buf = sealed_raw.clone();
            let dec = Decryptor::new(envelope.as_slice(), &ctx, &key)?;
            let raw = time(|| cipher.decrypt_in_place_detached(&nonce, b"aad", &mut buf, &tag));
            let ours = time(|| dec.copy_to(io::sink()));
            open_raw.push(raw.as_secs_f64());
            open_ours.push(ours.as_secs_f64());
            open_ratio.push(raw.as_secs_f64() / ours.as_secs_f64());
        }
        for (op, raw, ours, ratio) in [
            ("seal", seal_raw, seal_ours, seal_ratio),
            ("open", open_raw, open_ours, open_ratio),
        ] {
            let (r, o) = (median(raw), median(ours));
            let mibs = |t: f64| size as f64 / t / f64::from(1u32 << 20);
            println!(
                "| {op} | {name} | {rounds} | {:.1} µs ({:.0} MiB/s) | {:.1} µs ({:.0} MiB/s) | {:.2}× |",
                r * 1e6,
                mibs(r),
                o * 1e6,
                mibs(o),
                median(ratio)
            );
        }
    }
    wrap_ratios(&key, &ctx)?;
    Ok(())
}

/// `Header::rewrap` for n recipients against n raw agreements (ephemeral
/// key generation + one Diffie–Hellman each: the least a wrap needs).
fn wrap_ratios(
    key: &RecipientSecretKey,
    ctx: &RecordContext,
) -> Result<(), Box<dyn std::error::Error>> {
    let envelope = seal(b"", ctx, &[key.public_key()])?;
    let (header, _) = Header::parse_prefix(&envelope)?;
    let dk = header.unwrap_data_key(key, ctx)?;
    println!();
    println!("| recipients | rounds | raw keygen + DH median | wrap median | per recipient | median of per-round ratios (wrap / raw) |");
    println!("|---|---|---|---|---|---|");
    for (n, rounds) in [(1usize, 501), (10, 101), (100, 21)] {
        let recipients: Vec<_> = (0..n)
            .map(|_| RecipientSecretKey::generate().public_key())
            .collect();
        let raw_publics: Vec<_> = recipients
            .iter()
            .map(|r| PublicKey::from(*r.as_bytes()))
            .collect();
        let (mut raw_t, mut ours_t, mut ratio) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            let raw = time(|| {
                for pk in &raw_publics {
                    let eph = EphemeralSecret::random_from_rng(OsRng);
                    black_box(PublicKey::from(&eph));
                    black_box(eph.diffie_hellman(pk));
                }
            });
            let ours = time(|| header.rewrap(&dk, &recipients));
            raw_t.push(raw.as_secs_f64());
            ours_t.push(ours.as_secs_f64());
            ratio.push(ours.as_secs_f64() / raw.as_secs_f64());
        }
        let (r, o) = (median(raw_t), median(ours_t));
        println!(
            "| {n} | {rounds} | {:.1} µs | {:.1} µs | {:.1} µs | {:.2}× |",
            r * 1e6,
            o * 1e6,
            o * 1e6 / n as f64,
            median(ratio)
        );
    }
    Ok(())
}
