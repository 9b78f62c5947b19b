//! The manifest file and `CURRENT`. Spec: `docs/formats/manifest.md`.
//!
//! A manifest is a log of [`VersionEdit`] records in the WAL's record framing. Its first record
//! is a header holding the file's random nonce, which seeds every later record's checksum; the
//! first edit is a snapshot of the whole state; each later edit is one committed change.
//! `CURRENT` holds the live manifest's name followed by a newline and is only ever replaced
//! atomically.

use std::path::Path;

use engine_api::{Error, IoClass, Result, Storage, WritableFile, atomic_replace};

use super::edit::VersionEdit;
use crate::filename::{self, FileKind};
use crate::wal::format::{
    Head, RecordKind, encode_file_header, encode_record, new_nonce, other_version,
    read_file_header, scan,
};

/// The live manifest, open for appending.
pub(crate) struct ManifestWriter {
    number: u64,
    file: Box<dyn WritableFile>,
    /// The file's nonce (in its header record): seeds every edit record's checksum.
    nonce: u32,
}

impl ManifestWriter {
    /// Starts manifest `number` with a header (a fresh nonce) and `snapshot` as its first edit,
    /// and makes it live:
    /// 1. create `MANIFEST-n`, append the header and the snapshot, sync the file;
    /// 2. sync the directory (the new name is durable);
    /// 3. replace `CURRENT` atomically (temp file, sync, rename, directory sync).
    ///
    /// A crash before step 3 completes leaves `CURRENT` naming the previous manifest, which is
    /// intact; the new file is then an orphan, removed at the next open.
    pub(crate) fn create(
        storage: &dyn Storage,
        dir: &Path,
        number: u64,
        snapshot: &VersionEdit,
    ) -> Result<ManifestWriter> {
        let file = storage.create(&filename::manifest(dir, number), IoClass::Manifest)?;
        let nonce = new_nonce();
        let mut head = encode_file_header(RecordKind::ManifestHeader, nonce, &[]);
        head.extend(encode_record(nonce, RecordKind::Edit, &snapshot.encode()));
        file.append(&head)?;
        file.sync()?;
        storage.sync_dir(dir)?;
        let current = format!("{}\n", filename::manifest_name(number));
        atomic_replace(
            storage,
            dir,
            filename::CURRENT,
            current.as_bytes(),
            IoClass::Manifest,
        )?;
        Ok(ManifestWriter {
            number,
            file,
            nonce,
        })
    }

    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    pub(crate) fn size(&self) -> u64 {
        self.file.len()
    }

    /// Appends one edit and syncs: once this returns, the edit is committed.
    pub(crate) fn append(&self, edit: &VersionEdit) -> Result<()> {
        self.file
            .append(&encode_record(self.nonce, RecordKind::Edit, &edit.encode()))?;
        self.file.sync()
    }
}

/// The number of the manifest `CURRENT` names, or `None` if there is no `CURRENT`.
pub(crate) fn read_current(storage: &dyn Storage, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(filename::CURRENT);
    if !storage.exists(&path)? {
        return Ok(None);
    }
    let text = storage.open(&path, IoClass::Recovery)?.read_all()?;
    let name = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.strip_suffix('\n'))
        .and_then(filename::parse);
    match name {
        Some(FileKind::Manifest(n)) if storage.exists(&filename::manifest(dir, n))? => Ok(Some(n)),
        _ => Err(Error::corruption(
            path,
            0,
            "CURRENT holding the name of an existing manifest and a newline",
        )),
    }
}

/// Every edit of manifest `number`, in order. Only the last record can be torn (each edit is
/// synced before the next is appended, and a manifest is never appended to after a restart), so
/// a bad record with no good record anywhere after it is the torn tail of an edit that never
/// committed and is ignored. A bad record followed by a good one, a well-framed record that does
/// not decode, or a manifest without its snapshot record is corruption. (Damage confined to the
/// last record cannot be told from a torn write; `docs/formats/manifest.md` discusses it.)
/// The header was synced with the snapshot before `CURRENT` named the file, so a header that
/// does not verify is corruption; a manifest of another format version is
/// [`Error::InvalidArgument`] naming it.
pub(crate) fn read_manifest(
    storage: &dyn Storage,
    dir: &Path,
    number: u64,
) -> Result<Vec<VersionEdit>> {
    let path = filename::manifest(dir, number);
    let bytes = storage.open(&path, IoClass::Recovery)?.read_all()?;
    let head = match read_file_header(&bytes, RecordKind::ManifestHeader, RecordKind::Edit) {
        Head::Good(head) if head.body.is_empty() => head,
        Head::Version(v) => return Err(other_version(&path, "manifest", v)),
        Head::Bad(bad) => return Err(Error::corruption(&path, 0, bad.describe())),
        Head::Good(_) | Head::Malformed => {
            return Err(Error::corruption(&path, 0, "a well-formed manifest header"));
        }
    };
    let scanned = scan(&bytes, head.end, head.nonce, RecordKind::Edit, true);
    if let Some((offset, bad)) = scanned.bad
        && (scanned.good_after_bad || scanned.records.is_empty())
    {
        return Err(Error::corruption(&path, offset, bad.describe()));
    }
    if scanned.records.is_empty() {
        return Err(Error::corruption(
            &path,
            head.end as u64,
            "a snapshot record",
        ));
    }
    scanned
        .records
        .iter()
        .map(|r| {
            VersionEdit::decode(r.payload)
                .map_err(|what| Error::corruption(&path, r.offset, format!("an edit with {what}")))
        })
        .collect()
}
