// Fuzz body for the medledger-envelope streaming decryptor, with a fixed
// recipient key and context. First byte 0: the input is a whole envelope.
// Otherwise: the input after the first byte is the body behind a fixed,
// valid header (chunk size 16), so the fuzzer works on the chunk state
// machine instead of the header MAC. Shared by
// fuzz_targets/envelope_stream.rs and the crate's tests/fuzz_corpus.rs.
use std::io::Read;

use medledger_envelope::{
    open, seal_with, Decryptor, Header, RecipientSecretKey, RecordContext, SealOptions,
};

/// Deterministic bytes for the fixed header (fuzzing only).
struct FixedRng(u8);

impl rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        u32::from(self.0)
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.0)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self.0.wrapping_mul(5).wrapping_add(17);
            *b = self.0;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for FixedRng {}

pub fn fuzz_key() -> RecipientSecretKey {
    RecipientSecretKey::from_bytes([7; 32])
}

pub fn fuzz_context() -> RecordContext {
    RecordContext::new("fuzz-record", "fuzz-patient", 1, "application/octet-stream")
        .expect("fixed context is valid")
}

/// Seals `plaintext` behind the fixed header's data key (used for seeds).
pub fn fuzz_envelope(plaintext: &[u8]) -> Vec<u8> {
    let options = SealOptions::with_chunk_size(16).expect("valid chunk size");
    seal_with(
        plaintext,
        &fuzz_context(),
        &[fuzz_key().public_key()],
        options,
        &mut FixedRng(1),
    )
    .expect("sealing with fixed inputs works")
}

fn fixed_header() -> Vec<u8> {
    let env = fuzz_envelope(b"");
    let (header, _) = Header::parse_prefix(&env).expect("own header parses");
    env[..header.encoded_len()].to_vec()
}

pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let envelope = if mode == 0 {
        rest.to_vec()
    } else {
        let mut env = fixed_header();
        env.extend_from_slice(rest);
        env
    };
    let key = fuzz_key();
    let ctx = fuzz_context();

    // The Read path (small reads) and the one-shot path must agree.
    let one_shot = open(&envelope, &ctx, &key);
    let streamed = Decryptor::new(envelope.as_slice(), &ctx, &key).and_then(|mut dec| {
        let mut out = Vec::new();
        let mut buf = [0u8; 5];
        loop {
            match dec.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return Err(medledger_envelope::Error::from_io(e)),
            }
        }
    });
    match (one_shot, streamed) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            assert!(a.len() < envelope.len());
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!(
            "one-shot and streaming disagree: {:?} vs {:?}",
            a.map(|p| p.len()),
            b.map(|p| p.len())
        ),
    }
}
