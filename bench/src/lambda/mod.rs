//! The Lambda figures of the real release binaries: cold start and peak memory of each
//! function's native `bootstrap`, spawned against a local Runtime API ([`runtime_api`]) with
//! fake credentials and the emulator as its endpoint, and the size of its arm64 zip; each
//! against the hello-world floor (`bench/floor`) measured the same way in the same run.

pub mod runtime_api;
pub mod seed;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use clinicflow::topology;
use serde_json::Value;

use crate::{Metric, Target, percentile, slices};
use runtime_api::{Report, RuntimeApi};
use seed::Seeder;

/// The floor's package and binary name.
pub const FLOOR: &str = "hello-floor";
/// Zip budget: 2.5 MB.
pub const ZIP_BUDGET_BYTES: f64 = 2_500_000.0;
/// Peak resident memory budget: 16 MB.
pub const RSS_BUDGET_BYTES: f64 = 16_000_000.0;

/// What to measure.
#[derive(Debug, Clone)]
pub struct LambdaOptions {
    /// The workspace root.
    pub root: PathBuf,
    /// Where the native bootstraps are: `<dir>/<bootstrap>/bootstrap`.
    pub native_dir: PathBuf,
    /// Where the arm64 zips are: `<dir>/<bootstrap>/bootstrap.zip`.
    pub zip_dir: PathBuf,
    /// The functions to spawn (every function's zip is measured regardless).
    pub functions: Vec<String>,
    /// Spawns per function (the cold start is their median).
    pub spawns: usize,
    /// Events each spawn handles (the first is the cold one).
    pub events_per_spawn: usize,
    /// The emulator endpoint (a moto server).
    pub endpoint: String,
    /// Where the bootstraps' logs go.
    pub log_dir: PathBuf,
}

/// One spawn's figures.
#[derive(Debug, Clone, Copy)]
struct Spawn {
    /// Spawn → first `/next`.
    init_ms: f64,
    /// Spawn → first response.
    cold_ms: f64,
    /// `VmHWM` after the last event.
    peak_rss_bytes: f64,
    /// Median invoke → response of the events after the first (warm), if any.
    warm_ms: f64,
}

/// The bootstraps that serve `functions`, each once.
pub fn bootstraps_of(functions: &[String]) -> Vec<&'static str> {
    let catalog = clinicflow::catalog();
    catalog
        .bootstraps()
        .into_iter()
        .filter(|b| functions.iter().any(|f| catalog.bootstrap_of(f) == *b))
        .collect()
}

/// Every bootstrap's zip size against the floor's.
pub fn zip_metrics(zip_dir: &Path) -> anyhow::Result<Vec<Metric>> {
    let size = |name: &str| -> anyhow::Result<f64> {
        let path = zip_dir.join(name).join("bootstrap.zip");
        let meta = std::fs::metadata(&path).with_context(|| format!("{} (run scripts/lambda-build.sh)", path.display()))?;
        Ok(meta.len() as f64)
    };
    let floor = size(FLOOR)?;
    let mut metrics = vec![
        Metric::new(format!("zip_bytes.{FLOOR}"), floor, "bytes", floor)
            .target(Target::MaxValue(ZIP_BUDGET_BYTES))
            .note("the floor itself"),
    ];
    let catalog = clinicflow::catalog();
    for b in catalog.bootstraps() {
        let served: Vec<&str> = catalog.served_by(b).map(|f| f.name).collect();
        metrics.push(
            Metric::new(format!("zip_bytes.{b}"), size(b)?, "bytes", floor)
                .target(Target::MaxValue(ZIP_BUDGET_BYTES))
                .note(format!(
                    "cargo lambda build --release --arm64, zipped; serves {}",
                    served.join(", ")
                )),
        );
    }
    Ok(metrics)
}

/// Cold start, init and peak memory of the floor and of each selected function.
pub async fn spawn_metrics(options: &LambdaOptions) -> anyhow::Result<Vec<Metric>> {
    std::fs::create_dir_all(&options.log_dir)?;
    let target = clinicflow::adapters::aws::AwsTarget {
        endpoint: Some(options.endpoint.clone()),
    };
    let sdk = clinicflow::adapters::aws::sdk_config(&target).await;
    let prefix = format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase());
    let seeder = Seeder::new(&sdk, &prefix, &options.root).await?;

    // The floor handles the same requests as the first fixture's entry function: it only
    // echoes them.
    let entry = slices::first()?.entry();
    let mut floor_spawns = Vec::new();
    for _ in 0..options.spawns {
        let payloads = seeder.payloads(entry, options.events_per_spawn).await?;
        floor_spawns.push(spawn_once(options, FLOOR, 128, &seeder, payloads, Expect::Echo, true).await?);
    }
    let floor = summarize(&floor_spawns);
    let mut metrics = vec![
        Metric::new(format!("cold_start_ms.{FLOOR}"), floor.cold_ms, "ms", floor.cold_ms)
            .note(format!("p50 of {} spawns, spawn to first response", options.spawns)),
        Metric::new(format!("warm_ms.{FLOOR}"), floor.warm_ms, "ms", floor.warm_ms),
        Metric::new(
            format!("peak_rss_bytes.{FLOOR}"),
            floor.peak_rss_bytes,
            "bytes",
            floor.peak_rss_bytes,
        )
        .target(Target::MaxValue(RSS_BUDGET_BYTES)),
    ];
    for name in &options.functions {
        let f = clinicflow::catalog()
            .function(name)
            .with_context(|| format!("{name} is not a function"))?;
        let mut retried = 0;
        let mut spawns = Vec::new();
        for _ in 0..options.spawns {
            let spawn = with_retries(name, &mut retried, || async {
                let payloads = seeder.payloads(name, options.events_per_spawn).await?;
                spawn_once(options, name, f.memory_mb, &seeder, payloads, Expect::Success, true).await
            });
            spawns.push(spawn.await?);
        }
        let s = summarize(&spawns);
        // A third as many spawns with priming off: init without its round trips to the
        // emulator, which is what the floor's init does too.
        let mut unprimed = Vec::new();
        for _ in 0..options.spawns.div_ceil(3) {
            let spawn = with_retries(name, &mut retried, || async {
                let payloads = seeder.payloads(name, options.events_per_spawn).await?;
                spawn_once(options, name, f.memory_mb, &seeder, payloads, Expect::Success, false).await
            });
            unprimed.push(spawn.await?);
        }
        let u = summarize(&unprimed);
        let samples = if retried == 0 {
            format!("p50 of {} spawns × {} events", options.spawns, options.events_per_spawn)
        } else {
            format!(
                "p50 of {} spawns × {} events ({retried} failed spawns tried again)",
                options.spawns, options.events_per_spawn
            )
        };
        metrics.push(
            Metric::new(format!("cold_start_ms.{name}"), s.cold_ms, "ms", floor.cold_ms)
                .target(Target::MaxRatio(1.25))
                .note(format!("{samples}; spawn to first response")),
        );
        metrics.push(
            Metric::new(
                format!("cold_penalty_ms.{name}"),
                s.cold_ms - s.warm_ms,
                "ms",
                floor.cold_ms - floor.warm_ms,
            )
            .note("cold start less a warm invocation: what being cold costs over the event's own work"),
        );
        metrics.push(
            Metric::new(format!("init_ms.{name}"), s.init_ms, "ms", floor.init_ms)
                .note(format!("{samples}; spawn to first /next (init, incl. primed connections)")),
        );
        metrics.push(
            Metric::new(format!("init_unprimed_ms.{name}"), u.init_ms, "ms", floor.init_ms)
                .target(Target::MaxRatio(1.25))
                .note(format!(
                    "p50 of {} spawns with CLINICFLOW_PRIME=off: config, SDK clients and tracing, no I/O (cold start then {:.1} ms)",
                    unprimed.len(),
                    u.cold_ms
                )),
        );
        metrics.push(
            Metric::new(format!("warm_ms.{name}"), s.warm_ms, "ms", floor.warm_ms)
                .note(format!("{samples}; invoke to response after the first event, against the emulator")),
        );
        metrics.push(
            Metric::new(format!("peak_rss_bytes.{name}"), s.peak_rss_bytes, "bytes", floor.peak_rss_bytes)
                .target(Target::MaxValue(RSS_BUDGET_BYTES))
                .note(format!("max VmHWM over {} spawns", options.spawns)),
        );
    }
    Ok(metrics)
}

/// Medians of cold start and init; the highest peak memory.
fn summarize(spawns: &[Spawn]) -> Spawn {
    let of = |f: fn(&Spawn) -> f64| spawns.iter().map(f).collect::<Vec<f64>>();
    Spawn {
        init_ms: percentile(&of(|s| s.init_ms), 50.0),
        cold_ms: percentile(&of(|s| s.cold_ms), 50.0),
        peak_rss_bytes: of(|s| s.peak_rss_bytes).into_iter().fold(0.0, f64::max),
        warm_ms: percentile(&of(|s| s.warm_ms), 50.0),
    }
}

/// Whether a function's answer is the success its event should produce (for an HTTP
/// function, its fixture checks the body too: [`slices::Fixture::check_response`]).
fn check_answer(function: &str, answer: &Value) -> anyhow::Result<()> {
    let f = clinicflow::catalog()
        .function(function)
        .with_context(|| format!("{function} is not a function"))?;
    match f.trigger {
        topology::Trigger::Http => {
            let status = answer["statusCode"].as_u64().unwrap_or(0);
            if !(200..300).contains(&status) {
                bail!("{function} answered {status}: {}", answer["body"]);
            }
            let body: Value = answer["body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null);
            slices::driver(function)?
                .check_response(function, &body)
                .with_context(|| format!("{function} answered {status}"))?;
        }
        topology::Trigger::Stream => {
            if answer["batchItemFailures"].as_array().is_some_and(|f| !f.is_empty()) {
                bail!("{function} failed records: {answer}");
            }
        }
        topology::Trigger::Events | topology::Trigger::Schedule(_) => {}
    }
    Ok(())
}

/// Spawns a bootstrap: runs `spawn`, and runs it again (at most [`SPAWN_RETRIES`] times)
/// when it fails, which on a loaded machine is the emulator stalling past a timeout (a
/// `503` from the function). Every retry is printed and counted in `retried`.
async fn with_retries<F, Fut>(function: &str, retried: &mut usize, mut spawn: F) -> anyhow::Result<Spawn>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Spawn>>,
{
    let mut attempt = 0;
    loop {
        match spawn().await {
            Ok(s) => return Ok(s),
            Err(e) if attempt < SPAWN_RETRIES => {
                attempt += 1;
                *retried += 1;
                eprintln!("    {function}: spawn failed ({e:#}); again, with new work");
            }
            Err(e) => return Err(e),
        }
    }
}

/// How often one spawn is tried again before the run stops.
const SPAWN_RETRIES: usize = 2;

/// What a spawn's answers must be, beyond not being error reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Anything (the floor echoes).
    Echo,
    /// The success its event should produce ([`check_answer`]).
    Success,
}

/// Spawns `function`'s bootstrap, hands it `payloads` one by one, and measures it.
async fn spawn_once(
    options: &LambdaOptions,
    function: &str,
    memory_mb: u16,
    seeder: &Seeder,
    payloads: Vec<Value>,
    expect: Expect,
    prime: bool,
) -> anyhow::Result<Spawn> {
    // A function is spawned from its bootstrap, told which one it is by `_HANDLER` (as the
    // Lambda runtime does from its Handler setting); the floor is a binary of its own.
    let (bootstrap, handler) = if function == FLOOR {
        (FLOOR, None)
    } else {
        (clinicflow::catalog().bootstrap_of(function), Some(function))
    };
    let binary = options.native_dir.join(bootstrap).join("bootstrap");
    if !binary.exists() {
        bail!("{} is missing (build it, or run without --no-build)", binary.display());
    }
    let mut api = RuntimeApi::start(function).await?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(options.log_dir.join(format!("{function}.log")))?;
    let mut command = tokio::process::Command::new(&binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_ENDPOINT_URL", &options.endpoint)
        .env("OUTBOX_GRACE_MS", "0")
        .envs(handler.map(|h| (clinicflow::bootstrap::HANDLER_VARIABLE, h)))
        .env("CLINICFLOW_PRIME", if prime { "on" } else { "off" })
        .envs(seeder.environment(function))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);

    let started = Instant::now();
    let mut child = command.spawn().with_context(|| format!("spawning {}", binary.display()))?;
    let pid = child.id().context("the bootstrap exited at once")?;
    let within = Duration::from_secs(30);
    let mut init_at = None;
    let mut cold_at = None;
    let mut warm = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        let id = format!("{function}-{i}-{}", ulid::Ulid::new());
        let invoked = Instant::now();
        api.invoke(&id, Bytes::from(serde_json::to_vec(payload)?)).await?;
        loop {
            match api.report(within).await? {
                Report::Next(at) => {
                    init_at.get_or_insert(at);
                }
                Report::InitError(body) => bail!("{function} failed its init: {}", String::from_utf8_lossy(&body)),
                Report::Answer {
                    id: answered,
                    at,
                    ok,
                    body,
                } if answered == id => {
                    if cold_at.is_none() {
                        cold_at = Some(at);
                    } else {
                        warm.push((at - invoked).as_secs_f64() * 1e3);
                    }
                    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if !ok {
                        bail!("{function} reported an error: {answer}");
                    }
                    if expect == Expect::Success {
                        check_answer(function, &answer)?;
                    }
                    break;
                }
                Report::Answer { id: other, .. } => bail!("{function} answered {other}, not {id}"),
            }
        }
    }
    // Wait until the runtime asks for more work: every event is handled and dropped.
    loop {
        if let Report::Next(_) = api.report(within).await? {
            break;
        }
    }
    let peak_rss_bytes = peak_rss(pid)?;
    let _ = child.kill().await;
    let (Some(init_at), Some(cold_at)) = (init_at, cold_at) else {
        bail!("{function} handled no event");
    };
    Ok(Spawn {
        init_ms: (init_at - started).as_secs_f64() * 1e3,
        cold_ms: (cold_at - started).as_secs_f64() * 1e3,
        peak_rss_bytes,
        warm_ms: percentile(&warm, 50.0),
    })
}

/// The process's peak resident set (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .context("no VmHWM in /proc/<pid>/status")?;
    Ok(kib * 1024.0)
}
