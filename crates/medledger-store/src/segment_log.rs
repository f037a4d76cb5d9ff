//! [`SegmentLog`]: the durable [`EntryLog`] in segment files, with group
//! commit.
//!
//! Appenders encode their frames outside the lock, then under it take the
//! next indexes, fill in the frame headers and copy the frames into one
//! shared pending buffer. Writing and durability are a leader/follower
//! protocol: the first appender that finds no `fdatasync` in flight becomes
//! the leader, writes the whole pending buffer (every appender's frames
//! since the last write) with one `pwrite` per segment it lands in,
//! releases the lock, syncs, and on return marks everything it wrote as
//! durable and wakes the followers. Appenders that arrive while a sync runs
//! stage their frames and wait for the next leader, so N concurrent
//! appenders cost about two writes and two syncs, not N of each.
//!
//! The index (byte offset of every frame) is rebuilt on open by scanning
//! every segment: a sequential read of the whole log (about 0.3 s per
//! million 256-byte entries on the dev VM; see the crate README) and 8 bytes
//! of memory per entry.

use core::ops::Range;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::entry_log::EntryLog;
use crate::error::{Error, Result};
use crate::segment::{
    check_frame, encode_segment_header, scan, write_frame_header, FRAME_HEADER_LEN, MAX_ENTRY_LEN,
    SEGMENT_HEADER_LEN,
};
use crate::sync_dir;

/// Tuning of a [`SegmentLog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment is closed and a new one started before a frame would make
    /// it exceed this many bytes (a single larger frame gets a segment of
    /// its own). Default 64 MiB.
    pub segment_size: u64,
    /// Share one fsync between concurrent appenders (default). Off, every
    /// append syncs on its own while holding the lock: the baseline the
    /// benchmarks compare against.
    pub group_commit: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_size: 64 << 20,
            group_commit: true,
        }
    }
}

/// A torn tail that recovery cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment file name.
    pub segment: String,
    /// Byte offset where the file was cut.
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes_dropped: u64,
    /// What failed at `offset`.
    pub reason: &'static str,
}

struct Segment {
    first_index: u64,
    name: String,
    file: Arc<File>,
    /// Byte offset of each frame.
    offsets: Vec<u64>,
    /// Bytes written to the file (header and frames).
    len: u64,
}

struct LogState {
    segments: Vec<Segment>,
    /// The next index to assign (entries staged or written).
    staged: u64,
    /// Frames staged but not yet written, headers filled in, in index
    /// order from `written`.
    pending: Vec<u8>,
    /// Length of each frame in `pending`.
    pending_lens: Vec<usize>,
    /// Entries written to the segment files.
    written: u64,
    /// Entries known durable.
    durable: u64,
    /// A leader is running fdatasync.
    syncing: bool,
    /// A write or sync failed: refuse appends until reopened.
    failed: bool,
    /// Segment writes issued (`pwrite` calls), for tests of the batching.
    writes: u64,
    /// `fdatasync` calls issued for appends.
    syncs: u64,
}

/// Largest pending buffer kept for reuse after a write; a larger one (a big
/// batch) is freed.
const PENDING_KEEP: usize = 1 << 20;

/// The durable entry log in segment files (see the module docs).
pub struct SegmentLog {
    dir: PathBuf,
    options: LogOptions,
    state: Mutex<LogState>,
    synced: Condvar,
}

impl std::fmt::Debug for SegmentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLog")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn segment_name(first_index: u64) -> String {
    format!("{first_index:020}.seg")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl SegmentLog {
    /// Opens (or creates) the log in `dir`, an existing directory the caller
    /// holds exclusively. Cuts a torn tail and reports it.
    pub(crate) fn open(dir: &Path, options: LogOptions) -> Result<(Self, Option<TornTail>)> {
        let mut names = Vec::new();
        for item in std::fs::read_dir(dir).map_err(Error::io("list log directory", dir))? {
            let item = item.map_err(Error::io("list log directory", dir))?;
            if let Some(first) = item.file_name().to_str().and_then(parse_segment_name) {
                names.push(first);
            }
        }
        names.sort_unstable();
        let mut segments: Vec<Segment> = Vec::with_capacity(names.len());
        let mut torn = None;
        // The log starts at entry 0 and nothing prunes it: a first segment
        // named anything else means the earlier segments are missing.
        let mut next = 0;
        let count = names.len();
        for (i, first) in names.into_iter().enumerate() {
            let name = segment_name(first);
            let path = dir.join(&name);
            let last = i + 1 == count;
            if first != next {
                return Err(Error::SegmentCorrupt {
                    segment: name,
                    offset: 0,
                    reason: "segment file name does not follow the previous segment",
                });
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(Error::io("open segment", &path))?;
            let file_len = file
                .metadata()
                .map_err(Error::io("stat segment", &path))?
                .len();
            let found = scan(&file, file_len, &name, first, last)?;
            if let Some(reason) = found.torn {
                torn = Some(TornTail {
                    segment: name.clone(),
                    offset: found.valid_len,
                    bytes_dropped: file_len - found.valid_len,
                    reason,
                });
                if found.valid_len < SEGMENT_HEADER_LEN as u64 {
                    // The header itself is torn: the segment was being
                    // created. Remove it; the previous one stays active.
                    drop(file);
                    std::fs::remove_file(&path).map_err(Error::io("remove torn segment", &path))?;
                    sync_dir(dir)?;
                    continue;
                }
                file.set_len(found.valid_len)
                    .map_err(Error::io("truncate torn segment", &path))?;
                file.sync_all().map_err(Error::io("fsync segment", &path))?;
            }
            next = first + found.offsets.len() as u64;
            segments.push(Segment {
                first_index: first,
                name,
                file: Arc::new(file),
                offsets: found.offsets,
                len: found.valid_len,
            });
        }
        if segments.is_empty() {
            segments.push(create_segment(dir, next)?);
        }
        let log = SegmentLog {
            dir: dir.to_owned(),
            options,
            state: Mutex::new(LogState {
                segments,
                staged: next,
                pending: Vec::new(),
                pending_lens: Vec::new(),
                written: next,
                durable: next,
                syncing: false,
                failed: false,
                writes: 0,
                syncs: 0,
            }),
            synced: Condvar::new(),
        };
        Ok((log, torn))
    }

    /// The options the log was opened with.
    pub fn options(&self) -> LogOptions {
        self.options
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock cannot leave the state
        // inconsistent in a way that matters: `failed` guards writes.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, LogState>) -> MutexGuard<'a, LogState> {
        self.synced.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// Gives `frames` (encoded in `buf` with placeholder headers) the next
    /// indexes, fills in their headers and adds them to the pending buffer
    /// the next leader writes. Returns the first index.
    fn stage(st: &mut LogState, mut buf: Vec<u8>, frames: &[PendingFrame]) -> Result<u64> {
        if st.failed {
            return Err(Error::LogFailed);
        }
        let first = st.staged;
        let mut index = first;
        for f in frames {
            if let Some(h) = buf.get_mut(f.start..f.start + FRAME_HEADER_LEN) {
                write_frame_header(h, (f.len - FRAME_HEADER_LEN) as u32, index, f.payload_crc);
            }
            index += 1;
            st.pending_lens.push(f.len);
        }
        if st.pending.is_empty() {
            st.pending = buf;
        } else {
            st.pending.extend_from_slice(&buf);
        }
        st.staged = index;
        Ok(first)
    }

    /// Writes every pending frame at the end of the log, one `pwrite` per
    /// segment the frames land in, rolling segments as needed.
    fn write_pending(&self, st: &mut LogState) -> Result<()> {
        if st.failed {
            return Err(Error::LogFailed);
        }
        let mut buf = std::mem::take(&mut st.pending);
        let mut lens = std::mem::take(&mut st.pending_lens);
        let mut at = 0usize;
        let mut pos = 0usize;
        while at < lens.len() {
            // How many of the remaining frames fit in the active segment.
            let seg_len = st.segments.last().map_or(0, |s| s.len);
            let seg_entries = st.segments.last().map_or(0, |s| s.offsets.len());
            let mut take = 0usize;
            let mut bytes = 0usize;
            for &flen in lens.get(at..).unwrap_or_default() {
                let would = seg_len + (bytes + flen) as u64;
                if would > self.options.segment_size && (seg_entries > 0 || take > 0) {
                    break;
                }
                bytes += flen;
                take += 1;
            }
            if take == 0 {
                self.roll(st)?;
                continue;
            }
            let bytes_out = buf.get(pos..pos + bytes).unwrap_or_default();
            st.writes += 1;
            let Some(seg) = st.segments.last_mut() else {
                st.failed = true;
                return Err(Error::LogFailed);
            };
            if let Err(source) = seg.file.write_all_at(bytes_out, seg.len) {
                st.failed = true;
                return Err(Error::Io {
                    op: "write segment",
                    path: self.dir.join(&seg.name),
                    source,
                });
            }
            for &flen in lens.get(at..at + take).unwrap_or_default() {
                seg.offsets.push(seg.len);
                seg.len += flen as u64;
            }
            st.written += take as u64;
            at += take;
            pos += bytes;
        }
        if st.pending.is_empty() && buf.capacity() <= PENDING_KEEP {
            buf.clear();
            lens.clear();
            st.pending = buf;
            st.pending_lens = lens;
        }
        Ok(())
    }

    /// Closes the active segment (synced) and starts a new one whose header
    /// and directory entry are durable before any entry goes into it.
    fn roll(&self, st: &mut LogState) -> Result<()> {
        // Only a leader writes, and never while a sync is in flight, so
        // everything written so far is in the old segment and this sync
        // makes it durable.
        let next = st.written;
        if let Some(seg) = st.segments.last() {
            if let Err(source) = seg.file.sync_data() {
                st.failed = true;
                return Err(Error::Io {
                    op: "fsync segment",
                    path: self.dir.join(&seg.name),
                    source,
                });
            }
        }
        st.durable = next;
        match create_segment(&self.dir, next) {
            Ok(seg) => st.segments.push(seg),
            Err(e) => {
                st.failed = true;
                return Err(e);
            }
        }
        self.synced.notify_all();
        Ok(())
    }

    /// Returns once every entry below `target` is durable.
    fn commit<'a>(&'a self, mut g: MutexGuard<'a, LogState>, target: u64) -> Result<()> {
        loop {
            if g.durable >= target {
                return Ok(());
            }
            if g.failed {
                return Err(Error::LogFailed);
            }
            if g.syncing {
                g = self.wait(g);
                continue;
            }
            // Leader: write everything staged so far, then sync it.
            self.write_pending(&mut g)?;
            let Some(seg) = g.segments.last() else {
                return Err(Error::LogFailed);
            };
            let file = Arc::clone(&seg.file);
            let path = self.dir.join(&seg.name);
            let upto = g.written;
            g.syncs += 1;
            if !self.options.group_commit {
                // Baseline: sync while holding the lock, one per append.
                let r = file.sync_data();
                return match r {
                    Ok(()) => {
                        g.durable = g.durable.max(upto);
                        Ok(())
                    }
                    Err(source) => {
                        g.failed = true;
                        Err(Error::Io {
                            op: "fsync segment",
                            path,
                            source,
                        })
                    }
                };
            }
            g.syncing = true;
            drop(g);
            let r = file.sync_data();
            g = self.lock();
            g.syncing = false;
            match r {
                Ok(()) => g.durable = g.durable.max(upto),
                Err(source) => {
                    g.failed = true;
                    self.synced.notify_all();
                    return Err(Error::Io {
                        op: "fsync segment",
                        path,
                        source,
                    });
                }
            }
            self.synced.notify_all();
        }
    }

    fn location(&self, index: u64) -> Result<(Arc<File>, String, u64, u64)> {
        let g = self.lock();
        if index >= g.durable {
            return Err(Error::IndexOutOfRange {
                index,
                len: g.durable,
            });
        }
        let pos = g.segments.partition_point(|s| s.first_index <= index);
        let seg =
            pos.checked_sub(1)
                .and_then(|p| g.segments.get(p))
                .ok_or(Error::IndexOutOfRange {
                    index,
                    len: g.durable,
                })?;
        let k = usize::try_from(index - seg.first_index).unwrap_or(usize::MAX);
        let start = *seg.offsets.get(k).ok_or(Error::IndexOutOfRange {
            index,
            len: g.durable,
        })?;
        let end = seg.offsets.get(k + 1).copied().unwrap_or(seg.len);
        Ok((Arc::clone(&seg.file), seg.name.clone(), start, end))
    }
}

fn create_segment(dir: &Path, first_index: u64) -> Result<Segment> {
    let name = segment_name(first_index);
    let path = dir.join(&name);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(Error::io("create segment", &path))?;
    file.write_all_at(&encode_segment_header(first_index), 0)
        .map_err(Error::io("write segment header", &path))?;
    file.sync_all().map_err(Error::io("fsync segment", &path))?;
    sync_dir(dir)?;
    Ok(Segment {
        first_index,
        name,
        file: Arc::new(file),
        offsets: Vec::new(),
        len: SEGMENT_HEADER_LEN as u64,
    })
}

/// A frame encoded into an append buffer, its header still to be filled
/// in under the lock (the index is assigned there).
struct PendingFrame {
    /// Offset in the buffer.
    start: usize,
    /// Header and payload length.
    len: usize,
    payload_crc: u32,
}

/// Encodes `entries` as frames with placeholder headers.
fn encode_frames(entries: &[&[u8]]) -> Result<(Vec<u8>, Vec<PendingFrame>)> {
    let total: usize = entries.iter().map(|e| e.len() + FRAME_HEADER_LEN).sum();
    let mut buf = Vec::with_capacity(total);
    let mut frames = Vec::with_capacity(entries.len());
    for e in entries {
        if e.len() > MAX_ENTRY_LEN {
            return Err(Error::EntryTooLarge {
                len: e.len(),
                max: MAX_ENTRY_LEN,
            });
        }
        let start = buf.len();
        buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        buf.extend_from_slice(e);
        frames.push(PendingFrame {
            start,
            len: FRAME_HEADER_LEN + e.len(),
            payload_crc: crc32fast::hash(e),
        });
    }
    Ok((buf, frames))
}

impl EntryLog for SegmentLog {
    fn append(&self, entry: &[u8]) -> Result<u64> {
        let (buf, frames) = encode_frames(&[entry])?;
        let mut g = self.lock();
        let index = Self::stage(&mut g, buf, &frames)?;
        self.commit(g, index + 1)?;
        Ok(index)
    }

    fn append_batch(&self, entries: &[&[u8]]) -> Result<Range<u64>> {
        let (buf, frames) = encode_frames(entries)?;
        let mut g = self.lock();
        if entries.is_empty() {
            let at = g.durable;
            return Ok(at..at);
        }
        let first = Self::stage(&mut g, buf, &frames)?;
        let end = first + entries.len() as u64;
        self.commit(g, end)?;
        Ok(first..end)
    }

    fn read(&self, index: u64) -> Result<Vec<u8>> {
        let (file, name, start, end) = self.location(index)?;
        let len = usize::try_from(end - start).map_err(|_| Error::SegmentCorrupt {
            segment: name.clone(),
            offset: start,
            reason: "frame length does not fit in memory",
        })?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, start)
            .map_err(Error::io("read segment", self.dir.join(&name)))?;
        match check_frame(&buf, index) {
            Ok(payload) => Ok(payload.to_vec()),
            Err(reason) => Err(Error::SegmentCorrupt {
                segment: name,
                offset: start,
                reason,
            }),
        }
    }

    fn len(&self) -> Result<u64> {
        Ok(self.lock().durable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concurrent appenders share writes as well as syncs: the leader
    /// writes the whole group's frames in one `pwrite` before each sync, so
    /// there are exactly as many writes as syncs (no segment rolls here),
    /// and both well below the number of appends.
    #[test]
    fn group_commit_writes_each_group_once() {
        let dir = tempfile::tempdir().unwrap();
        let (log, torn) = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(torn, None);
        let log = Arc::new(log);
        let (threads, per) = (16u64, 40u64);
        std::thread::scope(|s| {
            for t in 0..threads {
                let log = Arc::clone(&log);
                s.spawn(move || {
                    for i in 0..per {
                        log.append(format!("t{t} e{i}").as_bytes()).unwrap();
                    }
                });
            }
        });
        let total = threads * per;
        assert_eq!(log.len().unwrap(), total);
        let (writes, syncs) = {
            let g = log.lock();
            (g.writes, g.syncs)
        };
        assert_eq!(writes, syncs, "one write per group, then its sync");
        assert!(writes < total, "{writes} writes for {total} appends");
        let mut seen = std::collections::HashSet::new();
        for i in 0..total {
            assert!(seen.insert(log.read(i).unwrap()));
        }
        drop(log);
        let (reopened, torn) = SegmentLog::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!((reopened.len().unwrap(), torn), (total, None));
    }

    /// Without group commit every append writes and syncs on its own; with
    /// small segments a batch spans several of them, one write each.
    #[test]
    fn batches_roll_segments_and_fsync_each_writes_once_per_append() {
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions {
            segment_size: 200,
            group_commit: false,
        };
        let (log, _) = SegmentLog::open(dir.path(), options).unwrap();
        for i in 0..3u8 {
            assert_eq!(log.append(&[i; 10]).unwrap(), u64::from(i));
        }
        let counts = |log: &SegmentLog| {
            let g = log.lock();
            (g.writes, g.syncs)
        };
        assert_eq!(counts(&log), (3, 3));
        let batch: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 30]).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        assert_eq!(log.append_batch(&refs).unwrap(), 3..23);
        // 24-byte header + 50-byte frames: 3 per 200-byte segment, one
        // write in each of the 8 segments the batch touches, one sync.
        assert_eq!(log.segment_count(), 8);
        assert_eq!(counts(&log), (11, 4));
        for (i, e) in (3..).zip(&batch) {
            assert_eq!(&log.read(i).unwrap(), e);
        }
        drop(log);
        let (reopened, torn) = SegmentLog::open(dir.path(), options).unwrap();
        assert_eq!((reopened.len().unwrap(), torn), (23, None));
    }
}
