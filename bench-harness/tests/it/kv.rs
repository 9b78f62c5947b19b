//! The `kv` tool end to end, on real directories of both engines.

use std::path::Path;
use std::process::Command;

fn kv(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kv"))
        .args(args)
        .output()
        .expect("kv runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (success, stdout, stderr) = kv(args);
    assert!(success, "kv {args:?} failed: {stderr}");
    stdout
}

fn fill(engine: &str, dir: &Path) -> String {
    let dir = dir.to_str().expect("utf-8 temp path").to_string();
    ok(&["--engine", engine, "put", &dir, "apple", "red"]);
    ok(&["put", &dir, "pear", "green"]);
    ok(&["put", &dir, "apple", "crimson"]);
    ok(&["delete", &dir, "pear"]);
    ok(&["put", &dir, "quince", "yellow"]);
    dir
}

#[test]
fn bitcask_get_scan_inspect_explain() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = fill("bitcask", &tmp.path().join("db"));
    assert_eq!(ok(&["get", &dir, "apple"]), "crimson\n");
    assert!(!kv(&["get", &dir, "pear"]).0, "a deleted key was found");
    assert_eq!(ok(&["scan", &dir]), "apple = crimson\nquince = yellow\n");
    let explain = ok(&["explain", "get", &dir, "apple"]);
    assert!(explain.contains("keydir: hit"), "{explain}");
    assert!(explain.contains("total: 1 storage read(s)"), "{explain}");
    let miss = ok(&["explain", "get", &dir, "fig"]);
    assert!(miss.contains("total: 0 storage read(s)"), "{miss}");
    let inspect = ok(&["inspect", &dir]);
    assert!(inspect.contains("engine bitcask: 2 live keys"), "{inspect}");
    assert!(inspect.contains(".data"), "{inspect}");
    let compact = ok(&["compact", &dir]);
    assert!(compact.contains("jobs: 1"), "{compact}");
    assert_eq!(ok(&["get", &dir, "quince"]), "yellow\n");
}

#[test]
fn lsm_get_scan_inspect_explain() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = fill("lsm", &tmp.path().join("db"));
    assert_eq!(ok(&["get", &dir, "apple"]), "crimson\n");
    ok(&["compact", &dir]);
    let explain = ok(&["explain", "get", &dir, "apple"]);
    assert!(explain.contains("bloom filter"), "{explain}");
    assert!(explain.contains("found 7 bytes: crimson"), "{explain}");
    let inspect = ok(&["inspect", &dir]);
    assert!(inspect.contains("engine lsm"), "{inspect}");
    assert!(inspect.contains(".sst"), "{inspect}");
    assert!(inspect.contains("apple .. quince"), "{inspect}");
    assert_eq!(
        ok(&["scan", &dir, "--from", "b", "--to", "z"]),
        "quince = yellow\n"
    );
    assert_eq!(ok(&["--hex", "get", &dir, "6170706c65"]), "crimson\n");
}

#[test]
fn bad_input_is_a_message_not_a_panic() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let empty = tmp.path().to_str().expect("utf-8 temp path");
    for args in [
        vec!["get", empty, "k"],
        vec!["put", empty, "k", "v"],
        vec!["--hex", "--engine", "lsm", "put", empty, "zz", "v"],
    ] {
        let (success, _, stderr) = kv(&args);
        assert!(!success, "kv {args:?} succeeded");
        assert!(stderr.starts_with("kv: "), "kv {args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "kv {args:?} panicked: {stderr}"
        );
    }
    let dir = fill("bitcask", &tmp.path().join("b"));
    let (success, _, stderr) = kv(&["--engine", "lsm", "get", &dir, "apple"]);
    assert!(!success && stderr.contains("Bitcask"), "{stderr}");
}

#[test]
fn lsm_repair_rebuilds_a_directory_whose_current_is_damaged() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = fill("lsm", &tmp.path().join("db"));
    std::fs::write(Path::new(&dir).join("CURRENT"), b"MANIFEST-00x\n").expect("damage CURRENT");
    let (success, _, stderr) = kv(&["get", &dir, "apple"]);
    assert!(!success && stderr.contains("corruption"), "{stderr}");
    let repair = ok(&["repair", &dir]);
    assert!(
        repair.contains("lsm: rebuilt the table set after"),
        "{repair}"
    );
    assert!(repair.contains("kept 2 live entries"), "{repair}");
    assert_eq!(ok(&["get", &dir, "apple"]), "crimson\n");
    assert!(!kv(&["get", &dir, "pear"]).0, "a deleted key came back");
    assert_eq!(ok(&["scan", &dir]), "apple = crimson\nquince = yellow\n");
    assert_eq!(ok(&["repair", &dir]), "lsm: nothing to repair\n");
}

#[test]
fn bitcask_repair_skips_a_damaged_record_and_merges_it_away() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = fill("bitcask", &tmp.path().join("db"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    files.sort();
    let first = &files[0];
    let mut bytes = std::fs::read(first).expect("read");
    // Inside the value of the first put (apple = red), which a sealed file's seal vouches for.
    let at = bytes
        .windows(3)
        .position(|w| w == b"red")
        .expect("the first put's value");
    bytes[at] ^= 0x20;
    std::fs::write(first, bytes).expect("damage");
    // Without its hint the open must scan the file (with it, the open reads only the hint and
    // the damage shows when a read or a merge reaches the record).
    std::fs::remove_file(first.with_extension("hint")).expect("remove the hint");
    let (success, _, stderr) = kv(&["get", &dir, "quince"]);
    assert!(!success && stderr.contains("corruption"), "{stderr}");
    let repair = ok(&["repair", &dir]);
    assert!(repair.contains("skipped"), "{repair}");
    assert!(repair.contains("merged the damage away"), "{repair}");
    assert_eq!(ok(&["get", &dir, "apple"]), "crimson\n");
    assert_eq!(ok(&["get", &dir, "quince"]), "yellow\n");
    assert_eq!(
        ok(&["repair", &dir]),
        "bitcask: nothing to repair (2 live keys)\n"
    );
}

#[test]
fn explain_put_shows_the_log_the_sync_and_the_later_cost() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for engine in ["bitcask", "lsm"] {
        let dir = fill(engine, &tmp.path().join(engine));
        let explain = ok(&["explain", "put", &dir, "apple", "scarlet"]);
        let log = if engine == "lsm" {
            "WAL: appended"
        } else {
            "log: appended"
        };
        assert!(explain.contains(log), "{engine}: {explain}");
        assert!(explain.contains("key 5 + value 7"), "{engine}: {explain}");
        assert!(
            explain.contains("waited for 1 fsync(s)"),
            "{engine}: {explain}"
        );
        let later = if engine == "lsm" {
            "compaction L0 -> L"
        } else {
            "a merge copies"
        };
        assert!(explain.contains(later), "{engine}: {explain}");
        assert_eq!(
            ok(&["get", &dir, "apple"]),
            "scarlet\n",
            "{engine}: the put happened"
        );
    }
}

#[test]
fn explain_scan_lists_the_sources_and_their_io() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = fill("bitcask", &tmp.path().join("b"));
    let explain = ok(&["explain", "scan", &dir, "a", "z"]);
    assert!(
        explain.contains("keydir walk: all 2 live keys"),
        "{explain}"
    );
    assert!(explain.contains("=> 2 pair(s)"), "{explain}");
    assert!(explain.contains("total: 2 storage read(s)"), "{explain}");
    let dir = fill("lsm", &tmp.path().join("l"));
    ok(&["compact", &dir]);
    ok(&["put", &dir, "fig", "purple"]);
    let explain = ok(&["explain", "scan", &dir, "b", ""]);
    assert!(explain.contains("memtables:"), "{explain}");
    assert!(
        explain.contains("L6: one iterator over 1 table(s)"),
        "{explain}"
    );
    assert!(
        explain.contains("=> 2 pair(s) from 2 source(s)"),
        "{explain}"
    );
    assert!(explain.contains(".sst: 1 read(s)"), "{explain}");
    let narrow = ok(&["explain", "scan", &dir, "r", "s"]);
    assert!(narrow.contains("=> 0 pair(s)"), "{narrow}");
    assert!(narrow.contains("total: 0 storage read(s)"), "{narrow}");
}
