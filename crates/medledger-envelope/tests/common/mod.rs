//! Helpers shared by the integration tests: deterministic randomness and
//! envelope surgery by the documented byte layout.
#![allow(dead_code)]

use std::collections::VecDeque;

use medledger_envelope::{
    seal_with, Header, RecipientPublicKey, RecipientSecretKey, RecordContext, SealOptions,
};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

/// A deterministic RNG for tests: SHA-256 in counter mode over a seed.
/// Never use outside tests.
pub struct TestRng {
    seed: u64,
    counter: u64,
    pending: VecDeque<u8>,
}

impl TestRng {
    pub fn new(seed: u64) -> Self {
        TestRng {
            seed,
            counter: 0,
            pending: VecDeque::new(),
        }
    }
}

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.pending.is_empty() {
                let block = Sha256::new()
                    .chain_update(self.seed.to_be_bytes())
                    .chain_update(self.counter.to_be_bytes())
                    .finalize();
                self.counter += 1;
                self.pending.extend(block);
            }
            *byte = self.pending.pop_front().unwrap();
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

/// An RNG that hands out exactly the given bytes, then panics: makes the
/// randomness of a test vector explicit.
pub struct QueueRng(pub VecDeque<u8>);

impl QueueRng {
    pub fn new(parts: &[&[u8]]) -> Self {
        QueueRng(parts.iter().flat_map(|p| p.iter().copied()).collect())
    }
}

impl RngCore for QueueRng {
    fn next_u32(&mut self) -> u32 {
        unimplemented!("the format draws only byte strings")
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!("the format draws only byte strings")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            *byte = self
                .0
                .pop_front()
                .expect("test vector randomness exhausted");
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for QueueRng {}

pub fn context(record: &str) -> RecordContext {
    RecordContext::new(record, "patient-0001", 3, "application/octet-stream").unwrap()
}

pub fn key(seed: u64) -> RecipientSecretKey {
    RecipientSecretKey::generate_with_rng(&mut TestRng::new(seed))
}

/// Seals `len` bytes of pattern data with small chunks, deterministically.
pub fn sealed(
    len: usize,
    chunk_size: u32,
    recipients: &[RecipientPublicKey],
    ctx: &RecordContext,
    seed: u64,
) -> (Vec<u8>, Vec<u8>) {
    let plain = pattern(len);
    let opts = SealOptions::with_chunk_size(chunk_size).unwrap();
    let env = seal_with(&plain, ctx, recipients, opts, &mut TestRng::new(seed)).unwrap();
    (plain, env)
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Splits an envelope into header bytes and sealed chunks of `chunk_size + 16`.
pub fn split(env: &[u8], chunk_size: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (header, body) = Header::parse_prefix(env).unwrap();
    let header_bytes = env[..header.encoded_len()].to_vec();
    let chunks = body.chunks(chunk_size + 16).map(<[u8]>::to_vec).collect();
    (header_bytes, chunks)
}

pub fn join(header: &[u8], chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = header.to_vec();
    for c in chunks {
        out.extend_from_slice(c);
    }
    out
}
