//! Corpus replay: the model target's corpus against the reference engine, and proof that a
//! replay reports a panicking input.

use std::path::Path;

use engine_api::testing::fuzz::{self, WRITE_ENV, corpus_dir, model_seeds, mutate, replay};
use engine_api::testing::reference_factory;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn model_corpus_against_the_reference_engine() {
    let dir = corpus_dir(root(), "model");
    if std::env::var_os(WRITE_ENV).is_some() {
        fuzz::write_seeds(&dir, &model_seeds()).unwrap_or_else(|e| panic!("{e}"));
    }
    let factory = reference_factory();
    let report = replay("model", &dir, 12, &|data| fuzz::model(&factory, data))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.seeds >= 10,
        "the model corpus has {} seeds",
        report.seeds
    );
    eprintln!("reference {report}");
}

#[test]
fn a_panicking_input_is_reported_with_its_seed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    fuzz::write_seeds(dir.path(), &[b"abcdefgh".to_vec(), b"12345678".to_vec()])
        .unwrap_or_else(|e| panic!("{e}"));
    // Panics once a mutation makes the input longer than any seed.
    let body = |data: &[u8]| assert!(data.len() <= 8, "grew to {} bytes", data.len());
    let err = replay("test", dir.path(), 50, &body).expect_err("no mutation grew the input");
    assert!(
        err.contains("panicked: grew to") && err.contains("seed-"),
        "{err}"
    );
}

#[test]
fn mutations_are_deterministic_and_change_the_input() {
    let input = b"the quick brown fox".to_vec();
    let other = b"jumps over".to_vec();
    assert_eq!(mutate(&input, &other, 7), mutate(&input, &other, 7));
    let changed = (0..100)
        .filter(|&s| mutate(&input, &other, s) != input)
        .count();
    assert!(
        changed > 90,
        "only {changed} of 100 mutations changed the input"
    );
}
