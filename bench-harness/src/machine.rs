//! [`Machine`]: what the numbers were measured on, for the report (cores, CPU, memory, kernel,
//! the file system under the data directory, the date).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A description of the machine and the moment, read from `/proc` where it can be.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// CPU model name.
    pub cpu: String,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// File system type and device under the data directory.
    pub filesystem: String,
    /// When the description was taken, UTC, ISO 8601.
    pub date: String,
    /// The 1-minute load average when the description was taken: above the core count, other
    /// work competed with the benchmark.
    pub load_average: f64,
    /// The workspace's git commit the binary was built from, with "+ local changes" when the
    /// engines' or harness's sources differ from it; "unknown" without git.
    pub revision: String,
    /// Set when the data directory is on a memory-backed file system (tmpfs, ramfs, a zram or
    /// RAM-disk device): fsync is then free and the device counters read zero, so the figures
    /// say nothing about a disk. The warning, for the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_backed: Option<String>,
}

impl Machine {
    /// Describes this machine, with the file system that holds `data_dir`.
    pub fn describe(data_dir: &Path) -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
            memory_bytes: memory_kib * 1024,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            filesystem: filesystem_of(data_dir, &read("/proc/self/mounts")),
            memory_backed: memory_backed(data_dir, &read("/proc/self/mounts")),
            date: utc_now(),
            load_average: load_average(),
            revision: revision(),
        }
    }
}

/// The 1-minute load average from `/proc/loadavg` (0 where it cannot be read).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The commit of the workspace this binary was built in (see [`Machine::revision`]).
fn revision() -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_string();
    };
    let sources = [
        "engine-api",
        "bitcask-engine",
        "lsm-engine",
        "bench-harness",
    ];
    let mut status = vec!["status", "--porcelain", "--"];
    status.extend(sources);
    match git(&status) {
        Some(changes) if !changes.is_empty() => format!("{head} + local changes"),
        _ => head,
    }
}

/// The mount holding `dir`: the one with the longest mount point that is a prefix of it, as
/// `(device, mount point, type)`.
fn mount_of<'m>(dir: &Path, mounts: &'m str) -> Option<(&'m str, &'m str, &'m str)> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (device, point, fstype) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(point).then_some((device, point, fstype))
        })
        .max_by_key(|(_, point, _)| point.len())
}

/// The mount with the longest mount point that is a prefix of `dir`, as "type (device)".
pub fn filesystem_of(dir: &Path, mounts: &str) -> String {
    mount_of(dir, mounts).map_or_else(
        || "unknown".to_string(),
        |(device, _, fstype)| format!("{fstype} ({device})"),
    )
}

/// File system types whose files live in memory.
const MEMORY_FILESYSTEMS: [&str; 4] = ["tmpfs", "ramfs", "devtmpfs", "hugetlbfs"];

/// Block devices whose blocks live in memory.
const MEMORY_DEVICES: [&str; 3] = ["/dev/zram", "/dev/ram", "/dev/brd"];

/// A warning when `dir` lies on a memory-backed file system (per `mounts`, the text of
/// `/proc/self/mounts`), `None` otherwise or when it cannot tell.
pub fn memory_backed(dir: &Path, mounts: &str) -> Option<String> {
    let (device, point, fstype) = mount_of(dir, mounts)?;
    let in_memory = MEMORY_FILESYSTEMS.contains(&fstype)
        || MEMORY_DEVICES.iter().any(|d| device.starts_with(d));
    in_memory.then(|| {
        format!(
            "the data directory {} is on {fstype} ({device} at {point}), which lives in \
             memory: fsync costs nothing and the device counters read zero, so these figures \
             say nothing about a disk (use --data-dir on a disk-backed file system)",
            dir.display()
        )
    })
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_from_unix(secs)
}

/// A Unix time as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, Howard Hinnant's civil-from-days).
pub fn utc_from_unix(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
