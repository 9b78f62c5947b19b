//! Tables on their own: a round-trip property test and the bloom filter's false-positive rate.

use std::collections::BTreeMap;
use std::path::Path;

use engine_api::{SimStorage, Storage};
use lsm_engine::{SstFileReader, SstFileWriter, SstOptions};
use proptest::prelude::*;

/// Versions per key, newest first: (seq, value or tombstone).
type Model = BTreeMap<Vec<u8>, Vec<(u64, Option<Vec<u8>>)>>;

fn model() -> impl Strategy<Value = Model> {
    let versions = prop::collection::btree_map(
        1..1000u64,
        prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..200)),
        1..4,
    )
    .prop_map(|m| m.into_iter().rev().collect::<Vec<_>>());
    prop::collection::btree_map(prop::collection::vec(any::<u8>(), 1..24), versions, 0..300)
}

fn write(sim: &SimStorage, path: &Path, m: &Model, opts: SstOptions) -> lsm_engine::SstInfo {
    let mut w = SstFileWriter::create(sim, path, opts).unwrap();
    for (k, versions) in m {
        for (seq, v) in versions {
            w.add(k, *seq, v.as_deref()).unwrap();
        }
    }
    w.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tables_round_trip(
        m in model(),
        block_bytes in 32usize..4096,
        restart_interval in 1usize..20,
        bits in prop::sample::select(vec![0u32, 4, 10]),
        probe_seq in 1..1000u64,
    ) {
        let sim = SimStorage::new();
        sim.create_dir_all(Path::new("/t")).unwrap();
        let path = Path::new("/t/t.sst");
        let opts = SstOptions { block_bytes, restart_interval, bloom_bits_per_key: bits };
        let info = write(&sim, path, &m, opts);
        let r = SstFileReader::open(&sim, path).unwrap();
        prop_assert_eq!(r.info(), info.clone());
        let entries: usize = m.values().map(Vec::len).sum();
        prop_assert_eq!(info.entries, entries as u64);

        let read: Vec<_> = r.entries().collect::<Result<_, _>>().unwrap();
        let expected: Vec<_> = m.iter().flat_map(|(k, vs)| vs.iter().map(move |(s, v)| (k.clone(), *s, v.clone()))).collect();
        let got: Vec<_> = read.iter().map(|e| (e.key.to_vec(), e.seq, e.value.as_ref().map(|v| v.to_vec()))).collect();
        prop_assert_eq!(got, expected);

        for (k, versions) in &m {
            prop_assert!(r.may_contain(k), "bloom filter false negative");
            let newest = versions.first().map(|(_, v)| v.clone());
            prop_assert_eq!(r.get(k, u64::MAX >> 8).unwrap().map(|v| v.map(|b| b.to_vec())), newest);
            let at = versions.iter().find(|(s, _)| *s <= probe_seq).map(|(_, v)| v.clone());
            prop_assert_eq!(r.get(k, probe_seq).unwrap().map(|v| v.map(|b| b.to_vec())), at);
        }
        let mut absent = b"\xff\xff\xff\xff-absent".to_vec();
        while m.contains_key(&absent) {
            absent.push(0);
        }
        prop_assert_eq!(r.get(&absent, u64::MAX >> 8).unwrap(), None);
    }
}

#[test]
fn bloom_false_positive_rate_is_at_most_one_percent_at_ten_bits_per_key() {
    let sim = SimStorage::new();
    sim.create_dir_all(Path::new("/t")).unwrap();
    let path = Path::new("/t/bloom.sst");
    let opts = SstOptions {
        bloom_bits_per_key: 10,
        ..SstOptions::default()
    };
    let n = 100_000u32;
    let mut w = SstFileWriter::create(&sim, path, opts).unwrap();
    for i in 0..n {
        w.add(format!("present-{i:08}").as_bytes(), 1, Some(b"v"))
            .unwrap();
    }
    w.finish().unwrap();
    let r = SstFileReader::open(&sim, path).unwrap();
    assert!(
        (0..n).all(|i| r.may_contain(format!("present-{i:08}").as_bytes())),
        "false negative"
    );
    let probes = 400_000u32;
    let false_positives = (0..probes)
        .filter(|i| r.may_contain(format!("absent-{i:08}").as_bytes()))
        .count();
    let rate = false_positives as f64 / f64::from(probes);
    let bits_per_key = (r.filter_bytes() * 8) as f64 / f64::from(n);
    eprintln!(
        "bloom: {bits_per_key:.2} bits/key, false-positive rate {:.3} %",
        rate * 100.0
    );
    assert!(
        bits_per_key <= 10.1,
        "filter uses {bits_per_key} bits per key"
    );
    assert!(rate <= 0.01, "false-positive rate {rate} over 1 %");
}
