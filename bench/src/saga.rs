//! `local_sagas_per_s` (each fixture names its own figures): complete sagas per second
//! through `clinicflow-local` over HTTP on loopback, against a bare axum endpoint answering as
//! many requests in the same run. Each slice's bench fixture says what its saga is
//! ([`SagaSpec`]); the figures are reported per fixture, in [`slices::all`]'s order.
//!
//! The stack runs in-process as `cargo run -p clinicflow-local` runs it: file-backed SQLite in
//! a temporary directory, the default bus, sweeper and outbox settings; only what the fixtures
//! change in the settings differs (resources that would run out), and each saga's request is
//! its own (the fixture's `open_body` of its number).
//!
//! Before the load, the fixture's setup request, if it has one, runs once (unmeasured): its
//! answer's `id` is what every opening names (a resource the cases are opened on). The
//! opener is one caller for every worker, or one per worker where the fixture says so (a
//! caller who may have only one case open at a time).
//!
//! A saga, as one load worker runs it:
//! 1. the fixture's opening POST as its opener, with an `Idempotency-Key` as a real client
//!    sends (its latency is the fixture's `open_latency` figure);
//! 2. the fixture's steps, in order, each as its caller (the opener's, unless it names
//!    one; a staff member of one site with a token that names it, `custom:site`): a POST
//!    acting on the case, retried after [`POLL_PAUSE`] while it answers 409 or 404 (the case
//!    has not reached the caller through the bus yet), or a GET of the case's view, polled
//!    every [`POLL_PAUSE`] until its `status` is the step's settled one and the field it
//!    names, if any, is set (a check-up: the centre confirms, the view shows it; a hospital
//!    visit: four desks' POSTs and a view between them; a COVID test: the site's POSTs, and
//!    the view's certificate);
//! 3. the last SMS is recorded. `/_local/sms` has no filter (it lists every SMS ever
//!    kept), so polling it per saga would make the run quadratic: each saga gets a phone
//!    number of its own, and the SMS of every completed saga are looked up in one listing
//!    after the load, waiting at most [`SMS_PATIENCE`] for stragglers. Only sagas whose
//!    last SMS (the fixture's word and the case's short reference) is found count; a saga's
//!    end is the later of "last step answered" and the SMS's recorded `sent_at`.
//!
//! Every HTTP request of the measured phase is counted (retries, polls and the SMS listing
//! included); the floor is a bare axum route on `127.0.0.1:0` driven by the same load
//! generator shape (same workers, same GET/POST mix, same headers and body sizes) answering
//! that many requests. `floor = completed sagas / time the bare endpoint took`. Polls count,
//! so the slower the view, the more requests a saga makes and the lower the floor: the note
//! also gives the floor of the requests a saga needs without any retry or poll (the opening
//! and one per step, [`SagaSpec::essential_requests`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use clinicflow::domain::short_ref;
use clinicflow_local::{LocalOptions, LocalStack};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::slices::{self, SagaAction, SagaCaller, SagaCase, SagaSetup, SagaSpec};
use crate::{Metric, Mode, Target, percentile};

/// Pause between two polls of an eventual effect (an actor's step, the view): a few
/// milliseconds, so that a saga's measured latency stays close to its real one. The polls
/// load the stack as status pages would (each takes the store's lock briefly).
const POLL_PAUSE: Duration = Duration::from_millis(5);
/// How long one saga step may wait for an eventual effect before the saga counts as failed.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long the final SMS pass waits for the last sagas' SMS.
const SMS_PATIENCE: Duration = Duration::from_secs(5);
/// Pause between two listings of the SMS outbox in the final pass.
const SMS_POLL_PAUSE: Duration = Duration::from_millis(50);
/// Failure messages kept per worker for the note (all are counted).
const KEPT_FAILURES: usize = 3;

/// How hard the load generator pushes, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// Concurrent workers, each running one saga at a time on a keep-alive connection.
    workers: usize,
    /// Load run and thrown away first: connections opened, SQLite's page cache and WAL
    /// warm, the blocking-thread pool grown, the allocator settled.
    warmup: Duration,
    /// The measured load; workers start no saga after it and finish the one they run.
    duration: Duration,
}

impl Shape {
    /// - Full: 32 workers for 15 s after a 2 s warm-up. Every store call of the embedded
    ///   stack goes through one SQLite connection, so today's stack saturates with fewer than
    ///   ten sagas in flight; 32 leaves headroom for a stack several times faster to still be
    ///   saturated (the figure tracks the stack, not the load generator), is a plausible count
    ///   of concurrent clinic clients, and keeps queueing visible but bounded. 15 s gives
    ///   thousands of sagas (a p99 over dozens of samples) and spans many WAL checkpoints,
    ///   as a long-running stack would; the 2 s warm-up opens the connections and grows
    ///   SQLite's cache, the WAL and the blocking-thread pool first.
    /// - Quick: 8 workers for 1.5 s after 0.5 s: enough to saturate today's stack, a few
    ///   hundred sagas, in about two seconds.
    fn of(mode: Mode) -> Self {
        match mode {
            Mode::Full => Self {
                workers: 32,
                warmup: Duration::from_secs(2),
                duration: Duration::from_secs(15),
            },
            Mode::Quick => Self {
                workers: 8,
                warmup: Duration::from_millis(500),
                duration: Duration::from_millis(1500),
            },
        }
    }
}

/// Runs each fixture's saga load and its floor.
pub async fn run(mode: Mode) -> anyhow::Result<Vec<Metric>> {
    let mut metrics = Vec::new();
    for fixture in slices::all() {
        let measured = measure(fixture.saga(), Shape::of(mode)).await?;
        metrics.extend(measured.metrics());
    }
    Ok(metrics)
}

/// HTTP requests made, and how many of them were POSTs (the floor repeats the mix).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    requests: u64,
    posts: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.requests += other.requests;
        self.posts += other.posts;
    }
}

/// The fields of an answer the load generator reads: a new case's `id`, a view's `status`
/// (a number in a problem) and its other fields, a problem's `detail`.
#[derive(Debug, Default, Deserialize)]
struct Reply {
    id: Option<String>,
    status: Option<serde_json::Value>,
    detail: Option<String>,
    #[serde(flatten)]
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Reply {
    fn status_is(&self, s: &str) -> bool {
        self.status.as_ref().and_then(|v| v.as_str()) == Some(s)
    }

    /// Whether the answer has `field`, not `null`.
    fn shows(&self, field: &str) -> bool {
        self.fields.get(field).is_some_and(|v| !v.is_null())
    }

    fn why(&self) -> String {
        match (&self.detail, &self.status) {
            (Some(d), _) => d.clone(),
            (None, Some(s)) => format!("status {s}"),
            (None, None) => "no detail".into(),
        }
    }
}

/// A keep-alive HTTP client of one server, as the saga's callers, running one saga.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: Arc<str>,
    /// `Bearer …` of the opener.
    opener: Arc<str>,
    /// `Bearer …` of each step's caller, in the spec's order (the opener's for a step that
    /// names none).
    callers: Arc<[Arc<str>]>,
    spec: &'static SagaSpec,
    /// The id the setup request answered (empty without one), for the opening bodies.
    setup: Arc<str>,
}

fn client(workers: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(workers)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

impl Api {
    /// Sends one request, counting it, and reads the answer's [`Reply`] (empty when the body
    /// is not JSON).
    async fn send(
        &self,
        tally: &mut Tally,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(u16, Reply)> {
        tally.requests += 1;
        if method == Method::POST {
            tally.posts += 1;
        }
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b);
        }
        let res = req.send().await.with_context(|| format!("sending {path}"))?;
        let status = res.status().as_u16();
        let bytes = res.bytes().await.with_context(|| format!("reading the answer of {path}"))?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
    }

    /// A dev token from `POST /_local/token` for `sub` in `group` (working at `site`, the
    /// `custom:site` claim, if given), as `Bearer …`.
    async fn token(http: &reqwest::Client, base: &str, sub: &str, group: &str, site: Option<&str>) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let res = http
            .post(format!("{base}/_local/token"))
            .json(&serde_json::json!({"sub": sub, "groups": [group], "site": site}))
            .send()
            .await
            .context("asking for a dev token")?;
        let status = res.status();
        if !status.is_success() {
            bail!("POST /_local/token answered {status}: {}", res.text().await.unwrap_or_default());
        }
        let t: Token = res.json().await.context("reading the dev token")?;
        Ok(format!("Bearer {}", t.token))
    }

    /// Runs the fixture's setup request (unmeasured, with a token of its own); returns the
    /// `id` it answered.
    async fn setup(http: &reqwest::Client, base: &str, setup: &SagaSetup) -> anyhow::Result<String> {
        let auth = Self::token(http, base, setup.caller.0, setup.caller.1, None).await?;
        let res = http
            .post(format!("{base}{}", setup.path))
            .header(reqwest::header::AUTHORIZATION, auth)
            .json(&(setup.body)()?)
            .send()
            .await
            .with_context(|| format!("sending the setup POST {}", setup.path))?;
        let status = res.status();
        let bytes = res.bytes().await.context("reading the setup's answer")?;
        let reply: Reply = serde_json::from_slice(&bytes).unwrap_or_default();
        if status.as_u16() != 201 {
            bail!("the setup POST {} answered {status}: {}", setup.path, reply.why());
        }
        reply
            .id
            .ok_or_else(|| anyhow!("the setup POST {} answered 201 without an id", setup.path))
    }
}

/// One completed saga, up to its last step answered.
#[derive(Debug, Clone)]
struct Saga {
    id: String,
    /// The phone its SMS go to, in E.164, unique to this saga.
    to: String,
    started: Instant,
    started_wall: DateTime<Utc>,
    /// The opening POST answered.
    open: Duration,
    /// Each step, from the answer of the one before to its own (the view seen settled).
    steps: Vec<Duration>,
    /// Each step's attempts (a POST) or polls (a view).
    tries: Vec<u64>,
}

impl Saga {
    /// Start to the last step answered.
    fn to_end(&self) -> Duration {
        self.open + self.steps.iter().sum::<Duration>()
    }
}

/// Runs saga `n` up to its last step answered.
async fn saga(api: &Api, n: u64, tally: &mut Tally) -> anyhow::Result<Saga> {
    let spec = api.spec;
    let (body, to) = (spec.open_body)(n, &api.setup)?;
    let key = format!("bench-saga-{n}");
    let started_wall = Utc::now();
    let started = Instant::now();
    let (status, reply) = api
        .send(tally, Method::POST, spec.open_path, Some(&api.opener), Some(body), Some(&key))
        .await?;
    if status != 201 {
        bail!("POST {} answered {status}: {}", spec.open_path, reply.why());
    }
    let id = reply
        .id
        .ok_or_else(|| anyhow!("POST {} answered 201 without an id", spec.open_path))?;
    let opened = Instant::now();

    let mut case = SagaCase { id, kept: String::new() };
    let mut steps = Vec::with_capacity(spec.steps.len());
    let mut tries = Vec::with_capacity(spec.steps.len());
    let mut since = opened;
    for (step, auth) in spec.steps.iter().zip(api.callers.iter()) {
        let mut n = 0;
        match &step.action {
            SagaAction::Act { path, body, status, keep } => {
                let path = path(&case);
                loop {
                    n += 1;
                    let payload = body.map(|b| serde_json::to_vec(&b(&case))).transpose()?;
                    let (answered, reply) = api.send(tally, Method::POST, &path, Some(auth), payload, None).await?;
                    match answered {
                        s if s == *status => {
                            if *keep {
                                case.kept = reply.id.ok_or_else(|| anyhow!("POST {path} answered {s} without an id"))?;
                            }
                            break;
                        }
                        // Not with the step's caller yet (409, 404), through the bus.
                        409 | 404 if since.elapsed() < PATIENCE => tokio::time::sleep(POLL_PAUSE).await,
                        _ => bail!("POST {path} answered {answered} after {n} attempts: {}", reply.why()),
                    }
                }
            }
            SagaAction::View { path, settled, shown } => {
                let path = path(&case);
                loop {
                    n += 1;
                    let (answered, reply) = api.send(tally, Method::GET, &path, Some(auth), None, None).await?;
                    match answered {
                        200 if reply.status_is(settled) && shown.is_none_or(|field| reply.shows(field)) => break,
                        // Not projected yet (404), or not yet settled (or not showing it).
                        200 | 404 if since.elapsed() < PATIENCE => tokio::time::sleep(POLL_PAUSE).await,
                        _ => bail!(
                            "the view of {} answered {answered} after {n} polls ({}): {}",
                            case.id,
                            step.name,
                            reply.why()
                        ),
                    }
                }
            }
        }
        let done = Instant::now();
        steps.push(done - since);
        tries.push(n);
        since = done;
    }
    Ok(Saga {
        id: case.id,
        to,
        started,
        started_wall,
        open: opened - started,
        steps,
        tries,
    })
}

/// What one load worker did.
#[derive(Debug, Default)]
struct WorkerOut {
    sagas: Vec<Saga>,
    failures: u64,
    failure_notes: Vec<String>,
    tally: Tally,
}

async fn worker(api: Api, next: Arc<AtomicU64>, until: Instant) -> WorkerOut {
    let mut out = WorkerOut::default();
    while Instant::now() < until {
        let n = next.fetch_add(1, Ordering::Relaxed);
        match saga(&api, n, &mut out.tally).await {
            Ok(s) => out.sagas.push(s),
            Err(e) => {
                out.failures += 1;
                if out.failure_notes.len() < KEPT_FAILURES {
                    out.failure_notes.push(format!("{e:#}"));
                }
            }
        }
    }
    out
}

/// Runs one load worker per client of `apis` for `length`, then lets them finish their saga.
async fn phase(apis: &[Api], next: &Arc<AtomicU64>, length: Duration) -> anyhow::Result<WorkerOut> {
    let until = Instant::now() + length;
    let handles: Vec<_> = apis
        .iter()
        .map(|api| tokio::spawn(worker(api.clone(), next.clone(), until)))
        .collect();
    let mut all = WorkerOut::default();
    for h in handles {
        let out = h.await.context("a load worker panicked")?;
        all.sagas.extend(out.sagas);
        all.failures += out.failures;
        all.failure_notes.extend(out.failure_notes);
        all.tally.add(out.tally);
    }
    Ok(all)
}

#[derive(Debug, Deserialize)]
struct SmsList {
    items: Vec<SmsItem>,
}

#[derive(Debug, Deserialize)]
struct SmsItem {
    to: String,
    body: String,
    sent_at: String,
}

/// When the last SMS of each saga was recorded (by index in `sagas`), from as few listings
/// of `/_local/sms` as it takes, waiting at most [`SMS_PATIENCE`].
async fn last_sms(api: &Api, tally: &mut Tally, sagas: &[Saga]) -> anyhow::Result<HashMap<usize, DateTime<Utc>>> {
    let wanted: HashMap<&str, usize> = sagas.iter().enumerate().map(|(i, s)| (s.to.as_str(), i)).collect();
    let mut found = HashMap::new();
    let deadline = Instant::now() + SMS_PATIENCE;
    loop {
        tally.requests += 1;
        let res = api
            .http
            .get(format!("{}/_local/sms", api.base))
            .send()
            .await
            .context("listing the SMS")?;
        let status = res.status();
        if !status.is_success() {
            bail!("GET /_local/sms answered {status}");
        }
        let list: SmsList = res.json().await.context("reading the SMS list")?;
        for sms in &list.items {
            let Some(&i) = wanted.get(sms.to.as_str()) else {
                continue;
            };
            if sms.body.contains(api.spec.sms_word) && sms.body.contains(short_ref(&sagas[i].id)) {
                let at = DateTime::parse_from_rfc3339(&sms.sent_at)
                    .with_context(|| format!("the SMS time {:?}", sms.sent_at))?
                    .with_timezone(&Utc);
                found.insert(i, at);
            }
        }
        if found.len() == sagas.len() || Instant::now() >= deadline {
            return Ok(found);
        }
        tokio::time::sleep(SMS_POLL_PAUSE).await;
    }
}

/// The bare endpoint's answer: as small as an act's.
#[derive(Clone, Copy, Serialize)]
struct FloorReply {
    id: &'static str,
    status: &'static str,
}

/// The bare endpoint answering `total` requests.
#[derive(Debug, Clone)]
struct FloorRun {
    elapsed: Duration,
    latency_ms: Vec<f64>,
}

/// Drives `api`'s `/floor` with `workers` workers until `total` requests, `posts` of them
/// POSTs (spread evenly), are answered.
async fn drive_floor(api: &Api, workers: usize, total: u64, posts: u64, post_body: &Arc<Vec<u8>>) -> anyhow::Result<FloorRun> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (api, next, post_body) = (api.clone(), next.clone(), post_body.clone());
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut latency_ms = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>(latency_ms);
                    }
                    // Request i is a POST when the running share of POSTs steps up.
                    let post = (i + 1) * posts / total.max(1) > i * posts / total.max(1);
                    // A POST carries an opening-sized body and an Idempotency-Key, as an opening does.
                    let key = post.then(|| format!("bench-floor-{i}"));
                    let (method, body) = if post {
                        (Method::POST, Some(post_body.to_vec()))
                    } else {
                        (Method::GET, None)
                    };
                    let t = Instant::now();
                    let (status, _) = api
                        .send(&mut tally, method, "/floor", Some(&api.opener), body, key.as_deref())
                        .await?;
                    latency_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    if status != 200 {
                        bail!("the bare endpoint answered {status}");
                    }
                }
            })
        })
        .collect();
    let mut latency_ms = Vec::new();
    for h in handles {
        latency_ms.extend(h.await.context("a floor worker panicked")??);
    }
    Ok(FloorRun {
        elapsed: started.elapsed(),
        latency_ms,
    })
}

/// Serves the bare endpoint, warms it up, and measures it answering `total` requests, sent
/// with `auth` and, for the POSTs, an opening's body naming `setup`.
async fn floor(
    spec: &'static SagaSpec,
    workers: usize,
    total: u64,
    posts: u64,
    auth: Arc<str>,
    setup: Arc<str>,
) -> anyhow::Result<FloorRun> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("binding the floor")?;
    let addr = listener.local_addr()?;
    let reply = FloorReply {
        id: "01JBENCHF100RBENCHF100R000",
        status: spec.settled(),
    };
    let floor_reply = move |_body: axum::body::Bytes| async move { axum::Json(reply) };
    let app = axum::Router::new().route("/floor", axum::routing::get(floor_reply).post(floor_reply));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    let api = Api {
        http: client(workers)?,
        base: format!("http://{addr}").into(),
        opener: auth,
        callers: Arc::from(Vec::new()),
        spec,
        setup,
    };
    // The same body size as an opening's.
    let post_body = Arc::new((spec.open_body)(0, &api.setup)?.0);
    let run = async {
        // Warm-up: 50 requests a worker, with the same share of POSTs.
        let warm = (workers as u64 * 50).min(total.max(1));
        drive_floor(&api, workers, warm, posts * warm / total.max(1), &post_body).await?;
        drive_floor(&api, workers, total, posts, &post_body).await
    }
    .await;
    drop(api);
    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the floor server failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the floor server panicked"),
        Err(_) => tracing::warn!("the floor server did not stop within 5 s"),
        Ok(Ok(Ok(()))) => {}
    }
    run
}

/// Everything measured in one run.
#[derive(Debug, Clone)]
struct Measured {
    spec: &'static SagaSpec,
    shape: Shape,
    /// Sagas whose every step was answered (each view seen settled) and whose last SMS was found.
    completed: usize,
    /// Sagas that failed (an error, an unexpected status, a wait past [`PATIENCE`], no SMS).
    failures: u64,
    failure_notes: Vec<String>,
    /// Requests of the measured phase, and the POSTs among them.
    tally: Tally,
    /// From the start of the measured load to the end of its last saga.
    elapsed: Duration,
    /// The opening POST's latency, of the completed sagas.
    open_ms: Vec<f64>,
    /// Start to the last SMS (and last step), of the completed sagas.
    saga_ms: Vec<f64>,
    /// Per step, of the completed sagas: the opening, each of the spec's steps, the SMS
    /// after the last step.
    steps_ms: Vec<Vec<f64>>,
    /// Each step's attempts or polls, summed over the completed sagas.
    tries: Vec<u64>,
    floor: FloorRun,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Starts the local stack, runs the load, checks the SMS, stops the stack, then measures the
/// floor for as many requests.
async fn measure(spec: &'static SagaSpec, shape: Shape) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir().context("creating the data directory")?;
    let defaults = LocalOptions::default();
    let stack = LocalStack::start(LocalOptions {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: Some(dir.path().to_path_buf()),
        config: {
            let mut config = defaults.config.clone();
            slices::configure(&mut config);
            config
        },
        ..defaults
    })
    .await
    .context("starting clinicflow-local")?;
    let result = load(&stack, spec, shape).await;
    stack.shutdown().await;
    drop(dir);
    let (mut measured, api) = result?;
    measured.floor = floor(
        spec,
        shape.workers,
        measured.tally.requests,
        measured.tally.posts,
        api.opener,
        api.setup,
    )
    .await?;
    Ok(measured)
}

/// The warm-up and the measured load against `stack`, after the fixture's setup; also
/// returns the first worker's client (the floor sends its opener's header and an opening of
/// the same size).
async fn load(stack: &LocalStack, spec: &'static SagaSpec, shape: Shape) -> anyhow::Result<(Measured, Api)> {
    let http = client(shape.workers)?;
    let base = stack.url();
    let setup: Arc<str> = match &spec.setup {
        Some(setup) => Api::setup(&http, &base, setup).await?.into(),
        None => "".into(),
    };
    // One token per caller the steps name, shared by the workers.
    let mut tokens: HashMap<SagaCaller, Arc<str>> = HashMap::new();
    for step in spec.steps {
        if let Some(caller) = step.caller
            && !tokens.contains_key(&caller)
        {
            let token = Api::token(&http, &base, caller.sub, caller.group, caller.site).await?;
            tokens.insert(caller, token.into());
        }
    }
    let shared: Option<Arc<str>> = if spec.opener_per_worker {
        None
    } else {
        Some(Api::token(&http, &base, spec.opener.0, spec.opener.1, None).await?.into())
    };
    let base_url: Arc<str> = base.as_str().into();
    let mut apis = Vec::with_capacity(shape.workers);
    for i in 0..shape.workers {
        let opener = match &shared {
            Some(token) => token.clone(),
            None => Api::token(&http, &base, &format!("{}-{i}", spec.opener.0), spec.opener.1, None)
                .await?
                .into(),
        };
        let callers: Arc<[Arc<str>]> = spec
            .steps
            .iter()
            .map(|step| step.caller.and_then(|c| tokens.get(&c).cloned()).unwrap_or_else(|| opener.clone()))
            .collect();
        apis.push(Api {
            http: http.clone(),
            base: base_url.clone(),
            opener,
            callers,
            spec,
            setup: setup.clone(),
        });
    }
    let first = apis.first().cloned().context("a saga run needs at least one worker")?;
    let next = Arc::new(AtomicU64::new(0));
    if !shape.warmup.is_zero() {
        let warm = phase(&apis, &next, shape.warmup).await?;
        if warm.sagas.is_empty() {
            bail!(
                "no saga completed during the warm-up ({} failed): {}",
                warm.failures,
                warm.failure_notes.join(" | ")
            );
        }
    }

    let t0 = Instant::now();
    let mut out = phase(&apis, &next, shape.duration).await?;
    let load_end = t0.elapsed();
    let sms = last_sms(&first, &mut out.tally, &out.sagas).await?;

    let mut m = Measured {
        spec,
        shape,
        completed: 0,
        failures: out.failures,
        failure_notes: out.failure_notes,
        tally: out.tally,
        elapsed: load_end,
        open_ms: vec![],
        saga_ms: vec![],
        steps_ms: vec![Vec::new(); spec.steps.len() + 2],
        tries: vec![0; spec.steps.len()],
        floor: FloorRun {
            elapsed: Duration::ZERO,
            latency_ms: vec![],
        },
    };
    let mut missing_sms = 0;
    for (i, s) in out.sagas.iter().enumerate() {
        let Some(sent_at) = sms.get(&i) else {
            missing_sms += 1;
            continue;
        };
        let sms_after_start = (*sent_at - s.started_wall).to_std().unwrap_or(Duration::ZERO);
        let saga = s.to_end().max(sms_after_start);
        m.completed += 1;
        m.open_ms.push(ms(s.open));
        m.saga_ms.push(ms(saga));
        m.steps_ms[0].push(ms(s.open));
        for (i, step) in s.steps.iter().enumerate() {
            m.steps_ms[i + 1].push(ms(*step));
        }
        m.steps_ms[s.steps.len() + 1].push(ms(sms_after_start.saturating_sub(s.to_end())));
        for (total, tries) in m.tries.iter_mut().zip(&s.tries) {
            *total += tries;
        }
        m.elapsed = m.elapsed.max(s.started.duration_since(t0) + saga);
    }
    if missing_sms > 0 {
        m.failures += missing_sms;
        m.failure_notes.push(format!(
            "{missing_sms} last SMS not recorded within {} s of the load's end",
            SMS_PATIENCE.as_secs()
        ));
    }
    if m.completed == 0 {
        bail!(
            "no saga completed in {:.1} s with {} workers ({} failed): {}",
            shape.duration.as_secs_f64(),
            shape.workers,
            m.failures,
            m.failure_notes.join(" | ")
        );
    }
    Ok((m, first))
}

impl Measured {
    fn sagas_per_s(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }

    fn floor_sagas_per_s(&self) -> f64 {
        self.completed as f64 / self.floor.elapsed.as_secs_f64()
    }

    fn requests_per_saga(&self) -> f64 {
        self.tally.requests as f64 / self.completed as f64
    }

    fn metrics(&self) -> Vec<Metric> {
        let floor_p50 = percentile(&self.floor.latency_ms, 50.0);
        let floor_p99 = percentile(&self.floor.latency_ms, 99.0);
        let per_saga = self.requests_per_saga();
        let failures = if self.failures == 0 {
            "no failures".to_owned()
        } else {
            format!("{} failures ({})", self.failures, self.failure_notes.join(" | "))
        };
        let floor_rps = self.tally.requests as f64 / self.floor.elapsed.as_secs_f64();
        let essential = self.spec.essential_requests();
        let essential_floor = floor_rps / essential as f64;
        let floor_note = format!(
            "bare axum endpoint, same {} workers: {} requests ({} POST) in {:.2} s ({floor_rps:.0} req/s); sized by the {essential} requests a saga needs without polling, the floor would be {essential_floor:.0} sagas/s (ratio {:.3})",
            self.shape.workers,
            self.tally.requests,
            self.tally.posts,
            self.floor.elapsed.as_secs_f64(),
            self.sagas_per_s() / essential_floor,
        );
        let n = self.completed as f64;
        let spec = self.spec;
        let p50 = |i: usize| self.steps_ms.get(i).map_or(0.0, |s| percentile(s, 50.0));
        let mut parts = vec![format!("{} {:.1} ms", spec.open_step, p50(0))];
        for (i, step) in spec.steps.iter().enumerate() {
            let tries = match step.action {
                SagaAction::Act { .. } => "attempts",
                SagaAction::View { .. } => "polls",
            };
            parts.push(format!(
                "{} {:.1} ms ({:.2} {tries}/saga)",
                step.name,
                p50(i + 1),
                self.tries.get(i).copied().unwrap_or(0) as f64 / n
            ));
        }
        parts.push(format!("SMS after the last step {:.1} ms", p50(spec.steps.len() + 1)));
        let steps = format!("p50 per step: {}", parts.join(", "));
        let end = match spec.steps.last().map(|s| (s.name, &s.action)) {
            Some((_, SagaAction::View { settled, shown: None, .. })) => format!("view {settled}"),
            Some((
                _,
                SagaAction::View {
                    settled,
                    shown: Some(field),
                    ..
                },
            )) => format!("view {settled} with its {field}"),
            Some((name, SagaAction::Act { .. })) => format!("{name} answered"),
            None => "opened".to_owned(),
        };
        vec![
            Metric::new(spec.throughput, self.sagas_per_s(), "sagas/s", self.floor_sagas_per_s())
                .target(Target::MinRatio(0.25))
                .note(format!(
                    "{} workers, {:.1} s after a {:.1} s warm-up, SQLite file; {} sagas completed in {:.2} s ({}), {:.2} requests/saga, {failures}; floor: {floor_note}",
                    self.shape.workers,
                    self.shape.duration.as_secs_f64(),
                    self.shape.warmup.as_secs_f64(),
                    self.completed,
                    self.elapsed.as_secs_f64(),
                    spec.description,
                    per_saga,
                )),
            Metric::new(format!("{}.p50", spec.open_latency), percentile(&self.open_ms, 50.0), "ms", floor_p50).note(format!(
                "POST {} of {} sagas; floor: the bare endpoint's p50",
                spec.open_path, self.completed
            )),
            Metric::new(format!("{}.p99", spec.open_latency), percentile(&self.open_ms, 99.0), "ms", floor_p99).note(format!(
                "POST {} of {} sagas; floor: the bare endpoint's p99",
                spec.open_path, self.completed
            )),
            Metric::new(format!("{}.p50", spec.saga_latency), percentile(&self.saga_ms, 50.0), "ms", floor_p50 * per_saga)
                .note(format!(
                    "{} start → {end} and SMS recorded, p99 {:.1} ms; {steps}; floor: bare p50 × {per_saga:.2} requests/saga",
                    spec.open_step,
                    percentile(&self.saga_ms, 99.0)
                )),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_tiny_saga_run_completes_sagas_without_failures_and_reports_its_metrics() {
        for fixture in slices::all() {
            let spec = fixture.saga();
            let measured = measure(
                spec,
                Shape {
                    workers: 2,
                    warmup: Duration::ZERO,
                    duration: Duration::from_millis(300),
                },
            )
            .await
            .expect("the saga run works");

            assert!(measured.completed > 0, "{measured:?}");
            assert_eq!(measured.failures, 0, "{:?}", measured.failure_notes);
            assert!(
                measured.tally.requests >= (spec.essential_requests() * measured.completed) as u64,
                "{:?}",
                measured.tally
            );
            assert_eq!(measured.floor.latency_ms.len() as u64, measured.tally.requests);
            let metrics = measured.metrics();
            let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    spec.throughput.to_owned(),
                    format!("{}.p50", spec.open_latency),
                    format!("{}.p99", spec.open_latency),
                    format!("{}.p50", spec.saga_latency),
                ]
            );
            assert!(metrics.iter().all(|m| m.value > 0.0 && m.floor > 0.0), "{metrics:?}");
            assert_eq!(metrics[0].target, Some(Target::MinRatio(0.25)));
            println!("{}", crate::table(&metrics));
            for m in &metrics {
                println!("{}: {}", m.name, m.note);
            }
        }
    }
}
