//! Base64 (RFC 4648 §4, standard alphabet, padded) for the export's
//! binary values, through `base64-simd`.
//!
//! `base64-simd` decodes several times faster than the scalar `base64`
//! crate, which was about a quarter of `verify_export`'s time (README,
//! benchmarks), and it is as strict: only the standard alphabet, canonical
//! padding, zero trailing bits, no whitespace, so every byte string has
//! exactly one accepted spelling. The tests below check that it accepts
//! and refuses exactly what `base64` does.

/// Canonical padded base64 of `raw`.
pub(crate) fn encode_base64(raw: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(raw)
}

/// Decodes canonical padded base64 into `out` (replacing its contents,
/// reusing its allocation). The output is never longer than the input.
pub(crate) fn decode_base64(b64: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    out.clear();
    append_base64(b64, out)
}

/// Decodes canonical padded base64 onto the end of `out`.
pub(crate) fn append_base64(b64: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    base64_simd::STANDARD
        .decode_append(b64, out)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use proptest::prelude::*;

    fn decode(b64: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![9; 3];
        decode_base64(b64, &mut out).ok().map(|()| out)
    }

    proptest! {
        /// Same text as the `base64` crate, and it decodes back.
        #[test]
        fn encodes_as_base64_does(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let text = encode_base64(&raw);
            prop_assert_eq!(&text, &STANDARD.encode(&raw));
            prop_assert_eq!(decode(text.as_bytes()), Some(raw));
        }

        /// Any change to a valid text (a byte replaced, inserted or
        /// removed) is accepted or refused exactly as `base64` does.
        #[test]
        fn accepts_exactly_what_base64_accepts(
            raw in proptest::collection::vec(any::<u8>(), 0..64),
            at in any::<usize>(),
            byte in prop_oneof![Just(b'='), Just(b'A'), Just(b'/'), Just(b' '), Just(b'\n'), any::<u8>()],
            how in 0u8..3,
        ) {
            let mut text = STANDARD.encode(&raw).into_bytes();
            let at = at % (text.len() + 1);
            match how {
                0 if at < text.len() => text[at] = byte,
                1 => text.insert(at, byte),
                _ if at < text.len() => {
                    text.remove(at);
                }
                _ => {}
            }
            prop_assert_eq!(decode(&text), STANDARD.decode(&text).ok());
        }
    }

    #[test]
    fn refuses_non_canonical_spellings() {
        for bad in [
            &b"QR=="[..],
            b"QUJ=",
            b"QQ=",
            b"QQ",
            b"Q===",
            b"QUJD\n",
            b" QUJD",
            b"QUJD====",
            b"QU=D",
            b"====",
            b"QUJD\r\n",
            b"QUJD-_==",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
            assert!(STANDARD.decode(bad).is_err());
        }
        assert_eq!(decode(b"QQ=="), Some(b"A".to_vec()));
        assert_eq!(decode(b""), Some(Vec::new()));
        let mut out = b"x".to_vec();
        append_base64(b"QUI=", &mut out).unwrap();
        assert_eq!(out, b"xAB");
    }
}
