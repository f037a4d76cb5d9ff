//! The key-commitment attack ("invisible salamanders", Dodis–Grubbs–
//! Ristenpart–Woodage 2018; partitioning oracles, Len–Grubbs–Ristenpart
//! 2021), carried out for real against this format.
//!
//! A malicious sender knows two data keys. It builds one body chunk that
//! authenticates under *both* derived body keys — a genuine dual-key
//! AES-256-GCM ciphertext, solved with GHASH algebra below — and one header
//! that wraps the first data key to Alice and the second to Bob. Without a
//! key commitment, Alice and Bob would both accept the record and read two
//! different plaintexts. The test shows the dual-key ciphertext really
//! works at the raw AES-GCM level, and that the envelope refuses it for
//! whichever recipient's key does not match the header's commitment.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use hkdf::hmac::{Hmac, Mac};
use rand_core::OsRng;
use sha2::Sha256;

use crate::context::RecordContext;
use crate::header::Header;
use crate::keys::{DataKey, RecipientSecretKey, LABEL_BODY, LABEL_HEADER};
use crate::stanza::{Stanza, STANZA_LEN};
use crate::{open, Error};

/// Multiplication in GF(2^128) with GCM's bit order (NIST SP 800-38D §6.3,
/// Algorithm 1); blocks are read as big-endian integers, so the field's
/// "1" is `1 << 127`.
fn gf_mul(x: u128, y: u128) -> u128 {
    const R: u128 = 0xE1 << 120;
    let mut z = 0u128;
    let mut v = y;
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 0 { v >> 1 } else { (v >> 1) ^ R };
    }
    z
}

const ONE: u128 = 1 << 127;

/// a^(2^128 - 2) = a^-1 (Fermat), as the product of a^(2^i), i = 1..127.
fn gf_inv(a: u128) -> u128 {
    let mut result = ONE;
    let mut square = a;
    for _ in 1..128 {
        square = gf_mul(square, square);
        result = gf_mul(result, square);
    }
    result
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

/// The GCM tag `key` assigns to `ciphertext`, obtained through the real
/// aes-gcm: encrypting `ciphertext ⊕ keystream` yields `ciphertext`.
fn tag_of(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], ciphertext: &[u8]) -> u128 {
    let c = cipher(key);
    let mut keystream = vec![0u8; ciphertext.len()];
    c.encrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut keystream)
        .unwrap();
    let mut buf: Vec<u8> = ciphertext
        .iter()
        .zip(&keystream)
        .map(|(a, b)| a ^ b)
        .collect();
    let tag = c
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, &mut buf)
        .unwrap();
    assert_eq!(buf, ciphertext);
    u128::from_be_bytes(tag.into())
}

/// A 32-byte ciphertext and a tag valid under both keys: the first block is
/// fixed, the last block `x` is solved from
/// `t1(0) + x·H1² = t2(0) + x·H2²` (the tag is affine in the last
/// ciphertext block, whose GHASH coefficient is H²).
fn dual_key_ciphertext(k1: &[u8; 32], k2: &[u8; 32], nonce: &[u8; 12], aad: &[u8]) -> Vec<u8> {
    let mut ct = b"attacker chosen!".to_vec();
    ct.extend_from_slice(&[0u8; 16]);
    let t1_zero = tag_of(k1, nonce, aad, &ct);
    let t2_zero = tag_of(k2, nonce, aad, &ct);
    ct[16..].copy_from_slice(&ONE.to_be_bytes());
    let h1_sq = t1_zero ^ tag_of(k1, nonce, aad, &ct);
    let h2_sq = t2_zero ^ tag_of(k2, nonce, aad, &ct);
    let x = gf_mul(t1_zero ^ t2_zero, gf_inv(h1_sq ^ h2_sq));
    ct[16..].copy_from_slice(&x.to_be_bytes());
    let tag = tag_of(k1, nonce, aad, &ct);
    assert_eq!(tag, tag_of(k2, nonce, aad, &ct));
    ct.extend_from_slice(&tag.to_be_bytes());
    ct
}

fn raw_open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (ct, tag) = sealed.split_at(sealed.len() - 16);
    let mut buf = ct.to_vec();
    cipher(key)
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut buf,
            Tag::from_slice(tag),
        )
        .ok()
        .map(|()| buf)
}

#[test]
fn field_arithmetic_is_consistent() {
    let a = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
    assert_eq!(gf_mul(a, ONE), a);
    assert_eq!(gf_mul(a, gf_inv(a)), ONE);
    let b = 0xdead_beef_u128 << 64;
    assert_eq!(gf_mul(a, b), gf_mul(b, a));
}

/// Builds the malicious envelope: Alice's stanza wraps `dk_alice`, Bob's
/// wraps `dk_bob`; commitment, context tag and MAC are those of `honest`
/// (one of the two), and the body is one final chunk valid under both body
/// keys.
fn malicious_envelope(
    dk_alice: &DataKey,
    dk_bob: &DataKey,
    honest: &DataKey,
    alice: &RecipientSecretKey,
    bob: &RecipientSecretKey,
    context: &RecordContext,
) -> (Vec<u8>, [u8; 12], Vec<u8>) {
    let header = Header::seal(honest, context, 64, &[alice.public_key()], &mut OsRng).unwrap();
    let alice_stanza = Stanza::wrap(dk_alice, &alice.public_key(), 0, &mut OsRng).unwrap();
    let bob_stanza = Stanza::wrap(dk_bob, &bob.public_key(), 1, &mut OsRng).unwrap();
    let mut bytes = header.encode();
    bytes.truncate(86);
    bytes[7..11].copy_from_slice(&(88u32 + 2 * STANZA_LEN as u32 + 32).to_be_bytes());
    bytes.extend_from_slice(&2u16.to_be_bytes());
    alice_stanza.encode_into(&mut bytes);
    bob_stanza.encode_into(&mut bytes);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*honest.derive(&[LABEL_HEADER])).unwrap();
    mac.update(&bytes);
    bytes.extend_from_slice(&mac.finalize().into_bytes());

    let mut nonce = [0u8; 12];
    nonce[..7].copy_from_slice(header.nonce_prefix());
    nonce[11] = 1; // chunk 0, final
    let mut aad = header.commitment().as_bytes().to_vec();
    aad.extend_from_slice(context.digest().as_bytes());
    let body = dual_key_ciphertext(
        &dk_alice.derive(&[LABEL_BODY]),
        &dk_bob.derive(&[LABEL_BODY]),
        &nonce,
        &aad,
    );
    bytes.extend_from_slice(&body);
    (bytes, nonce, aad)
}

#[test]
fn dual_key_body_is_rejected_by_the_key_commitment() {
    let context = RecordContext::new("rec-1", "patient-1", 1, "text/plain").unwrap();
    let alice = RecipientSecretKey::generate();
    let bob = RecipientSecretKey::generate();
    let dk_alice = DataKey::from_bytes([0x11; 32]);
    let dk_bob = DataKey::from_bytes([0x22; 32]);

    for honest_is_alice in [true, false] {
        let honest = DataKey::from_bytes(if honest_is_alice {
            [0x11; 32]
        } else {
            [0x22; 32]
        });
        let (envelope, nonce, aad) =
            malicious_envelope(&dk_alice, &dk_bob, &honest, &alice, &bob, &context);
        let (_, body) = Header::parse_prefix(&envelope).unwrap();

        // The attack is real: at the raw AES-GCM level the same body bytes
        // authenticate under both body keys, to two different plaintexts.
        let as_alice = raw_open(&dk_alice.derive(&[LABEL_BODY]), &nonce, &aad, body).unwrap();
        let as_bob = raw_open(&dk_bob.derive(&[LABEL_BODY]), &nonce, &aad, body).unwrap();
        assert_ne!(as_alice, as_bob);

        // The envelope accepts it for at most the recipient whose data key
        // the header commits to; the other is refused before any chunk.
        let alice_result = open(&envelope, &context, &alice);
        let bob_result = open(&envelope, &context, &bob);
        if honest_is_alice {
            assert_eq!(alice_result.unwrap(), as_alice);
            assert!(
                matches!(bob_result, Err(Error::KeyCommitmentMismatch)),
                "{bob_result:?}"
            );
        } else {
            assert_eq!(bob_result.unwrap(), as_bob);
            assert!(
                matches!(alice_result, Err(Error::KeyCommitmentMismatch)),
                "{alice_result:?}"
            );
        }
    }
}
