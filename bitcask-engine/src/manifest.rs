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

const MAGIC: &[u8; 8] = b"BCMERG\x00\x01";

/// A merge's commit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The record's own id (also its name).
    pub(crate) id: u32,
    /// Data files retired by the merge.
    pub(crate) inputs: Vec<u32>,
    /// Merge outputs (`.merging` until rolled forward) that replace them.
    pub(crate) outputs: Vec<u32>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + 4 * (self.inputs.len() + self.outputs.len()));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&count(&self.inputs).to_le_bytes());
        out.extend_from_slice(&count(&self.outputs).to_le_bytes());
        for id in self.inputs.iter().chain(&self.outputs) {
            out.extend_from_slice(&id.to_le_bytes());
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
        if crc32fast::hash(body) != crc || body.get(..8)? != MAGIC {
            return None;
        }
        let u32_at = |at: usize| array::<4>(body, at).ok().map(u32::from_le_bytes);
        let id = u32_at(8)?;
        let n_in = usize::try_from(u32_at(12)?).ok()?;
        let n_out = usize::try_from(u32_at(16)?).ok()?;
        let ids_len = n_in.checked_add(n_out)?.checked_mul(4)?;
        if body_len != 20usize.checked_add(ids_len)? {
            return None;
        }
        let ids: Option<Vec<u32>> = (0..n_in + n_out).map(|i| u32_at(20 + 4 * i)).collect();
        let mut ids = ids?;
        let outputs = ids.split_off(n_in);
        Some(Manifest {
            id,
            inputs: ids,
            outputs,
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
        Manifest::decode(&bytes)
            .filter(|m| m.id == id)
            .ok_or_else(|| Error::corruption(path, 0, "a valid merge commit record"))
    }
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
