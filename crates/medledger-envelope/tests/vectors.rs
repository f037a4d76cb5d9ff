//! Format v1 test vectors (tests/data/envelope-v1-vectors.txt).
//!
//! The vectors were produced by this implementation with fixed randomness
//! (`QueueRng`, drawn in the documented order: data key, nonce prefix, one
//! ephemeral secret per recipient). `independent_open` below re-derives
//! every value from the README's byte layout using only the raw primitives
//! (x25519-dalek, hkdf, hmac, aes-gcm, sha2) — none of this crate's code —
//! so the vectors check the documentation as much as the implementation.

mod common;

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use common::QueueRng;
use hkdf::hmac::{Hmac, Mac};
use hkdf::Hkdf;
use medledger_envelope::{open, seal_with, RecipientSecretKey, RecordContext, SealOptions};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

const VECTORS: &str = include_str!("data/envelope-v1-vectors.txt");

struct Inputs {
    name: &'static str,
    recipients: Vec<[u8; 32]>,
    data_key: [u8; 32],
    nonce_prefix: [u8; 7],
    ephemerals: Vec<[u8; 32]>,
    context: RecordContext,
    chunk_size: u32,
    plaintext: Vec<u8>,
}

fn seq(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn inputs() -> Vec<Inputs> {
    vec![
        Inputs {
            name: "two-recipients-three-chunks",
            recipients: vec![seq(0x00), seq(0x20)],
            data_key: seq(0x40),
            nonce_prefix: [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6],
            ephemerals: vec![seq(0x60), seq(0x80)],
            context: RecordContext::new("rec-0001", "patient-0001", 1, "text/plain").unwrap(),
            chunk_size: 16,
            plaintext: b"medledger envelope test vector, 3 chunks".to_vec(),
        },
        Inputs {
            name: "one-recipient-empty-body",
            recipients: vec![seq(0x00)],
            data_key: seq(0xc0),
            nonce_prefix: [0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6],
            ephemerals: vec![seq(0xe0)],
            context: RecordContext::new("rec-0002", "patient-0001", 7, "application/fhir+json")
                .unwrap()
                .with_extra(b"tenant=st-mary".to_vec())
                .unwrap(),
            chunk_size: 65536,
            plaintext: Vec::new(),
        },
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn seal_vector(v: &Inputs) -> Vec<u8> {
    let publics: Vec<_> = v
        .recipients
        .iter()
        .map(|s| RecipientSecretKey::from_bytes(*s).public_key())
        .collect();
    let mut parts: Vec<&[u8]> = vec![&v.data_key, &v.nonce_prefix];
    parts.extend(v.ephemerals.iter().map(|e| e.as_slice()));
    let mut rng = QueueRng::new(&parts);
    let env = seal_with(
        &v.plaintext,
        &v.context,
        &publics,
        SealOptions::with_chunk_size(v.chunk_size).unwrap(),
        &mut rng,
    )
    .unwrap();
    assert!(rng.0.is_empty(), "all fixed randomness is consumed");
    env
}

fn expand(prk: &[u8], info: &[&[u8]]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::from_prk(prk)
        .unwrap()
        .expand_multi_info(info, &mut out)
        .unwrap();
    out
}

/// Intermediate values a second implementation can compare against.
struct Derived {
    context_digest: [u8; 32],
    kek0: [u8; 32],
    commitment: [u8; 32],
    body_key: [u8; 32],
    plaintext: Vec<u8>,
}

/// Opens an envelope from the documented layout with raw primitives only.
fn independent_open(env: &[u8], secret: [u8; 32], context_encoding: &[u8]) -> Derived {
    assert_eq!(&env[..7], b"MLENV\x01\x01");
    let header_len = u32::from_be_bytes(env[7..11].try_into().unwrap()) as usize;
    let chunk_size = u32::from_be_bytes(env[11..15].try_into().unwrap()) as usize;
    let nonce_prefix = &env[15..22];
    let commitment = &env[22..54];
    let context_tag = &env[54..86];
    let n = u16::from_be_bytes(env[86..88].try_into().unwrap()) as usize;
    assert_eq!(header_len, 88 + 96 * n + 32);
    let (header, body) = env.split_at(header_len);

    let sk = StaticSecret::from(secret);
    let pk = PublicKey::from(&sk);
    let key_id = &Sha256::new()
        .chain_update(b"medledger-envelope/v1 key id")
        .chain_update(pk.as_bytes())
        .finalize()[..16];
    let stanza = (0..n)
        .map(|i| &header[88 + 96 * i..88 + 96 * (i + 1)])
        .find(|s| &s[..16] == key_id)
        .unwrap();
    let eph: [u8; 32] = stanza[16..48].try_into().unwrap();
    let shared = sk.diffie_hellman(&PublicKey::from(eph));
    let mut salt = eph.to_vec();
    salt.extend_from_slice(pk.as_bytes());
    let mut kek = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes())
        .expand(b"medledger-envelope/v1 wrap", &mut kek)
        .unwrap();
    let dk = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&kek))
        .decrypt(&Nonce::default(), &stanza[48..])
        .unwrap();

    assert_eq!(expand(&dk, &[b"medledger-envelope/v1 commit"]), commitment);
    let context_digest: [u8; 32] = Sha256::new()
        .chain_update(b"medledger-envelope/v1 context")
        .chain_update(context_encoding)
        .finalize()
        .into();
    assert_eq!(
        expand(&dk, &[b"medledger-envelope/v1 context", &context_digest]),
        context_tag
    );
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&expand(&dk, &[b"medledger-envelope/v1 header"]))
            .unwrap();
    mac.update(&header[..header_len - 32]);
    mac.verify_slice(&header[header_len - 32..]).unwrap();

    let body_key = expand(&dk, &[b"medledger-envelope/v1 body"]);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&body_key));
    let mut aad = commitment.to_vec();
    aad.extend_from_slice(&context_digest);
    let sealed_chunks: Vec<&[u8]> = body.chunks(chunk_size + 16).collect();
    let mut plaintext = Vec::new();
    for (i, chunk) in sealed_chunks.iter().enumerate() {
        let mut nonce = nonce_prefix.to_vec();
        nonce.extend_from_slice(&(i as u32).to_be_bytes());
        nonce.push(u8::from(i + 1 == sealed_chunks.len()));
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: chunk,
                    aad: &aad,
                },
            )
            .unwrap();
        plaintext.extend_from_slice(&plain);
    }
    Derived {
        context_digest,
        kek0: kek,
        commitment: commitment.try_into().unwrap(),
        body_key,
        plaintext,
    }
}

fn render(v: &Inputs) -> String {
    let env = seal_vector(v);
    let d = independent_open(&env, v.recipients[0], &v.context.encode());
    let mut s = format!("name = {}\n", v.name);
    for (i, r) in v.recipients.iter().enumerate() {
        s += &format!("recipient_secret_{i} = {}\n", hex(r));
        let public = RecipientSecretKey::from_bytes(*r).public_key();
        s += &format!("recipient_public_{i} = {}\n", hex(public.as_bytes()));
    }
    s += &format!("data_key = {}\n", hex(&v.data_key));
    s += &format!("nonce_prefix = {}\n", hex(&v.nonce_prefix));
    for (i, e) in v.ephemerals.iter().enumerate() {
        s += &format!("ephemeral_secret_{i} = {}\n", hex(e));
    }
    s += &format!("context_encoding = {}\n", hex(&v.context.encode()));
    s += &format!("context_digest = {}\n", hex(&d.context_digest));
    s += &format!("chunk_size = {}\n", v.chunk_size);
    s += &format!("plaintext = {}\n", hex(&v.plaintext));
    s += &format!("kek_0 = {}\n", hex(&d.kek0));
    s += &format!("commitment = {}\n", hex(&d.commitment));
    s += &format!("body_key = {}\n", hex(&d.body_key));
    s += &format!("envelope = {}\n", hex(&env));
    s
}

fn parse_file() -> Vec<BTreeMap<String, String>> {
    VECTORS
        .split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    (k.trim().to_string(), v.trim().to_string())
                })
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn sealing_with_fixed_randomness_reproduces_the_vectors() {
    let file = parse_file();
    let inputs = inputs();
    assert_eq!(file.len(), inputs.len());
    for (v, want) in inputs.iter().zip(&file) {
        let got: BTreeMap<String, String> = render(v)
            .lines()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        assert_eq!(&got, want, "vector {}", v.name);
    }
}

#[test]
fn vectors_open_with_this_crate_and_with_raw_primitives() {
    for (v, want) in inputs().iter().zip(parse_file()) {
        let env = unhex(&want["envelope"]);
        let plaintext = unhex(&want["plaintext"]);
        for (i, secret) in v.recipients.iter().enumerate() {
            let sk = RecipientSecretKey::from_bytes(*secret);
            assert_eq!(
                open(&env, &v.context, &sk).unwrap(),
                plaintext,
                "{} recipient {i}",
                v.name
            );
            let d = independent_open(&env, *secret, &unhex(&want["context_encoding"]));
            assert_eq!(d.plaintext, plaintext);
        }
    }
}

/// `cargo test -p medledger-envelope --test vectors -- --ignored --nocapture`
/// prints the vector file (used once to produce it; a format change must be
/// a new version, not a regenerated file).
#[test]
#[ignore]
fn print_vectors() {
    println!("# medledger-envelope format v1 test vectors (see README, \"Test vectors\").");
    for v in inputs() {
        println!();
        print!("{}", render(&v));
    }
}
