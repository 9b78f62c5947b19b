//! `CountingStorage`: classes, the work an I/O is counted under, and a host's own counters.

use std::path::Path;
use std::sync::Arc;

use engine_api::{CommonOptions, CountingStorage, IoClass, SimStorage, Storage, io_cause};

fn file(storage: &dyn Storage, name: &str) -> std::path::PathBuf {
    let path = Path::new("/db").join(name);
    storage.create_dir_all(Path::new("/db")).expect("dir");
    let out = storage.create(&path, IoClass::Log).expect("create");
    out.append(&[7; 100]).expect("append");
    path
}

/// A user-read handle read under a cause counts as the cause's work; other handles keep their
/// class; the cause ends with its guard, and nested causes restore the outer one.
#[test]
fn a_cause_reclassifies_user_reads_only() {
    let counting = CountingStorage::new(Arc::new(SimStorage::new()));
    let path = file(&counting, "t");
    let user = counting.open(&path, IoClass::UserRead).expect("open");
    let merge = counting.open(&path, IoClass::Compaction).expect("open");
    let mut buf = [0; 10];
    {
        let _flush = io_cause(IoClass::Flush);
        user.read_exact_at(&mut buf, 0).expect("read");
        {
            let _recovery = io_cause(IoClass::Recovery);
            user.read_exact_at(&mut buf, 0).expect("read");
        }
        user.read_exact_at(&mut buf, 0).expect("read");
        merge.read_exact_at(&mut buf, 0).expect("read");
    }
    user.read_exact_at(&mut buf, 0).expect("read");
    let io = counting.counters().snapshot();
    assert_eq!(io.class(IoClass::Flush).bytes_read, 20);
    assert_eq!(io.class(IoClass::Recovery).bytes_read, 10);
    assert_eq!(io.class(IoClass::Compaction).bytes_read, 10);
    assert_eq!(io.class(IoClass::UserRead).bytes_read, 10);
}

/// `CommonOptions::counted`: whatever runs on the options' storage counts into the returned
/// counters.
#[test]
fn counted_options_count_into_the_hosts_counters() {
    let options = CommonOptions {
        storage: Arc::new(SimStorage::new()),
        ..CommonOptions::default()
    };
    let (options, counters) = options.counted();
    let path = file(&*options.storage, "log");
    assert!(options.storage.exists(&path).expect("exists"));
    let io = counters.snapshot();
    assert_eq!(io.class(IoClass::Log).bytes_written, 100);
    assert_eq!(io.files_created, 1);
}
