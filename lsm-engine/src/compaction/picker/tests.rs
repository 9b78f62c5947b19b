use super::*;

const MIB: u64 = 1 << 20;

fn cfg() -> LevelConfig {
    LevelConfig {
        l0_trigger: 4,
        base_bytes: 64 * MIB,
        multiplier: 10,
    }
}

fn file(number: u64, size: u64, lo: &str, hi: &str) -> FileSummary {
    FileSummary {
        number,
        size,
        entries: 10,
        tombstones: 0,
        max_seq: 10,
        smallest: lo.as_bytes().to_vec(),
        largest: hi.as_bytes().to_vec(),
    }
}

fn empty() -> Vec<Vec<FileSummary>> {
    vec![Vec::new(); 7]
}

#[test]
fn dynamic_level_targets_follow_the_largest_level() {
    let (base, t) = targets(&[0; 7], &cfg());
    assert_eq!(
        base, 6,
        "an empty tree compacts L0 straight into the last level"
    );
    assert_eq!(t[6], 64 * MIB);
    let mut bytes = [0u64; 7];
    bytes[6] = 10_000 * MIB;
    let (base, t) = targets(&bytes, &cfg());
    // 10 MiB for L3 still exceeds 64 / 10 MiB: L3 is the base, raised to 64 MiB.
    assert_eq!(base, 3);
    assert_eq!(t[6], 10_000 * MIB);
    assert_eq!(t[5], 1_000 * MIB);
    assert_eq!(t[4], 100 * MIB);
    assert_eq!(t[3], 64 * MIB);
    assert_eq!(&t[..3], &[0, 0, 0]);
    bytes[6] = 200 * MIB;
    let (base, t) = targets(&bytes, &cfg());
    assert_eq!(
        (base, t[5], t[6]),
        (5, 64 * MIB, 200 * MIB),
        "no target below base_bytes"
    );
}

#[test]
fn l0_goes_whole_to_the_base_level_once_due() {
    let mut levels = empty();
    levels[0] = (1..=3).map(|n| file(n, MIB, "a", "m")).collect();
    let busy = HashSet::new();
    let s = shape(&levels, &busy, &cfg());
    assert!(s.scores[0] < 1.0);
    assert_eq!(pick(&levels, &s, &busy, &[], u64::MAX), None);
    levels[0].push(file(4, MIB, "k", "z"));
    levels[6] = vec![
        file(10, MIB, "a", "c"),
        file(11, MIB, "x", "y"),
        file(12, MIB, "zz", "zzz"),
    ];
    let s = shape(&levels, &busy, &cfg());
    let p = pick(&levels, &s, &busy, &[], u64::MAX).unwrap();
    assert_eq!((p.level, p.output_level, p.trivial_move), (0, 6, false));
    assert_eq!(p.inputs.len(), 4);
    let next: Vec<u64> = p.next_inputs.iter().map(|f| f.number).collect();
    assert_eq!(next, vec![10, 11], "only overlapping base files join");
    // A running L0 job blocks a second one.
    let res = vec![Reservation {
        job: 1,
        level: 0,
        range: Range::all(),
    }];
    assert_eq!(pick(&levels, &s, &busy, &res, u64::MAX), None);
}

#[test]
fn a_file_overlapping_nothing_below_is_moved() {
    let mut levels = empty();
    levels[0] = vec![file(1, MIB, "a", "b")];
    let busy = HashSet::new();
    let cfg = LevelConfig {
        l0_trigger: 1,
        ..cfg()
    };
    let s = shape(&levels, &busy, &cfg);
    let p = pick(&levels, &s, &busy, &[], u64::MAX).unwrap();
    assert!(p.trivial_move && p.next_inputs.is_empty());
}

#[test]
fn deeper_levels_pick_the_smallest_overlap_and_respect_reservations() {
    let mut levels = empty();
    // L5 is the base (target 64 MiB) and holds 100 MiB: due.
    levels[5] = vec![file(1, 50 * MIB, "a", "f"), file(2, 50 * MIB, "g", "m")];
    levels[6] = vec![
        file(10, 300 * MIB, "a", "c"),
        file(11, 10 * MIB, "h", "j"),
        file(12, 300 * MIB, "k", "z"),
    ];
    let busy = HashSet::new();
    let s = shape(&levels, &busy, &cfg());
    assert_eq!(s.base_level, 5);
    assert!(s.scores[5] > 1.0, "{s:?}");
    let p = pick(&levels, &s, &busy, &[], u64::MAX).unwrap();
    assert_eq!(
        p.inputs[0].number, 1,
        "file 1 overlaps 300 MiB, file 2 overlaps 310 MiB"
    );
    // With file 1's range reserved in L6 by another job, file 2 is chosen.
    let res = vec![Reservation {
        job: 9,
        level: 6,
        range: Range {
            lo: Some(b"a".to_vec()),
            hi: Some(b"c".to_vec()),
        },
    }];
    let p = pick(&levels, &s, &busy, &res, u64::MAX).unwrap();
    assert_eq!(p.inputs[0].number, 2);
    assert_eq!(
        p.next_inputs.iter().map(|f| f.number).collect::<Vec<_>>(),
        vec![11, 12]
    );
    // Busy files are never picked.
    let busy: HashSet<u64> = [1, 12].into_iter().collect();
    assert_eq!(
        pick(
            &levels,
            &shape(&levels, &busy, &cfg()),
            &busy,
            &[],
            u64::MAX
        ),
        None
    );
}

#[test]
fn disjoint_ranges_of_one_level_can_be_picked_together() {
    let mut levels = empty();
    levels[5] = (0..4u64)
        .map(|i| {
            let lo = format!("{}", (b'a' + 2 * i as u8) as char);
            let hi = format!("{}", (b'b' + 2 * i as u8) as char);
            file(i + 1, 100 * MIB, &lo, &hi)
        })
        .collect();
    levels[6] = vec![file(20, 700 * MIB, "a", "b"), file(21, 700 * MIB, "e", "f")];
    let mut busy = HashSet::new();
    let mut res = Vec::new();
    let mut picked = Vec::new();
    for job in 0..4 {
        let s = shape(&levels, &busy, &cfg());
        let Some(p) = pick(&levels, &s, &busy, &res, u64::MAX) else {
            break;
        };
        for f in p.inputs.iter().chain(&p.next_inputs) {
            assert!(busy.insert(f.number), "file {} in two jobs", f.number);
        }
        for (level, range) in &p.reserve {
            res.push(Reservation {
                job,
                level: *level,
                range: range.clone(),
            });
        }
        picked.push(p.inputs[0].number);
    }
    assert!(picked.len() >= 2, "only {picked:?} could run at once");
}

#[test]
fn tombstone_dense_files_are_pushed_down_even_within_target() {
    let mut levels = empty();
    levels[5] = vec![file(1, MIB, "a", "c"), file(2, MIB, "d", "f")];
    levels[5][1].entries = 100;
    levels[5][1].tombstones = 60;
    levels[6] = vec![file(10, 100 * MIB, "a", "z")];
    let busy = HashSet::new();
    let s = shape(&levels, &busy, &cfg());
    assert!(
        s.scores.iter().all(|&x| x < 1.0),
        "nothing is due by size: {s:?}"
    );
    let p = pick(&levels, &s, &busy, &[], u64::MAX).unwrap();
    assert_eq!((p.level, p.inputs[0].number), (5, 2));
}

#[test]
fn ranges_intersect_inclusively_and_unbounded() {
    let r = |lo: &str, hi: &str| Range {
        lo: Some(lo.into()),
        hi: Some(hi.into()),
    };
    assert!(r("a", "c").intersects(&r("c", "d")));
    assert!(!r("a", "b").intersects(&r("c", "d")));
    assert!(Range::all().intersects(&r("x", "y")));
}

#[test]
fn full_compaction_takes_everything_newest_first_unless_settled() {
    let mut levels = empty();
    assert_eq!(full_compaction(&levels), None);
    levels[0] = vec![file(9, 1, "a", "z"), file(7, 1, "a", "z")];
    levels[6] = vec![file(3, 1, "a", "z")];
    let picked = full_compaction(&levels).unwrap();
    let numbers: Vec<(u64, u32)> = picked.iter().map(|i| (i.number, i.level)).collect();
    assert_eq!(numbers, vec![(9, 0), (7, 0), (3, 6)]);
    let mut settled = empty();
    settled[6] = vec![file(3, 1, "a", "z")];
    assert_eq!(full_compaction(&settled), None);
    settled[6][0].tombstones = 2;
    assert!(full_compaction(&settled).is_some(), "tombstones to collect");
}

#[test]
fn l0_never_compacts_past_a_level_holding_data() {
    // A tree reshaped under the picker (mass deletes shrank the last level, or a reopen with a
    // larger `max_bytes_for_level_base`): L3 still holds data while the last level alone would
    // put the base at L6.
    let mut levels = empty();
    levels[0] = (1..=4).map(|n| file(n, MIB, "a", "z")).collect();
    levels[3] = vec![file(10, MIB, "a", "m")];
    levels[6] = vec![file(20, 2 * MIB, "a", "z")];
    let busy = HashSet::new();
    let s = shape(&levels, &busy, &cfg());
    assert_eq!(
        s.base_level, 3,
        "the first non-empty level bounds the base: {s:?}"
    );
    let p = pick(&levels, &s, &busy, &[], u64::MAX).unwrap();
    assert_eq!((p.level, p.output_level), (0, 3));
    assert_eq!(
        p.next_inputs.iter().map(|f| f.number).collect::<Vec<_>>(),
        vec![10]
    );
    // While L3's file is in another job, L0 waits rather than go past it.
    let busy: HashSet<u64> = [10].into_iter().collect();
    let s = shape(&levels, &busy, &cfg());
    let p = pick(&levels, &s, &busy, &[], u64::MAX);
    assert!(
        p.as_ref()
            .is_none_or(|p| p.level != 0 || p.output_level <= 3),
        "L0 compacts past older data in L3: {p:?}"
    );
}

#[test]
fn a_tombstone_dense_file_of_the_last_level_is_rewritten() {
    let mut levels = empty();
    levels[6] = vec![file(1, MIB, "a", "c"), file(2, MIB, "d", "f")];
    levels[6][1].entries = 100;
    levels[6][1].tombstones = 60;
    let busy = HashSet::new();
    let s = shape(&levels, &busy, &cfg());
    let p = pick(&levels, &s, &busy, &[], u64::MAX);
    let got = p
        .as_ref()
        .map(|p| (p.level, p.output_level, p.inputs[0].number, p.trivial_move));
    assert_eq!(got, Some((6, 6, 2, false)), "{p:?}");
    // While a snapshot older than the file's newest entry lives, a rewrite would keep the
    // tombstones: no pick (else the same file would be rewritten again and again).
    assert_eq!(pick(&levels, &s, &busy, &[], 9), None);
}

#[test]
fn grandparents_are_the_overlapped_files_below_the_output_level_in_key_order() {
    let mut levels = empty();
    levels[6] = vec![
        file(3, 30, "p", "t"),
        file(1, 10, "a", "c"),
        file(2, 20, "d", "h"),
    ];
    let range = Range {
        lo: Some(b"b".to_vec()),
        hi: Some(b"e".to_vec()),
    };
    let g = grandparents(&levels, 5, &range);
    let spans: Vec<(&[u8], u64)> = g.iter().map(|g| (g.smallest.as_slice(), g.size)).collect();
    assert_eq!(spans, vec![(&b"a"[..], 10), (&b"d"[..], 20)]);
    assert!(
        grandparents(&levels, 6, &range).is_empty(),
        "the last level has none"
    );
}
