//! What the operating system says about this process: `/proc/self/io` byte counters, resident
//! memory, CPU time, and the disk usage of a directory. Engine-agnostic, so they cross-check the
//! seam's accounting and are the only I/O figures for peers that have no seam.
//!
//! Everything here degrades to zeros off Linux or without `/proc`; the report says when it did.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The counters of `/proc/self/io` (see proc_pid_io(5)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcIo {
    /// Bytes passed to read-family calls (page cache hits included).
    pub rchar: u64,
    /// Bytes passed to write-family calls.
    pub wchar: u64,
    /// Bytes fetched from the storage layer.
    pub read_bytes: u64,
    /// Bytes this process caused to be sent to the storage layer (charged when pages are
    /// dirtied).
    pub write_bytes: u64,
    /// Dirty bytes never written because their file was truncated or removed first.
    pub cancelled_write_bytes: u64,
}

impl ProcIo {
    /// The counters now, or `None` where `/proc/self/io` cannot be read.
    pub fn read() -> Option<Self> {
        std::fs::read_to_string("/proc/self/io")
            .ok()
            .map(|t| Self::parse(&t))
    }

    /// Parses the text of `/proc/self/io`; unknown or missing lines count as zero.
    pub fn parse(text: &str) -> Self {
        let mut io = ProcIo::default();
        for (name, value) in fields(text) {
            match name {
                "rchar" => io.rchar = value,
                "wchar" => io.wchar = value,
                "read_bytes" => io.read_bytes = value,
                "write_bytes" => io.write_bytes = value,
                "cancelled_write_bytes" => io.cancelled_write_bytes = value,
                _ => {}
            }
        }
        io
    }

    /// Counters accumulated since `earlier`.
    pub fn since(&self, earlier: &ProcIo) -> ProcIo {
        ProcIo {
            rchar: self.rchar.saturating_sub(earlier.rchar),
            wchar: self.wchar.saturating_sub(earlier.wchar),
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
            cancelled_write_bytes: self
                .cancelled_write_bytes
                .saturating_sub(earlier.cancelled_write_bytes),
        }
    }

    /// The sum of two deltas.
    pub fn plus(&self, other: &ProcIo) -> ProcIo {
        ProcIo {
            rchar: self.rchar.saturating_add(other.rchar),
            wchar: self.wchar.saturating_add(other.wchar),
            read_bytes: self.read_bytes.saturating_add(other.read_bytes),
            write_bytes: self.write_bytes.saturating_add(other.write_bytes),
            cancelled_write_bytes: self
                .cancelled_write_bytes
                .saturating_add(other.cancelled_write_bytes),
        }
    }

    /// Bytes that reached (or will reach) the device: written minus cancelled.
    pub fn device_write_bytes(&self) -> u64 {
        self.write_bytes.saturating_sub(self.cancelled_write_bytes)
    }
}

/// `name: value` pairs of a `/proc` file, values in their first unit-less number.
fn fields(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let (name, rest) = line.split_once(':')?;
        let value = rest.split_whitespace().next()?.parse().ok()?;
        Some((name.trim(), value))
    })
}

/// Resident memory of this process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Current resident set (VmRSS), bytes.
    pub rss_bytes: u64,
    /// Peak resident set since start or since [`reset_peak_rss`] (VmHWM), bytes.
    pub peak_rss_bytes: u64,
}

impl Memory {
    /// The figures now (zeros where `/proc/self/status` cannot be read).
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/self/status")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses the text of `/proc/self/status`.
    pub fn parse(text: &str) -> Self {
        let mut mem = Memory::default();
        for (name, kib) in fields(text) {
            match name {
                "VmRSS" => mem.rss_bytes = kib * 1024,
                "VmHWM" => mem.peak_rss_bytes = kib * 1024,
                _ => {}
            }
        }
        mem
    }
}

/// Resets VmHWM to the current RSS (Linux 4.0+, `echo 5 > /proc/self/clear_refs`), so each
/// engine's peak is its own even though the engines run one after another in one process.
/// Returns whether the kernel accepted it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time this process has used, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTime {
    /// User time.
    pub user_s: f64,
    /// System time.
    pub system_s: f64,
}

/// The kernel reports /proc times in USER_HZ, fixed at 100 by the Linux ABI.
const USER_HZ: f64 = 100.0;

impl CpuTime {
    /// The times now (zeros where `/proc/self/stat` cannot be read).
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/self/stat")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses `/proc/self/stat`: fields 14 and 15 (utime, stime), counted after the command
    /// name, which is parenthesised and may itself contain spaces.
    pub fn parse(text: &str) -> Self {
        let after_name = text.rsplit_once(')').map_or("", |(_, rest)| rest);
        let mut fields = after_name.split_whitespace().skip(11);
        let mut tick = || {
            fields
                .next()
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let (user, system) = (tick(), tick());
        #[expect(clippy::cast_precision_loss, reason = "clock ticks")]
        let times = CpuTime {
            user_s: user as f64 / USER_HZ,
            system_s: system as f64 / USER_HZ,
        };
        times
    }

    /// Time used since `earlier`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user_s: (self.user_s - earlier.user_s).max(0.0),
            system_s: (self.system_s - earlier.system_s).max(0.0),
        }
    }
}

/// Bytes a directory tree occupies on disk, as `du` counts them (allocated blocks, so sparse and
/// preallocated files count for what they use). Files that vanish mid-walk (an engine removing
/// a compacted table) are skipped.
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_usage(&entry.path()),
            Ok(meta) => allocated(&meta),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(unix)]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn allocated(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}
