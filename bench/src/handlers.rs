//! `handler_us.<command>`: the in-process cost of each command, query and consumer (event
//! deserialization, domain, use case, response serialization) on the in-memory adapters,
//! with criterion used as a library, against an echo handler measured in the same run.
//!
//! Every handler is driven through the entry point its Lambda function uses, from the
//! function's sample event in `events/<function>/`:
//! - HTTP (`book`, `cancel`, `confirm`, `reject`, `get`, `list`, `centre_list`): the API
//!   Gateway v2 event is deserialized as `lambda_http` does (`LambdaRequest`), served by
//!   `clinicflow::http::router(platform, Some(function))` through `lambda_http`'s own adapter
//!   (`tower::ServiceExt::oneshot`), and its `LambdaResponse` serialized to JSON. The caller's
//!   claims come from the event's JWT authorizer context, as on AWS. The sample's case id is
//!   replaced by a case booked (untimed) by the sample's caller where the command needs one;
//!   the list queries read [`SEEDED`] projected bookings.
//! - Consumers (every target of `clinicflow::catalog().rules`): the EventBridge event (the sample's,
//!   carrying a real envelope made in setup by running the commands) deserialized as
//!   `EventBridgeEvent<EventEnvelope>` and handled by `wiring::handle_eventbridge`.
//! - `status-projector`: the sample stream batch (`booked-and-paid.json`, two events to
//!   project, two items skipped) for a fresh case, deserialized and handled by
//!   `wiring::handle_stream`, its response serialized.
//! - `outbox-sweeper`: the scheduled event, then `relay::sweep` with one pending event.
//!
//! Each timed call gets fresh state where it matters (a new booking to cancel or decide, an
//! unprocessed event, a pending outbox event), made before the clock starts; each criterion
//! sample runs on a fresh platform, so the store does not grow through a run. Only the
//! daily capacity is raised, so that places never run out.
//!
//! The floors: `echo_http`, an axum route answering the request body as JSON, driven by the
//! same deserialized `book` event through the same adapter; `echo_event`, the EventBridge
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
use axum::routing::post;
use chrono::Utc;
use clinicflow::adapters::memory::{Memory, MemoryPublisher, MemorySms};
use clinicflow::adapters::sandbox::SandboxGateway;
use clinicflow::app::{Faults, Platform, consumers, projector, relay};
use clinicflow::config::Config;
use clinicflow::domain::{Actor, parse_future_date, today_in_korea};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::checkup::commands::{self as usecase, BookInput};
use clinicflow::flows::checkup::config::CheckupConfig;
use clinicflow::ports::Transaction;
use clinicflow::wiring;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use lambda_http::request::LambdaRequest;
use lambda_http::{Context as LambdaContext, LambdaEvent};
use serde_json::Value;
use tower::ServiceExt;

use crate::{Metric, Mode, Target, workspace_root};

/// Criterion's group: its results are under `<out_dir>/handler_us/<name>/new/`.
const GROUP: &str = "handler_us";
/// The case id the sample events name.
const SAMPLE_ID: &str = "01JD3M7Q0000000000000000AB";
/// Bookings (of the sample patient, on the sample date) behind the list queries.
const SEEDED: usize = 20;
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
    ///   call, often a booking or two, runs on top of the measured time: 35 s all told).
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

/// What is measured, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Case {
    EchoHttp,
    Book,
    Cancel,
    Confirm,
    Reject,
    Get,
    List,
    CentreList,
    EchoEvent,
    Consumer(&'static str),
    Projector,
    Sweeper,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Self::EchoHttp => "echo_http",
            Self::Book => "book",
            Self::Cancel => "cancel",
            Self::Confirm => "confirm",
            Self::Reject => "reject",
            Self::Get => "get",
            Self::List => "list",
            Self::CentreList => "centre_list",
            Self::EchoEvent => "echo_event",
            Self::Consumer(target) => target,
            Self::Projector => "status-projector",
            Self::Sweeper => "outbox-sweeper",
        }
    }

    /// The function whose router serves an HTTP case.
    fn function(self) -> Option<&'static str> {
        match self {
            Self::Book => Some("checkup-book"),
            Self::Cancel => Some("checkup-cancel"),
            Self::Confirm => Some("centre-confirm"),
            Self::Reject => Some("centre-reject"),
            Self::Get | Self::List | Self::CentreList => Some("checkup-query"),
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
            Self::Book => 201,
            Self::Cancel => 202,
            _ => 200,
        }
    }

    /// Every case: the floors, the HTTP handlers, every consumer of the topology's rules,
    /// the projector and the sweeper.
    fn all() -> Vec<Case> {
        let mut cases = vec![
            Self::EchoHttp,
            Self::Book,
            Self::Cancel,
            Self::Confirm,
            Self::Reject,
            Self::Get,
            Self::List,
            Self::CentreList,
            Self::EchoEvent,
        ];
        for rule in &clinicflow::catalog().rules {
            if !cases.contains(&Self::Consumer(rule.target)) {
                cases.push(Self::Consumer(rule.target));
            }
        }
        cases.extend([Self::Projector, Self::Sweeper]);
        cases
    }
}

/// The event a consumer is measured on: its sample file, and whether the event ends the
/// booking (`CheckupCancelled`) rather than starting it (`CheckupBooked`).
fn consumer_sample(target: &str) -> anyhow::Result<(&'static str, bool)> {
    Ok(match target {
        "centre-worklist" => ("centre-worklist/checkup-booked.json", false),
        "availability-release" => ("availability-release/checkup-cancelled.json", true),
        "payment-refund" => ("payment-refund/checkup-cancelled.json", true),
        "sms-notifier" => ("sms-notifier/checkup-booked.json", false),
        other => bail!("no benchmark for consumer {other}: add its sample event to handlers.rs"),
    })
}

/// The sample events, read once.
struct Samples {
    book: String,
    cancel: String,
    confirm: String,
    reject: String,
    get: String,
    list: String,
    centre_list: String,
    /// The body of `book`, for the bookings made in setup.
    book_input: BookInput,
    /// The caller of `book` (who books in setup).
    patient: String,
    /// The caller of `cancel` (who owns the bookings it cancels).
    canceller: String,
    /// Each consumer's EventBridge sample and whether its event ends the booking.
    consumers: HashMap<&'static str, (Value, bool)>,
    /// The EventBridge sample the event floor echoes.
    echo_event: String,
    stream: String,
    scheduled: String,
}

fn read(name: &str) -> anyhow::Result<String> {
    let path = workspace_root().join("events").join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The caller's subject in a sample HTTP event.
fn sub_of(event: &str) -> anyhow::Result<String> {
    let event: Value = serde_json::from_str(event)?;
    event
        .pointer("/requestContext/authorizer/jwt/claims/sub")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("the sample event has no JWT subject")
}

impl Samples {
    fn load(config: &Config) -> anyhow::Result<Self> {
        let mut book = read("checkup-book/book-basic.json")?;
        let mut centre_list = read("checkup-query/centre-list.json")?;
        let event: Value = serde_json::from_str(&book)?;
        let body = event["body"].as_str().context("the book sample has no body")?;
        let input: BookInput = serde_json::from_str(body).context("the book sample's body")?;
        let date = input.date.clone().context("the book sample has no date")?;
        // A sample date that has passed (or is beyond the horizon) moves to a month ahead,
        // in the booking and in the centre's list alike.
        if parse_future_date("date", &date, Utc::now(), config.slice::<CheckupConfig>().booking_horizon_days).is_err() {
            let moved = (today_in_korea(Utc::now()) + chrono::Days::new(30)).to_string();
            book = book.replace(&date, &moved);
            centre_list = centre_list.replace(&date, &moved);
        }
        let event: Value = serde_json::from_str(&book)?;
        let book_input: BookInput = serde_json::from_str(event["body"].as_str().context("the book sample has no body")?)?;
        let mut consumers = HashMap::new();
        for case in Case::all() {
            if let Case::Consumer(target) = case {
                let (file, ends) = consumer_sample(target)?;
                consumers.insert(target, (serde_json::from_str(&read(file)?)?, ends));
            }
        }
        let cancel = read("checkup-cancel/cancel.json")?;
        Ok(Self {
            patient: sub_of(&book)?,
            canceller: sub_of(&cancel)?,
            book,
            cancel,
            confirm: read("centre-confirm/confirm.json")?,
            reject: read("centre-reject/reject.json")?,
            get: read("checkup-query/get-one.json")?,
            list: read("checkup-query/list-mine.json")?,
            centre_list,
            book_input,
            consumers,
            echo_event: read("centre-worklist/checkup-booked.json")?,
            stream: read("status-projector/booked-and-paid.json")?,
            scheduled: read("outbox-sweeper/scheduled.json")?,
        })
    }
}

/// The configuration of every platform: the default, with places that never run out.
fn bench_config() -> Config {
    let mut config = Config::default();
    config.slice_mut::<CheckupConfig>().daily_capacity = 1_000_000_000;
    config
}

/// A fresh platform on the in-memory adapters.
struct Ctx {
    platform: Arc<Platform>,
    publisher: MemoryPublisher,
}

impl Ctx {
    fn new(config: &Config) -> Self {
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
            platform: Arc::new(platform),
            publisher,
        }
    }

    /// Books the sample check-up as `sub`; returns the events it published.
    async fn book(&self, samples: &Samples, sub: &str) -> anyhow::Result<Vec<EventEnvelope>> {
        self.publisher.take();
        let actor = Actor { sub: sub.to_owned() };
        usecase::book(&self.platform, &actor, samples.book_input.clone(), None, "bench-setup")
            .await
            .map_err(|e| anyhow!("setup: booking failed: {e}"))?;
        Ok(self.publisher.take())
    }

    /// Books as `sub` and returns the `CheckupBooked` event.
    async fn booked(&self, samples: &Samples, sub: &str) -> anyhow::Result<EventEnvelope> {
        find(self.book(samples, sub).await?, "CheckupBooked")
    }

    /// Books as `sub` and cancels; returns the `CheckupCancelled` event.
    async fn cancelled(&self, samples: &Samples, sub: &str) -> anyhow::Result<EventEnvelope> {
        let booked = self.booked(samples, sub).await?;
        let actor = Actor { sub: sub.to_owned() };
        usecase::cancel(&self.platform, &actor, &booked.aggregate_id, "bench-setup")
            .await
            .map_err(|e| anyhow!("setup: cancelling failed: {e}"))?;
        find(self.publisher.take(), "CheckupCancelled")
    }

    /// Books as `sub` and puts the booking on the centre's work list; returns its id.
    async fn received(&self, samples: &Samples, sub: &str) -> anyhow::Result<String> {
        let booked = self.booked(samples, sub).await?;
        consumers::dispatch(&self.platform, "centre-worklist", &booked)
            .await
            .map_err(|e| anyhow!("setup: centre-worklist failed: {e}"))?;
        self.publisher.take();
        Ok(booked.aggregate_id)
    }
}

fn find(events: Vec<EventEnvelope>, event_type: &str) -> anyhow::Result<EventEnvelope> {
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

async fn prepare(case: Case, samples: &Samples, config: &Config) -> anyhow::Result<Prepared> {
    let ctx = Ctx::new(config);
    let router = match case.function() {
        Some(function) => clinicflow::http::router(ctx.platform.clone(), Some(function)),
        None => echo_router(),
    };
    let mut template = None;
    let event = match case {
        Case::EchoHttp | Case::Book => samples.book.clone(),
        Case::Cancel => samples.cancel.clone(),
        Case::Confirm => samples.confirm.clone(),
        Case::Reject => samples.reject.clone(),
        Case::Get | Case::List | Case::CentreList => {
            let patient = sub_of(&samples.list)?;
            let mut first = None;
            for _ in 0..SEEDED {
                for e in ctx.book(samples, &patient).await? {
                    first.get_or_insert_with(|| e.correlation_id.clone());
                    projector::project(&ctx.platform, &e)
                        .await
                        .map_err(|err| anyhow!("setup: projecting {} failed: {err}", e.event_type))?;
                }
            }
            let first = first.context("setup: nothing was booked")?;
            match case {
                Case::Get => samples.get.replace(SAMPLE_ID, &first),
                Case::List => samples.list.clone(),
                _ => samples.centre_list.clone(),
            }
        }
        Case::EchoEvent => samples.echo_event.clone(),
        // Each call's event is made from the consumer's own sample.
        Case::Consumer(_) => String::new(),
        Case::Projector => samples.stream.clone(),
        Case::Sweeper => {
            template = Some(ctx.booked(samples, &samples.patient).await?);
            samples.scheduled.clone()
        }
    };
    Ok(Prepared {
        ctx,
        router,
        event,
        template,
    })
}

/// One timed call: how long it took and what it answered.
struct Timed {
    elapsed: Duration,
    output: Vec<u8>,
}

/// Makes what one call needs (untimed), then times the call.
async fn iteration(case: Case, prep: &Prepared, samples: &Samples) -> anyhow::Result<Timed> {
    let ctx = &prep.ctx;
    match case {
        Case::EchoHttp | Case::Book | Case::Get | Case::List | Case::CentreList => {
            http(&prep.router, prep.event.as_bytes(), case.status()).await
        }
        Case::Cancel => {
            let booked = ctx.booked(samples, &samples.canceller).await?;
            let event = prep.event.replace(SAMPLE_ID, &booked.aggregate_id);
            http(&prep.router, event.as_bytes(), case.status()).await
        }
        Case::Confirm | Case::Reject => {
            let id = ctx.received(samples, &samples.patient).await?;
            let event = prep.event.replace(SAMPLE_ID, &id);
            http(&prep.router, event.as_bytes(), case.status()).await
        }
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
        Case::Consumer(target) => {
            let (sample, ends) = samples.consumers.get(target).context("no sample for the consumer")?;
            let envelope = if *ends {
                ctx.cancelled(samples, &samples.patient).await?
            } else {
                ctx.booked(samples, &samples.patient).await?
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
        Case::Projector => {
            let case_id = ulid::Ulid::new().to_string();
            let event = prep.event.replace(SAMPLE_ID, &case_id);

            let started = Instant::now();
            let payload: StreamEvent = serde_json::from_str(&event)?;
            let response = wiring::handle_stream(&ctx.platform, LambdaEvent::new(payload, LambdaContext::default()))
                .await
                .map_err(|e| anyhow!("status-projector failed: {e}"))?;
            let output = serde_json::to_vec(&response)?;
            let elapsed = started.elapsed();

            ensure!(
                response.batch_item_failures.is_empty(),
                "status-projector reported failed records: {}",
                String::from_utf8_lossy(&output)
            );
            let view = ctx
                .platform
                .views
                .get(&clinicflow::flows::checkup::view::view_key(&case_id))
                .await?;
            ensure!(view.is_some(), "status-projector wrote no view");
            Ok(Timed { elapsed, output })
        }
        Case::Sweeper => {
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
                .map_err(|e| anyhow!("outbox-sweeper failed: {e}"))?;
            let output = serde_json::to_vec(&serde_json::json!({"published": report.published, "failed": report.failed}))?;
            let elapsed = started.elapsed();

            ensure!(
                report.published == 1 && report.failed == 0,
                "outbox-sweeper swept {report:?}, not the one pending event"
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

/// The HTTP floor: the request body back as JSON.
fn echo_router() -> Router {
    async fn echo(body: Bytes) -> Response {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => axum::Json(v).into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        }
    }
    Router::new().route("/checkups", post(echo))
}

/// Runs a case once on a fresh platform and checks what it answered beyond its status.
async fn check(case: Case, samples: &Samples, config: &Config) -> anyhow::Result<()> {
    let prep = prepare(case, samples, config).await?;
    let timed = iteration(case, &prep, samples).await?;
    if matches!(case, Case::Get | Case::List | Case::CentreList) {
        let answer: Answer = serde_json::from_slice(&timed.output)?;
        let body: Value = serde_json::from_str(&answer.body.unwrap_or_default())?;
        let found = match case {
            Case::Get => usize::from(body.get("id").is_some()),
            _ => body["items"].as_array().map_or(0, Vec::len),
        };
        ensure!(found > 0, "the query found nothing: {body}");
    }
    Ok(())
}

/// Benchmarks one case: each criterion sample on a freshly prepared platform, summing the
/// time of the calls only.
fn bench_case(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    case: Case,
    samples: &Samples,
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
                    let prep = prepare(case, samples, config).await?;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let timed = iteration(case, &prep, samples).await?;
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

/// Criterion's median for `name`, in µs, from the file it wrote in this run.
fn median_us(out_dir: &Path, name: &str, since: SystemTime) -> anyhow::Result<f64> {
    let path = out_dir.join(GROUP).join(name).join("new").join("estimates.json");
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
    let config = bench_config();
    let samples = Samples::load(&config)?;
    let cases = Case::all();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    for case in &cases {
        rt.block_on(check(*case, &samples, &config))
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
        bench_case(&mut group, &rt, *case, &samples, &config)?;
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
            "the book event through lambda_http to an axum echo route"
        } else {
            "the EventBridge event deserialized and serialized back"
        };
        metrics.push(Metric::new(format!("{GROUP}.{}", floor.name()), us, "us", us).note(format!("criterion median; floor: {what}")));
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED: [&str; 15] = [
        "book",
        "cancel",
        "confirm",
        "reject",
        "get",
        "list",
        "centre_list",
        "availability-release",
        "payment-refund",
        "centre-worklist",
        "sms-notifier",
        "status-projector",
        "outbox-sweeper",
        "echo_http",
        "echo_event",
    ];

    #[test]
    fn every_handler_is_measured_against_its_floor() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let metrics = run_with(Settings::tiny(), dir.path()).expect("the suite runs");
        for name in EXPECTED {
            let m = metrics
                .iter()
                .find(|m| m.name == format!("handler_us.{name}"))
                .unwrap_or_else(|| panic!("handler_us.{name} is measured"));
            assert!(m.value > 0.0 && m.floor > 0.0, "{m:?}");
            assert_eq!(m.unit, "us");
        }
        assert_eq!(metrics.len(), EXPECTED.len());
    }
}
