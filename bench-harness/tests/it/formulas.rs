//! Amplification formulas and `/proc` parsing, on known counters.

use bench_harness::machine::{filesystem_of, utc_from_unix};
use bench_harness::metrics::amplification::{
    read_amplification, space_amplification, write_amplification,
};
use bench_harness::metrics::process::{CpuTime, Memory, ProcIo};
use bench_harness::report::table::{Table, num};
use bench_harness::runner::LiveSet;
use engine_api::{ClassIo, IoClass, IoStats};

fn written(bytes: u64) -> ClassIo {
    ClassIo {
        bytes_written: bytes,
        ..ClassIo::default()
    }
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn lsm_write_amplification_views() {
    // 1000 user bytes; WAL 1100, flush 900, compaction 2700, manifest 50.
    let mut io = IoStats::default();
    io.set(IoClass::Log, written(1_100));
    io.set(IoClass::Flush, written(900));
    io.set(IoClass::Compaction, written(2_700));
    io.set(IoClass::Manifest, written(50));
    let proc = ProcIo {
        wchar: 4_800,
        write_bytes: 6_000,
        cancelled_write_bytes: 1_000,
        ..ProcIo::default()
    };
    let wa = write_amplification(&io, &proc, 1_000);
    assert_eq!(wa.user_bytes, 1_000);
    assert_eq!(wa.flush_compaction_per_flush, Some(4.0)); // (900 + 2700) / 900
    assert!(approx(wa.flush_compaction, 3.6)); // (900 + 2700) / 1000
    assert!(approx(wa.wal_flush_compaction, 4.7)); // (1100 + 900 + 2700) / 1000
    assert!(approx(wa.seam_total, 4.75)); // every class, manifest included
    assert!(approx(wa.proc_wchar, 4.8));
    assert!(approx(wa.proc_device, 5.0)); // (6000 - 1000) / 1000
}

#[test]
fn bitcask_write_amplification_views() {
    // 2000 user bytes; appends 2300 (headers), merge 1200, hints 300.
    let mut io = IoStats::default();
    io.set(IoClass::Log, written(2_300));
    io.set(IoClass::Compaction, written(1_200));
    io.set(IoClass::Hint, written(300));
    let wa = write_amplification(&io, &ProcIo::default(), 2_000);
    assert!(approx(wa.log, 1.15));
    assert!(approx(wa.log_merge_hint, 1.9));
    assert_eq!(
        wa.flush_compaction_per_flush, None,
        "no flushes, no RocksDB Sum view"
    );
    assert!(approx(wa.flush_compaction, 0.6));
}

#[test]
fn nothing_written_is_zero_not_nan() {
    let wa = write_amplification(&IoStats::default(), &ProcIo::default(), 0);
    assert!(approx(wa.seam_total, 0.0) && approx(wa.proc_wchar, 0.0));
    assert!(approx(space_amplification(10, 0, 100), 0.0));
}

#[test]
fn space_and_read_amplification() {
    // 1000 live keys of 116 bytes on 232,000 bytes of disk.
    assert!(approx(space_amplification(232_000, 1_000, 116), 2.0));
    let mut io = IoStats::default();
    io.set(
        IoClass::UserRead,
        ClassIo {
            reads: 1_500,
            bytes_read: 6_000_000,
            ..ClassIo::default()
        },
    );
    let proc = ProcIo {
        read_bytes: 409_600,
        ..ProcIo::default()
    };
    let ra = read_amplification(&io, &proc, 1_000);
    assert!(approx(ra.seam_reads_per_get, 1.5));
    assert!(approx(ra.seam_bytes_per_get, 6_000.0));
    assert!(approx(ra.device_bytes_per_get, 409.6));
}

#[test]
fn proc_files_parse() {
    let io = ProcIo::parse(
        "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\nwrite_bytes: 8192\n\
         cancelled_write_bytes: 4096\n",
    );
    assert_eq!((io.rchar, io.wchar, io.read_bytes), (10, 20, 4096));
    assert_eq!(io.device_write_bytes(), 4096);
    let later = ProcIo { wchar: 25, ..io };
    assert_eq!(later.since(&io).wchar, 5);

    let mem = Memory::parse("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n");
    assert_eq!((mem.rss_bytes, mem.peak_rss_bytes), (1 << 20, 2 << 20));

    // A command name with spaces and a parenthesis must not shift the fields.
    let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0";
    let cpu = CpuTime::parse(stat);
    assert!(approx(cpu.user_s, 2.5) && approx(cpu.system_s, 0.75));
}

#[test]
fn live_set_counts_transitions() {
    let mut live = LiveSet::new(10);
    live.insert(3);
    live.insert(3);
    live.insert(9);
    assert_eq!(live.count(), 2);
    live.remove(3);
    live.remove(4);
    assert_eq!(live.count(), 1);
    assert!(live.contains(9) && !live.contains(3));
    live.insert(500); // past capacity: ignored until grown
    assert_eq!(live.count(), 1);
    live.grow(1_000);
    live.insert(500);
    assert_eq!(live.count(), 2);
}

#[test]
fn machine_helpers() {
    assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
    assert_eq!(utc_from_unix(1_709_210_096), "2024-02-29T12:34:56Z");
    let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n";
    assert_eq!(
        filesystem_of(std::path::Path::new("/tmp/x"), mounts),
        "tmpfs (tmpfs)"
    );
    assert_eq!(
        filesystem_of(std::path::Path::new("/work/x"), mounts),
        "ext4 (/dev/vda)"
    );
}

#[test]
fn tables_render() {
    let table = Table {
        header: vec!["phase".into(), "a|b".into()],
        rows: vec![vec!["fill".into(), num(1234.4)]],
    };
    assert_eq!(
        table.to_markdown(),
        "| phase | a\\|b |\n|:---|---:|\n| fill | 1234 |\n"
    );
    let text = table.to_text();
    assert!(text.starts_with("phase   a|b\n"), "{text}");
    assert_eq!(num(0.01234), "0.012");
    assert_eq!(num(12.345), "12.3");
    assert_eq!(num(f64::NAN), "n/a");
}

#[test]
fn spread_is_median_with_range() {
    use bench_harness::report::spread::Spread;
    let odd = Spread::of([3.0, 1.0, 2.0]).expect("values");
    assert_eq!((odd.median, odd.min, odd.max, odd.n), (2.0, 1.0, 3.0, 3));
    let even = Spread::of([4.0, 1.0, 2.0, 3.0, f64::NAN]).expect("values");
    assert_eq!((even.median, even.n), (2.5, 4));
    assert_eq!(even.show(), "2.50 (1.00–4.00)");
    assert_eq!(Spread::of([7.0]).expect("one").show(), "7.00");
    assert!(Spread::of([f64::NAN]).is_none());
}

#[test]
fn json_spread_walks_every_number() {
    use bench_harness::report::json::spread_value;
    let runs = [
        serde_json::json!({"a": 1, "b": [10, "x"], "c": true}),
        serde_json::json!({"a": 3, "b": [30, "y"], "c": false}),
        serde_json::json!({"a": 2, "b": [20, "z"], "c": false}),
    ];
    let spread = spread_value(&runs);
    assert_eq!(
        spread["a"],
        serde_json::json!({"median": 2.0, "min": 1.0, "max": 3.0})
    );
    assert_eq!(spread["b"][0]["median"], 20.0);
    assert_eq!(spread["b"][1], "x");
    assert_eq!(spread["c"], true);
}
