//! The byte format of log segment files, and the scanner that validates one.
//!
//! A segment file is a 24-byte header followed by frames, one per entry:
//!
//! ```text
//! header  off len field
//!           0   8 magic "MLEDLOG\0"
//!           8   2 format version, u16 LE (1)
//!          10   2 reserved, zero
//!          12   8 index of the segment's first entry, u64 LE
//!          20   4 CRC-32 (IEEE) of bytes 0..20, u32 LE
//! frame   off len field
//!           0   4 payload length, u32 LE (at most MAX_ENTRY_LEN)
//!           4   8 the entry's index in the log, u64 LE
//!          12   4 CRC-32 of the payload, u32 LE
//!          16   4 CRC-32 of frame bytes 0..16, u32 LE
//!          20   n payload
//! ```
//!
//! The header checksum protects the length, so a damaged length is caught
//! before it is used; the index catches a frame that is intact but in the
//! wrong place (a misdirected write, a segment copied from another log).

use std::io::Read;

use crate::error::{Error, Result};

/// Largest entry the log accepts: 16 MiB. Entries are commitments, grants
/// and audit events; ciphertexts go to the blob store.
pub const MAX_ENTRY_LEN: usize = 16 << 20;

/// Magic bytes opening every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"MLEDLOG\0";
/// The segment format version this build writes and reads.
pub const SEGMENT_VERSION: u16 = 1;
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 24;
/// Length of a frame header.
pub const FRAME_HEADER_LEN: usize = 20;

/// The header of a segment whose first entry has index `first_index`.
pub fn encode_segment_header(first_index: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Appends the frame of entry `index` holding `payload` to `out`.
///
/// The caller has checked `payload.len() <= MAX_ENTRY_LEN`.
pub fn encode_frame(index: u64, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    out.extend_from_slice(payload);
    let payload_crc = crc32fast::hash(payload);
    if let Some(h) = out.get_mut(start..start + FRAME_HEADER_LEN) {
        write_frame_header(h, payload.len() as u32, index, payload_crc);
    }
}

/// Fills a frame header; `h` is exactly [`FRAME_HEADER_LEN`] bytes.
pub(crate) fn write_frame_header(h: &mut [u8], len: u32, index: u64, payload_crc: u32) {
    let mut raw = [0u8; FRAME_HEADER_LEN];
    raw[..4].copy_from_slice(&len.to_le_bytes());
    raw[4..12].copy_from_slice(&index.to_le_bytes());
    raw[12..16].copy_from_slice(&payload_crc.to_le_bytes());
    let crc = crc32fast::hash(&raw[..16]);
    raw[16..].copy_from_slice(&crc.to_le_bytes());
    if h.len() == FRAME_HEADER_LEN {
        h.copy_from_slice(&raw);
    }
}

/// A frame header whose own checksum holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub len: usize,
    pub index: u64,
    pub payload_crc: u32,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

/// Parses a frame header, `Err(reason)` if it fails its checksum or bounds.
pub(crate) fn parse_frame_header(h: &[u8]) -> Result<FrameHeader, &'static str> {
    let Some(body) = h.get(..16) else {
        return Err("truncated frame header");
    };
    if h.len() < FRAME_HEADER_LEN || crc32fast::hash(body) != le_u32(h, 16) {
        return Err("frame header checksum mismatch");
    }
    let len = le_u32(h, 0) as usize;
    if len > MAX_ENTRY_LEN {
        return Err("frame length over the maximum");
    }
    Ok(FrameHeader {
        len,
        index: le_u64(h, 4),
        payload_crc: le_u32(h, 12),
    })
}

/// Checks one whole frame (`bytes` is exactly header and payload) and
/// returns its payload.
pub(crate) fn check_frame(bytes: &[u8], index: u64) -> Result<&[u8], &'static str> {
    let (h, payload) = bytes
        .split_at_checked(FRAME_HEADER_LEN)
        .ok_or("truncated frame header")?;
    let fh = parse_frame_header(h)?;
    if fh.len != payload.len() {
        return Err("frame length does not match the index");
    }
    if fh.index != index {
        return Err("frame holds another entry index");
    }
    if crc32fast::hash(payload) != fh.payload_crc {
        return Err("payload checksum mismatch");
    }
    Ok(payload)
}

/// Most bytes read after a failing frame when deciding whether the damage
/// is a torn tail: 1 GiB, beyond any segment this crate writes.
const MAX_SCAN_TAIL: u64 = 1 << 30;

/// Whether a complete, checksum-valid frame starts anywhere in `rest`.
/// Used to tell a torn tail (nothing valid after the damage) from
/// corruption (acknowledged frames follow it).
fn holds_valid_frame(rest: &[u8]) -> bool {
    (0..rest.len()).any(|p| {
        let Some(tail) = rest.get(p..) else {
            return false;
        };
        let Ok(fh) = parse_frame_header(tail) else {
            return false;
        };
        tail.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + fh.len)
            .is_some_and(|payload| crc32fast::hash(payload) == fh.payload_crc)
    })
}

/// What scanning one segment found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// Index of the segment's first entry (from its header, or the expected
    /// index if the header itself was torn).
    pub first_index: u64,
    /// Byte offset of every intact frame, in order.
    pub offsets: Vec<u64>,
    /// End of the last intact frame: the length the file is cut to.
    pub valid_len: u64,
    /// Why the bytes after `valid_len` were dropped, if any were.
    pub torn: Option<&'static str>,
}

/// Scans a segment's bytes (`last`: whether it is the log's final segment,
/// the only place a torn tail may be). The format inspector behind
/// [`crate::SegmentLog`]'s recovery, exposed for tools and fuzzing.
pub fn inspect_segment(bytes: &[u8], expected_first: u64, last: bool) -> Result<SegmentScan> {
    scan(
        std::io::Cursor::new(bytes),
        bytes.len() as u64,
        "<memory>",
        expected_first,
        last,
    )
}

/// Scans a segment of `file_len` bytes read from `r`.
///
/// A failure in the final segment is a torn tail (cut, reported in
/// [`SegmentScan::torn`]) only if no checksum-valid frame follows it;
/// anywhere else it is [`Error::SegmentCorrupt`] naming `name` and the byte
/// offset. Nothing before a failure is dropped, and nothing after a failure
/// that could have been acknowledged is silently dropped either.
pub(crate) fn scan<R: Read>(
    r: R,
    file_len: u64,
    name: &str,
    expected_first: u64,
    last: bool,
) -> Result<SegmentScan> {
    let mut r = std::io::BufReader::with_capacity(1 << 16, r);
    let corrupt = |offset: u64, reason: &'static str| Error::SegmentCorrupt {
        segment: name.to_owned(),
        offset,
        reason,
    };
    let read_err = |source| Error::Io {
        op: "read segment",
        path: name.into(),
        source,
    };
    let mut out = SegmentScan {
        first_index: expected_first,
        offsets: Vec::new(),
        valid_len: 0,
        torn: None,
    };
    // Header.
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    let header_read = file_len >= SEGMENT_HEADER_LEN as u64;
    let header_problem = if !header_read {
        Some("truncated segment header")
    } else {
        r.read_exact(&mut h).map_err(read_err)?;
        let version = u16::from_le_bytes([h[8], h[9]]);
        if h[..8] != SEGMENT_MAGIC {
            Some("bad segment magic")
        } else if crc32fast::hash(&h[..20]) != le_u32(&h, 20) {
            Some("segment header checksum mismatch")
        } else if version > SEGMENT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "log segment",
                found: u32::from(version),
                supported: u32::from(SEGMENT_VERSION),
            });
        } else if version == 0 || h[10..12] != [0, 0] {
            Some("bad segment version")
        } else if le_u64(&h, 12) != expected_first {
            Some("segment first index does not follow the previous segment")
        } else {
            None
        }
    };
    if let Some(reason) = header_problem {
        let mut rest = Vec::new();
        r.take(MAX_SCAN_TAIL)
            .read_to_end(&mut rest)
            .map_err(read_err)?;
        let mut whole = if header_read { h.to_vec() } else { Vec::new() };
        whole.extend_from_slice(&rest);
        if last && !holds_valid_frame(&whole) {
            out.torn = Some(reason);
            return Ok(out);
        }
        return Err(corrupt(0, reason));
    }
    // Frames.
    let mut offset = SEGMENT_HEADER_LEN as u64;
    let mut frame = Vec::new();
    let mut index = expected_first;
    while offset < file_len {
        let rem = file_len - offset;
        frame.clear();
        let problem = if rem < FRAME_HEADER_LEN as u64 {
            Some("truncated frame header")
        } else {
            frame.resize(FRAME_HEADER_LEN, 0);
            r.read_exact(&mut frame).map_err(read_err)?;
            match parse_frame_header(&frame) {
                Err(reason) => Some(reason),
                Ok(fh) if fh.index != index => Some("frame holds another entry index"),
                Ok(fh) if (FRAME_HEADER_LEN + fh.len) as u64 > rem => Some("truncated frame"),
                Ok(fh) => {
                    frame.resize(FRAME_HEADER_LEN + fh.len, 0);
                    let payload = frame.get_mut(FRAME_HEADER_LEN..).unwrap_or_default();
                    r.read_exact(payload).map_err(read_err)?;
                    if crc32fast::hash(payload) != fh.payload_crc {
                        Some("payload checksum mismatch")
                    } else {
                        // An intact frame at index u64::MAX leaves no index
                        // for the next entry: corruption, never a torn tail.
                        index = index
                            .checked_add(1)
                            .ok_or_else(|| corrupt(offset, "entry index overflows u64"))?;
                        out.offsets.push(offset);
                        offset += frame.len() as u64;
                        None
                    }
                }
            }
        };
        if let Some(reason) = problem {
            // Everything from one byte past the failing frame's start: if an
            // intact frame hides in it, acknowledged data follows the damage.
            let mut tail = frame.get(1..).unwrap_or_default().to_vec();
            (&mut r)
                .take(MAX_SCAN_TAIL)
                .read_to_end(&mut tail)
                .map_err(read_err)?;
            if last && !holds_valid_frame(&tail) {
                out.torn = Some(reason);
                out.valid_len = offset;
                return Ok(out);
            }
            return Err(corrupt(offset, reason));
        }
    }
    out.valid_len = offset;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The vectors in the crate README (checked against Python's
    /// `zlib.crc32`).
    #[test]
    fn vectors() {
        assert_eq!(
            hex(&encode_segment_header(0)),
            "4d4c45444c4f4700010000000000000000000000491e7af9"
        );
        let mut f = Vec::new();
        encode_frame(0, b"abc", &mut f);
        assert_eq!(hex(&f), "030000000000000000000000c2412435581b34cf616263");
    }

    fn segment(entries: &[Vec<u8>], first: u64) -> Vec<u8> {
        let mut s = encode_segment_header(first).to_vec();
        for (i, e) in (first..).zip(entries) {
            encode_frame(i, e, &mut s);
        }
        s
    }

    /// A segment whose frame sits at index u64::MAX (a file named
    /// `18446744073709551615.seg`) is a typed error, not an overflow.
    #[test]
    fn frame_at_the_last_index_is_corrupt_not_an_overflow() {
        let mut s = encode_segment_header(u64::MAX).to_vec();
        encode_frame(u64::MAX, b"x", &mut s);
        for last in [false, true] {
            assert!(matches!(
                inspect_segment(&s, u64::MAX, last),
                Err(Error::SegmentCorrupt {
                    offset: 24,
                    reason: "entry index overflows u64",
                    ..
                })
            ));
        }
        let mut s = encode_segment_header(u64::MAX - 1).to_vec();
        encode_frame(u64::MAX - 1, b"x", &mut s);
        let ok = inspect_segment(&s, u64::MAX - 1, true).unwrap();
        assert_eq!(
            (ok.offsets, ok.valid_len, ok.torn),
            (vec![24], 24 + 21, None)
        );
    }

    #[test]
    fn empty_and_header_only() {
        let s = inspect_segment(&encode_segment_header(5), 5, false).unwrap();
        assert_eq!(
            (s.first_index, s.offsets.len(), s.valid_len, s.torn),
            (5, 0, 24, None)
        );
        assert!(inspect_segment(&encode_segment_header(5), 6, false).is_err());
        let torn = inspect_segment(&[], 0, true).unwrap();
        assert_eq!(torn.torn, Some("truncated segment header"));
        assert!(matches!(
            inspect_segment(&[], 0, false),
            Err(Error::SegmentCorrupt { offset: 0, .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(
            entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20),
            first in 0u64..1000,
        ) {
            let s = segment(&entries, first);
            let scan = inspect_segment(&s, first, false).unwrap();
            prop_assert_eq!(scan.offsets.len(), entries.len());
            prop_assert_eq!(scan.valid_len, s.len() as u64);
            for ((i, e), &o) in (first..).zip(&entries).zip(&scan.offsets) {
                let end = o as usize + FRAME_HEADER_LEN + e.len();
                prop_assert_eq!(check_frame(&s[o as usize..end], i).unwrap(), e.as_slice());
            }
        }

        /// Any single bit flip in a non-final segment is an error; in the
        /// final one it is an error or a torn tail, and every frame the
        /// scan keeps is one of the originals.
        #[test]
        fn any_bit_flip_is_caught(
            entries in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..10),
            bit in any::<usize>(),
            last in any::<bool>(),
        ) {
            let mut s = segment(&entries, 0);
            let bit = bit % (s.len() * 8);
            s[bit / 8] ^= 1 << (bit % 8);
            match inspect_segment(&s, 0, last) {
                Err(Error::SegmentCorrupt { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
                Ok(scan) => {
                    prop_assert!(last && scan.torn.is_some());
                    prop_assert!((scan.valid_len as usize) <= bit / 8);
                    for ((i, e), &o) in (0u64..).zip(&entries).zip(&scan.offsets) {
                        let end = o as usize + FRAME_HEADER_LEN + e.len();
                        prop_assert_eq!(check_frame(&s[o as usize..end], i).unwrap(), e.as_slice());
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), last in any::<bool>()) {
            // Behind a valid header too, so the frame parser sees the bytes.
            let mut behind_header = encode_segment_header(0).to_vec();
            behind_header.extend_from_slice(&bytes);
            for input in [bytes.clone(), behind_header] {
                if let Ok(scan) = inspect_segment(&input, 0, last) {
                    // A cut only in the last segment; otherwise every byte
                    // is accounted for by intact frames.
                    prop_assert!(last || scan.torn.is_none());
                    prop_assert!(scan.torn.is_some() || scan.valid_len == input.len() as u64);
                    prop_assert!(scan.valid_len <= input.len() as u64);
                    let ends = scan.offsets.iter().skip(1).copied().chain([scan.valid_len]);
                    for ((i, &o), end) in (0u64..).zip(&scan.offsets).zip(ends) {
                        prop_assert!(check_frame(&input[o as usize..end as usize], i).is_ok());
                    }
                }
            }
        }
    }
}
