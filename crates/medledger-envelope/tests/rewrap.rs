//! Rewrapping changes only the header; rotation changes the data key.

mod common;

use common::{context, key, sealed, split};
use medledger_envelope::{
    open, remove_recipients, rewrap, rewrap_stream, rotate, Error, Header, SealOptions,
};

#[test]
fn rewrap_adds_a_recipient_without_touching_the_body() {
    let alice = key(1);
    let bob = key(2);
    let ctx = context("rec-rewrap");
    let (plain, env) = sealed(100, 16, &[alice.public_key()], &ctx, 1);
    assert!(matches!(
        open(&env, &ctx, &bob),
        Err(Error::NoMatchingRecipient)
    ));

    let shared = rewrap(&env, &ctx, &alice, &[alice.public_key(), bob.public_key()]).unwrap();
    let (old_header, old_body) = Header::parse_prefix(&env).unwrap();
    let (new_header, new_body) = Header::parse_prefix(&shared).unwrap();
    assert_eq!(old_body, new_body, "body bytes must be unchanged");
    assert_eq!(old_header.commitment(), new_header.commitment());
    assert_eq!(old_header.nonce_prefix(), new_header.nonce_prefix());
    assert_eq!(open(&shared, &ctx, &bob).unwrap(), plain);
    assert_eq!(open(&shared, &ctx, &alice).unwrap(), plain);
}

#[test]
fn removed_recipient_cannot_open_after_rewrap() {
    let alice = key(1);
    let bob = key(2);
    let ctx = context("rec-remove");
    let (plain, env) = sealed(50, 16, &[alice.public_key(), bob.public_key()], &ctx, 2);

    let without_bob = rewrap(&env, &ctx, &alice, &[alice.public_key()]).unwrap();
    assert!(matches!(
        open(&without_bob, &ctx, &bob),
        Err(Error::NoMatchingRecipient)
    ));
    assert_eq!(open(&without_bob, &ctx, &alice).unwrap(), plain);

    let removed = remove_recipients(&env, &ctx, &alice, &[bob.public_key().key_id()]).unwrap();
    assert!(matches!(
        open(&removed, &ctx, &bob),
        Err(Error::NoMatchingRecipient)
    ));
    assert_eq!(open(&removed, &ctx, &alice).unwrap(), plain);
    let (header, _) = Header::parse_prefix(&removed).unwrap();
    assert_eq!(
        header.recipients().collect::<Vec<_>>(),
        [alice.public_key().key_id()]
    );

    // Removing the last recipient would make the record unreadable.
    assert!(matches!(
        remove_recipients(&removed, &ctx, &alice, &[alice.public_key().key_id()]),
        Err(Error::NoRecipients)
    ));
}

#[test]
fn header_level_add_and_remove_keep_other_stanzas() {
    let alice = key(1);
    let bob = key(2);
    let carol = key(3);
    let ctx = context("rec-add");
    let (plain, env) = sealed(10, 16, &[alice.public_key()], &ctx, 3);
    let (header, body) = Header::parse_prefix(&env).unwrap();
    let dk = header.unwrap_data_key(&alice, &ctx).unwrap();
    let added = header
        .add_recipients(&dk, &[bob.public_key(), carol.public_key()])
        .unwrap();
    let ids: Vec<_> = added.recipients().collect();
    assert_eq!(
        ids,
        [
            alice.public_key().key_id(),
            bob.public_key().key_id(),
            carol.public_key().key_id()
        ]
    );
    let mut env2 = added.encode();
    env2.extend_from_slice(body);
    // Alice's stanza bytes are carried over verbatim.
    assert_eq!(env2[88..88 + 96], env[88..88 + 96]);
    for k in [&alice, &bob, &carol] {
        assert_eq!(open(&env2, &ctx, k).unwrap(), plain);
    }
    assert!(matches!(
        added.add_recipients(&dk, &[bob.public_key()]),
        Err(Error::DuplicateRecipient)
    ));
}

#[test]
fn rewrap_requires_the_committed_data_key() {
    let alice = key(1);
    let ctx = context("rec-commit");
    let (_, env_a) = sealed(10, 16, &[alice.public_key()], &ctx, 4);
    let (_, env_b) = sealed(10, 16, &[alice.public_key()], &ctx, 5);
    let (header_a, _) = Header::parse_prefix(&env_a).unwrap();
    let (header_b, _) = Header::parse_prefix(&env_b).unwrap();
    let dk_b = header_b.unwrap_data_key(&alice, &ctx).unwrap();
    assert!(matches!(
        header_a.rewrap(&dk_b, &[alice.public_key()]),
        Err(Error::KeyCommitmentMismatch)
    ));
}

#[test]
fn streaming_rewrap_copies_the_body_verbatim() {
    let alice = key(1);
    let bob = key(2);
    let ctx = context("rec-rewrap-stream");
    let (plain, env) = sealed(5000, 1024, &[alice.public_key()], &ctx, 6);
    let out = rewrap_stream(
        env.as_slice(),
        Vec::new(),
        &ctx,
        &alice,
        &[bob.public_key()],
    )
    .unwrap();
    let (_, body) = Header::parse_prefix(&env).unwrap();
    assert!(out.ends_with(body));
    assert_eq!(open(&out, &ctx, &bob).unwrap(), plain);
    assert!(matches!(
        open(&out, &ctx, &alice),
        Err(Error::NoMatchingRecipient)
    ));
}

#[test]
fn rotation_uses_a_fresh_key_that_a_removed_recipient_cannot_reach() {
    let alice = key(1);
    let bob = key(2);
    let ctx_v3 = context("rec-rotate");
    let ctx_v4 = medledger_envelope::RecordContext::new(
        "rec-rotate",
        "patient-0001",
        4,
        "application/octet-stream",
    )
    .unwrap();
    let (plain, env) = sealed(
        3000,
        256,
        &[alice.public_key(), bob.public_key()],
        &ctx_v3,
        7,
    );
    // Bob kept the data key of version 3 before his access was revoked.
    let (old_header, _) = Header::parse_prefix(&env).unwrap();
    let bobs_old_key = old_header.unwrap_data_key(&bob, &ctx_v3).unwrap();

    let rotated = rotate(
        env.as_slice(),
        Vec::new(),
        &ctx_v3,
        &alice,
        &ctx_v4,
        &[alice.public_key()],
        SealOptions::with_chunk_size(256).unwrap(),
    )
    .unwrap();
    assert_eq!(open(&rotated, &ctx_v4, &alice).unwrap(), plain);
    assert!(matches!(
        open(&rotated, &ctx_v4, &bob),
        Err(Error::NoMatchingRecipient)
    ));
    let (new_header, _) = Header::parse_prefix(&rotated).unwrap();
    assert_ne!(new_header.commitment(), old_header.commitment());
    assert_ne!(new_header.nonce_prefix(), old_header.nonce_prefix());
    // The key Bob kept does not match the new version's commitment.
    assert!(matches!(
        new_header.rewrap(&bobs_old_key, &[bob.public_key()]),
        Err(Error::KeyCommitmentMismatch)
    ));
    // No body chunk of the old version survives.
    let (_, old_chunks) = split(&env, 256);
    let (_, new_chunks) = split(&rotated, 256);
    assert!(old_chunks.iter().all(|c| !new_chunks.contains(c)));
}

#[test]
fn rotation_refuses_a_corrupted_source() {
    let alice = key(1);
    let ctx = context("rec-rotate-bad");
    let (_, mut env) = sealed(100, 16, &[alice.public_key()], &ctx, 8);
    let n = env.len();
    env[n - 20] ^= 1;
    let result = rotate(
        env.as_slice(),
        Vec::new(),
        &ctx,
        &alice,
        &ctx,
        &[alice.public_key()],
        SealOptions::default(),
    );
    assert!(
        matches!(result, Err(Error::ChunkAuthentication { .. })),
        "{result:?}"
    );
}
