//! `cargo run --release -p clinicflow-bench [-- --quick]`: builds what it measures, runs
//! every benchmark against its floor, prints a table and writes
//! `target/bench/results.json`. See `BENCHMARKS.md`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use clinicflow_bench::lambda::{self, FLOOR, LambdaOptions};
use clinicflow_bench::{Metric, Mode, handlers, model, saga, slices, table, workspace_root};

/// A group of benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Group {
    /// Zip sizes, cold starts and peak memory of the Lambda binaries.
    Lambda,
    /// In-process handler cost (criterion).
    Handlers,
    /// Saga throughput through clinicflow-local.
    Saga,
}

/// Measures clinicflow against floors taken in the same run.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A smoke run of seconds: few samples, two functions spawned (the first slice's entry
    /// function and the SMS notifier).
    #[arg(long)]
    quick: bool,
    /// Use the binaries and zips already built (scripts/lambda-build.sh, and
    /// `scripts/lambda-build.sh --native target/bench/native ...`).
    #[arg(long)]
    no_build: bool,
    /// Only these groups (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Group>,
    /// Spawn only these functions (default: all; with --quick, two).
    #[arg(long, value_delimiter = ',')]
    functions: Vec<String>,
    /// Spawns per function (default 30; with --quick, 3).
    #[arg(long)]
    spawns: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mode = if args.quick { Mode::Quick } else { Mode::Full };
    let root = workspace_root();
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    let runs = |g: Group| args.only.is_empty() || args.only.contains(&g);
    // Every function gets its events from a slice's bench fixture (bench/src/slices): one
    // that none drives stops the run before anything is built or measured.
    slices::check()?;
    let started = Instant::now();
    let mut metrics: Vec<Metric> = Vec::new();

    if runs(Group::Lambda) {
        let functions: Vec<String> = if !args.functions.is_empty() {
            args.functions.clone()
        } else if mode.is_quick() {
            vec![slices::first()?.entry().into(), clinicflow::topology::SMS_NOTIFIER.into()]
        } else {
            clinicflow::catalog().functions.iter().map(|f| f.name.to_owned()).collect()
        };
        let native_dir = out.join(if mode.is_quick() { "native-debug" } else { "native" });
        if !args.no_build {
            if mode.is_quick() {
                build_smoke(&root, &native_dir, &functions)?;
            } else {
                build(&root, &native_dir, &functions)?;
            }
        }
        metrics.extend(lambda::zip_metrics(&root.join("target/lambda"))?);
        // moto slows down as its tables and streams grow, until it stalls past the SDK's
        // timeouts: when the runner starts its own, each function gets a fresh one, and the
        // floor is spawned again beside each (its first figures are the ones reported).
        let groups: Vec<Vec<String>> = if std::env::var_os("CLINICFLOW_MOTO_ENDPOINT").is_some() {
            vec![functions]
        } else {
            functions.into_iter().map(|f| vec![f]).collect()
        };
        let runtime = tokio::runtime::Runtime::new()?;
        for (i, group) in groups.into_iter().enumerate() {
            let moto = Emulator::start(&root)?;
            let options = LambdaOptions {
                root: root.clone(),
                native_dir: native_dir.clone(),
                zip_dir: root.join("target/lambda"),
                functions: group,
                spawns: args.spawns.unwrap_or(if mode.is_quick() { 3 } else { 30 }),
                events_per_spawn: 3,
                endpoint: moto.endpoint.clone(),
                log_dir: out.join("logs"),
            };
            let mut measured = runtime.block_on(lambda::spawn_metrics(&options))?;
            if i > 0 {
                measured.retain(|m| !m.name.ends_with(&format!(".{FLOOR}")));
            }
            metrics.extend(measured);
            drop(moto);
        }
    }
    if runs(Group::Handlers) {
        eprintln!("==> handler cost (criterion)");
        metrics.extend(handlers::run(mode, &out.join("criterion"))?);
    }
    if runs(Group::Saga) {
        eprintln!("==> sagas through clinicflow-local");
        let runtime = tokio::runtime::Runtime::new()?;
        metrics.extend(runtime.block_on(saga::run(mode))?);
    }
    metrics.extend(model::metrics(&metrics));

    let results = out.join("results.json");
    std::fs::write(&results, serde_json::to_string_pretty(&metrics)? + "\n")?;
    let rendered = table(&metrics);
    std::fs::write(out.join("results.md"), &rendered)?;
    println!("{rendered}");
    let missed: Vec<&str> = metrics.iter().filter(|m| m.met == Some(false)).map(|m| m.name.as_str()).collect();
    println!(
        "{} metrics in {:.0} s ({}); written to {}",
        metrics.len(),
        started.elapsed().as_secs_f64(),
        if mode.is_quick() { "quick" } else { "full" },
        results.display()
    );
    if mode.is_quick() {
        println!("smoke run: debug bootstraps and short samples, so the targets are judged on the full run only");
    } else if !missed.is_empty() {
        println!("targets missed (see BENCHMARKS.md): {}", missed.join(", "));
    }
    Ok(())
}

/// A `PATH` with the project's venv (cargo-lambda, moto) first.
fn path_with_venv(root: &Path) -> std::ffi::OsString {
    let venv = root.join(".venv/bin");
    let mut paths = vec![venv];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// The arm64 zips of every bootstrap and the floor, and native builds of the bootstraps of
/// `functions` and of the floor, all with the functions' release profile (scripts/lambda-build.sh).
/// `scripts/lambda-build.sh`, with the environment `cargo run` gave this process taken out
/// (`CARGO`, `CARGO_PKG_*`, `CARGO_MANIFEST_*`, ...): the nested builds must see what the
/// test command's own build step saw, or they may not reuse its artifacts. The user's own
/// cargo settings (`CARGO_HOME`, `CARGO_TARGET_DIR`, `CARGO_BUILD_*`, ...) stay.
fn build_script(root: &Path) -> Command {
    let mut command = Command::new(root.join("scripts/lambda-build.sh"));
    command.env("PATH", path_with_venv(root));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let from_cargo_run = name == "CARGO"
            || ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "CARGO_CRATE_", "CARGO_PRIMARY_"]
                .iter()
                .any(|p| name.starts_with(p));
        if from_cargo_run {
            command.env_remove(name);
        }
    }
    command
}

/// The smoke run's builds, which keep the runner working in seconds rather than measure: the
/// zips the test command built already (built here only when missing), and the debug
/// bootstraps of the workspace's test build (`cargo build --workspace --all-targets`, the
/// same features as the tests, so nothing is rebuilt after them; failure points compiled in
/// but never armed). A release build of the SDK for this machine would cost CI minutes for
/// figures that a smoke run does not report anyway (BENCHMARKS.md).
fn build_smoke(root: &Path, native_dir: &Path, functions: &[String]) -> anyhow::Result<()> {
    let zips = root.join("target/lambda");
    let have_zips = clinicflow::catalog()
        .bootstraps()
        .into_iter()
        .chain([FLOOR])
        .all(|b| zips.join(b).join("bootstrap.zip").exists());
    if !have_zips {
        eprintln!("==> building the arm64 zips (scripts/lambda-build.sh)");
        let status = build_script(root)
            .stdout(Stdio::null())
            .status()
            .context("running scripts/lambda-build.sh")?;
        if !status.success() {
            bail!("scripts/lambda-build.sh failed");
        }
    }
    let bootstraps = lambda::bootstraps_of(functions);
    eprintln!("==> debug builds of {} and {FLOOR} (smoke run)", bootstraps.join(", "));
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(root)
        .args(["build", "--workspace", "--all-targets", "--locked", "--quiet"]);
    if !cargo.status().context("running cargo build")?.success() {
        bail!("cargo build of the smoke run's bootstraps failed");
    }
    for b in bootstraps.into_iter().chain([FLOOR]) {
        let dir = native_dir.join(b);
        std::fs::create_dir_all(&dir)?;
        let from = root.join("target/debug").join(b);
        std::fs::copy(&from, dir.join("bootstrap")).with_context(|| format!("copying {}", from.display()))?;
    }
    Ok(())
}

fn build(root: &Path, native_dir: &Path, functions: &[String]) -> anyhow::Result<()> {
    eprintln!("==> building the arm64 zips (scripts/lambda-build.sh)");
    let status = build_script(root)
        .stdout(Stdio::null())
        .status()
        .context("running scripts/lambda-build.sh (needs cargo-lambda: ./scripts/test.sh installs it in .venv)")?;
    if !status.success() {
        bail!("scripts/lambda-build.sh failed");
    }
    let bootstraps = lambda::bootstraps_of(functions);
    eprintln!(
        "==> building native bootstraps {} (for {}) and {FLOOR}",
        bootstraps.join(", "),
        functions.join(", ")
    );
    let status = build_script(root)
        .arg("--native")
        .arg(native_dir)
        .args(bootstraps)
        .arg(FLOOR)
        .status()
        .context("running scripts/lambda-build.sh --native")?;
    if !status.success() {
        bail!("scripts/lambda-build.sh --native failed");
    }
    Ok(())
}

/// The AWS emulator: the test run's moto server (`CLINICFLOW_MOTO_ENDPOINT`), or one
/// started from the project's venv for this run.
struct Emulator {
    endpoint: String,
    child: Option<Child>,
}

impl Emulator {
    fn start(root: &Path) -> anyhow::Result<Self> {
        if let Ok(endpoint) = std::env::var("CLINICFLOW_MOTO_ENDPOINT") {
            return Ok(Self { endpoint, child: None });
        }
        let python: PathBuf = root.join(".venv/bin/python");
        if !python.exists() {
            bail!(
                "no moto server: set CLINICFLOW_MOTO_ENDPOINT, or install the test tools (./scripts/test.sh, or python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(root.join("target/bench/moto.log"))?;
        let child = Command::new(python)
            .arg(root.join("scripts/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting moto")?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let emulator = Self {
            endpoint,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("moto did not start; see target/bench/moto.log");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(emulator)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
