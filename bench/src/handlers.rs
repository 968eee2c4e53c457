//! `handler_us.<case>`: the in-process cost of each command, query and consumer (event
//! deserialization, domain, use case, response serialization) on the in-memory adapters,
//! with criterion used as a library, against an echo handler measured in the same run.
//!
//! Every handler is driven through the entry point its Lambda function uses, from the
//! function's sample event in `events/<function>/`; which samples, and the state each call
//! needs, come from the slices' bench fixtures ([`crate::slices::Handlers`]):
//! - HTTP (each fixture's [`HttpCase`]s): the API Gateway v2 event is deserialized as
//!   `lambda_http` does (`LambdaRequest`), served by `clinicflow::http::router(platform,
//!   Some(function))` through `lambda_http`'s own adapter (`tower::ServiceExt::oneshot`),
//!   and its `LambdaResponse` serialized to JSON. The caller's claims come from the event's
//!   JWT authorizer context, as on AWS. The fixture puts a case of its own (made untimed)
//!   in the events that act on one, and seeds the cases the queries read.
//! - Consumers (every target of `clinicflow::catalog().rules`): the EventBridge event (the
//!   fixture's sample, carrying a real envelope made in setup by opening a case, opening and
//!   ending one, or taking one as far as the event's step) deserialized as
//!   `EventBridgeEvent<EventEnvelope>` and handled by
//!   `wiring::handle_eventbridge`.
//! - `status-projector`: the first fixture's sample stream batch for a fresh case,
//!   deserialized and handled by `wiring::handle_stream`, its response serialized; the
//!   case's view must exist after it.
//! - `outbox-sweeper`: the scheduled event, then `relay::sweep` with one pending event (the
//!   event that opens one of the first fixture's cases).
//!
//! Each timed call gets fresh state where it matters (a new case to act on, an unprocessed
//! event, a pending outbox event), made before the clock starts; each criterion sample runs
//! on a fresh platform, so the store does not grow through a run. Only what the fixtures
//! change in the settings differs from the defaults (resources that would run out).
//!
//! The floors: `echo_http`, an axum route answering the request body as JSON, driven by the
//! first fixture's entry event through the same adapter; `echo_event`, its EventBridge
//! sample deserialized and serialized back. HTTP handlers are divided by the first, event
//! handlers (consumers, projector, sweeper) by the second.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow, bail, ensure};
use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::on;
use chrono::Utc;
use clinicflow::adapters::memory::{Memory, MemoryPublisher, MemorySms};
use clinicflow::adapters::sandbox::SandboxGateway;
use clinicflow::app::{Faults, Platform, relay};
use clinicflow::config::Config;
use clinicflow::events::EventEnvelope;
use clinicflow::ports::Transaction;
use clinicflow::topology::{self, Trigger};
use clinicflow::wiring;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context as LambdaContext, LambdaEvent};
use serde_json::Value;
use tower::ServiceExt;

use crate::slices::{self, Handlers, HttpCase, Moment};
use crate::{Metric, Mode, Target, workspace_root};

/// Criterion's group: its results are under `<out_dir>/handler_us/<name>/new/`.
const GROUP: &str = "handler_us";
/// What every handler must stay within, in µs.
const TARGET_US: f64 = 100.0;
const NOTE: &str = "criterion median, in-memory adapters";

/// Runs the handler benchmarks; criterion's files go under `out_dir`.
pub fn run(mode: Mode, out_dir: &Path) -> anyhow::Result<Vec<Metric>> {
    run_with(Settings::of(mode), out_dir)
}

/// How long criterion measures.
#[derive(Debug, Clone, Copy)]
struct Settings {
    warm_up: Duration,
    measurement: Duration,
    samples: usize,
    resamples: usize,
    sampling: SamplingMode,
}

impl Settings {
    /// - Full: 0.5 s of warm-up and 1.5 s of 50 samples per handler: thousands of calls
    ///   each, stable medians, well under a minute for the suite (the untimed setup of each
    ///   call, often a case or two, runs on top of the measured time: 35 s all told).
    /// - Quick: 10 samples in 0.12 s per handler: the suite in 3 to 5 s.
    fn of(mode: Mode) -> Self {
        match mode {
            Mode::Full => Self {
                warm_up: Duration::from_millis(500),
                measurement: Duration::from_millis(1500),
                samples: 50,
                resamples: 10_000,
                sampling: SamplingMode::Auto,
            },
            Mode::Quick => Self {
                warm_up: Duration::from_millis(50),
                measurement: Duration::from_millis(120),
                samples: 10,
                resamples: 1_000,
                sampling: SamplingMode::Flat,
            },
        }
    }

    /// The least criterion accepts: for tests of the runner itself.
    #[cfg(test)]
    fn tiny() -> Self {
        Self {
            warm_up: Duration::from_millis(1),
            measurement: Duration::from_millis(1),
            samples: 10,
            resamples: 100,
            sampling: SamplingMode::Flat,
        }
    }
}

fn run_with(settings: Settings, out_dir: &Path) -> anyhow::Result<Vec<Metric>> {
    // On a thread of its own, so that the runner may call this from inside a runtime.
    std::thread::scope(|s| s.spawn(|| suite(settings, out_dir)).join()).map_err(|_| anyhow!("the handler benchmarks panicked"))?
}

/// What is measured, in order. `fixture` is an index in [`slices::all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Case {
    EchoHttp,
    Http {
        fixture: usize,
        case: HttpCase,
    },
    /// A platform HTTP function (the public routes), on its first sample.
    Public {
        function: &'static str,
    },
    EchoEvent,
    Consumer {
        fixture: usize,
        target: &'static str,
    },
    Projector {
        fixture: usize,
    },
    Sweeper {
        fixture: usize,
    },
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Self::EchoHttp => "echo_http",
            Self::Http { case, .. } => case.name,
            Self::Public { function } => function,
            Self::EchoEvent => "echo_event",
            Self::Consumer { target, .. } => target,
            Self::Projector { .. } => topology::STATUS_PROJECTOR,
            Self::Sweeper { .. } => topology::OUTBOX_SWEEPER,
        }
    }

    /// The function whose router serves an HTTP case.
    fn function(self) -> Option<&'static str> {
        match self {
            Self::Http { case, .. } => Some(case.function),
            Self::Public { function } => Some(function),
            _ => None,
        }
    }

    /// The floor it is divided by.
    fn floor(self) -> Case {
        if self == Self::EchoHttp || self.function().is_some() {
            Self::EchoHttp
        } else {
            Self::EchoEvent
        }
    }

    /// The status an HTTP case answers.
    fn status(self) -> u16 {
        match self {
            Self::Http { case, .. } => case.status,
            _ => 200,
        }
    }

    /// The fixture that makes the case's events (the floors': the first).
    fn fixture(self) -> usize {
        match self {
            Self::EchoHttp | Self::EchoEvent | Self::Public { .. } => 0,
            Self::Http { fixture, .. } | Self::Consumer { fixture, .. } | Self::Projector { fixture } | Self::Sweeper { fixture } => {
                fixture
            }
        }
    }
}

/// Every case: the floors, each fixture's HTTP handlers, every consumer of the catalog's
/// rules (measured by the first fixture with a sample for it), the projector and the
/// sweeper (on the first fixture's cases). An HTTP function or a consumer that no fixture
/// measures is an error.
fn cases(fixtures: &[Box<dyn Handlers>]) -> anyhow::Result<Vec<Case>> {
    ensure!(!fixtures.is_empty(), "no bench fixture: list one in bench/src/slices/mod.rs");
    let mut cases = vec![Case::EchoHttp];
    for (fixture, handlers) in fixtures.iter().enumerate() {
        cases.extend(handlers.http_cases().iter().map(|&case| Case::Http { fixture, case }));
    }
    let catalog = clinicflow::catalog();
    cases.extend(
        catalog
            .functions
            .iter()
            .filter(|f| f.trigger == Trigger::Http && catalog.slice_of(f.name).is_none())
            .map(|f| Case::Public { function: f.name }),
    );
    let mut missing = Vec::new();
    for f in clinicflow::catalog().functions.iter().filter(|f| f.trigger == Trigger::Http) {
        if !cases.iter().any(|c| c.function() == Some(f.name)) {
            missing.push(format!("no bench fixture measures the HTTP function {}", f.name));
        }
    }
    cases.push(Case::EchoEvent);
    for rule in &clinicflow::catalog().rules {
        if cases
            .iter()
            .any(|c| matches!(c, Case::Consumer { target, .. } if *target == rule.target))
        {
            continue;
        }
        match fixtures.iter().position(|h| h.consumer_sample(rule.target).is_some()) {
            Some(fixture) => cases.push(Case::Consumer {
                fixture,
                target: rule.target,
            }),
            None => missing.push(format!(
                "no bench fixture has a sample for the consumer {}: add one to its fixture's consumer_sample",
                rule.target
            )),
        }
    }
    if !missing.is_empty() {
        bail!("{}", missing.join("; "));
    }
    cases.extend([Case::Projector { fixture: 0 }, Case::Sweeper { fixture: 0 }]);
    Ok(cases)
}

/// The names of the handler figures, in the order they are reported.
pub fn figure_names() -> anyhow::Result<Vec<String>> {
    let fixtures = load(&slices::config())?;
    let cases = cases(&fixtures)?;
    let measured = cases.iter().filter(|c| c.floor() != **c);
    Ok(measured
        .chain(&[Case::EchoHttp, Case::EchoEvent])
        .map(|c| format!("{GROUP}.{}", c.name()))
        .collect())
}

/// Every fixture's handler part, its samples read.
fn load(config: &Config) -> anyhow::Result<Vec<Box<dyn Handlers>>> {
    slices::all().iter().map(|f| f.handlers(config)).collect()
}

/// A sample, `events/<name>`, as text.
pub fn read(name: &str) -> anyhow::Result<String> {
    let path = workspace_root().join("events").join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The caller's subject in a sample HTTP event.
pub fn sub_of(event: &str) -> anyhow::Result<String> {
    let event: Value = serde_json::from_str(event)?;
    event
        .pointer("/requestContext/authorizer/jwt/claims/sub")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("the sample event has no JWT subject")
}

/// A fresh platform on the in-memory adapters.
pub struct Ctx {
    /// The platform.
    pub platform: Arc<Platform>,
    /// What the platform published, until taken.
    pub publisher: MemoryPublisher,
}

impl Ctx {
    /// A fresh platform with `config`.
    pub(crate) fn new(config: &Config) -> Self {
        let store = Memory::new();
        let publisher = MemoryPublisher::new();
        let sandbox = SandboxGateway::new(config.sandbox_slow);
        let platform = wiring::platform(
            clinicflow::catalog(),
            store,
            Arc::new(publisher.clone()),
            Arc::new(MemorySms::new()),
            Arc::new(sandbox.clone()),
            config.clone(),
            Faults::none(),
        );
        Self {
            // A slice that seals documents holds a signing key, as the local stack does.
            platform: Arc::new(platform.with_signer(Arc::new(clinicflow::sealing::KeySigner::random()))),
            publisher,
        }
    }
}

/// The event of type `event_type` among `events`.
pub fn find(events: Vec<EventEnvelope>, event_type: &str) -> anyhow::Result<EventEnvelope> {
    events
        .into_iter()
        .find(|e| e.event_type == event_type)
        .with_context(|| format!("setup: no {event_type} was published"))
}

/// A case's state for one criterion sample.
struct Prepared {
    ctx: Ctx,
    router: Router,
    /// The event every call sends, or the sample that each call's event is made from.
    event: String,
    /// A pending event's model (the sweeper).
    template: Option<EventEnvelope>,
}

async fn prepare(case: Case, fixtures: &[Box<dyn Handlers>], config: &Config) -> anyhow::Result<Prepared> {
    let ctx = Ctx::new(config);
    let fixture = &fixtures[case.fixture()];
    let router = match case.function() {
        Some(function) => clinicflow::http::router(ctx.platform.clone(), Some(function)),
        None => echo_router(fixture.entry_event())?,
    };
    let mut template = None;
    let event = match case {
        Case::EchoHttp => fixture.entry_event().to_owned(),
        Case::Http { case, .. } => fixture.prepare(&case, &ctx).await?,
        Case::Public { function } => first_sample(function)?,
        Case::EchoEvent => fixture.echo_event().to_owned(),
        // Each call's event is made from the consumer's own sample, or for a fresh case.
        Case::Consumer { .. } | Case::Projector { .. } => String::new(),
        Case::Sweeper { .. } => {
            template = Some(fixture.opened(&ctx).await?);
            first_sample(topology::OUTBOX_SWEEPER)?
        }
    };
    Ok(Prepared {
        ctx,
        router,
        event,
        template,
    })
}

/// The first sample (by name) of `function`, `events/<function>/*.json`.
fn first_sample(function: &str) -> anyhow::Result<String> {
    let dir = workspace_root().join("events").join(function);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let file = files.first().with_context(|| format!("no sample in {}", dir.display()))?;
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

/// One timed call: how long it took and what it answered.
struct Timed {
    elapsed: Duration,
    output: Vec<u8>,
}

/// Makes what one call needs (untimed), then times the call.
async fn iteration(case: Case, prep: &Prepared, fixtures: &[Box<dyn Handlers>]) -> anyhow::Result<Timed> {
    let ctx = &prep.ctx;
    let fixture = &fixtures[case.fixture()];
    match case {
        Case::EchoHttp | Case::Public { .. } => http(&prep.router, prep.event.as_bytes(), case.status()).await,
        Case::Http { case: http_case, .. } => match fixture.event(&http_case, ctx, &prep.event).await? {
            Some(event) => http(&prep.router, event.as_bytes(), case.status()).await,
            None => http(&prep.router, prep.event.as_bytes(), case.status()).await,
        },
        Case::EchoEvent => {
            let started = Instant::now();
            let event: EventBridgeEvent<EventEnvelope> = serde_json::from_slice(prep.event.as_bytes())?;
            let event = LambdaEvent::new(event, LambdaContext::default());
            let output = serde_json::to_vec(&event.payload)?;
            Ok(Timed {
                elapsed: started.elapsed(),
                output,
            })
        }
        Case::Consumer { target, .. } => {
            let (sample, moment) = fixture.consumer_sample(target).context("no sample for the consumer")?;
            let envelope = match moment {
                Moment::Opens => fixture.opened(ctx).await?,
                Moment::Ends => fixture.ended(ctx).await?,
                Moment::Reached(event_type) => fixture.reached(ctx, event_type).await?,
            };
            let mut event = sample.clone();
            event["detail"] = serde_json::to_value(&envelope)?;
            let event = serde_json::to_vec(&event)?;

            let started = Instant::now();
            let payload: EventBridgeEvent<EventEnvelope> = serde_json::from_slice(&event)?;
            let handled = wiring::handle_eventbridge(&ctx.platform, target, LambdaEvent::new(payload, LambdaContext::default())).await;
            let output = serde_json::to_vec(&())?;
            let elapsed = started.elapsed();

            handled.map_err(|e| anyhow!("{target} failed on {}: {e}", envelope.event_type))?;
            ensure!(
                ctx.platform.store.is_processed(target, &envelope.id).await?,
                "{target} did not process {}",
                envelope.event_type
            );
            Ok(Timed { elapsed, output })
        }
        Case::Projector { .. } => {
            let case_id = ulid::Ulid::new().to_string();
            let event = fixture.stream_event(&case_id);

            let started = Instant::now();
            let payload: StreamEvent = serde_json::from_str(&event)?;
            let response = wiring::handle_stream(&ctx.platform, LambdaEvent::new(payload, LambdaContext::default()))
                .await
                .map_err(|e| anyhow!("{} failed: {e}", topology::STATUS_PROJECTOR))?;
            let output = serde_json::to_vec(&response)?;
            let elapsed = started.elapsed();

            ensure!(
                response.batch_item_failures.is_empty(),
                "{} reported failed records: {}",
                topology::STATUS_PROJECTOR,
                String::from_utf8_lossy(&output)
            );
            let view = ctx.platform.views.get(&fixture.view_key(&case_id)).await?;
            ensure!(view.is_some(), "{} wrote no view", topology::STATUS_PROJECTOR);
            Ok(Timed { elapsed, output })
        }
        Case::Sweeper { .. } => {
            let mut pending = prep.template.clone().context("no event to sweep")?;
            pending.id = ulid::Ulid::new().to_string();
            pending.occurred_at = Utc::now() - chrono::Duration::seconds(1);
            ctx.platform
                .store
                .commit(Transaction {
                    outbox: vec![pending],
                    ..Transaction::default()
                })
                .await?;

            let started = Instant::now();
            let event: Value = serde_json::from_slice(prep.event.as_bytes())?;
            let _event = LambdaEvent::new(event, LambdaContext::default());
            let report = relay::sweep(&ctx.platform, Duration::ZERO)
                .await
                .map_err(|e| anyhow!("{} failed: {e}", topology::OUTBOX_SWEEPER))?;
            let output = serde_json::to_vec(&serde_json::json!({"published": report.published, "failed": report.failed}))?;
            let elapsed = started.elapsed();

            ensure!(
                report.published == 1 && report.failed == 0,
                "{} swept {report:?}, not the one pending event",
                topology::OUTBOX_SWEEPER
            );
            ctx.publisher.take();
            Ok(Timed { elapsed, output })
        }
    }
}

/// What a Lambda function behind API Gateway answers, as far as the checks go.
#[derive(Debug, serde::Deserialize)]
struct Answer {
    #[serde(rename = "statusCode")]
    status_code: u16,
    #[serde(default)]
    body: Option<String>,
}

/// One HTTP invocation as `lambda_http::run` makes it: the event deserialized, converted
/// and served, the response converted and serialized.
async fn http(router: &Router, event: &[u8], expected: u16) -> anyhow::Result<Timed> {
    let started = Instant::now();
    let request: LambdaRequest = serde_json::from_slice(event)?;
    let response = lambda_http::Adapter::from(router.clone())
        .oneshot(LambdaEvent::new(request, LambdaContext::default()))
        .await?;
    let output = serde_json::to_vec(&response)?;
    let elapsed = started.elapsed();

    let answer: Answer = serde_json::from_slice(&output)?;
    ensure!(
        answer.status_code == expected,
        "answered {} instead of {expected}: {}",
        answer.status_code,
        answer.body.unwrap_or_default()
    );
    Ok(Timed { elapsed, output })
}

/// The HTTP floor: the request body back as JSON, on the method and path of the entry
/// event it is driven by.
fn echo_router(entry_event: &str) -> anyhow::Result<Router> {
    async fn echo(body: Bytes) -> Response {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => axum::Json(v).into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        }
    }
    let event: Value = serde_json::from_str(entry_event)?;
    let path = event["rawPath"].as_str().context("the entry event has no rawPath")?;
    let method = event
        .pointer("/requestContext/http/method")
        .and_then(Value::as_str)
        .context("the entry event has no method")?;
    let method = axum::http::Method::from_bytes(method.as_bytes())?;
    let filter = axum::routing::MethodFilter::try_from(method).map_err(|e| anyhow!("the entry event's method: {e}"))?;
    Ok(Router::new().route(path, on(filter, echo)))
}

/// Runs a case once on a fresh platform and checks what it answered beyond its status.
async fn check(case: Case, fixtures: &[Box<dyn Handlers>], config: &Config) -> anyhow::Result<()> {
    let prep = prepare(case, fixtures, config).await?;
    let timed = iteration(case, &prep, fixtures).await?;
    if let Case::Http { fixture, case } = case {
        let answer: Answer = serde_json::from_slice(&timed.output)?;
        let body: Value = serde_json::from_str(&answer.body.unwrap_or_default()).unwrap_or(Value::Null);
        fixtures[fixture].check(&case, &body)?;
    }
    Ok(())
}

/// Benchmarks one case: each criterion sample on a freshly prepared platform, summing the
/// time of the calls only.
fn bench_case(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    case: Case,
    fixtures: &[Box<dyn Handlers>],
    config: &Config,
) -> anyhow::Result<()> {
    let failure: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    group.bench_function(case.name(), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let failure = &failure;
            async move {
                // After a failure, finish criterion's schedule as fast as possible.
                if failure.borrow().is_some() {
                    return Duration::from_nanos(iters.max(1));
                }
                let run = async {
                    let prep = prepare(case, fixtures, config).await?;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let timed = iteration(case, &prep, fixtures).await?;
                        total += timed.elapsed;
                        std::hint::black_box(timed.output);
                    }
                    Ok::<_, anyhow::Error>(total)
                };
                match run.await {
                    Ok(total) => total,
                    Err(e) => {
                        failure.borrow_mut().get_or_insert(e);
                        Duration::from_nanos(iters.max(1))
                    }
                }
            }
        });
    });
    match failure.into_inner() {
        Some(e) => Err(e.context(format!("{GROUP}.{} failed while measured", case.name()))),
        None => Ok(()),
    }
}

/// Criterion's median for `name` of [`GROUP`], in µs, from the file it wrote in this run.
fn median_us(out_dir: &Path, name: &str, since: SystemTime) -> anyhow::Result<f64> {
    median_of(out_dir, GROUP, name, since)
}

/// Criterion's median for `name` of `group`, in µs, from the file it wrote in this run.
fn median_of(out_dir: &Path, group: &str, name: &str, since: SystemTime) -> anyhow::Result<f64> {
    let path = out_dir.join(group).join(name).join("new").join("estimates.json");
    let written = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .with_context(|| format!("criterion wrote no {}", path.display()))?;
    ensure!(written >= since, "{} is from an earlier run", path.display());
    let estimates: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let ns = estimates
        .pointer("/median/point_estimate")
        .and_then(Value::as_f64)
        .with_context(|| format!("no median in {}", path.display()))?;
    Ok(ns / 1000.0)
}

fn suite(settings: Settings, out_dir: &Path) -> anyhow::Result<Vec<Metric>> {
    std::fs::create_dir_all(out_dir)?;
    let config = slices::config();
    let fixtures = load(&config)?;
    let cases = cases(&fixtures)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    for case in &cases {
        rt.block_on(check(*case, &fixtures, &config))
            .with_context(|| format!("{GROUP}.{} does not work", case.name()))?;
    }

    let since = SystemTime::now();
    let mut criterion = Criterion::default()
        .output_directory(out_dir)
        .warm_up_time(settings.warm_up)
        .measurement_time(settings.measurement)
        .sample_size(settings.samples)
        .nresamples(settings.resamples)
        .without_plots();
    let mut group = criterion.benchmark_group(GROUP);
    group.sampling_mode(settings.sampling);
    for case in &cases {
        bench_case(&mut group, &rt, *case, &fixtures, &config)?;
    }
    group.finish();

    let mut medians = HashMap::new();
    for case in &cases {
        medians.insert(*case, median_us(out_dir, case.name(), since)?);
    }
    let mut metrics = Vec::new();
    for case in cases.iter().filter(|c| c.floor() != **c) {
        let floor = medians[&case.floor()];
        metrics.push(
            Metric::new(format!("{GROUP}.{}", case.name()), medians[case], "us", floor)
                .target(Target::MaxValue(TARGET_US))
                .note(NOTE),
        );
    }
    for floor in [Case::EchoHttp, Case::EchoEvent] {
        let us = medians[&floor];
        let what = if floor == Case::EchoHttp {
            "the entry event through lambda_http to an axum echo route"
        } else {
            "the EventBridge event deserialized and serialized back"
        };
        metrics.push(Metric::new(format!("{GROUP}.{}", floor.name()), us, "us", us).note(format!("criterion median; floor: {what}")));
    }
    metrics.extend(sealing(settings, out_dir, &rt)?);
    Ok(metrics)
}

/// The sealed documents' group.
const SEALING: &str = "sealing_us";

/// `sealing_us.<case>`: what sealing a certificate costs (ES256 over its COSE_Sign1, with a
/// key in memory: the local signer; KMS adds its round trip, measured by the cold-start and
/// saga runs), and opening one (decoding and verifying), against the same claims written as
/// JSON, which every handler does anyway.
fn sealing(settings: Settings, out_dir: &Path, rt: &tokio::runtime::Runtime) -> anyhow::Result<Vec<Metric>> {
    use clinicflow::flows::covid::certificate::{self, Content};
    use clinicflow::sealing::{self, KeySigner, Signer as _};

    let at = Utc::now();
    let content = Content {
        holder: clinicflow::domain::PersonName::parse("김서연").map_err(|e| anyhow!("{}", e.detail))?,
        test_type: "RT-PCR".into(),
        sampled_at: at,
        result: clinicflow::flows::covid::site::TestResult::Negative,
        site_name: "마포구 선별진료소".into(),
        issuer: "clinicflow health centre".into(),
        issued_at: at,
        expires_at: at + chrono::Duration::hours(48),
    };
    let id = ulid::Ulid::new().to_string();
    let signer = KeySigner::random();
    let payload = rt.block_on(certificate::seal(&signer, &id, &content))?;
    ensure!(
        sealing::open(&payload, signer.verifying_key(), signer.key_id(), at.timestamp()).is_ok(),
        "a sealed certificate does not open"
    );

    // An earlier run's estimates are removed rather than told apart by their time: these
    // cases take milliseconds, less than some file systems' timestamps tell apart.
    match std::fs::remove_dir_all(out_dir.join(SEALING)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let since = SystemTime::UNIX_EPOCH;
    let mut criterion = Criterion::default()
        .output_directory(out_dir)
        .warm_up_time(settings.warm_up)
        .measurement_time(settings.measurement)
        .sample_size(settings.samples)
        .nresamples(settings.resamples)
        .without_plots();
    let mut group = criterion.benchmark_group(SEALING);
    group.sampling_mode(settings.sampling);
    group.bench_function("json", |b| b.iter(|| serde_json::to_vec(std::hint::black_box(&content))));
    group.bench_function("seal", |b| {
        b.to_async(rt)
            .iter(|| async { certificate::seal(&signer, &id, std::hint::black_box(&content)).await })
    });
    group.bench_function("open", |b| {
        b.iter(|| {
            sealing::open(
                std::hint::black_box(&payload),
                signer.verifying_key(),
                signer.key_id(),
                at.timestamp(),
            )
        })
    });
    group.finish();

    let floor = median_of(out_dir, SEALING, "json", since)?;
    let mut metrics = vec![
        Metric::new(format!("{SEALING}.json"), floor, "us", floor)
            .note("criterion median; floor: the certificate's claims written as JSON"),
    ];
    for (case, what) in [
        (
            "seal",
            "sealing a certificate: CWT claims, COSE_Sign1, ES256 with a key in memory, Base45",
        ),
        ("open", "opening one: Base45, COSE_Sign1, ES256 verification, CWT claims"),
    ] {
        let us = median_of(out_dir, SEALING, case, since)?;
        metrics.push(Metric::new(format!("{SEALING}.{case}"), us, "us", floor).note(format!("criterion median; {what}")));
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_handler_is_measured_against_its_floor() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let metrics = run_with(Settings::tiny(), dir.path()).expect("the suite runs");
        let names = figure_names().expect("the cases");
        for name in &names {
            let m = metrics
                .iter()
                .find(|m| &m.name == name)
                .unwrap_or_else(|| panic!("{name} is measured"));
            assert!(m.value > 0.0 && m.floor > 0.0, "{m:?}");
            assert_eq!(m.unit, "us");
        }
        assert_eq!(metrics.iter().filter(|m| m.name.starts_with(GROUP)).count(), names.len());
        for case in ["json", "seal", "open"] {
            let m = metrics
                .iter()
                .find(|m| m.name == format!("{SEALING}.{case}"))
                .unwrap_or_else(|| panic!("{SEALING}.{case} is measured"));
            assert!(m.value > 0.0 && m.floor > 0.0, "{m:?}");
        }
        assert_eq!(metrics.len(), names.len() + 3);
    }

    #[test]
    fn every_http_function_and_consumer_is_measured() {
        let names = figure_names().expect("the cases");
        for rule in &clinicflow::catalog().rules {
            assert!(names.contains(&format!("{GROUP}.{}", rule.target)), "{}", rule.target);
        }
        let fixtures = load(&slices::config()).expect("samples");
        let cases = cases(&fixtures).expect("the cases");
        for f in clinicflow::catalog().functions.iter().filter(|f| f.trigger == Trigger::Http) {
            assert!(cases.iter().any(|c| c.function() == Some(f.name)), "{}", f.name);
        }
    }
}
