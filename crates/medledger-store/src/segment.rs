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

/// Bytes read at a time by the tail scan (its whole buffer, with 19 bytes
/// carried over between reads).
const TAIL_CHUNK: usize = 64 << 10;

/// Most candidate frames (checksum-valid headers whose payload is still
/// being read) the tail scan follows at once. Each costs one pass of its
/// payload through a CRC, so the scan reads every byte once and hashes it
/// at most this many times. Real tails never come near it: a stray header
/// checksum matches with probability 2^-32 per byte, and frames the log
/// wrote do not overlap.
const MAX_OPEN_CANDIDATES: usize = 16;

/// The corruption reason when the tail scan gives up on overlapping
/// candidates.
const TOO_MANY_CANDIDATES: &str = "too many overlapping frame headers after the damage";

/// What the bytes after a failing frame hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TailVerdict {
    /// No complete, checksum-valid frame starts anywhere: a torn tail.
    NoValidFrame,
    /// A complete, checksum-valid frame starts somewhere: data written
    /// after the damage, so the damage is corruption.
    ValidFrame,
    /// More than [`MAX_OPEN_CANDIDATES`] overlapping frame headers pass
    /// their checksum: no torn write produces that, so the damage is
    /// corruption (and nothing is cut).
    TooManyCandidates,
}

/// A checksum-valid frame header whose payload the tail scan is hashing.
struct Candidate {
    /// Stream position of the next payload byte to hash.
    next: u64,
    /// Payload bytes still to hash.
    left: u64,
    payload_crc: u32,
    hasher: crc32fast::Hasher,
}

/// Feeds every open candidate the bytes it needs from `window` (stream
/// positions `base..base + window.len()`), drops those whose payload is
/// complete and reports whether one of them matched its checksum.
fn feed_candidates(open: &mut Vec<Candidate>, window: &[u8], base: u64) -> bool {
    let mut found = false;
    open.retain_mut(|c| {
        let from = usize::try_from(c.next.saturating_sub(base)).unwrap_or(usize::MAX);
        let avail = window.get(from..).unwrap_or_default();
        let n = usize::try_from(c.left).map_or(avail.len(), |l| l.min(avail.len()));
        c.hasher.update(avail.get(..n).unwrap_or_default());
        c.next += n as u64;
        c.left -= n as u64;
        if c.left > 0 {
            return true;
        }
        found |= c.hasher.clone().finalize() == c.payload_crc;
        false
    });
    found
}

/// Whether a complete, checksum-valid frame starts anywhere in `head`
/// followed by what `rest` yields (at most `avail` bytes in all). Used to
/// tell a torn tail (nothing valid after the damage) from corruption
/// (acknowledged frames follow it).
///
/// One pass with a fixed buffer of `chunk` bytes (plus a 19-byte carry):
/// every position is tried as a frame header, and each header that passes
/// its checksum becomes a candidate whose payload CRC is computed as the
/// bytes stream past, so time is linear in the tail and memory bounded by
/// [`MAX_OPEN_CANDIDATES`].
fn scan_tail<R: Read>(
    head: &[u8],
    rest: R,
    avail: u64,
    chunk: usize,
) -> std::io::Result<TailVerdict> {
    let mut input = head.chain(rest);
    let carry = FRAME_HEADER_LEN - 1;
    let mut buf = vec![0u8; chunk.max(1) + carry];
    let mut open: Vec<Candidate> = Vec::new();
    // Stream position of buf[0], and bytes of buf filled.
    let (mut base, mut filled) = (0u64, 0usize);
    let mut eof = false;
    while !eof {
        while filled < buf.len() {
            let n = input.read(buf.get_mut(filled..).unwrap_or_default())?;
            if n == 0 {
                eof = true;
                break;
            }
            filled += n;
        }
        let window = buf.get(..filled).unwrap_or_default();
        // Positions whose whole header is in the window; at the end of
        // the stream that is every position a header fits.
        let last_start = filled.saturating_sub(FRAME_HEADER_LEN);
        let starts = if filled < FRAME_HEADER_LEN {
            0
        } else if eof {
            last_start + 1
        } else {
            filled - carry
        };
        for p in 0..starts {
            let Some(h) = window.get(p..p + FRAME_HEADER_LEN) else {
                break;
            };
            if h.get(3).is_some_and(|&b| b > 1) || h.iter().all(|&b| b == 0) {
                // Length over MAX_ENTRY_LEN, or zeros (whose checksum is
                // not zero): no header, without hashing.
                continue;
            }
            let Ok(fh) = parse_frame_header(h) else {
                continue;
            };
            let payload_at = base + (p + FRAME_HEADER_LEN) as u64;
            if payload_at + fh.len as u64 > avail {
                continue;
            }
            if fh.len == 0 {
                if fh.payload_crc == crc32fast::hash(&[]) {
                    return Ok(TailVerdict::ValidFrame);
                }
                continue;
            }
            if open.len() >= MAX_OPEN_CANDIDATES {
                if feed_candidates(&mut open, window, base) {
                    return Ok(TailVerdict::ValidFrame);
                }
                if open.len() >= MAX_OPEN_CANDIDATES {
                    return Ok(TailVerdict::TooManyCandidates);
                }
            }
            open.push(Candidate {
                next: payload_at,
                left: fh.len as u64,
                payload_crc: fh.payload_crc,
                hasher: crc32fast::Hasher::new(),
            });
        }
        if feed_candidates(&mut open, window, base) {
            return Ok(TailVerdict::ValidFrame);
        }
        // Keep the bytes of headers not tried yet.
        let keep = filled - starts.min(filled);
        buf.copy_within(starts..filled, 0);
        base += starts as u64;
        filled = keep;
    }
    Ok(TailVerdict::NoValidFrame)
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
        if !last {
            return Err(corrupt(0, reason));
        }
        let head = if header_read { &h[..] } else { &[][..] };
        let rest = file_len
            .saturating_sub(head.len() as u64)
            .min(MAX_SCAN_TAIL);
        let avail = head.len() as u64 + rest;
        return match scan_tail(head, r.take(rest), avail, TAIL_CHUNK).map_err(read_err)? {
            TailVerdict::NoValidFrame => {
                out.torn = Some(reason);
                Ok(out)
            }
            TailVerdict::ValidFrame => Err(corrupt(0, reason)),
            TailVerdict::TooManyCandidates => Err(corrupt(0, TOO_MANY_CANDIDATES)),
        };
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
            if !last {
                return Err(corrupt(offset, reason));
            }
            // Everything from one byte past the failing frame's start: if an
            // intact frame hides in it, acknowledged data follows the damage.
            let head = frame.get(1..).unwrap_or_default();
            let read = offset + frame.len() as u64;
            let rest = file_len.saturating_sub(read).min(MAX_SCAN_TAIL);
            let avail = head.len() as u64 + rest;
            return match scan_tail(head, (&mut r).take(rest), avail, TAIL_CHUNK)
                .map_err(read_err)?
            {
                TailVerdict::NoValidFrame => {
                    out.torn = Some(reason);
                    out.valid_len = offset;
                    Ok(out)
                }
                TailVerdict::ValidFrame => Err(corrupt(offset, reason)),
                TailVerdict::TooManyCandidates => Err(corrupt(offset, TOO_MANY_CANDIDATES)),
            };
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

    /// The predicate the tail scan computes, the obvious quadratic way:
    /// whether a complete, checksum-valid frame starts anywhere in `rest`.
    fn reference_holds_valid_frame(rest: &[u8]) -> bool {
        (0..rest.len()).any(|p| {
            let Ok(fh) = parse_frame_header(&rest[p..]) else {
                return false;
            };
            rest.get(p + FRAME_HEADER_LEN..p + FRAME_HEADER_LEN + fh.len)
                .is_some_and(|payload| crc32fast::hash(payload) == fh.payload_crc)
        })
    }

    /// A frame header claiming `len` payload bytes with checksum `crc`.
    fn header(len: u32, index: u64, crc: u32) -> [u8; FRAME_HEADER_LEN] {
        let mut h = [0u8; FRAME_HEADER_LEN];
        write_frame_header(&mut h, len, index, crc);
        h
    }

    /// A last segment holding entry 0, then a frame whose payload fails its
    /// checksum, then `tail`.
    fn damaged_segment(tail: &[u8]) -> Vec<u8> {
        let mut s = segment(&[b"ok".to_vec()], 0);
        let mut bad = Vec::new();
        encode_frame(1, b"payload", &mut bad);
        *bad.last_mut().unwrap() ^= 1;
        s.extend_from_slice(&bad);
        s.extend_from_slice(tail);
        s
    }

    /// A crafted 2 MiB tail with a checksum-valid header every 20 bytes,
    /// each claiming a payload that runs to the end of the file with a
    /// wrong checksum. Hashing each claimed payload from the start (as the
    /// scan did) costs about 100 GB of CRC; the streaming scan stops after
    /// the 17th overlapping header and reports corruption, cutting nothing.
    #[test]
    fn overlapping_crafted_headers_are_corruption_found_in_one_pass() {
        let n = (2 << 20) / FRAME_HEADER_LEN;
        let mut tail = Vec::with_capacity(n * FRAME_HEADER_LEN);
        for i in 0..n {
            let len = ((n - i - 1) * FRAME_HEADER_LEN) as u32;
            tail.extend_from_slice(&header(len, 2, 0xdead_beef));
        }
        let s = damaged_segment(&tail);
        let started = std::time::Instant::now();
        assert!(matches!(
            inspect_segment(&s, 0, true),
            Err(Error::SegmentCorrupt {
                offset: 46,
                reason: TOO_MANY_CANDIDATES,
                ..
            })
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Not the last segment: corruption without scanning.
        assert!(matches!(
            inspect_segment(&s, 0, false),
            Err(Error::SegmentCorrupt {
                offset: 46,
                reason: "payload checksum mismatch",
                ..
            })
        ));
    }

    /// Up to the cap, overlapping decoys are followed exactly: a valid
    /// frame behind them (even inside their claimed payloads) makes the
    /// damage corruption; without it the damage is a torn tail, cut at the
    /// damaged frame.
    #[test]
    fn decoys_up_to_the_cap_are_followed_exactly() {
        let mut valid = Vec::new();
        encode_frame(7, &[0x42; 300], &mut valid);
        let decoys = MAX_OPEN_CANDIDATES - 1;
        let mut tail = Vec::new();
        for i in 0..decoys {
            let len = ((decoys - i - 1) * FRAME_HEADER_LEN + valid.len() + 100) as u32;
            tail.extend_from_slice(&header(len, 2, 0x1234_5678));
        }
        let mut with_valid = tail.clone();
        with_valid.extend_from_slice(&valid);
        with_valid.extend_from_slice(&[0xee; 100]);
        assert!(reference_holds_valid_frame(&with_valid));
        assert!(matches!(
            inspect_segment(&damaged_segment(&with_valid), 0, true),
            Err(Error::SegmentCorrupt {
                offset: 46,
                reason: "payload checksum mismatch",
                ..
            })
        ));
        let mut without = tail;
        without.extend_from_slice(&vec![0xee; valid.len() + 100]);
        assert!(!reference_holds_valid_frame(&without));
        let scan = inspect_segment(&damaged_segment(&without), 0, true).unwrap();
        assert_eq!(
            (scan.offsets, scan.valid_len, scan.torn),
            (vec![24], 46, Some("payload checksum mismatch"))
        );
    }

    /// A zero-length frame is complete as soon as its header is.
    #[test]
    fn empty_frame_after_damage_is_found() {
        let mut tail = vec![0xee; 5];
        encode_frame(9, b"", &mut tail);
        let v = scan_tail(&[], tail.as_slice(), tail.len() as u64, 7).unwrap();
        assert_eq!(v, TailVerdict::ValidFrame);
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

        /// The streaming tail scan agrees with the quadratic reference on
        /// random bytes with planted valid and damaged frames, for any
        /// buffer size and any split between the bytes already read and
        /// the reader (unless it gives up on too many candidates).
        #[test]
        fn tail_scan_matches_the_reference(
            parts in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..40), 0u8..4), 0..8),
            chunk in 1usize..80,
            split in any::<usize>(),
        ) {
            let mut tail = Vec::new();
            for (bytes, kind) in parts {
                match kind {
                    0 => tail.extend_from_slice(&bytes),
                    1 => encode_frame(3, &bytes, &mut tail),
                    2 => {
                        let crc = crc32fast::hash(&bytes) ^ 1;
                        tail.extend_from_slice(&header(bytes.len() as u32, 3, crc));
                        tail.extend_from_slice(&bytes);
                    }
                    _ => tail.extend_from_slice(&header(bytes.len() as u32 + 50, 3, 0)),
                }
            }
            let split = split % (tail.len() + 1);
            let (head, rest) = tail.split_at(split);
            let v = scan_tail(head, rest, tail.len() as u64, chunk).unwrap();
            if v != TailVerdict::TooManyCandidates {
                prop_assert_eq!(v == TailVerdict::ValidFrame, reference_holds_valid_frame(&tail));
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
