//! Comparing two runs: `bench-harness diff OLD/summary.json NEW/summary.json`.
//!
//! Every number both summaries carry for the same engine (its totals, and each phase it ran
//! under the same label) is put side by side with the ratio new / old. A figure is **marked**
//! when its two ranges do not overlap: each side's range is its `min`–`max` over the repeats
//! (`--repeat N` writes them into `summary.json`), a single run's range is its one value. Two
//! single runs have no known spread, so nothing is marked then and the notes say so: whether a
//! 5 % move is noise cannot be told from one run each.

use std::collections::BTreeMap;

use serde_json::Value;

use super::spread::Spread;
use super::table::{Table, num};

/// One figure of one run: its value (the median with repeats) and its range.
type Figures = Vec<(String, Spread)>;

/// One engine's figures in a summary, in document order: `totals.<path>` and `<phase>.<path>`.
pub fn engine_figures(engine: &Value) -> Figures {
    let mut out = Figures::new();
    let repeats = engine["repeats"].as_u64().unwrap_or(1);
    let spread = engine.get("spread").filter(|s| !s.is_null());
    let (totals, phases) = match spread {
        Some(s) => (&s[0], &s[1]),
        None => (&engine["totals"], &engine["phases"]),
    };
    let n = usize::try_from(repeats).unwrap_or(1);
    flatten("totals", totals, n, &mut out);
    for phase in phases.as_array().into_iter().flatten() {
        let label = phase["phase"].as_str().unwrap_or("?");
        flatten(label, phase, n, &mut out);
    }
    out
}

/// A `{"median", "min", "max"}` leaf of a spread tree.
fn spread_leaf(value: &Value, n: usize) -> Option<Spread> {
    let map = value.as_object()?;
    if map.len() != 3 {
        return None;
    }
    Some(Spread {
        median: map.get("median")?.as_f64()?,
        min: map.get("min")?.as_f64()?,
        max: map.get("max")?.as_f64()?,
        n,
    })
}

fn flatten(path: &str, value: &Value, n: usize, out: &mut Figures) {
    if let Some(leaf) = spread_leaf(value, n) {
        out.push((path.to_string(), leaf));
        return;
    }
    match value {
        Value::Number(x) => {
            let x = x.as_f64().unwrap_or(f64::NAN);
            let single = Spread {
                median: x,
                min: x,
                max: x,
                n,
            };
            out.push((path.to_string(), single));
        }
        Value::Object(map) => {
            for (key, child) in map {
                flatten(&format!("{path}.{key}"), child, n, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                flatten(&format!("{path}.{i}"), child, n, out);
            }
        }
        _ => {}
    }
}

/// Whether a figure moved beyond what the runs' spread explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The ranges overlap, or no spread is known on either side.
    Within,
    /// The new range lies wholly above the old one.
    Up,
    /// The new range lies wholly below the old one.
    Down,
}

impl Change {
    /// The mark of a row: `▲`, `▼` or nothing.
    pub fn mark(self) -> &'static str {
        match self {
            Change::Within => "",
            Change::Up => "▲",
            Change::Down => "▼",
        }
    }
}

/// The rule: disjoint `min`–`max` ranges, and at least one side repeated (so a spread is known).
pub fn change(old: &Spread, new: &Spread) -> Change {
    if old.n < 2 && new.n < 2 {
        Change::Within
    } else if new.min > old.max {
        Change::Up
    } else if new.max < old.min {
        Change::Down
    } else {
        Change::Within
    }
}

/// One shared figure of one engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `totals.<path>` or `<phase>.<path>`.
    pub figure: String,
    /// The old run's value and range.
    pub old: Spread,
    /// The new run's.
    pub new: Spread,
    /// New median over old median; `None` when the old is zero.
    pub ratio: Option<f64>,
    /// Whether it moved beyond the spread.
    pub change: Change,
}

/// The comparison of two summaries.
#[derive(Clone, Debug, Default)]
pub struct Diff {
    /// Per engine both ran, its shared figures in the old summary's order.
    pub engines: Vec<(String, Vec<Row>)>,
    /// What a reader must know: dataset or settings that differ, no spread, figures skipped.
    pub notes: Vec<String>,
}

fn engines_of(summary: &Value) -> Vec<(&str, &Value)> {
    summary["engines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["engine"].as_str()?, e)))
        .collect()
}

fn rows(old: &Figures, new: &Figures, zero_both: &mut usize) -> Vec<Row> {
    let new: BTreeMap<&str, &Spread> = new.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Vec::new();
    for (figure, o) in old {
        let Some(n) = new.get(figure.as_str()) else {
            continue;
        };
        if o.max == 0.0 && o.min == 0.0 && n.max == 0.0 && n.min == 0.0 {
            *zero_both += 1;
            continue;
        }
        out.push(Row {
            figure: figure.clone(),
            old: *o,
            new: **n,
            ratio: (o.median != 0.0).then(|| n.median / o.median),
            change: change(o, n),
        });
    }
    out
}

/// Compares two `summary.json` documents.
pub fn diff(old: &Value, new: &Value) -> Diff {
    let mut result = Diff::default();
    let mut zero_both = 0;
    let new_engines = engines_of(new);
    let mut repeated = false;
    for (name, o) in engines_of(old) {
        let Some((_, n)) = new_engines.iter().find(|(m, _)| *m == name) else {
            result.notes.push(format!("{name} is only in the old run"));
            continue;
        };
        let (of, nf) = (engine_figures(o), engine_figures(n));
        repeated |= of.iter().chain(&nf).any(|(_, s)| s.n > 1);
        result
            .engines
            .push((name.to_string(), rows(&of, &nf, &mut zero_both)));
    }
    for (name, _) in &new_engines {
        if !result.engines.iter().any(|(e, _)| e == name) {
            result.notes.push(format!("{name} is only in the new run"));
        }
    }
    if !repeated {
        result.notes.push(
            "both runs are single runs: no spread is known, so no change is marked \
             (rerun both with --repeat N to mark changes beyond the runs' spread)"
                .to_string(),
        );
    }
    for key in ["dataset", "sync", "quick"] {
        if old[key] != new[key] {
            result
                .notes
                .push(format!("{key} differs: old {} new {}", old[key], new[key]));
        }
    }
    if zero_both > 0 {
        result
            .notes
            .push(format!("{zero_both} figures zero in both runs left out"));
    }
    result
}

impl Diff {
    /// One table per engine: figure, old, new, new/old and the mark.
    pub fn tables(&self) -> Vec<(String, Table)> {
        self.engines
            .iter()
            .map(|(engine, rows)| {
                let header = ["figure", "old", "new", "new/old", "beyond spread"];
                let rows = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.figure.clone(),
                            r.old.show(),
                            r.new.show(),
                            r.ratio.map_or("n/a".to_string(), num),
                            r.change.mark().to_string(),
                        ]
                    })
                    .collect();
                let table = Table {
                    header: header.iter().map(ToString::to_string).collect(),
                    rows,
                };
                (engine.clone(), table)
            })
            .collect()
    }

    /// Every engine's rows as one CSV document: raw numbers (median, min, max per side), the
    /// ratio and the change (`up`, `down` or empty).
    pub fn to_csv(&self) -> String {
        let mut table = Table {
            header: [
                "engine",
                "figure",
                "old_median",
                "old_min",
                "old_max",
                "new_median",
                "new_min",
                "new_max",
                "ratio",
                "change",
            ]
            .iter()
            .map(ToString::to_string)
            .collect(),
            rows: Vec::new(),
        };
        for (engine, rows) in &self.engines {
            for r in rows {
                let change = match r.change {
                    Change::Within => "",
                    Change::Up => "up",
                    Change::Down => "down",
                };
                table.rows.push(vec![
                    engine.clone(),
                    r.figure.clone(),
                    r.old.median.to_string(),
                    r.old.min.to_string(),
                    r.old.max.to_string(),
                    r.new.median.to_string(),
                    r.new.min.to_string(),
                    r.new.max.to_string(),
                    r.ratio.map_or(String::new(), |x| x.to_string()),
                    change.to_string(),
                ]);
            }
        }
        super::csv::to_csv(&table)
    }
}
