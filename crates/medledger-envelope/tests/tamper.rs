//! Every way of changing an envelope is refused: wrong key, wrong context,
//! flipped bits, truncation, reordering, duplication, dropping, appending,
//! swapped headers. In streaming mode no unauthenticated byte is released.

mod common;

use std::io::Read;

use common::{context, join, key, sealed, split};
use medledger_envelope::{open, Decryptor, Error, RecipientSecretKey, RecordContext};
use proptest::prelude::*;

const CHUNK: usize = 16;

struct Fixture {
    alice: RecipientSecretKey,
    bob: RecipientSecretKey,
    ctx: RecordContext,
    plain: Vec<u8>,
    env: Vec<u8>,
}

/// Two recipients, 16-byte chunks, 5 chunks of body (16·4 + 7 bytes).
fn fixture() -> Fixture {
    let alice = key(1);
    let bob = key(2);
    let ctx = context("rec-tamper");
    let (plain, env) = sealed(
        71,
        CHUNK as u32,
        &[alice.public_key(), bob.public_key()],
        &ctx,
        3,
    );
    Fixture {
        alice,
        bob,
        ctx,
        plain,
        env,
    }
}

/// Opens through the streaming reader and returns what it released before
/// the result.
fn stream_open(
    env: &[u8],
    ctx: &RecordContext,
    k: &RecipientSecretKey,
) -> (Vec<u8>, Result<(), Error>) {
    let mut released = Vec::new();
    let mut dec = match Decryptor::new(env, ctx, k) {
        Ok(d) => d,
        Err(e) => return (released, Err(e)),
    };
    let mut buf = [0u8; 7];
    loop {
        match dec.read(&mut buf) {
            Ok(0) => return (released, Ok(())),
            Ok(n) => released.extend_from_slice(&buf[..n]),
            Err(e) => return (released, Err(Error::from_io(e))),
        }
    }
}

#[test]
fn wrong_recipient_key_finds_no_stanza() {
    let f = fixture();
    let eve = key(99);
    assert!(matches!(
        open(&f.env, &f.ctx, &eve),
        Err(Error::NoMatchingRecipient)
    ));
    assert_eq!(open(&f.env, &f.ctx, &f.bob).unwrap(), f.plain);
}

#[test]
fn wrong_context_is_refused_before_the_body() {
    let f = fixture();
    let others = [
        RecordContext::new("rec-tamper2", "patient-0001", 3, "application/octet-stream").unwrap(),
        RecordContext::new("rec-tamper", "patient-0002", 3, "application/octet-stream").unwrap(),
        RecordContext::new("rec-tamper", "patient-0001", 4, "application/octet-stream").unwrap(),
        RecordContext::new("rec-tamper", "patient-0001", 3, "text/plain").unwrap(),
        f.ctx.clone().with_extra(b"tenant".to_vec()).unwrap(),
    ];
    for other in &others {
        assert!(
            matches!(open(&f.env, other, &f.alice), Err(Error::WrongContext)),
            "{other:?}"
        );
    }
}

#[test]
fn every_single_bit_flip_is_refused_for_every_recipient() {
    let f = fixture();
    for i in 0..f.env.len() {
        for bit in 0..8 {
            let mut env = f.env.clone();
            env[i] ^= 1 << bit;
            for k in [&f.alice, &f.bob] {
                let (released, result) = stream_open(&env, &f.ctx, k);
                assert!(result.is_err(), "flip at byte {i} bit {bit} accepted");
                // Whatever was released before the failure is authentic.
                assert_eq!(released, f.plain[..released.len()], "byte {i}");
            }
        }
    }
}

#[test]
fn truncation_at_every_length_is_an_error_never_eof() {
    let f = fixture();
    let (header, chunks) = split(&f.env, CHUNK);
    for len in 0..f.env.len() {
        let (released, result) = stream_open(&f.env[..len], &f.ctx, &f.alice);
        let err = result.expect_err(&format!("truncation to {len} accepted"));
        assert_eq!(released, f.plain[..released.len()]);
        // At a chunk boundary the error names the truncation exactly.
        let body = len.checked_sub(header.len());
        if let Some(body) = body {
            if body % (CHUNK + 16) == 0 {
                let whole = (body / (CHUNK + 16)) as u64;
                assert!(
                    matches!(err, Error::Truncated { chunks } if chunks == whole),
                    "{len}: {err:?}"
                );
            }
        } else {
            assert!(matches!(err, Error::BadHeader { .. }), "{len}: {err:?}");
        }
    }
    assert_eq!(chunks.len(), 5);
}

#[test]
fn reordered_chunks_are_refused_at_the_first_misplaced_one() {
    let f = fixture();
    let (header, mut chunks) = split(&f.env, CHUNK);
    chunks.swap(1, 2);
    let (released, result) = stream_open(&join(&header, &chunks), &f.ctx, &f.alice);
    assert!(
        matches!(result, Err(Error::ChunkAuthentication { chunk: 1 })),
        "{result:?}"
    );
    assert_eq!(released, f.plain[..CHUNK]);
}

#[test]
fn duplicated_chunks_are_refused() {
    let f = fixture();
    let (header, chunks) = split(&f.env, CHUNK);
    let mut dup = chunks.clone();
    dup.insert(2, chunks[1].clone());
    let result = open(&join(&header, &dup), &f.ctx, &f.alice);
    assert!(
        matches!(result, Err(Error::ChunkAuthentication { chunk: 2 })),
        "{result:?}"
    );

    let mut dup_last = chunks.clone();
    dup_last.push(chunks[4].clone());
    let result = open(&join(&header, &dup_last), &f.ctx, &f.alice);
    assert!(
        matches!(result, Err(Error::ChunkAuthentication { chunk: 4 })),
        "{result:?}"
    );
}

#[test]
fn dropped_chunks_are_refused() {
    let f = fixture();
    let (header, chunks) = split(&f.env, CHUNK);
    for drop in 0..chunks.len() {
        let mut fewer = chunks.clone();
        fewer.remove(drop);
        let result = open(&join(&header, &fewer), &f.ctx, &f.alice);
        assert!(result.is_err(), "dropping chunk {drop} accepted");
    }
    // Dropping only the final chunk is a truncation after four chunks.
    let result = open(&join(&header, &chunks[..4]), &f.ctx, &f.alice);
    assert!(
        matches!(result, Err(Error::Truncated { chunks: 4 })),
        "{result:?}"
    );
}

#[test]
fn appended_bytes_and_chunks_are_refused() {
    let f = fixture();
    for extra in [&b"\x00"[..], &[0u8; 16], &[0u8; 32], &[0u8; 33]] {
        let mut env = f.env.clone();
        env.extend_from_slice(extra);
        assert!(
            open(&env, &f.ctx, &f.alice).is_err(),
            "{} bytes appended",
            extra.len()
        );
    }
    // A full-length final chunk followed by more data: named as trailing data.
    let (plain, env) = sealed(64, CHUNK as u32, &[f.alice.public_key()], &f.ctx, 4);
    let (header, chunks) = split(&env, CHUNK);
    let mut more = chunks.clone();
    more.push(chunks[0].clone());
    let result = open(&join(&header, &more), &f.ctx, &f.alice);
    assert!(
        matches!(result, Err(Error::TrailingData { chunk: 3 })),
        "{result:?}"
    );
    assert_eq!(open(&env, &f.ctx, &f.alice).unwrap(), plain);
}

#[test]
fn header_swapped_between_two_records_is_refused() {
    let alice = key(1);
    let ctx_a = context("rec-A");
    let ctx_b = context("rec-B");
    let (_, env_a) = sealed(40, CHUNK as u32, &[alice.public_key()], &ctx_a, 10);
    let (_, env_b) = sealed(40, CHUNK as u32, &[alice.public_key()], &ctx_b, 11);
    let (header_a, _) = split(&env_a, CHUNK);
    let (_, chunks_b) = split(&env_b, CHUNK);
    let franken = join(&header_a, &chunks_b);
    assert!(matches!(
        open(&franken, &ctx_a, &alice),
        Err(Error::ChunkAuthentication { chunk: 0 })
    ));
    assert!(matches!(
        open(&franken, &ctx_b, &alice),
        Err(Error::WrongContext)
    ));
    // Even two seals of the same record under the same context do not mix.
    let (_, env_a2) = sealed(40, CHUNK as u32, &[alice.public_key()], &ctx_a, 12);
    let (_, chunks_a2) = split(&env_a2, CHUNK);
    assert!(matches!(
        open(&join(&header_a, &chunks_a2), &ctx_a, &alice),
        Err(Error::ChunkAuthentication { chunk: 0 })
    ));
}

#[test]
fn a_corrupt_stanza_with_the_right_key_id_is_named() {
    let f = fixture();
    let mut env = f.env.clone();
    // Alice's stanza starts at 88; its wrapped key at 88 + 16 + 32.
    env[88 + 48 + 5] ^= 1;
    assert!(matches!(
        open(&env, &f.ctx, &f.alice),
        Err(Error::StanzaUnwrapFailed { index: 0 })
    ));
    // Bob unwraps fine but the header MAC catches the change.
    assert!(matches!(
        open(&env, &f.ctx, &f.bob),
        Err(Error::HeaderAuthentication)
    ));
}

#[test]
fn a_failed_stream_stays_failed() {
    let f = fixture();
    let mut env = f.env.clone();
    let last = env.len() - 1;
    env[last] ^= 1;
    let mut dec = Decryptor::new(env.as_slice(), &f.ctx, &f.alice).unwrap();
    let mut out = Vec::new();
    assert!(dec.read_to_end(&mut out).is_err());
    assert_eq!(out, f.plain[..64]);
    let mut buf = [0u8; 8];
    assert!(dec.read(&mut buf).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bit_flip_in_header_or_body_is_refused(
        len in 0usize..200,
        chunk in 16u32..48,
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
        seed in any::<u64>(),
    ) {
        let alice = key(1);
        let bob = key(2);
        let ctx = context("rec-prop");
        let (plain, env) = sealed(len, chunk, &[alice.public_key(), bob.public_key()], &ctx, seed);
        let mut bad = env.clone();
        let i = pos.index(bad.len());
        bad[i] ^= 1 << bit;
        for k in [&alice, &bob] {
            let (released, result) = stream_open(&bad, &ctx, k);
            prop_assert!(result.is_err(), "flip at {} of {} accepted", i, bad.len());
            prop_assert_eq!(&released[..], &plain[..released.len()]);
        }
        prop_assert_eq!(open(&env, &ctx, &alice).unwrap(), plain);
    }

    #[test]
    fn any_truncation_is_refused(len in 0usize..200, chunk in 16u32..48, cut in any::<prop::sample::Index>()) {
        let alice = key(1);
        let ctx = context("rec-prop-cut");
        let (plain, env) = sealed(len, chunk, &[alice.public_key()], &ctx, 1);
        let n = cut.index(env.len());
        let (released, result) = stream_open(&env[..n], &ctx, &alice);
        prop_assert!(result.is_err());
        prop_assert_eq!(&released[..], &plain[..released.len()]);
    }
}
