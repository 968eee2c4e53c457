//! `clinicflow-bench`: measures clinicflow against floors taken in the same run, so that
//! every figure is a ratio that survives a noisy machine. See `BENCHMARKS.md`.
//!
//! - [`lambda`]: cold start, peak memory and zip size of the real release `bootstrap`s,
//!   each against a hello-world function with the same SDK clients (`bench/floor`);
//! - [`handlers`]: the in-process cost of every command and consumer, with criterion,
//!   against an echo handler;
//! - [`saga`]: complete sagas per second through `clinicflow-local` over HTTP, against a
//!   bare axum endpoint answering as many requests;
//! - [`model`]: the projected saga latency on AWS and the cost model, from the above;
//! - [`slices`]: what each of them needs from a slice, one bench fixture per slice; the
//!   modules above name no flow.

pub mod handlers;
pub mod lambda;
pub mod model;
pub mod saga;
pub mod slices;

use std::path::{Path, PathBuf};

use serde::Serialize;

/// How hard to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every function, enough samples for stable medians (minutes).
    Full,
    /// A smoke run (seconds): a few samples of a few functions, so the runner keeps working.
    Quick,
}

impl Mode {
    /// True for a smoke run.
    pub fn is_quick(self) -> bool {
        self == Self::Quick
    }
}

/// What a metric must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// `ratio` at most this.
    MaxRatio(f64),
    /// `ratio` at least this.
    MinRatio(f64),
    /// `value` at most this (in the metric's unit).
    MaxValue(f64),
}

impl Target {
    /// Whether `metric` meets the target.
    pub fn met(self, value: f64, ratio: f64) -> bool {
        match self {
            Self::MaxRatio(max) => ratio <= max,
            Self::MinRatio(min) => ratio >= min,
            Self::MaxValue(max) => value <= max,
        }
    }
}

/// One measured figure and the same measure of its floor, taken in the same run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// `cold_start_ms.<function>`, `handler_us.<case>`, ….
    pub name: String,
    /// The measure.
    pub value: f64,
    /// Its unit: `ms`, `us`, `bytes`, `sagas/s`.
    pub unit: String,
    /// The same measure of the floor.
    pub floor: f64,
    /// `value / floor`.
    pub ratio: f64,
    /// The target, if the metric has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Whether the target is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// How it was measured (samples, floor), for the table.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl Metric {
    /// A metric with its floor; the ratio is computed (0 when the floor is 0).
    pub fn new(name: impl Into<String>, value: f64, unit: &str, floor: f64) -> Self {
        let ratio = if floor == 0.0 { 0.0 } else { value / floor };
        Self {
            name: name.into(),
            value,
            unit: unit.to_owned(),
            floor,
            ratio,
            target: None,
            met: None,
            note: String::new(),
        }
    }

    /// Sets the target and whether it is met.
    #[must_use]
    pub fn target(mut self, target: Target) -> Self {
        self.met = Some(target.met(self.value, self.ratio));
        self.target = Some(target);
        self
    }

    /// Adds a note.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

/// The `p`-th percentile (0..=100) of `samples`, nearest rank; 0 for none.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The workspace root (the runner is `bench/` inside it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Renders metrics as a Markdown table.
pub fn table(metrics: &[Metric]) -> String {
    let mut out = String::from("| metric | value | floor | ratio | target | |\n|---|---:|---:|---:|---|---|\n");
    for m in metrics {
        let target = match m.target {
            Some(Target::MaxRatio(r)) => format!("≤ {r}×"),
            Some(Target::MinRatio(r)) => format!("≥ {r}×"),
            Some(Target::MaxValue(v)) => format!("≤ {} {}", human(v), m.unit),
            None => String::new(),
        };
        let met = match m.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        };
        out.push_str(&format!(
            "| `{}` | {} {} | {} {} | {:.2}× | {} | {} |\n",
            m.name,
            human(m.value),
            m.unit,
            human(m.floor),
            m.unit,
            m.ratio,
            target,
            met
        ));
    }
    out
}

/// A number with at most 3 significant decimals, without trailing zeros.
fn human(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_targets() {
        let m = Metric::new("cold_start_ms.x", 12.0, "ms", 10.0).target(Target::MaxRatio(1.25));
        assert!((m.ratio - 1.2).abs() < 1e-9);
        assert_eq!(m.met, Some(true));
        let m = Metric::new("local_sagas_per_s", 10.0, "sagas/s", 100.0).target(Target::MinRatio(0.25));
        assert_eq!(m.met, Some(false));
        let m = Metric::new("zip_bytes.x", 2_000_000.0, "bytes", 1_000_000.0).target(Target::MaxValue(2_500_000.0));
        assert_eq!(m.met, Some(true));
        assert_eq!(Metric::new("x", 1.0, "ms", 0.0).ratio, 0.0);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 50.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&s, 100.0), 100.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn metrics_serialize_with_the_fields_the_issue_names() {
        let m = Metric::new("handler_us.x", 20.0, "us", 1.0).target(Target::MaxValue(100.0));
        let v = serde_json::to_value(&m).expect("serializes");
        for field in ["name", "value", "unit", "floor", "ratio"] {
            assert!(v.get(field).is_some(), "{field} in {v}");
        }
        assert_eq!(v["target"], serde_json::json!({"max_value": 100.0}));
    }
}
