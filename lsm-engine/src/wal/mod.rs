//! The write-ahead log: every write batch is appended here as one checksummed record before it
//! reaches the memtable. Spec: `docs/formats/wal.md`.
//!
//! One WAL per memtable. At rotation the old WAL is synced before the new one takes writes, so
//! every WAL but the newest is complete on disk; damage in those is corruption, while a bad record
//! in the newest is the torn tail of a write that was never acknowledged as durable.

pub(crate) mod format;
mod reader;
mod writer;

pub(crate) use reader::{WalContents, read_wal, zero_tail};
pub(crate) use writer::WalWriter;

#[cfg(test)]
mod tests {
    //! The preallocated tail (`docs/formats/wal.md`, "Preallocation"): written by the writer,
    //! cut at seal, and read back as the end of the file.

    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    use engine_api::testing::hooked::{Hook, HookedStorage, Op};
    use engine_api::{BatchOp, CrashMode, SimStorage, Storage};

    use super::{WalWriter, read_wal};
    use crate::filename;

    const DIR: &str = "/db";

    fn put(i: u8) -> Vec<BatchOp> {
        vec![BatchOp::Put {
            key: vec![b'k', i],
            value: vec![b'v'; 40],
        }]
    }

    /// WAL 7 with `n` synced one-put batches, left open.
    fn wal_with(sim: &SimStorage, n: u8) -> WalWriter {
        sim.create_dir_all(Path::new(DIR)).unwrap();
        let wal = WalWriter::create(sim, Path::new(DIR), 7, (0, 0)).unwrap();
        for i in 0..n {
            wal.append(u64::from(i) + 1, &put(i)).unwrap();
            wal.sync().unwrap();
        }
        wal
    }

    fn file_len(sim: &SimStorage) -> u64 {
        sim.file_len(&filename::wal(Path::new(DIR), 7)).unwrap()
    }

    #[test]
    fn appends_stay_inside_a_preallocated_size_ahead_of_the_end() {
        let sim = SimStorage::new();
        let wal = wal_with(&sim, 3);
        assert!(
            file_len(&sim) > wal.len(),
            "{} <= {}",
            file_len(&sim),
            wal.len()
        );
    }

    #[test]
    fn a_zero_tail_after_the_last_record_is_the_end_not_a_bad_record() {
        let sim = SimStorage::new();
        let wal = wal_with(&sim, 3);
        let sim = sim.crash(CrashMode::DropUnsynced, 1);
        let contents = read_wal(&sim, Path::new(DIR), 7, true).unwrap();
        assert_eq!(contents.batches.len(), 3);
        assert_eq!(contents.valid_len, wal.len());
        assert!(contents.bad.is_none(), "bad: {:?}", contents.bad);
    }

    #[test]
    fn a_torn_record_before_the_zero_tail_is_still_reported() {
        let sim = SimStorage::new();
        let wal = wal_with(&sim, 3);
        let len = usize::try_from(wal.len()).unwrap();
        let path = filename::wal(Path::new(DIR), 7);
        let mut bytes = sim.read_file(&path).unwrap();
        bytes[len - 2] ^= 0x40;
        sim.overwrite_file(&path, bytes);
        let contents = read_wal(&sim, Path::new(DIR), 7, true).unwrap();
        assert_eq!(contents.batches.len(), 2);
        assert!(
            contents.bad.is_some(),
            "the damaged last record went unreported"
        );
    }

    #[test]
    fn seal_cuts_the_preallocated_tail_durably() {
        let sim = SimStorage::new();
        let wal = wal_with(&sim, 3);
        wal.seal().unwrap();
        assert_eq!(file_len(&sim), wal.len());
        let sim = sim.crash(CrashMode::DropUnsynced, 1);
        assert_eq!(file_len(&sim), wal.len(), "the cut was not synced");
        let contents = read_wal(&sim, Path::new(DIR), 7, true).unwrap();
        assert_eq!((contents.batches.len(), contents.bad), (3, None));
    }

    /// Extends the file on the next preallocation, then reports failure (an extending
    /// `ftruncate` that failed halfway, as on FUSE or NFS).
    #[derive(Default)]
    struct ExtendThenFail(AtomicBool);

    impl Hook for ExtendThenFail {
        fn after(&self, op: &Op<'_>, _ok: bool) -> engine_api::Result<()> {
            if matches!(op, Op::Preallocate(..)) && self.0.swap(false, Ordering::SeqCst) {
                return Err(op.error("injected after the size changed"));
            }
            Ok(())
        }
    }

    /// The seal cuts the file to its last record whatever the writer believes its size is: a
    /// failed preallocation may have changed it.
    #[test]
    fn seal_cuts_a_size_that_a_failed_preallocation_left() {
        let storage = HookedStorage::new(ExtendThenFail(AtomicBool::new(true)));
        storage.create_dir_all(Path::new(DIR)).unwrap();
        let wal = WalWriter::create(&storage, Path::new(DIR), 7, (0, 0)).unwrap();
        assert!(
            wal.append(1, &put(1)).is_err(),
            "the preallocation did not fail"
        );
        wal.seal().unwrap();
        assert_eq!(file_len(&storage.sim), wal.len(), "zeros after the seal");
    }
}
