//! Whole-envelope operations: one-shot sealing and opening for small
//! records, rewrapping (header only), and rotation (fresh data key).

use std::io::{Read, Write};
use zeroize::Zeroize as _;

use rand_core::{CryptoRng, OsRng, RngCore};

use crate::context::RecordContext;
use crate::error::{Error, Result};
use crate::header::Header;
use crate::keys::{KeyId, RecipientPublicKey, RecipientSecretKey};
use crate::stream::{decryptor_for, Decryptor, Encryptor, SealOptions};

/// Seals `plaintext` for `recipients` under `context` with a fresh data key
/// and 64 KiB chunks; returns header ‖ body.
pub fn seal(
    plaintext: &[u8],
    context: &RecordContext,
    recipients: &[RecipientPublicKey],
) -> Result<Vec<u8>> {
    seal_with(
        plaintext,
        context,
        recipients,
        SealOptions::default(),
        &mut OsRng,
    )
}

/// [`seal`] with explicit options and randomness (fixed RNGs: test vectors
/// only).
pub fn seal_with(
    plaintext: &[u8],
    context: &RecordContext,
    recipients: &[RecipientPublicKey],
    options: SealOptions,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(plaintext.len() + plaintext.len() / 1024 + 512);
    let mut enc = Encryptor::with_options(&mut out, context, recipients, options, rng)?;
    enc.write_plaintext(plaintext)?;
    enc.finish()?;
    Ok(out)
}

/// Opens an envelope held in memory. Either the whole body authenticates
/// and is returned, or an error is.
pub fn open(
    envelope: &[u8],
    context: &RecordContext,
    secret: &RecipientSecretKey,
) -> Result<Vec<u8>> {
    let mut dec = Decryptor::new(envelope, context, secret)?;
    // The body is never longer than the envelope, so `out` never
    // reallocates and leaves no unwiped copy behind.
    let mut out = Vec::with_capacity(envelope.len());
    if let Err(e) = dec.read_to_end(&mut out) {
        // Earlier chunks authenticated before a later one failed: wipe them
        // rather than free plaintext of a record that did not open.
        out.zeroize();
        return Err(Error::from_io(e));
    }
    Ok(out)
}

/// The envelope with its header rewrapped for exactly `recipients`, opened
/// with `secret` (a current recipient). The body bytes are copied
/// unchanged.
pub fn rewrap(
    envelope: &[u8],
    context: &RecordContext,
    secret: &RecipientSecretKey,
    recipients: &[RecipientPublicKey],
) -> Result<Vec<u8>> {
    let (header, body) = Header::parse_prefix(envelope)?;
    let dk = header.unwrap_data_key(secret, context)?;
    let new_header = header.rewrap(&dk, recipients)?;
    let mut out = new_header.encode();
    out.extend_from_slice(body);
    Ok(out)
}

/// The envelope with the stanzas of `removed` dropped (body unchanged).
/// The removed recipients can no longer unwrap the key from *this* header;
/// to stop them reading future versions, [`rotate`].
pub fn remove_recipients(
    envelope: &[u8],
    context: &RecordContext,
    secret: &RecipientSecretKey,
    removed: &[KeyId],
) -> Result<Vec<u8>> {
    let (header, body) = Header::parse_prefix(envelope)?;
    let dk = header.unwrap_data_key(secret, context)?;
    let mut out = header.remove_recipients(&dk, removed)?.encode();
    out.extend_from_slice(body);
    Ok(out)
}

/// Streaming rewrap: reads the header from `reader`, writes the rewrapped
/// header to `writer`, then copies the body bytes verbatim. Memory is
/// bounded by the header size; the body is not decrypted (nor checked).
pub fn rewrap_stream<R: Read, W: Write>(
    mut reader: R,
    mut writer: W,
    context: &RecordContext,
    secret: &RecipientSecretKey,
    recipients: &[RecipientPublicKey],
) -> Result<W> {
    let header = Header::read_from(&mut reader)?;
    let dk = header.unwrap_data_key(secret, context)?;
    writer.write_all(&header.rewrap(&dk, recipients)?.encode())?;
    std::io::copy(&mut reader, &mut writer)?;
    writer.flush()?;
    Ok(writer)
}

/// Rotation: decrypts the envelope read from `reader` (opened with
/// `secret` under `old_context`) and re-encrypts it under a fresh data key
/// and nonce prefix for `recipients` under `new_context`, streaming.
/// Nothing of the old data key survives in the output, so a recipient left
/// out cannot read it even with a data key they kept. Plaintext reaches the
/// new envelope only after each old chunk authenticates; if the old body
/// fails, an error is returned and the output must be discarded.
pub fn rotate<R: Read, W: Write>(
    mut reader: R,
    writer: W,
    old_context: &RecordContext,
    secret: &RecipientSecretKey,
    new_context: &RecordContext,
    recipients: &[RecipientPublicKey],
    options: SealOptions,
) -> Result<W> {
    let header = Header::read_from(&mut reader)?;
    let dk = header.unwrap_data_key(secret, old_context)?;
    let mut dec = decryptor_for(reader, header, &dk, old_context);
    drop(dk);
    let mut enc = Encryptor::with_options(writer, new_context, recipients, options, &mut OsRng)?;
    while let Some(plain) = dec.next_chunk()? {
        enc.write_plaintext(plain)?;
    }
    enc.finish()
}
