//! Renders the trade-off guide, `docs/tradeoffs.md`, from `docs/tradeoffs.template.md`, the
//! harness's last comparison (`docs/results/summary.json`) and a recovery measurement this
//! program runs itself. Every number in the guide comes from here; none is typed by hand.
//!
//! `cargo run --release -p docs --bin guide` (run by `docs/regenerate.sh`, after the harness).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

mod recovery;

fn main() -> ExitCode {
    match run() {
        Ok(path) => {
            println!("wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("guide: {e}");
            ExitCode::FAILURE
        }
    }
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn run() -> Result<PathBuf, String> {
    let docs = docs_dir();
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let template = read(&docs.join("tradeoffs.template.md"))?;
    let summary: Value = serde_json::from_str(&read(&docs.join("results/summary.json"))?)
        .map_err(|e| format!("results/summary.json: {e}"))?;
    let results = Results::new(&summary)?;
    let recovery = recovery::measure().map_err(|e| format!("recovery measurement: {e}"))?;
    let mut values = results.placeholders()?;
    values.insert("recovery_table", recovery::table(&recovery));
    values.insert("recovery_keys", thousands(recovery::KEYS));
    let rendered = render(&template, &values)?;
    let out = docs.join("tradeoffs.md");
    std::fs::write(&out, rendered).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// Replaces every `{{name}}` in `template`; an unknown name is an error, so a typo cannot leave
/// a hole in the guide.
fn render(template: &str, values: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "unclosed {{ in the template".to_string())?;
        let name = after[..end].trim();
        let value = values.get(name).ok_or_else(|| {
            format!("the template names {{{{{name}}}}}, which the guide does not produce")
        })?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The harness summary, with accessors that fail with the path of what is missing.
struct Results<'a> {
    summary: &'a Value,
    engines: Vec<&'a Value>,
}

fn get<'a>(v: &'a Value, path: &str) -> Result<&'a Value, String> {
    let mut at = v;
    for part in path.split('.') {
        at = at
            .get(part)
            .ok_or_else(|| format!("summary.json has no {path}"))?;
    }
    Ok(at)
}

fn num(v: &Value, path: &str) -> Result<f64, String> {
    get(v, path)?
        .as_f64()
        .ok_or_else(|| format!("summary.json: {path} is not a number"))
}

fn text<'a>(v: &'a Value, path: &str) -> Result<&'a str, String> {
    get(v, path)?
        .as_str()
        .ok_or_else(|| format!("summary.json: {path} is not text"))
}

impl<'a> Results<'a> {
    fn new(summary: &'a Value) -> Result<Self, String> {
        let engines = get(summary, "engines")?
            .as_array()
            .ok_or("summary.json: engines is not a list")?
            .iter()
            .collect();
        Ok(Results { summary, engines })
    }

    fn engine(&self, name: &str) -> Result<&'a Value, String> {
        self.engines
            .iter()
            .copied()
            .find(|e| e.get("engine").and_then(Value::as_str) == Some(name))
            .ok_or_else(|| format!("summary.json has no engine {name}"))
    }

    fn names(&self) -> Vec<&'a str> {
        self.engines
            .iter()
            .filter_map(|e| e.get("engine").and_then(Value::as_str))
            .collect()
    }

    fn phase(&self, engine: &str, phase: &str) -> Result<&'a Value, String> {
        get(self.engine(engine)?, "phases")?
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| p.get("phase").and_then(Value::as_str) == Some(phase))
            })
            .ok_or_else(|| format!("summary.json: {engine} has no phase {phase}"))
    }

    /// Whether the engine's I/O was counted at the storage seam (ours) or only by the process.
    fn seam(&self, engine: &str) -> Result<bool, String> {
        Ok(get(self.engine(engine)?, "seam_accounting")?.as_bool() == Some(true))
    }

    fn placeholders(&self) -> Result<BTreeMap<&'static str, String>, String> {
        let mut v = BTreeMap::new();
        v.insert("measured_on", self.measured_on()?);
        v.insert("peers", self.peers());
        v.insert("throughput_table", self.throughput_table()?);
        v.insert("wa_table", self.wa_table()?);
        v.insert("sa_table", self.sa_table()?);
        v.insert("ra_table", self.ra_table()?);
        v.insert("memory_table", self.memory_table()?);
        v.insert("scan_table", self.scan_table()?);
        v.insert("compaction_table", self.compaction_table()?);
        let wa = |e| num(self.engine(e)?, "totals.write_amp.seam_total");
        v.insert("wa_lsm_over_bitcask", times(wa("lsm")? / wa("bitcask")?));
        let get_rate = |e| num(self.phase(e, "readrandom")?, "ops_per_sec");
        v.insert(
            "get_bitcask_over_lsm",
            times(get_rate("bitcask")? / get_rate("lsm")?),
        );
        let seek = |e| num(self.phase(e, "seekrandom (compacted)")?, "ops_per_sec");
        v.insert(
            "seek_lsm_over_bitcask",
            times(seek("lsm")? / seek("bitcask")?),
        );
        let per_key = |e| -> Result<f64, String> {
            let t = get(self.engine(e)?, "totals")?;
            Ok(num(t, "index_memory_bytes")? / num(t, "live_keys")?.max(1.0))
        };
        v.insert(
            "bitcask_index_bytes_per_key",
            format!("{:.0}", per_key("bitcask")?),
        );
        v.insert("lsm_index_bytes_per_key", format!("{:.1}", per_key("lsm")?));
        let peak = |e| num(self.engine(e)?, "totals.peak_space_amp");
        v.insert("bitcask_peak_sa", format!("{:.2}", peak("bitcask")?));
        v.insert("lsm_peak_sa", format!("{:.2}", peak("lsm")?));
        Ok(v)
    }

    /// The peers that ran beside our engines, as a phrase.
    fn peers(&self) -> String {
        let peers: Vec<String> = self
            .names()
            .into_iter()
            .filter(|n| !matches!(*n, "bitcask" | "lsm" | "reference"))
            .map(|n| format!("`{n}`"))
            .collect();
        if peers.is_empty() {
            "with no peer engine built in".to_string()
        } else {
            format!(
                "with {} alongside as yardsticks (peer engines, configured like our LSM; \
                 see the report for their settings)",
                peers.join(" and ")
            )
        }
    }

    fn measured_on(&self) -> Result<String, String> {
        let s = self.summary;
        let m = get(s, "machine")?;
        Ok(format!(
            "{} keys of {} bytes with {}-byte values, sync policy `{}`, measured {} on {} cores \
             ({}), {:.1} GiB of memory, Linux {}, {}; workspace revision `{}`. The full report, \
             with every phase and the per-second charts, is [results/report.md](results/report.md).",
            thousands(num(s, "dataset.key_count")? as u64),
            num(s, "dataset.key_size")?,
            num(s, "dataset.value_size")?,
            text(s, "sync")?,
            text(m, "date")?,
            num(m, "cores")?,
            text(m, "cpu")?,
            num(m, "memory_bytes")? / f64::from(1u32 << 30),
            text(m, "kernel")?,
            text(m, "filesystem")?,
            text(m, "revision")?,
        ))
    }

    /// A Markdown table with one row per engine.
    fn table(
        &self,
        header: &[&str],
        row: impl Fn(&str) -> Result<Vec<String>, String>,
    ) -> Result<String, String> {
        let mut out = format!("| engine | {} |\n|:---|", header.join(" | "));
        out.push_str(&"---:|".repeat(header.len()));
        out.push('\n');
        for name in self.names() {
            let cells = row(name)?;
            let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
        }
        Ok(out)
    }

    fn throughput_table(&self) -> Result<String, String> {
        self.table(
            &["fillrandom kops/s", "overwrite kops/s", "overwrite p99 µs"],
            |e| {
                let fill = self.phase(e, "fillrandom")?;
                let over = self.phase(e, "overwrite")?;
                Ok(vec![
                    kilo(num(fill, "ops_per_sec")?),
                    kilo(num(over, "ops_per_sec")?),
                    fixed(num(over, "latency.p99_us")?),
                ])
            },
        )
    }

    fn wa_table(&self) -> Result<String, String> {
        self.table(
            &[
                "all writes / user",
                "engine's own view",
                "/proc write_bytes / user",
            ],
            |e| {
                let wa = get(self.engine(e)?, "totals.write_amp")?;
                let own = match e {
                    "bitcask" => format!(
                        "log {} + merge and hints = {}",
                        fixed(num(wa, "log")?),
                        fixed(num(wa, "log_merge_hint")?)
                    ),
                    "lsm" => format!(
                        "(flush+compaction)/user {}",
                        fixed(num(wa, "flush_compaction")?)
                    ),
                    _ => "n/a".to_string(),
                };
                let total = if self.seam(e)? {
                    fixed(num(wa, "seam_total")?)
                } else {
                    "n/a (no seam)".to_string()
                };
                Ok(vec![total, own, fixed(num(wa, "proc_device")?)])
            },
        )
    }

    fn sa_table(&self) -> Result<String, String> {
        self.table(
            &["space amp at end", "peak space amp", "disk MB end / peak"],
            |e| {
                let t = get(self.engine(e)?, "totals")?;
                Ok(vec![
                    fixed(num(t, "space_amp")?),
                    fixed(num(t, "peak_space_amp")?),
                    format!(
                        "{} / {}",
                        mb(num(t, "disk_bytes")?),
                        mb(num(t, "peak_disk_bytes")?)
                    ),
                ])
            },
        )
    }

    fn ra_table(&self) -> Result<String, String> {
        self.table(
            &[
                "get kops/s",
                "get p99 µs",
                "storage reads / get",
                "bytes read / get",
                "missing-key kops/s",
                "reads / missing get",
            ],
            |e| {
                let hit = self.phase(e, "readrandom (compacted)")?;
                let miss = self.phase(e, "readmissing (compacted)")?;
                let seam = self.seam(e)?;
                let reads = |p: &Value, path: &str| -> Result<String, String> {
                    Ok(if seam {
                        fixed(num(p, path)?)
                    } else {
                        "n/a".into()
                    })
                };
                Ok(vec![
                    kilo(num(hit, "ops_per_sec")?),
                    fixed(num(hit, "latency.p99_us")?),
                    reads(hit, "read_amp.seam_reads_per_get")?,
                    reads(hit, "read_amp.seam_bytes_per_get")?,
                    kilo(num(miss, "ops_per_sec")?),
                    reads(miss, "read_amp.seam_reads_per_get")?,
                ])
            },
        )
    }

    fn memory_table(&self) -> Result<String, String> {
        self.table(
            &["index memory MB", "index bytes per live key", "peak RSS MB"],
            |e| {
                let t = get(self.engine(e)?, "totals")?;
                let seam = self.seam(e)?;
                let index = num(t, "index_memory_bytes")?;
                let per_key = index / num(t, "live_keys")?.max(1.0);
                Ok(vec![
                    if seam { mb(index) } else { "n/a".into() },
                    if seam { fixed(per_key) } else { "n/a".into() },
                    mb(num(t, "peak_rss_bytes")?),
                ])
            },
        )
    }

    fn scan_table(&self) -> Result<String, String> {
        self.table(
            &["short scans/s", "scan p99 µs", "full-scan kops/s (readseq)"],
            |e| {
                let seek = self.phase(e, "seekrandom (compacted)")?;
                let seq = self.phase(e, "readseq")?;
                Ok(vec![
                    format!("{:.0}", num(seek, "ops_per_sec")?),
                    format!("{:.0}", num(seek, "latency.p99_us")?),
                    kilo(num(seq, "ops_per_sec")?),
                ])
            },
        )
    }

    fn compaction_table(&self) -> Result<String, String> {
        self.table(
            &[
                "merges or compactions",
                "MB read",
                "MB written",
                "wall s",
                "CPU s",
            ],
            |e| {
                if !self.seam(e)? {
                    return Ok(vec!["n/a".into(); 5]);
                }
                let c = get(self.engine(e)?, "totals.compaction")?;
                Ok(vec![
                    format!("{:.0}", num(c, "count")?),
                    mb(num(c, "bytes_read")?),
                    mb(num(c, "bytes_written")?),
                    fixed(num(c, "wall_s")?),
                    fixed(num(c, "cpu_s")?),
                ])
            },
        )
    }
}

/// Three significant digits, as the harness's report prints.
fn fixed(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn kilo(ops_per_sec: f64) -> String {
    fixed(ops_per_sec / 1000.0)
}

fn mb(bytes: f64) -> String {
    fixed(bytes / 1e6)
}

fn times(ratio: f64) -> String {
    format!("{}×", fixed(ratio))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_every_placeholder_and_refuses_unknown_ones() {
        let values: BTreeMap<&str, String> = [("a", "1".to_string()), ("b", "two".to_string())]
            .into_iter()
            .collect();
        assert_eq!(render("x {{a}} y {{ b }}.", &values).unwrap(), "x 1 y two.");
        assert!(render("{{c}}", &values).unwrap_err().contains("{{c}}"));
        assert!(render("{{a", &values).is_err());
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(fixed(123.4), "123");
        assert_eq!(fixed(12.34), "12.3");
        assert_eq!(fixed(1.234), "1.23");
        assert_eq!(fixed(0.1234), "0.123");
        assert_eq!(times(2.5), "2.50×");
    }

    #[test]
    fn the_committed_guide_matches_its_template() {
        // Every placeholder of the template is one the generator knows, and the committed guide
        // has none left unfilled.
        let docs = docs_dir();
        let template = std::fs::read_to_string(docs.join("tradeoffs.template.md")).unwrap();
        let guide = std::fs::read_to_string(docs.join("tradeoffs.md")).unwrap();
        assert!(
            !guide.contains("{{"),
            "docs/tradeoffs.md has an unfilled placeholder"
        );
        let summary: Value = serde_json::from_str(
            &std::fs::read_to_string(docs.join("results/summary.json")).unwrap(),
        )
        .unwrap();
        let mut values = Results::new(&summary).unwrap().placeholders().unwrap();
        values.insert("recovery_table", String::new());
        values.insert("recovery_keys", String::new());
        render(&template, &values).unwrap();
    }
}
