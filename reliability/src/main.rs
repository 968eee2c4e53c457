//! `cargo run --release -p clinicflow-reliability [-- --quick]`: runs every area of the
//! harness, prints what was tried and what broke, and writes
//! `target/reliability/summary.json`. Exits non-zero when any promise was broken.

use std::time::Instant;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use clinicflow_reliability::logs::Captured;
use clinicflow_reliability::{AreaReport, Mode, areas, workspace_root};

/// An area of the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Area {
    /// Crashes and failures at every failure point of the catalog, on every slice's journeys.
    Failpoints,
    /// Every event delivered twice and shuffled, every stream record replayed.
    Redelivery,
    /// Contenders for the last places; concurrent decisions on one case; one key at once.
    Concurrency,
    /// Schemathesis against the OpenAPI document, plus hand-made hostile bodies.
    Fuzz,
    /// Every route × every role, and bad tokens.
    Authz,
    /// Every log line of the run scanned for personal data (always runs last).
    Privacy,
}

/// Tries hard to break clinicflow's promises and counts what broke.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A bounded run for CI: every kind of case, fewer of each.
    #[arg(long)]
    quick: bool,
    /// Only these areas (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Area>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let logs = Captured::install();
    let mode = if args.quick { Mode::Quick } else { Mode::Full };
    let runs = |a: Area| args.only.is_empty() || args.only.contains(&a);
    let started = Instant::now();
    let mut reports: Vec<AreaReport> = Vec::new();

    for (area, name) in [
        (Area::Failpoints, "failpoints"),
        (Area::Redelivery, "redelivery"),
        (Area::Concurrency, "concurrency"),
        (Area::Fuzz, "fuzz"),
        (Area::Authz, "authz"),
    ] {
        if !runs(area) {
            continue;
        }
        let began = Instant::now();
        eprintln!("==> {name}");
        let report = match area {
            Area::Failpoints => areas::failpoints::run(mode).await,
            Area::Redelivery => areas::redelivery::run(mode).await,
            Area::Concurrency => areas::concurrency::run(mode).await,
            Area::Fuzz => areas::fuzz::run(mode).await,
            Area::Authz => areas::authz::run(mode).await,
            Area::Privacy => unreachable!("privacy runs last"),
        }
        .with_context(|| format!("the {name} area could not run"))?;
        eprintln!(
            "    {} cases, {} violations ({:.1} s)",
            report.cases,
            report.violations,
            began.elapsed().as_secs_f64()
        );
        reports.push(report);
    }
    if runs(Area::Privacy) {
        eprintln!("==> privacy");
        reports.push(areas::privacy::run(mode, &logs).await.context("the privacy area could not run")?);
    }

    print_summary(&reports, started.elapsed().as_secs_f64());
    let out = workspace_root().join("target/reliability");
    std::fs::create_dir_all(&out)?;
    let summary: serde_json::Map<String, serde_json::Value> = reports
        .iter()
        .map(|r| Ok((r.area.to_owned(), serde_json::to_value(r)?)))
        .collect::<anyhow::Result<_>>()?;
    let path = out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")?;
    println!("\nwritten: {}", path.display());

    let broken: u64 = reports.iter().map(|r| r.violations).sum();
    if broken > 0 {
        anyhow::bail!("{broken} violation(s) of clinicflow's promises; see above");
    }
    Ok(())
}

fn print_summary(reports: &[AreaReport], seconds: f64) {
    println!("\n| area | cases | violations | figures |");
    println!("|---|---:|---:|---|");
    for r in reports {
        let figures: Vec<String> = r.figures.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!("| {} | {} | {} | {} |", r.area, r.cases, r.violations, figures.join("; "));
    }
    println!("\n{:.0} s in all", seconds);
    for r in reports.iter().filter(|r| !r.details.is_empty()) {
        println!("\n{} violations:", r.area);
        for d in &r.details {
            println!("- {d}");
        }
    }
}
