//! What to merge: a pure function of the sealed files' sizes and live bytes.
//!
//! Triggers decide *whether* to merge (any file fragmented or dead enough, or too many sealed
//! files when merging them would leave at most half as many as allowed); thresholds decide *which* files join once a
//! merge is triggered. The active file is never offered. See [`crate::MergeOptions`].

use crate::options::MergeOptions;

/// What the policy knows of one sealed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileInfo {
    pub(crate) id: u32,
    pub(crate) bytes: u64,
    pub(crate) live_bytes: u64,
}

impl FileInfo {
    pub(crate) fn dead_bytes(&self) -> u64 {
        self.bytes.saturating_sub(self.live_bytes)
    }

    pub(crate) fn fragmentation(&self) -> f64 {
        engine_api::ratio(self.dead_bytes(), self.bytes)
    }
}

/// Why a merge was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// A file's dead fraction reached the trigger.
    Fragmentation(u32),
    /// A file's dead bytes reached the trigger.
    DeadBytes(u32),
    /// More sealed files than allowed.
    TooManyFiles(usize),
    /// `compact()` asked for it.
    OnDemand,
}

/// A merge to run: the input file ids, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) inputs: Vec<u32>,
    pub(crate) reason: Reason,
}

/// Chooses a merge among `sealed`, or none.
pub(crate) fn pick(opts: &MergeOptions, max_file_size: u64, sealed: &[FileInfo]) -> Option<Plan> {
    let mut files = sealed.to_vec();
    files.sort_by_key(|f| f.id);
    let reason = trigger(opts, max_file_size, &files)?;
    let chosen: Vec<FileInfo> = match reason {
        Reason::TooManyFiles(_) | Reason::OnDemand => files,
        Reason::Fragmentation(_) | Reason::DeadBytes(_) => files
            .into_iter()
            .filter(|f| {
                f.fragmentation() >= opts.frag_threshold
                    || f.dead_bytes() >= opts.dead_bytes_threshold
                    || f.bytes < opts.small_file_threshold
            })
            .collect(),
    };
    let inputs = cap(opts.max_merge_bytes, &chosen);
    (!inputs.is_empty()).then_some(Plan { inputs, reason })
}

/// Every sealed file, oldest first, capped by `max_merge_bytes`: what `compact()` merges.
pub(crate) fn pick_all(opts: &MergeOptions, sealed: &[FileInfo]) -> Option<Plan> {
    let mut files = sealed.to_vec();
    files.sort_by_key(|f| f.id);
    let inputs = cap(opts.max_merge_bytes, &files);
    (!inputs.is_empty()).then_some(Plan {
        inputs,
        reason: Reason::OnDemand,
    })
}

fn trigger(opts: &MergeOptions, max_file_size: u64, files: &[FileInfo]) -> Option<Reason> {
    for f in files {
        if f.dead_bytes() > 0 && f.fragmentation() >= opts.frag_trigger {
            return Some(Reason::Fragmentation(f.id));
        }
        if f.dead_bytes() >= opts.dead_bytes_trigger {
            return Some(Reason::DeadBytes(f.id));
        }
    }
    if files.len() > opts.max_sealed_files {
        // Only if merging everything leaves at most half the limit: a merge that left more
        // would be triggered again within a few rotations, rewriting every live byte each
        // time. With half the limit left, a full merge comes at most once per
        // `max_sealed_files / 2` files written, which bounds what it adds to write
        // amplification by one.
        let live: u64 = files.iter().map(|f| f.live_bytes).sum();
        let outputs = live.div_ceil(max_file_size.max(1));
        if outputs <= (opts.max_sealed_files / 2) as u64 {
            return Some(Reason::TooManyFiles(files.len()));
        }
    }
    None
}

/// The longest oldest-first prefix within `limit` bytes (at least one file).
fn cap(limit: Option<u64>, files: &[FileInfo]) -> Vec<u32> {
    let mut total = 0u64;
    let mut out = Vec::new();
    for f in files {
        total = total.saturating_add(f.bytes);
        if limit.is_some_and(|l| total > l) && !out.is_empty() {
            break;
        }
        out.push(f.id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: u32, bytes: u64, live: u64) -> FileInfo {
        FileInfo {
            id,
            bytes,
            live_bytes: live,
        }
    }

    fn opts() -> MergeOptions {
        MergeOptions {
            small_file_threshold: 100,
            ..MergeOptions::default()
        }
    }

    #[test]
    fn nothing_to_do_for_live_files() {
        let files = [f(1, 1000, 990), f(2, 1000, 1000)];
        assert_eq!(pick(&opts(), 1 << 20, &files), None);
        assert_eq!(pick(&opts(), 1 << 20, &[]), None);
    }

    #[test]
    fn fragmentation_triggers_and_thresholds_choose() {
        let files = [
            f(3, 1000, 300),
            f(1, 1000, 550),
            f(2, 1000, 900),
            f(4, 50, 50),
        ];
        let plan = pick(&opts(), 1 << 20, &files).unwrap();
        assert_eq!(plan.reason, Reason::Fragmentation(3));
        assert_eq!(
            plan.inputs,
            vec![1, 3, 4],
            "45% dead and small files join, 10% does not"
        );
    }

    #[test]
    fn dead_bytes_trigger() {
        let o = MergeOptions {
            dead_bytes_trigger: 500,
            dead_bytes_threshold: 200,
            ..opts()
        };
        let files = [
            f(1, 10_000, 9_400),
            f(2, 10_000, 9_700),
            f(3, 10_000, 9_900),
        ];
        let plan = pick(&o, 1 << 20, &files).unwrap();
        assert_eq!(plan.reason, Reason::DeadBytes(1));
        assert_eq!(plan.inputs, vec![1, 2]);
    }

    #[test]
    fn too_many_files_only_when_merging_reduces_them() {
        let o = MergeOptions {
            max_sealed_files: 2,
            ..opts()
        };
        let files = [f(1, 1000, 900), f(2, 1000, 900), f(3, 1000, 900)];
        let plan = pick(&o, 4096, &files).unwrap();
        assert_eq!(plan.reason, Reason::TooManyFiles(3));
        assert_eq!(plan.inputs, vec![1, 2, 3]);
        assert_eq!(
            pick(&o, 900, &files),
            None,
            "three full files would stay three"
        );
    }

    /// Live data that needs `max_sealed_files` files on its own: merging everything for one
    /// file less would be triggered again by the next rotation, rewriting every live byte per
    /// file written (the simulator measured write amplification 8,385).
    #[test]
    fn too_many_files_does_not_rewrite_everything_for_one_file_less() {
        let o = MergeOptions {
            max_sealed_files: 4,
            ..opts()
        };
        let files: Vec<FileInfo> = (1..=5).map(|id| f(id, 1000, 800)).collect();
        assert_eq!(pick(&o, 1000, &files), None, "5 files would merge into 4");
        let plan = pick(&o, 4000, &files).unwrap();
        assert_eq!(
            plan.reason,
            Reason::TooManyFiles(5),
            "5 small files merge into 1"
        );
    }

    #[test]
    fn merge_size_cap_keeps_oldest_first() {
        let o = MergeOptions {
            max_merge_bytes: Some(2500),
            ..opts()
        };
        let files = [f(9, 1000, 0), f(2, 1000, 0), f(5, 1000, 0)];
        assert_eq!(pick(&o, 1 << 20, &files).unwrap().inputs, vec![2, 5]);
        assert_eq!(pick_all(&o, &files).unwrap().inputs, vec![2, 5]);
        let tiny = MergeOptions {
            max_merge_bytes: Some(1),
            ..opts()
        };
        assert_eq!(
            pick_all(&tiny, &files).unwrap().inputs,
            vec![2],
            "at least one file"
        );
    }
}

/// The merge policy as a simulator calls it (`bench-harness simulate`): the same `pick` the
/// merge worker runs, and the sizes of the records and files a simulator must model. Pure.
pub mod simulate {
    use super::FileInfo;
    use crate::MergeOptions;

    /// Bytes of a data file before its first record.
    pub const FILE_HEADER_BYTES: u64 = crate::datafile::DATA_START;
    /// Bytes of a record besides its key and value.
    pub const RECORD_HEADER_BYTES: u64 = crate::record::HEADER_LEN as u64;
    /// Bytes of the seal record closing a sealed file.
    pub const SEAL_BYTES: u64 = crate::record::SEAL_LEN as u64;

    /// A sealed file as the simulator describes it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Sealed {
        /// File id (older files have smaller ids).
        pub id: u32,
        /// Bytes in the file.
        pub bytes: u64,
        /// Bytes of its records the keydir still points at.
        pub live_bytes: u64,
    }

    /// The files the engine's merge worker would merge now, oldest first, or none.
    pub fn pick_merge(
        opts: &MergeOptions,
        max_file_size: u64,
        sealed: &[Sealed],
    ) -> Option<Vec<u32>> {
        let infos: Vec<FileInfo> = sealed
            .iter()
            .map(|s| FileInfo {
                id: s.id,
                bytes: s.bytes,
                live_bytes: s.live_bytes,
            })
            .collect();
        super::pick(opts, max_file_size, &infos).map(|plan| plan.inputs)
    }
}
