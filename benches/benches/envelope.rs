//! medledger-envelope against its raw primitives, in the same run:
//! sealing and opening bodies of 1 KiB, 64 KiB, 1 MiB and 64 MiB against one
//! raw AES-256-GCM call over the same bytes, and wrapping a data key for 1,
//! 10 and 100 recipients against raw X25519 agreements.

use std::hint::black_box;
use std::io;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use medledger_envelope::{
    seal, Decryptor, Encryptor, Header, RecipientPublicKey, RecipientSecretKey, RecordContext,
};
use x25519_dalek::{EphemeralSecret, PublicKey};

const SIZES: [(&str, usize); 4] = [
    ("1KiB", 1 << 10),
    ("64KiB", 1 << 16),
    ("1MiB", 1 << 20),
    ("64MiB", 1 << 26),
];

fn context() -> RecordContext {
    RecordContext::new("rec-bench", "patient-bench", 1, "application/dicom").expect("context")
}

fn raw_cipher() -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&[7u8; 32]))
}

/// Sealing: `raw` is one AES-256-GCM call over the whole buffer (in place,
/// on a copy made in the untimed setup); `body` is our streaming sealer with
/// the header (one X25519 wrap) built in the untimed setup; `with_header`
/// includes building the header. `raw` and `body` are timed the same way
/// (one routine call per measurement), so their ratio is like for like.
fn seal_bodies(c: &mut Criterion) {
    let alice = RecipientSecretKey::generate();
    let recipients = [alice.public_key()];
    let ctx = context();
    for (name, size) in SIZES {
        let mut g = c.benchmark_group(format!("envelope_seal/{name}"));
        g.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 26 {
            g.sample_size(10);
        }
        let plain = vec![0x5au8; size];
        let cipher = raw_cipher();
        let nonce = Nonce::from([1u8; 12]);
        g.bench_function("raw_aes_gcm", |b| {
            b.iter_batched_ref(
                || plain.clone(),
                |buf| {
                    cipher
                        .encrypt_in_place_detached(&nonce, b"aad", buf)
                        .expect("encrypt")
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function("body", |b| {
            b.iter_batched(
                || Encryptor::new(io::sink(), &ctx, &recipients).expect("encryptor"),
                |mut enc| {
                    enc.write_plaintext(black_box(&plain)).expect("write");
                    enc.finish().expect("finish")
                },
                BatchSize::PerIteration,
            )
        });
        if size <= 1 << 16 {
            g.bench_function("with_header", |b| {
                b.iter(|| {
                    let mut enc = Encryptor::new(io::sink(), &ctx, &recipients).expect("encryptor");
                    enc.write_plaintext(black_box(&plain)).expect("write");
                    enc.finish().expect("finish")
                })
            });
        }
        g.finish();
    }
}

/// Opening: `raw` decrypts a fresh copy of one AES-256-GCM ciphertext (the
/// copy is made in the untimed setup); `body` is our streaming opener
/// (header unwrapped in the setup) writing to a sink; `with_header`
/// includes unwrapping.
fn open_bodies(c: &mut Criterion) {
    let alice = RecipientSecretKey::generate();
    let ctx = context();
    for (name, size) in SIZES {
        let mut g = c.benchmark_group(format!("envelope_open/{name}"));
        g.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 26 {
            g.sample_size(10);
        }
        let plain = vec![0x5au8; size];
        let cipher = raw_cipher();
        let nonce = Nonce::from([1u8; 12]);
        let mut sealed = plain.clone();
        let tag = cipher
            .encrypt_in_place_detached(&nonce, b"aad", &mut sealed)
            .expect("encrypt");
        g.bench_function("raw_aes_gcm", |b| {
            b.iter_batched_ref(
                || sealed.clone(),
                |buf| {
                    cipher
                        .decrypt_in_place_detached(&nonce, b"aad", buf, &tag)
                        .expect("decrypt")
                },
                BatchSize::PerIteration,
            )
        });
        let envelope = seal(&plain, &ctx, &[alice.public_key()]).expect("seal");
        g.bench_function("body", |b| {
            b.iter_batched(
                || Decryptor::new(envelope.as_slice(), &ctx, &alice).expect("decryptor"),
                |dec| dec.copy_to(io::sink()).expect("open"),
                BatchSize::PerIteration,
            )
        });
        if size <= 1 << 16 {
            g.bench_function("with_header", |b| {
                b.iter(|| {
                    Decryptor::new(black_box(envelope.as_slice()), &ctx, &alice)
                        .expect("decryptor")
                        .copy_to(io::sink())
                        .expect("open")
                })
            });
        }
        g.finish();
    }
}

/// Wrapping one data key to n recipients (`Header::rewrap`: n ephemeral key
/// pairs, n agreements, n HKDFs and key wraps, one header MAC) against n raw
/// X25519 agreements, each an ephemeral key generation plus one
/// Diffie–Hellman (what a wrap needs at minimum), and n bare DH operations.
fn wrap_recipients(c: &mut Criterion) {
    let ctx = context();
    let owner = RecipientSecretKey::generate();
    let envelope = seal(b"", &ctx, &[owner.public_key()]).expect("seal");
    let (header, _) = Header::parse_prefix(&envelope).expect("header");
    let dk = header.unwrap_data_key(&owner, &ctx).expect("unwrap");
    for n in [1usize, 10, 100] {
        let mut g = c.benchmark_group("envelope_wrap");
        g.throughput(Throughput::Elements(n as u64));
        let recipients: Vec<RecipientPublicKey> = (0..n)
            .map(|_| RecipientSecretKey::generate().public_key())
            .collect();
        let raw_publics: Vec<PublicKey> = recipients
            .iter()
            .map(|r| PublicKey::from(*r.as_bytes()))
            .collect();
        g.bench_with_input(BenchmarkId::new("raw_x25519_keygen_dh", n), &n, |b, _| {
            b.iter(|| {
                for pk in &raw_publics {
                    let eph = EphemeralSecret::random_from_rng(rand::rngs::OsRng);
                    black_box(PublicKey::from(&eph));
                    black_box(eph.diffie_hellman(pk));
                }
            })
        });
        let fixed = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
        g.bench_with_input(BenchmarkId::new("raw_x25519_dh", n), &n, |b, _| {
            b.iter(|| {
                for pk in &raw_publics {
                    black_box(fixed.diffie_hellman(pk));
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("wrap", n), &n, |b, _| {
            b.iter(|| black_box(header.rewrap(&dk, &recipients).expect("rewrap")))
        });
        g.finish();
    }
}

criterion_group!(benches, seal_bodies, open_bodies, wrap_recipients);
criterion_main!(benches);
