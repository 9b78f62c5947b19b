//! Open's rewrite of the previous run's active file into a fresh, sealed `<id>.data.tmp`.
//!
//! The copy is written from the very bytes the open's scan verified, as the scan reads them
//! ([`Tee`]), never by reading the old file a second time: after a failed writeback its pages
//! may be evicted between two reads and read back from a disk that never got them, and the
//! rewrite would then seal bytes nobody checked.

use std::path::{Path, PathBuf};

use engine_api::{Error, IoClass, ReadableFile, Result, Storage, WritableFile};
use parking_lot::Mutex;

use crate::datafile::{DATA_START, FileName, HeaderInfo, encode_header};
use crate::record::{self, Seal};

/// The fresh copy of a file, filled by its scan.
pub(crate) struct Copy {
    out: Box<dyn WritableFile>,
    tmp: PathBuf,
    /// Bytes of the old file copied so far: always a prefix.
    copied: Mutex<u64>,
}

impl Copy {
    /// Creates `<id>.data.tmp` holding the header `header` describes (a header is a function
    /// of its base sequence number and nonce, so these are the bytes `read_header` checked).
    pub(crate) fn start(
        storage: &dyn Storage,
        dir: &Path,
        id: u32,
        header: HeaderInfo,
    ) -> Result<Copy> {
        let tmp = FileName::DataTemp(id).path(dir);
        let out = storage.create(&tmp, IoClass::Recovery)?;
        out.append(&encode_header(header.base_seq, header.nonce))?;
        Ok(Copy {
            out,
            tmp,
            copied: Mutex::new(DATA_START),
        })
    }

    /// Notes `buf`, just read at `offset`: the part extending the copied prefix is appended.
    /// A read past a gap is not copied (the copy stays a prefix; [`Copy::seal`] checks it
    /// reaches far enough).
    fn take(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut copied = self.copied.lock();
        let end = offset + buf.len() as u64;
        if offset > *copied || end <= *copied {
            return Ok(());
        }
        let skip = usize::try_from(*copied - offset).unwrap_or(usize::MAX);
        self.out.append(buf.get(skip..).unwrap_or_default())?;
        *copied = end;
        Ok(())
    }

    /// Replaces `path` by the copy cut at `data_end` and sealed with `seal`: (1) cut, (2)
    /// sync, (3) append the seal, (4) sync, (5) rename over `path`, (6) sync the directory.
    /// A crash before (6) leaves the old file or the new one under the name (the rename is
    /// atomic), and the next open removes the temporary file; keydir locations stay valid, as
    /// offsets do not change.
    pub(crate) fn seal(
        self,
        storage: &dyn Storage,
        path: &Path,
        nonce: u32,
        seal: &Seal,
    ) -> Result<()> {
        let data_end = seal.offset;
        let copied = *self.copied.lock();
        if copied < data_end {
            // The scan read every byte up to `data_end` in order: unreachable.
            return Err(Error::corruption(
                path,
                copied,
                "a scan that read the whole prefix",
            ));
        }
        self.out.truncate(data_end)?;
        self.out.sync()?;
        let mut bytes = Vec::new();
        record::encode_seal(&mut bytes, nonce, seal);
        self.out.append(&bytes)?;
        self.out.sync()?;
        storage.rename(&self.tmp, path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        storage.sync_dir(dir)
    }

    /// Removes the copy (the file turned out not to need it). Without a directory sync: a
    /// `.data.tmp` that comes back is removed by the next open.
    pub(crate) fn discard(self, storage: &dyn Storage) -> Result<()> {
        drop(self.out);
        storage.remove(&self.tmp)
    }
}

/// A file read through a [`Copy`]: every byte read is also copied (while reads go forward).
pub(crate) struct Tee<'a> {
    pub(crate) file: &'a dyn ReadableFile,
    pub(crate) copy: &'a Copy,
}

impl ReadableFile for Tee<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file.read_exact_at(buf, offset)?;
        self.copy.take(buf, offset)
    }

    fn len(&self) -> Result<u64> {
        self.file.len()
    }

    fn path(&self) -> &Path {
        self.file.path()
    }
}
