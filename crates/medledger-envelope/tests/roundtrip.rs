//! Sealing and opening round trips, in one shot and streaming, at the sizes
//! where chunking has edge cases.

mod common;

use std::io::{Read, Write};

use common::{context, key, pattern, sealed, TestRng};
use medledger_envelope::{
    open, seal, Decryptor, Encryptor, Error, Header, SealOptions, DEFAULT_CHUNK_SIZE,
};

const CHUNK: usize = DEFAULT_CHUNK_SIZE as usize;

fn body_len(env: &[u8]) -> usize {
    let (_, body) = Header::parse_prefix(env).unwrap();
    body.len()
}

#[test]
fn zero_length_body_is_one_empty_final_chunk() {
    let alice = key(1);
    let ctx = context("rec-empty");
    let env = seal(b"", &ctx, &[alice.public_key()]).unwrap();
    assert_eq!(body_len(&env), 16);
    assert_eq!(open(&env, &ctx, &alice).unwrap(), b"");
}

#[test]
fn body_of_exactly_one_chunk_is_one_final_chunk() {
    let alice = key(1);
    let ctx = context("rec-one");
    let plain = pattern(CHUNK);
    let env = seal(&plain, &ctx, &[alice.public_key()]).unwrap();
    assert_eq!(body_len(&env), CHUNK + 16);
    assert_eq!(open(&env, &ctx, &alice).unwrap(), plain);
}

#[test]
fn body_of_one_chunk_plus_one_byte_is_two_chunks() {
    let alice = key(1);
    let ctx = context("rec-one-plus");
    let plain = pattern(CHUNK + 1);
    let env = seal(&plain, &ctx, &[alice.public_key()]).unwrap();
    assert_eq!(body_len(&env), CHUNK + 16 + 1 + 16);
    assert_eq!(open(&env, &ctx, &alice).unwrap(), plain);
}

#[test]
fn every_small_length_round_trips_with_tiny_chunks() {
    let alice = key(1);
    let ctx = context("rec-small");
    for len in 0..=70 {
        let (plain, env) = sealed(len, 16, &[alice.public_key()], &ctx, len as u64);
        let chunks = len.div_ceil(16).max(1);
        assert_eq!(body_len(&env), len + 16 * chunks, "len {len}");
        assert_eq!(open(&env, &ctx, &alice).unwrap(), plain, "len {len}");
    }
}

#[test]
fn many_recipients_each_open_the_same_body() {
    let keys: Vec<_> = (0..20).map(key).collect();
    let publics: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    let ctx = context("rec-many");
    let (plain, env) = sealed(1000, 64, &publics, &ctx, 9);
    for k in &keys {
        assert_eq!(open(&env, &ctx, k).unwrap(), plain);
    }
}

#[test]
fn streaming_with_odd_write_and_read_sizes_matches_one_shot() {
    let alice = key(1);
    let ctx = context("rec-stream");
    let plain = pattern(3 * 1024 + 77);
    let opts = SealOptions::with_chunk_size(1024).unwrap();
    let mut enc = Encryptor::with_options(
        Vec::new(),
        &ctx,
        &[alice.public_key()],
        opts,
        &mut TestRng::new(5),
    )
    .unwrap();
    for piece in plain.chunks(333) {
        enc.write_all(piece).unwrap();
    }
    let env = enc.finish().unwrap();
    let one_shot = medledger_envelope::seal_with(
        &plain,
        &ctx,
        &[alice.public_key()],
        opts,
        &mut TestRng::new(5),
    )
    .unwrap();
    assert_eq!(env, one_shot);

    let mut dec = Decryptor::new(env.as_slice(), &ctx, &alice).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 100];
    loop {
        let n = dec.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(out, plain);
    // After the authenticated end, reading keeps returning end of file.
    assert_eq!(dec.read(&mut buf).unwrap(), 0);
}

#[test]
fn copy_to_and_next_chunk_yield_whole_chunks() {
    let alice = key(1);
    let ctx = context("rec-chunks");
    let (plain, env) = sealed(100, 32, &[alice.public_key()], &ctx, 2);
    let mut dec = Decryptor::new(env.as_slice(), &ctx, &alice).unwrap();
    let mut sizes = Vec::new();
    while let Some(chunk) = dec.next_chunk().unwrap() {
        sizes.push(chunk.len());
    }
    assert_eq!(sizes, [32, 32, 32, 4]);
    let mut out = Vec::new();
    let n = Decryptor::new(env.as_slice(), &ctx, &alice)
        .unwrap()
        .copy_to(&mut out)
        .unwrap();
    assert_eq!(n, 100);
    assert_eq!(out, plain);
}

#[test]
fn fresh_keys_and_nonces_every_seal() {
    let alice = key(1);
    let ctx = context("rec-fresh");
    let a = seal(b"same", &ctx, &[alice.public_key()]).unwrap();
    let b = seal(b"same", &ctx, &[alice.public_key()]).unwrap();
    let (ha, _) = Header::parse_prefix(&a).unwrap();
    let (hb, _) = Header::parse_prefix(&b).unwrap();
    assert_ne!(ha.commitment(), hb.commitment());
    assert_ne!(ha.nonce_prefix(), hb.nonce_prefix());
}

#[test]
fn unfinished_encryptor_leaves_a_truncated_envelope() {
    let alice = key(1);
    let ctx = context("rec-unfinished");
    let mut out = Vec::new();
    {
        let opts = SealOptions::with_chunk_size(16).unwrap();
        let mut enc = Encryptor::with_options(
            &mut out,
            &ctx,
            &[alice.public_key()],
            opts,
            &mut TestRng::new(1),
        )
        .unwrap();
        enc.write_all(&pattern(40)).unwrap();
    }
    assert!(matches!(
        open(&out, &ctx, &alice),
        Err(Error::Truncated { chunks: 2 })
    ));
}

#[test]
fn recipients_are_validated_when_sealing() {
    let ctx = context("rec-r");
    let alice = key(1);
    assert!(matches!(seal(b"x", &ctx, &[]), Err(Error::NoRecipients)));
    assert!(matches!(
        seal(b"x", &ctx, &[alice.public_key(), alice.public_key()]),
        Err(Error::DuplicateRecipient)
    ));
    // The all-zero u-coordinate is a low-order point.
    let low = medledger_envelope::RecipientPublicKey::from_bytes([0; 32]);
    assert!(matches!(
        seal(b"x", &ctx, &[low]),
        Err(Error::LowOrderKey { index: 0 })
    ));
    assert!(SealOptions::with_chunk_size(15).is_err());
    assert!(SealOptions::with_chunk_size((1 << 20) + 1).is_err());
}

#[test]
fn a_kept_data_key_opens_only_its_own_header_and_context() {
    let alice = key(1);
    let ctx = context("rec-kept");
    let (plain, env) = sealed(100, 32, &[alice.public_key()], &ctx, 20);
    let (_, other) = sealed(100, 32, &[alice.public_key()], &ctx, 21);
    let (header, body) = Header::parse_prefix(&env).unwrap();
    let (other_header, _) = Header::parse_prefix(&other).unwrap();
    let dk = header.unwrap_data_key(&alice, &ctx).unwrap();

    let mut out = Vec::new();
    Decryptor::with_data_key(body, header.clone(), &dk, &ctx)
        .unwrap()
        .copy_to(&mut out)
        .unwrap();
    assert_eq!(out, plain);
    assert!(matches!(
        Decryptor::with_data_key(body, other_header, &dk, &ctx),
        Err(Error::KeyCommitmentMismatch)
    ));
    assert!(matches!(
        Decryptor::with_data_key(body, header, &dk, &context("rec-other")),
        Err(Error::WrongContext)
    ));
}
