// Fuzz body for the medledger-envelope streaming decryptor, with a fixed
// recipient key and context. First byte 0: the input is a whole envelope.
// Otherwise: the input after the first byte is the body behind a fixed,
// valid header (chunk size 16) whose data key is unwrapped once, so the
// fuzzer works on the chunk state machine at full speed. Shared by
// fuzz_targets/envelope_stream.rs and the crate's tests/fuzz_corpus.rs.
use std::io::Read;
use std::sync::OnceLock;

use medledger_envelope::{
    open, seal_with, DataKey, Decryptor, Error, Header, RecipientSecretKey, RecordContext,
    SealOptions,
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

/// The fixed header and its data key, computed once per process so body
/// inputs cost no X25519 operation.
fn fixed() -> &'static (Vec<u8>, DataKey) {
    static FIXED: OnceLock<(Vec<u8>, DataKey)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let env = fuzz_envelope(b"");
        let (header, _) = Header::parse_prefix(&env).expect("own header parses");
        let dk = header
            .unwrap_data_key(&fuzz_key(), &fuzz_context())
            .expect("own header opens");
        (env[..header.encoded_len()].to_vec(), dk)
    })
}

/// Reads a decryptor to its end in 5-byte reads.
fn read_all(dec: Result<Decryptor<&[u8]>, Error>) -> Result<Vec<u8>, Error> {
    let mut dec = dec?;
    let mut out = Vec::new();
    let mut buf = [0u8; 5];
    loop {
        match dec.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(Error::from_io(e)),
        }
    }
}

/// Reads a decryptor chunk by chunk.
fn chunks_all(dec: Result<Decryptor<&[u8]>, Error>) -> Result<Vec<u8>, Error> {
    let mut dec = dec?;
    let mut out = Vec::new();
    while let Some(chunk) = dec.next_chunk()? {
        out.extend_from_slice(chunk);
    }
    Ok(out)
}

pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ctx = fuzz_context();
    let (via_read, via_chunks, input_len) = if mode == 0 {
        // A whole envelope: the one-shot path and the Read path must agree.
        let key = fuzz_key();
        (
            read_all(Decryptor::new(rest, &ctx, &key)),
            open(rest, &ctx, &key),
            rest.len(),
        )
    } else {
        // A body behind the fixed header: Read and next_chunk must agree.
        let (header_bytes, dk) = fixed();
        let header = Header::parse(header_bytes).expect("fixed header parses");
        (
            read_all(Decryptor::with_data_key(rest, header.clone(), dk, &ctx)),
            chunks_all(Decryptor::with_data_key(rest, header, dk, &ctx)),
            rest.len(),
        )
    };
    match (via_read, via_chunks) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            assert!(a.len() < input_len.max(1));
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!(
            "decryption paths disagree: {:?} vs {:?}",
            a.map(|p| p.len()),
            b.map(|p| p.len())
        ),
    }
}
