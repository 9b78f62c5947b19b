//! The cargo-fuzz targets' bodies (`bitcask_engine::fuzzing`) over the checked-in corpus in
//! `fuzz/corpus/<target>/`, each seed followed by mutations: the stable half of fuzzing. With
//! `FUZZ_CORPUS_WRITE=1` the seeds are first regenerated from the files a real workload leaves;
//! `FUZZ_MUTATIONS=<n>` runs more mutations per seed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use bitcask_engine::fuzzing;
use engine_api::testing::fuzz::{self, WRITE_ENV, corpus_dir, replay};
use engine_api::{SimStorage, SyncPolicy};

use crate::common::tiny_manual_factory;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Files a merge-heavy workload leaves in a tiny-file directory, by name, including one frozen
/// right after a merge commit record was written.
fn real_files() -> &'static BTreeMap<String, Vec<u8>> {
    static FILES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let sim = SimStorage::new();
        let engine =
            tiny_manual_factory(Arc::new(sim.clone()), Path::new("/db"), SyncPolicy::Always)
                .unwrap_or_else(|e| panic!("{e}"));
        fuzz::sample_writes(&*engine, 60, 17, 300);
        engine.compact().unwrap_or_else(|e| panic!("{e}"));
        fuzz::sample_writes(&*engine, 60, 17, 300);
        drop(engine);
        sim.all_files()
            .into_iter()
            .filter_map(|p| {
                let name = p.file_name()?.to_string_lossy().into_owned();
                Some((name, sim.read_file(&p)?))
            })
            .collect()
    })
}

fn files_named(pred: impl Fn(&str) -> bool) -> Vec<Vec<u8>> {
    real_files()
        .iter()
        .filter(|(n, _)| pred(n))
        .map(|(_, b)| b.clone())
        .collect()
}

/// Writes `seeds` as the target's corpus when asked, then replays the corpus.
fn run(target: &str, mutations: u32, seeds: impl FnOnce() -> Vec<Vec<u8>>, body: &dyn Fn(&[u8])) {
    let dir = corpus_dir(root(), target);
    if std::env::var_os(WRITE_ENV).is_some() {
        fuzz::write_seeds(&dir, &seeds()).unwrap_or_else(|e| panic!("{e}"));
    }
    let report = replay(target, &dir, mutations, body).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("bitcask {report}");
}

#[test]
fn bitcask_record() {
    let seeds = || {
        files_named(|n| n.ends_with(".data"))
            .iter()
            .flat_map(|f| fuzzing::split_records(f))
            .collect()
    };
    run("bitcask_record", 1000, seeds, &fuzzing::record);
}

#[test]
fn bitcask_hint() {
    run(
        "bitcask_hint",
        2000,
        || files_named(|n| n.ends_with(".hint")),
        &fuzzing::hint,
    );
}

#[test]
fn bitcask_merge_commit() {
    let seeds = || {
        let mut seeds = files_named(|n| n.starts_with("MERGE-"));
        // Hand-made too, in case the workload's commit records were all rolled forward.
        let mut record = b"BCMERG\x00\x02".to_vec();
        for v in [9u32, 2, 1, 3, 4, 10] {
            record.extend_from_slice(&v.to_le_bytes());
        }
        record.extend_from_slice(&4096u64.to_le_bytes());
        let crc = crc32fast::hash(&record);
        record.extend_from_slice(&crc.to_le_bytes());
        seeds.push(record);
        seeds
    };
    run("bitcask_merge_commit", 5000, seeds, &fuzzing::merge_commit);
}

#[test]
fn bitcask_data_file() {
    run(
        "bitcask_data_file",
        100,
        || files_named(|n| n.ends_with(".data")),
        &fuzzing::data_file,
    );
}

#[test]
fn model() {
    run("model", 10, fuzz::model_seeds, &|data| {
        fuzz::model(&tiny_manual_factory, data)
    });
}
