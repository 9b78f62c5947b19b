//! The merge commit record `MERGE-<id>`: the single atomic, durable step of a merge.
//!
//! It names the data files a merge retires and the `.merging` files it adds. It is written by
//! temp file, fsync, rename and directory fsync, so it exists under its final name only when
//! whole. Its existence commits the merge; open rolls a committed merge forward (renames the
//! outputs to `.data`, removes the inputs, then removes the record). Spec:
//! `docs/formats/bitcask-hint.md`, section "Merge commit record".

use std::path::Path;

use engine_api::{Error, IoClass, Result, Storage, atomic_replace};

use crate::datafile::FileName;
use crate::record::array;

const MAGIC_PREFIX: &[u8; 7] = b"BCMERG\x00";

/// Format version 2 records each output's length, checked before a roll-forward removes
/// anything.
const VERSION: u8 = 2;

/// A merge's commit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The record's own id (also its name).
    pub(crate) id: u32,
    /// Data files retired by the merge.
    pub(crate) inputs: Vec<u32>,
    /// Merge outputs (`.merging` until rolled forward) that replace them.
    pub(crate) outputs: Vec<u32>,
    /// The length of each output, in the order of `outputs`.
    pub(crate) output_lens: Vec<u64>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let ids = self.inputs.len() + self.outputs.len();
        let mut out = Vec::with_capacity(24 + 4 * ids + 8 * self.output_lens.len());
        out.extend_from_slice(MAGIC_PREFIX);
        out.push(VERSION);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&count(&self.inputs).to_le_bytes());
        out.extend_from_slice(&count(&self.outputs).to_le_bytes());
        for id in self.inputs.iter().chain(&self.outputs) {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for len in &self.output_lens {
            out.extend_from_slice(&len.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a commit record; `None` if any check fails.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Manifest> {
        let body_len = bytes.len().checked_sub(4)?;
        let crc = u32::from_le_bytes(array(bytes, body_len).ok()?);
        let body = bytes.get(..body_len)?;
        if crc32fast::hash(body) != crc || version(body) != Some(VERSION) {
            return None;
        }
        let u32_at = |at: usize| array::<4>(body, at).ok().map(u32::from_le_bytes);
        let id = u32_at(8)?;
        let n_in = usize::try_from(u32_at(12)?).ok()?;
        let n_out = usize::try_from(u32_at(16)?).ok()?;
        let ids_len = n_in.checked_add(n_out)?.checked_mul(4)?;
        let lens_len = n_out.checked_mul(8)?;
        if body_len != 20usize.checked_add(ids_len)?.checked_add(lens_len)? {
            return None;
        }
        let ids: Option<Vec<u32>> = (0..n_in + n_out).map(|i| u32_at(20 + 4 * i)).collect();
        let mut ids = ids?;
        let outputs = ids.split_off(n_in);
        let lens_at = 20 + ids_len;
        let output_lens: Option<Vec<u64>> = (0..n_out)
            .map(|i| {
                array::<8>(body, lens_at + 8 * i)
                    .ok()
                    .map(u64::from_le_bytes)
            })
            .collect();
        Some(Manifest {
            id,
            inputs: ids,
            outputs,
            output_lens: output_lens?,
        })
    }

    /// Writes the record durably (the merge's commit point).
    pub(crate) fn commit(&self, storage: &dyn Storage, dir: &Path) -> Result<()> {
        let name = FileName::Manifest(self.id).name();
        atomic_replace(storage, dir, &name, &self.encode(), IoClass::Manifest)
    }

    /// Reads the commit record `MERGE-<id>`; a damaged one is a corruption error, since its
    /// name exists only once it was written whole.
    pub(crate) fn read(storage: &dyn Storage, dir: &Path, id: u32) -> Result<Manifest> {
        let path = FileName::Manifest(id).path(dir);
        let bytes = storage.open(&path, IoClass::Recovery)?.read_all()?;
        if let Some(v) = version(&bytes).filter(|v| *v != VERSION) {
            return Err(Error::invalid(format!(
                "{} is a merge commit record of format version {v}; this engine reads version \
                 {VERSION} only (finish the merge with the engine that wrote it)",
                path.display()
            )));
        }
        Manifest::decode(&bytes)
            .filter(|m| m.id == id)
            .ok_or_else(|| Error::corruption(path, 0, "a valid merge commit record"))
    }
}

/// The format version byte, if `bytes` start with the magic.
fn version(bytes: &[u8]) -> Option<u8> {
    if bytes.get(..7)? != MAGIC_PREFIX {
        return None;
    }
    bytes.get(7).copied()
}

/// File counts are far below 2^32.
fn count(ids: &[u32]) -> u32 {
    u32::try_from(ids.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let m = Manifest {
            id: 9,
            inputs: vec![1, 2, 5],
            outputs: vec![9, 10],
            output_lens: vec![4096, 75],
        };
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes), Some(m));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert_eq!(Manifest::decode(&bad), None, "flip at {i}");
        }
        for len in 0..bytes.len() {
            assert_eq!(Manifest::decode(&bytes[..len]), None);
        }
    }
}
