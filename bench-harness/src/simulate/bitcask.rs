//! The Bitcask model: which file holds each key's live record and how many bytes each file has
//! (the record layout of `docs/formats/bitcask-record.md`); every merge decision is
//! `bitcask_engine::merge_policy`'s, the policy the engine's merge worker calls.

use std::collections::BTreeMap;

use bitcask_engine::MergeOptions;
use bitcask_engine::merge_policy::{
    self, FILE_HEADER_BYTES, RECORD_HEADER_BYTES, SEAL_BYTES, Sealed,
};

use super::{Model, Sample, Stream};

/// A modelled data file.
#[derive(Clone, Copy, Debug, Default)]
struct File {
    bytes: u64,
    live: u64,
    records: u64,
}

/// The Bitcask under the simulator.
pub struct BitcaskModel {
    opts: MergeOptions,
    max_file_size: u64,
    record: u64,
    sealed: BTreeMap<u32, File>,
    active_id: u32,
    active: File,
    next_id: u32,
    /// The file holding each key's live record.
    keydir: Vec<Option<u32>>,
    s: Sample,
}

impl BitcaskModel {
    /// An empty Bitcask with `opts` and `max_file_size`, for records shaped as `stream`'s.
    pub fn new(opts: MergeOptions, max_file_size: u64, stream: &Stream) -> BitcaskModel {
        let mut s = Sample::default();
        s.log_bytes += FILE_HEADER_BYTES;
        BitcaskModel {
            opts,
            max_file_size,
            record: RECORD_HEADER_BYTES + stream.record_bytes(),
            sealed: BTreeMap::new(),
            active_id: 1,
            active: new_file(),
            next_id: 2,
            keydir: vec![None; usize::try_from(stream.keys).unwrap_or(0)],
            s,
        }
    }

    /// Sealed files: what `kv inspect` would list.
    pub fn sealed_files(&self) -> usize {
        self.sealed.len()
    }

    fn rotate(&mut self) {
        self.active.bytes += SEAL_BYTES;
        self.s.log_bytes += SEAL_BYTES + FILE_HEADER_BYTES;
        self.sealed.insert(self.active_id, self.active);
        self.active_id = self.allocate();
        self.active = new_file();
    }

    fn allocate(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn file_mut(&mut self, id: u32) -> Option<&mut File> {
        if id == self.active_id {
            Some(&mut self.active)
        } else {
            self.sealed.get_mut(&id)
        }
    }

    fn maybe_merge(&mut self) {
        let sealed: Vec<Sealed> = self
            .sealed
            .iter()
            .map(|(&id, f)| Sealed {
                id,
                bytes: f.bytes,
                live_bytes: f.live,
            })
            .collect();
        if let Some(inputs) = merge_policy::pick_merge(&self.opts, self.max_file_size, &sealed) {
            self.merge(&inputs);
        }
    }

    /// Copies the live records of `inputs` into new sealed files (cut as the engine's merge
    /// output cuts them), then drops the inputs.
    fn merge(&mut self, inputs: &[u32]) {
        self.s.jobs += 1;
        let mut out: Option<(u32, File)> = None;
        for slot in 0..self.keydir.len() {
            let Some(file) = self.keydir[slot] else {
                continue;
            };
            if !inputs.contains(&file) {
                continue;
            }
            let full = out
                .as_ref()
                .is_some_and(|(_, f)| f.bytes + self.record > self.max_file_size && f.records > 0);
            if full {
                self.seal_output(out.take());
            }
            if out.is_none() {
                out = Some((self.allocate(), new_file()));
            }
            let Some((id, f)) = out.as_mut() else {
                continue;
            };
            f.bytes += self.record;
            f.live += self.record;
            f.records += 1;
            self.keydir[slot] = Some(*id);
        }
        self.seal_output(out);
        for id in inputs {
            self.sealed.remove(id);
        }
    }

    fn seal_output(&mut self, out: Option<(u32, File)>) {
        if let Some((id, mut f)) = out {
            f.bytes += SEAL_BYTES;
            self.s.background_bytes += f.bytes;
            self.sealed.insert(id, f);
        }
    }
}

fn new_file() -> File {
    File {
        bytes: FILE_HEADER_BYTES,
        ..File::default()
    }
}

impl Model for BitcaskModel {
    fn write(&mut self, index: u64) {
        self.s.writes += 1;
        self.s.user_bytes += self.record - RECORD_HEADER_BYTES;
        if self.active.bytes + self.record > self.max_file_size && self.active.records > 0 {
            self.rotate();
        }
        let slot = usize::try_from(index).ok();
        let old = slot.and_then(|i| self.keydir.get(i).copied().flatten());
        match old {
            Some(id) => {
                let record = self.record;
                if let Some(f) = self.file_mut(id) {
                    f.live -= record;
                }
            }
            None => self.s.live_keys += 1,
        }
        self.active.bytes += self.record;
        self.active.live += self.record;
        self.active.records += 1;
        self.s.log_bytes += self.record;
        if let Some(k) = slot.and_then(|i| self.keydir.get_mut(i)) {
            *k = Some(self.active_id);
        }
        self.maybe_merge();
    }

    fn sample(&self) -> Sample {
        Sample {
            disk_bytes: self.active.bytes + self.sealed.values().map(|f| f.bytes).sum::<u64>(),
            ..self.s
        }
    }
}
