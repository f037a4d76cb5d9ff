//! [`DirBlobStore`]: blobs as files, written atomically.
//!
//! Layout under the store's `blobs/` directory: `tmp/` holds blobs being
//! written, `pending/<hex id>` committed blobs no durable entry is known to
//! reference yet, `data/<hex id>` referenced blobs. Commit = finish the
//! file, fsync it, rename `tmp/…` to `pending/<id>`, fsync `pending/`. Mark
//! referenced = rename to `data/<id>`, fsync both directories (a crash in
//! between leaves the blob in one of the two places; readers look in both).
//! Open removes everything in `tmp/` (writes that never committed).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::blob::{encode_blob_header, BlobId, BlobReader, BlobStore, BlobWriter, ChunkEncoder};
use crate::error::{Error, Result};
use crate::sync_dir;

/// The durable [`BlobStore`] in a directory (see the module docs).
#[derive(Debug)]
pub struct DirBlobStore {
    tmp: PathBuf,
    pending: PathBuf,
    data: PathBuf,
    next_tmp: AtomicU64,
    _lock: Arc<File>,
}

fn ensure_dir(path: &Path) -> Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if path.is_dir() {
                Ok(())
            } else {
                Err(Error::NotADirectory {
                    path: path.to_owned(),
                })
            }
        }
        Err(e) => Err(Error::io("create directory", path)(e)),
    }
}

impl DirBlobStore {
    /// Opens the blob directory `root` (creating it), removing abandoned
    /// temporary files. Returns the store and how many it removed.
    pub(crate) fn open(root: &Path, lock: Arc<File>) -> Result<(Self, usize)> {
        ensure_dir(root)?;
        let store = DirBlobStore {
            tmp: root.join("tmp"),
            pending: root.join("pending"),
            data: root.join("data"),
            next_tmp: AtomicU64::new(0),
            _lock: lock,
        };
        for d in [&store.tmp, &store.pending, &store.data] {
            ensure_dir(d)?;
        }
        sync_dir(root)?;
        let mut removed = 0;
        for item in std::fs::read_dir(&store.tmp)
            .map_err(Error::io("list blob temp directory", &store.tmp))?
        {
            let item = item.map_err(Error::io("list blob temp directory", &store.tmp))?;
            let path = item.path();
            std::fs::remove_file(&path).map_err(Error::io("remove abandoned blob", &path))?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&store.tmp)?;
        }
        Ok((store, removed))
    }

    /// Where blob `id` is, if anywhere.
    fn find(&self, id: &BlobId) -> Option<PathBuf> {
        let name = id.to_hex();
        [self.data.join(&name), self.pending.join(&name)]
            .into_iter()
            .find(|p| p.is_file())
    }
}

/// A blob being written to a temporary file.
struct DirBlobWriter<'a> {
    store: &'a DirBlobStore,
    id: BlobId,
    path: PathBuf,
    file: Option<BufWriter<File>>,
    encoder: ChunkEncoder,
}

impl Write for DirBlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(file) = self.file.as_mut() else {
            return Err(std::io::Error::other("blob writer already finished"));
        };
        self.encoder.push(buf, file)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl DirBlobWriter<'_> {
    fn finish(&mut self) -> Result<()> {
        let mut file = self.file.take().ok_or(Error::Io {
            op: "finish blob",
            path: self.path.clone(),
            source: std::io::Error::other("blob writer already finished"),
        })?;
        self.encoder
            .finish(&mut file)
            .and_then(|()| file.flush())
            .map_err(Error::io("write blob", &self.path))?;
        let file = file
            .into_inner()
            .map_err(|e| Error::io("write blob", &self.path)(e.into_error()))?;
        file.sync_all()
            .map_err(Error::io("fsync blob", &self.path))?;
        let dest = self.store.pending.join(self.id.to_hex());
        if self.store.find(&self.id).is_some() {
            return Err(Error::BlobExists { id: self.id });
        }
        std::fs::rename(&self.path, &dest).map_err(Error::io("rename blob", &dest))?;
        sync_dir(&self.store.pending)
    }
}

impl BlobWriter for DirBlobWriter<'_> {
    fn commit(mut self: Box<Self>) -> Result<()> {
        self.finish()
    }

    fn abort(self: Box<Self>) -> Result<()> {
        // Drop removes the temporary file.
        Ok(())
    }
}

impl Drop for DirBlobWriter<'_> {
    fn drop(&mut self) {
        // Uncommitted (or failed) writes leave nothing; a crash before this
        // runs leaves a file in tmp/ that the next open removes.
        self.file = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

impl BlobStore for DirBlobStore {
    fn create(&self, id: BlobId) -> Result<Box<dyn BlobWriter + '_>> {
        if self.find(&id).is_some() {
            return Err(Error::BlobExists { id });
        }
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let path = self.tmp.join(format!("{}.{n}.tmp", id.to_hex()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(Error::io("create blob", &path))?;
        let mut file = BufWriter::with_capacity(1 << 17, file);
        file.write_all(&encode_blob_header(&id))
            .map_err(Error::io("write blob", &path))?;
        Ok(Box::new(DirBlobWriter {
            store: self,
            id,
            path,
            file: Some(file),
            encoder: ChunkEncoder::new(),
        }))
    }

    fn open(&self, id: &BlobId) -> Result<Box<dyn std::io::Read + Send + '_>> {
        let path = self.find(id).ok_or(Error::BlobNotFound { id: *id })?;
        let file = File::open(&path).map_err(Error::io("open blob", &path))?;
        let reader = BlobReader::new(std::io::BufReader::with_capacity(1 << 17, file), *id)?;
        Ok(Box::new(reader))
    }

    fn exists(&self, id: &BlobId) -> Result<bool> {
        Ok(self.find(id).is_some())
    }

    fn delete(&self, id: &BlobId) -> Result<bool> {
        let name = id.to_hex();
        let mut found = false;
        for dir in [&self.pending, &self.data] {
            let path = dir.join(&name);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    sync_dir(dir)?;
                    found = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete blob", &path)(e)),
            }
        }
        Ok(found)
    }

    fn pending(&self) -> Result<Vec<BlobId>> {
        let mut out = Vec::new();
        for item in std::fs::read_dir(&self.pending)
            .map_err(Error::io("list pending blobs", &self.pending))?
        {
            let item = item.map_err(Error::io("list pending blobs", &self.pending))?;
            if let Some(id) = item.file_name().to_str().and_then(BlobId::from_hex) {
                out.push(id);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn mark_referenced(&self, id: &BlobId) -> Result<()> {
        let name = id.to_hex();
        let from = self.pending.join(&name);
        let to = self.data.join(&name);
        if to.is_file() {
            return Ok(());
        }
        if !from.is_file() {
            return Err(Error::BlobNotFound { id: *id });
        }
        std::fs::rename(&from, &to).map_err(Error::io("rename blob", &to))?;
        sync_dir(&self.data)?;
        sync_dir(&self.pending)
    }
}
