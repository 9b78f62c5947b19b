//! The cargo-fuzz targets' bodies (`lsm_engine::fuzzing`) over the checked-in corpus in
//! `fuzz/corpus/<target>/`, each seed followed by mutations: the stable half of fuzzing. With
//! `FUZZ_CORPUS_WRITE=1` the seeds are first regenerated from the files a real workload leaves;
//! `FUZZ_MUTATIONS=<n>` runs more mutations per seed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use engine_api::testing::fuzz::{self, WRITE_ENV, corpus_dir, replay};
use engine_api::{Engine, FaultOp, SimStorage, Storage, SyncPolicy};
use lsm_engine::fuzzing::{self, craft};
use lsm_engine::{LsmEngine, LsmOptions};

use crate::common::tiny_options;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn manual(
    storage: Arc<dyn Storage>,
    dir: &Path,
    sync: SyncPolicy,
) -> engine_api::Result<Box<dyn Engine>> {
    let options = LsmOptions {
        auto_compaction: false,
        ..tiny_options(storage, sync)
    };
    Ok(Box::new(LsmEngine::open(dir, options)?))
}

/// Files a tiny-table workload leaves (WALs, manifests, tables, CURRENT), plus compaction
/// logs caught by freezing the storage in the middle of compactions. Keyed by file name and
/// run, so images from different runs do not overwrite each other.
fn real_files() -> &'static BTreeMap<String, Vec<u8>> {
    static FILES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let mut files = BTreeMap::new();
        for freeze in [None, Some(2), Some(4), Some(6), Some(9), Some(12)] {
            let sim = SimStorage::new();
            let engine = manual(Arc::new(sim.clone()), Path::new("/db"), SyncPolicy::Always)
                .unwrap_or_else(|e| panic!("{e}"));
            fuzz::sample_writes(&*engine, 80, 19, 200);
            if let Some(k) = freeze {
                sim.freeze_after(&[FaultOp::Sync], k);
            }
            // A frozen storage fails the compaction; what it left is the point.
            let _ = engine.compact();
            drop(engine);
            for path in sim.all_files() {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                if let (Some(name), Some(bytes)) = (name, sim.read_file(&path)) {
                    files.insert(format!("{name}@{freeze:?}"), bytes);
                }
            }
        }
        files
    })
}

fn files_named(pred: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = real_files()
        .iter()
        .filter(|(n, _)| pred(n))
        .map(|(_, b)| b.clone())
        .filter(|b| !b.is_empty())
        .collect();
    seeds.sort();
    seeds.dedup();
    seeds
}

fn table_parts(kind: &str) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = files_named(|n| n.contains(".sst@"))
        .iter()
        .flat_map(|t| fuzzing::table_parts(t))
        .filter(|(k, _)| *k == kind)
        .map(|(_, b)| b)
        .collect();
    seeds.sort();
    seeds.dedup();
    seeds
}

fn with(mut seeds: Vec<Vec<u8>>, more: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    seeds.extend(more);
    seeds
}

/// WAL records whose checksums hold around impossible numbers (`untrusted.rs`).
fn absurd_wal_records() -> Vec<Vec<u8>> {
    let op = |k: &[u8]| engine_api::BatchOp::Put {
        key: k.to_vec(),
        value: b"v".to_vec(),
    };
    let mut huge_count = 7u64.to_le_bytes().to_vec();
    huge_count.extend_from_slice(&[0; 8]);
    huge_count.extend_from_slice(&u32::MAX.to_le_bytes());
    // Whole files: a header, then the record seeded with its nonce.
    let n = 0x5eed;
    [
        craft::wal_batch(n, u64::MAX, 0, &[op(b"a"), op(b"b")]),
        craft::wal_batch(n, craft::MAX_SEQ, 0, &[op(b"a"), op(b"b")]),
        craft::wal_batch(n, 0, 0, &[op(b"a")]),
        craft::wal_batch(n, 5, 0, &[op(b"")]),
        craft::wal_record(n, &huge_count),
    ]
    .into_iter()
    .map(|record| [craft::wal_header(n), record].concat())
    .collect()
}

/// Manifest records whose checksums hold around impossible numbers (`untrusted.rs`).
fn absurd_edits() -> Vec<Vec<u8>> {
    let table = craft::Table {
        number: 9,
        smallest: craft::internal_key(b"a", 1),
        largest: craft::internal_key(b"b", 1),
        max_seq: u64::MAX,
        entries: 2,
        ..craft::Table::default()
    };
    [
        craft::Edit {
            last_sequence: Some(u64::MAX),
            ..craft::Edit::default()
        },
        craft::Edit {
            next_file_number: Some(u64::MAX),
            deleted: vec![(u32::MAX, u64::MAX)],
            ..craft::Edit::default()
        },
        craft::Edit {
            added: vec![(u32::MAX, table)],
            ..craft::Edit::default()
        },
    ]
    .iter()
    .map(|edit| {
        [
            craft::manifest_header(0x5eed),
            craft::manifest_record(0x5eed, edit),
        ]
        .concat()
    })
    .collect()
}

/// Writes `seeds` as the target's corpus when asked, then replays the corpus.
fn run(target: &str, mutations: u32, seeds: impl FnOnce() -> Vec<Vec<u8>>, body: &dyn Fn(&[u8])) {
    let dir = corpus_dir(root(), target);
    if std::env::var_os(WRITE_ENV).is_some() {
        let seeds = seeds();
        assert!(
            !seeds.is_empty(),
            "the workload produced no seed for {target}"
        );
        fuzz::write_seeds(&dir, &seeds).unwrap_or_else(|e| panic!("{e}"));
    }
    let report = replay(target, &dir, mutations, body).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("lsm {report}");
}

#[test]
fn lsm_wal_record() {
    run(
        "lsm_wal_record",
        2000,
        || with(files_named(|n| n.contains(".log@")), absurd_wal_records()),
        &fuzzing::wal_record,
    );
}

#[test]
fn lsm_manifest_edit() {
    run(
        "lsm_manifest_edit",
        2000,
        || with(files_named(|n| n.starts_with("MANIFEST-")), absurd_edits()),
        &fuzzing::manifest_edit,
    );
}

#[test]
fn lsm_data_block() {
    run(
        "lsm_data_block",
        1000,
        || table_parts("data"),
        &fuzzing::data_block,
    );
}

#[test]
fn lsm_index_block() {
    run(
        "lsm_index_block",
        1000,
        || table_parts("index"),
        &fuzzing::index_block,
    );
}

#[test]
fn lsm_filter() {
    run(
        "lsm_filter",
        1000,
        || table_parts("filter"),
        &fuzzing::filter,
    );
}

#[test]
fn lsm_footer() {
    run(
        "lsm_footer",
        1000,
        || table_parts("footer"),
        &fuzzing::footer,
    );
}

#[test]
fn lsm_table() {
    run(
        "lsm_table",
        200,
        || files_named(|n| n.contains(".sst@")),
        &fuzzing::table,
    );
}

#[test]
fn lsm_compaction_log() {
    run(
        "lsm_compaction_log",
        2000,
        || files_named(|n| n.contains(".clog@")),
        &fuzzing::compaction_log,
    );
}

#[test]
fn model() {
    run("model", 10, fuzz::model_seeds, &|data| {
        fuzz::model(&manual, data)
    });
}
