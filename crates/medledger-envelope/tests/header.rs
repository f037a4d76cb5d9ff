//! Strict, bounded header parsing through the public API.

mod common;

use common::{context, key, sealed};
use medledger_envelope::{Error, Header, MAX_HEADER_LEN, MAX_RECIPIENTS};
use proptest::prelude::*;

fn sample_header(recipients: u64) -> Vec<u8> {
    let keys: Vec<_> = (0..recipients).map(|i| key(100 + i).public_key()).collect();
    let (_, env) = sealed(0, 16, &keys, &context("rec-h"), recipients);
    let (header, _) = Header::parse_prefix(&env).unwrap();
    env[..header.encoded_len()].to_vec()
}

#[test]
fn layout_matches_the_documentation() {
    let bytes = sample_header(2);
    assert_eq!(&bytes[..5], b"MLENV");
    assert_eq!(bytes[5], 1);
    assert_eq!(bytes[6], 1);
    assert_eq!(
        u32::from_be_bytes(bytes[7..11].try_into().unwrap()),
        120 + 2 * 96
    );
    assert_eq!(bytes.len(), 120 + 2 * 96);
    assert_eq!(u32::from_be_bytes(bytes[11..15].try_into().unwrap()), 16);
    assert_eq!(u16::from_be_bytes(bytes[86..88].try_into().unwrap()), 2);
    let header = Header::parse(&bytes).unwrap();
    assert_eq!(&bytes[15..22], header.nonce_prefix());
    assert_eq!(&bytes[22..54], header.commitment().as_bytes());
    assert_eq!(&bytes[88..104], key(100).public_key().key_id().as_bytes());
    assert_eq!(header.encode(), bytes);
}

#[test]
fn unknown_version_and_suite_are_named() {
    let mut bytes = sample_header(1);
    bytes[5] = 2;
    assert!(matches!(
        Header::parse(&bytes),
        Err(Error::UnknownVersion(2))
    ));
    let mut bytes = sample_header(1);
    bytes[6] = 7;
    assert!(matches!(
        Header::parse(&bytes),
        Err(Error::UnknownAlgorithm(7))
    ));
    let mut bytes = sample_header(1);
    bytes[0] = b'X';
    assert!(matches!(
        Header::parse(&bytes),
        Err(Error::BadHeader { what: "bad magic" })
    ));
}

#[test]
fn caps_on_size_and_recipients_are_enforced() {
    let mut bytes = sample_header(1);
    bytes[7..11].copy_from_slice(&(MAX_HEADER_LEN as u32 + 1).to_be_bytes());
    assert!(matches!(
        Header::parse_prefix(&bytes),
        Err(Error::HeaderTooLarge { .. })
    ));
    bytes[7..11].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Header::read_from(&mut bytes.as_slice()),
        Err(Error::HeaderTooLarge { .. })
    ));

    let mut bytes = sample_header(1);
    bytes[86..88].copy_from_slice(&(MAX_RECIPIENTS as u16 + 1).to_be_bytes());
    assert!(matches!(
        Header::parse(&bytes),
        Err(Error::TooManyRecipients { .. })
    ));
    bytes[86..88].copy_from_slice(&0u16.to_be_bytes());
    assert!(matches!(Header::parse(&bytes), Err(Error::NoRecipients)));
    bytes[86..88].copy_from_slice(&2u16.to_be_bytes());
    assert!(matches!(
        Header::parse(&bytes),
        Err(Error::BadHeader { .. })
    ));

    let mut bytes = sample_header(1);
    bytes[11..15].copy_from_slice(&(2u32 << 20).to_be_bytes());
    assert!(matches!(Header::parse(&bytes), Err(Error::BadChunkSize(_))));

    let keys: Vec<_> = (0..=MAX_RECIPIENTS as u64)
        .map(|i| key(i).public_key())
        .collect();
    assert!(matches!(
        medledger_envelope::seal(b"", &context("r"), &keys),
        Err(Error::TooManyRecipients {
            count: 1025,
            max: 1024
        })
    ));
}

#[test]
fn duplicate_key_ids_and_trailing_bytes_are_refused() {
    let mut bytes = sample_header(2);
    let first: Vec<u8> = bytes[88..104].to_vec();
    bytes[184..200].copy_from_slice(&first);
    assert!(matches!(
        Header::parse(&bytes),
        Err(Error::BadHeader {
            what: "duplicate recipient key id"
        })
    ));
    let mut bytes = sample_header(1);
    bytes.push(0);
    assert!(Header::parse(&bytes).is_err());
    bytes.pop();
    bytes.pop();
    assert!(Header::parse(&bytes).is_err());
}

#[test]
fn the_largest_header_parses() {
    let keys: Vec<_> = (0..MAX_RECIPIENTS as u64)
        .map(|i| key(i).public_key())
        .collect();
    let env = medledger_envelope::seal(b"x", &context("r"), &keys).unwrap();
    let (header, _) = Header::parse_prefix(&env).unwrap();
    assert_eq!(header.encoded_len(), MAX_HEADER_LEN);
    assert_eq!(header.recipients().count(), MAX_RECIPIENTS);
}

#[test]
fn read_from_leaves_the_body_in_the_reader() {
    let (_, env) = sealed(40, 16, &[key(1).public_key()], &context("rec-read"), 1);
    let mut reader = env.as_slice();
    let header = Header::read_from(&mut reader).unwrap();
    assert_eq!(reader.len(), env.len() - header.encoded_len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn header_round_trips_and_rejects_truncation(n in 1u64..6, cut in any::<prop::sample::Index>()) {
        let bytes = sample_header(n);
        let header = Header::parse(&bytes).unwrap();
        prop_assert_eq!(header.encode(), bytes.clone());
        prop_assert_eq!(header.recipients().count() as u64, n);
        let k = cut.index(bytes.len());
        prop_assert!(Header::parse(&bytes[..k]).is_err());
        prop_assert!(Header::read_from(&mut &bytes[..k]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        // Whatever parses is canonical: it re-encodes to exactly the input.
        if let Ok(h) = Header::parse(&bytes) {
            prop_assert_eq!(h.encode(), bytes.clone());
        }
        if let Ok((h, body)) = Header::parse_prefix(&bytes) {
            prop_assert_eq!([h.encode().as_slice(), body].concat(), bytes.clone());
        }
        let mut framed = b"MLENV\x01\x01".to_vec();
        framed.extend_from_slice(&bytes);
        if let Ok((h, body)) = Header::parse_prefix(&framed) {
            prop_assert_eq!([h.encode().as_slice(), body].concat(), framed.clone());
            prop_assert_eq!(Header::parse(&h.encode()).unwrap(), h);
        }
    }

    #[test]
    fn any_header_mutation_changes_or_breaks_the_parse(
        n in 1u64..4,
        pos in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let bytes = sample_header(n);
        let mut bad = bytes.clone();
        let i = pos.index(bad.len());
        bad[i] ^= 1 << bit;
        if let Ok(h) = Header::parse(&bad) {
            prop_assert_eq!(h.encode(), bad);
            prop_assert_ne!(h, Header::parse(&bytes).unwrap());
        }
    }
}
