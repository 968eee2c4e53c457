//! `clinicflow-reliability`: each of the platform's promises turned into a harness that tries
//! hard to break it, and counts what it tried (`cases`) and what broke (`violations`).
//!
//! Areas, one module each under [`areas`]: `failpoints`, `redelivery`, `concurrency`, `fuzz`,
//! `authz`, `privacy`. Every area returns an [`AreaReport`]; the runner prints them and
//! writes `target/reliability/summary.json`.
//!
//! The areas know no flow. What is generic they derive from `clinicflow::catalog()` (routes
//! with their roles and functions, rules, failure points, functions, tables); what only a
//! slice knows (how to open a case and walk it, how to call each of its routes, the
//! invariants over its aggregates, how to read its views, which of its commands contend)
//! each slice contributes as a fixture in [`slices`], and the areas loop over
//! [`slices::all`]. The shared [`invariants`] hold for every slice, each fixture adding its
//! own. A catalogued route without a fixture's call, or a failure point no fixture's
//! journey is armed at, is a violation.

pub mod areas;
pub mod invariants;
pub mod logs;
pub mod slices;

use std::path::PathBuf;

use serde::Serialize;

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything, at full size.
    Full,
    /// A bounded run for CI: every kind of case, fewer of each.
    Quick,
}

impl Mode {
    /// Is this the bounded run?
    pub fn is_quick(self) -> bool {
        self == Self::Quick
    }

    /// `full` in a full run, `quick` in a bounded one.
    pub fn pick<T>(self, full: T, quick: T) -> T {
        match self {
            Self::Full => full,
            Self::Quick => quick,
        }
    }
}

/// What one area tried and what broke.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AreaReport {
    /// The area's name (`failpoints`, `redelivery`, ...).
    #[serde(skip)]
    pub area: &'static str,
    /// How many cases were tried.
    pub cases: u64,
    /// How many broke a promise. Expected: 0.
    pub violations: u64,
    /// Area-specific figures for the printed summary, e.g. `("duplicates delivered", 412)`.
    #[serde(skip)]
    pub figures: Vec<(String, u64)>,
    /// One line per violation, saying what broke and where (printed, never personal data).
    #[serde(skip)]
    pub details: Vec<String>,
}

impl AreaReport {
    /// An empty report for `area`.
    pub fn new(area: &'static str) -> Self {
        Self { area, ..Self::default() }
    }

    /// Counts one case; `broken` says why it violated a promise, if it did.
    pub fn case(&mut self, broken: Option<String>) {
        self.cases += 1;
        if let Some(why) = broken {
            self.violation(why);
        }
    }

    /// Counts a violation that is not tied to one case.
    pub fn violation(&mut self, why: String) {
        self.violations += 1;
        if self.details.len() < 50 {
            self.details.push(why);
        }
    }

    /// Adds a printed figure.
    pub fn figure(&mut self, name: &str, value: u64) {
        self.figures.push((name.to_owned(), value));
    }
}

/// The workspace root (where `Cargo.lock` is).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}
