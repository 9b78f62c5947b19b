//! Hint files: for each sealed data file, every key with the location, length and sequence
//! number of its record (tombstones included), so that open reads keys without reading values.
//!
//! Spec: `docs/formats/bitcask-hint.md`. A hint is only ever an accelerator: one whose
//! checksum, header or any entry fails a check is ignored and the data file is scanned instead.

use std::path::Path;

use engine_api::{IoClass, Poison, ReadableFile, Result, Storage};

use crate::datafile::{DATA_START, FileName, FileShape};
use crate::reader::Op;
use crate::record::{HEADER_LEN, array};

/// Version 2 goes with data-file format version 2 (whose records are 4 bytes longer): a hint
/// of version 1 is ignored and rebuilt.
const MAGIC: &[u8; 8] = b"BCHINT\x00\x02";
const HEADER: usize = 48;
const ENTRY_HEADER: usize = 19;
const TRAILER: usize = 12;

/// Builds a hint file in memory, entry by entry.
pub(crate) struct HintBuilder {
    buf: Vec<u8>,
    count: u64,
}

impl HintBuilder {
    pub(crate) fn new() -> Self {
        HintBuilder {
            buf: vec![0; HEADER],
            count: 0,
        }
    }

    /// Adds the record `op` of the data file.
    pub(crate) fn add(&mut self, op: &Op<'_>) {
        let key_len = u16::try_from(op.key.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&op.seq.to_le_bytes());
        self.buf
            .extend_from_slice(&u32::try_from(op.offset).unwrap_or(u32::MAX).to_le_bytes());
        self.buf
            .extend_from_slice(&u32::try_from(op.len).unwrap_or(u32::MAX).to_le_bytes());
        self.buf.push(if op.tombstone { 2 } else { 1 });
        self.buf.extend_from_slice(&key_len.to_le_bytes());
        self.buf.extend_from_slice(op.key);
        self.count += 1;
    }

    /// The finished file for data file `id` of the given shape.
    pub(crate) fn finish(mut self, id: u32, shape: &FileShape) -> Vec<u8> {
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&id.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&shape.len.to_le_bytes());
        header.extend_from_slice(&shape.records.to_le_bytes());
        header.extend_from_slice(&shape.min_seq.to_le_bytes());
        header.extend_from_slice(&shape.max_seq.to_le_bytes());
        if let Some(h) = self.buf.get_mut(..HEADER) {
            h.copy_from_slice(&header);
        }
        self.buf.extend_from_slice(&self.count.to_le_bytes());
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

/// Writes the hint of data file `id` and syncs it (a failed sync poisons, as every failed
/// sync does). The name is not made durable here: a hint that a crash loses is rebuilt from a
/// scan. Callers that rely on the hint surviving (a clean close, whose last file would
/// otherwise look like the previous run's active file; a merge, before its commit) fsync the
/// directory after it.
pub(crate) fn write(
    storage: &dyn Storage,
    poison: &Poison,
    dir: &Path,
    id: u32,
    bytes: &[u8],
) -> Result<()> {
    // Checked again here, right before anything is written: the engine may have been poisoned
    // while the hint was being built.
    poison.check()?;
    let path = FileName::Hint(id).path(dir);
    if storage.exists(&path)? {
        storage.remove(&path)?;
    }
    let file = storage.create(&path, IoClass::Hint)?;
    file.append(bytes)?;
    poison.guard(|| file.sync())
}

/// One entry of a valid hint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HintEntry<'a> {
    pub(crate) seq: u64,
    pub(crate) offset: u32,
    pub(crate) len: u32,
    pub(crate) tombstone: bool,
    pub(crate) key: &'a [u8],
}

/// A hint file read and fully checked against its data file.
pub(crate) struct Hint {
    bytes: Vec<u8>,
    pub(crate) shape: FileShape,
}

impl Hint {
    /// Reads and checks the hint of data file `id`, whose length is `data_len`. `Ok(Err(why))`
    /// when the hint must be ignored.
    pub(crate) fn load(
        file: &dyn ReadableFile,
        id: u32,
        data_len: u64,
    ) -> Result<Result<Hint, String>> {
        let bytes = file.read_all()?;
        Ok(Hint::check(bytes, id, data_len))
    }

    fn check(bytes: Vec<u8>, id: u32, data_len: u64) -> Result<Hint, String> {
        let body_len = bytes
            .len()
            .checked_sub(4)
            .filter(|n| *n >= HEADER + TRAILER - 4)
            .ok_or("shorter than header and trailer")?;
        let body = bytes.get(..body_len).unwrap_or_default();
        let crc = u32::from_le_bytes(array(&bytes, body_len).map_err(|_| "no trailer")?);
        if crc32fast::hash(body) != crc {
            return Err("checksum mismatch".to_string());
        }
        let field = |at: usize| array::<8>(&bytes, at).map(u64::from_le_bytes);
        let bad = |_| "header".to_string();
        if bytes.get(..8) != Some(&MAGIC[..]) {
            return Err("bad magic".to_string());
        }
        let named = array::<4>(&bytes, 8).map(u32::from_le_bytes).map_err(bad)?;
        let shape = FileShape {
            base_seq: 0,
            nonce: 0,
            len: field(16).map_err(bad)?,
            records: field(24).map_err(bad)?,
            min_seq: field(32).map_err(bad)?,
            max_seq: field(40).map_err(bad)?,
            sealed: true,
        };
        if named != id || shape.len != data_len {
            return Err(format!(
                "describes file {named} of {} bytes, not file {id} of {data_len}",
                shape.len
            ));
        }
        let count = field(body_len - 8).map_err(bad)?;
        let hint = Hint { bytes, shape };
        let mut n = 0u64;
        hint.for_each(&mut |_| {
            n += 1;
            Ok(())
        })?;
        if n != count || n != shape.records {
            return Err(format!("holds {n} entries, trailer says {count}"));
        }
        Ok(hint)
    }

    /// Calls `f` for every entry; `Err` names the first entry that fails a check.
    pub(crate) fn for_each<'h>(
        &'h self,
        f: &mut dyn FnMut(HintEntry<'h>) -> Result<(), String>,
    ) -> Result<(), String> {
        let end = self.bytes.len().saturating_sub(TRAILER);
        let mut at = HEADER;
        while at < end {
            let entry = self.entry(at).ok_or_else(|| format!("bad entry at {at}"))?;
            at += ENTRY_HEADER + entry.key.len();
            f(entry)?;
        }
        Ok(())
    }

    fn entry(&self, at: usize) -> Option<HintEntry<'_>> {
        let b = &self.bytes;
        let seq = u64::from_le_bytes(array(b, at).ok()?);
        let offset = u32::from_le_bytes(array(b, at + 8).ok()?);
        let len = u32::from_le_bytes(array(b, at + 12).ok()?);
        let kind = *b.get(at + 16)?;
        let key_len = usize::from(u16::from_le_bytes(array(b, at + 17).ok()?));
        let key_start = at + ENTRY_HEADER;
        let key = b.get(key_start..key_start + key_len)?;
        let record_end = u64::from(offset).checked_add(u64::from(len))?;
        let valid = (kind == 1 || kind == 2)
            && key_len > 0
            && u64::from(offset) >= DATA_START
            && record_end <= self.shape.len
            && len as usize >= HEADER_LEN + key_len
            && key_start + key_len <= self.bytes.len().saturating_sub(TRAILER)
            && (self.shape.min_seq..=self.shape.max_seq).contains(&seq);
        valid.then_some(HintEntry {
            seq,
            offset,
            len,
            tombstone: kind == 2,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, FileShape) {
        let mut b = HintBuilder::new();
        let shape = FileShape {
            base_seq: 0,
            nonce: 0,
            len: 1000,
            records: 2,
            min_seq: 3,
            max_seq: 4,
            sealed: true,
        };
        for (seq, key, tomb) in [(3u64, &b"alpha"[..], false), (4, b"beta", true)] {
            b.add(&Op {
                offset: 8 + seq * 40,
                len: 30,
                seq,
                tombstone: tomb,
                key,
                value: b"",
            });
        }
        (b.finish(5, &shape), shape)
    }

    #[test]
    fn round_trip() {
        let (bytes, _) = sample();
        let hint = Hint::check(bytes, 5, 1000).unwrap();
        let mut got = Vec::new();
        hint.for_each(&mut |e| {
            got.push((e.seq, e.key.to_vec(), e.tombstone));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            vec![(3, b"alpha".to_vec(), false), (4, b"beta".to_vec(), true)]
        );
    }

    #[test]
    fn any_damage_or_mismatch_is_refused() {
        let (bytes, _) = sample();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(Hint::check(bad, 5, 1000).is_err(), "flip at {i} accepted");
        }
        for len in 0..bytes.len() {
            assert!(Hint::check(bytes[..len].to_vec(), 5, 1000).is_err());
        }
        assert!(Hint::check(bytes.clone(), 6, 1000).is_err(), "wrong file");
        assert!(Hint::check(bytes, 5, 999).is_err(), "wrong length");
    }
}
