//! What the bench needs from each slice: a [`Fixture`] per slice, listed in [`all`]. The
//! rest of the bench knows no flow: it asks the fixtures for everything that names one.
//!
//! A fixture gives:
//! - its settings for every platform the bench runs ([`Fixture::configure`]);
//! - on the emulator (the Lambda figures): the API Gateway events of its HTTP functions,
//!   each on a settled case of its own where it acts on one, and the cases the events of
//!   its consumers (and of the platform's consumer, projector and sweeper) come from;
//! - in-process (the handler figures): the same, on the in-memory adapters ([`Handlers`]);
//! - the saga the bench runs end to end through `clinicflow-local` ([`SagaSpec`]) and what
//!   it does on AWS, for the models ([`AwsModel`]).
//!
//! Every function of the catalog is driven by some fixture ([`driver`]): a slice's own
//! functions by the slice's fixture, the platform's (which act on any slice's cases) by the
//! first fixture. A function none drives stops the runner ([`check`]) before it measures.

pub mod checkup;
pub mod covid;
pub mod hospital;
pub mod vaccine;

use std::sync::Arc;

use anyhow::{Context, bail};
use async_trait::async_trait;
use clinicflow::app::Platform;
use clinicflow::config::Config;
use clinicflow::events::EventEnvelope;
use clinicflow::topology::{self, Slice, Trigger};
use serde_json::Value;

use crate::handlers::Ctx;
use crate::lambda::seed::Seeder;

/// Every fixture, in the order their figures are reported. The first one's cases also drive
/// the platform's functions, and its entry request is what the floors echo.
pub fn all() -> &'static [&'static dyn Fixture] {
    static ALL: &[&dyn Fixture] = &[&checkup::Checkup, &vaccine::Vaccine, &hospital::Hospital, &covid::Covid];
    ALL
}

/// A slice's bench fixture.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The slice it drives (one of `clinicflow::SLICES`).
    fn slice(&self) -> &'static Slice;

    /// Changes the settings every bench platform runs with (the seeding platforms, the
    /// in-memory ones, the local stack): resources that would run out in a long run.
    fn configure(&self, config: &mut Config);

    /// The variables that give the functions spawned on the emulator the changes
    /// [`Fixture::configure`] made to `config` (the bench's settings, every fixture's
    /// changes made): a spawned `bootstrap` reads its settings from its environment, as on
    /// Lambda, not from the runner's. None by default: the change is one no spawn runs out of.
    fn environment(&self, _config: &Config) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The HTTP function that opens the slice's cases. The floors echo its request, and the
    /// quick run spawns it.
    fn entry(&self) -> &'static str;

    /// The slice's HTTP functions that [`Fixture::http_events`] makes events for: all of
    /// them, or [`check`] stops the runner.
    fn http_functions(&self) -> &'static [&'static str];

    /// `count` API Gateway events for one spawn of `function` (one of
    /// [`Fixture::http_functions`]), each on a settled case of its own where it acts on one,
    /// made with the seeder's platform.
    async fn http_events(&self, seeder: &Seeder, function: &str, count: usize) -> anyhow::Result<Vec<Value>>;

    /// Checks what `function` (an HTTP function it drives: [`driver`]) answered to one of
    /// its events on the emulator, beyond the success status the runner checks: `body`,
    /// parsed (`null` if it is not JSON). Nothing more by default.
    fn check_response(&self, _function: &str, _body: &Value) -> anyhow::Result<()> {
        Ok(())
    }

    /// Opens a case on `platform` (the seeder's, whose events [`Seeder::settle`] delivers,
    /// or its holding one, whose events wait in the outbox); returns the case's id.
    async fn open_case(&self, seeder: &Seeder, platform: &Arc<Platform>) -> anyhow::Result<String>;

    /// Ends a settled case on the seeder's platform, for the consumers of the events that
    /// end one.
    async fn end_case(&self, seeder: &Seeder, id: &str) -> anyhow::Result<()>;

    /// The handler part, its samples read.
    fn handlers(&self, config: &Config) -> anyhow::Result<Box<dyn Handlers>>;

    /// The saga measured end to end through `clinicflow-local`.
    fn saga(&self) -> &'static SagaSpec;

    /// What one saga does on AWS, for the latency and cost models.
    fn model(&self) -> &'static AwsModel;
}

/// One HTTP handler measured in-process: `handler_us.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpCase {
    /// The figure's name.
    pub name: &'static str,
    /// The function whose router serves it.
    pub function: &'static str,
    /// The status it answers.
    pub status: u16,
}

/// Which event of a case a consumer is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The event that opens a case.
    Opens,
    /// The event that ends it.
    Ends,
    /// The case's event of this type, from between its opening and its end (a step of a
    /// saga of several desks), made by [`Handlers::reached`].
    Reached(&'static str),
}

/// A fixture's handler part: its samples, read once, and the state each call needs, made on
/// a fresh in-memory platform ([`Ctx`]) before the clock starts.
#[async_trait(?Send)]
pub trait Handlers {
    /// The HTTP cases, in the order they are reported.
    fn http_cases(&self) -> &[HttpCase];

    /// The entry function's API Gateway event: the HTTP floor echoes it.
    fn entry_event(&self) -> &str;

    /// An EventBridge delivery: the event floor reads it and writes it back.
    fn echo_event(&self) -> &str;

    /// Seeds a fresh platform for one criterion sample of `case`; returns the event that
    /// each call sends, or that each call's event is made from.
    async fn prepare(&self, case: &HttpCase, ctx: &Ctx) -> anyhow::Result<String>;

    /// The event of one call of `case`, made from the prepared one with fresh state where
    /// the call needs it; `None` sends the prepared event as it is.
    async fn event(&self, case: &HttpCase, ctx: &Ctx, prepared: &str) -> anyhow::Result<Option<String>>;

    /// Checks what `case` answered beyond its status (a query finds something).
    fn check(&self, case: &HttpCase, body: &Value) -> anyhow::Result<()>;

    /// The EventBridge sample the consumer `target` is measured on and which event of a
    /// case it gets, if this fixture drives it.
    fn consumer_sample(&self, target: &str) -> Option<(&Value, Moment)>;

    /// Opens a case; returns the event that opens it (not delivered).
    async fn opened(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope>;

    /// Opens a case and ends it; returns the event that ends it (not delivered).
    async fn ended(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope>;

    /// Opens a case and takes it as far as its event of type `event_type`; returns that
    /// event (not delivered), for a consumer measured on [`Moment::Reached`].
    async fn reached(&self, _ctx: &Ctx, event_type: &str) -> anyhow::Result<EventEnvelope> {
        bail!("this fixture makes no {event_type} of its own")
    }

    /// A stream batch of the table records of case `id` (not projected yet).
    fn stream_event(&self, id: &str) -> String;

    /// The key of the view the batch of [`Handlers::stream_event`] writes.
    fn view_key(&self, id: &str) -> String;
}

/// A saga as one load worker runs it against `clinicflow-local`: open a case, then take its
/// steps in order (each caller acting on it once it has reached them, and reading its view
/// until it is settled), and find the SMS that says so.
#[derive(Debug)]
pub struct SagaSpec {
    /// What one saga is, for the notes.
    pub description: &'static str,
    /// `(sub, group)` of the caller who opens the case, and who takes the steps that name
    /// no caller of their own (the floor sends this caller's token too).
    pub opener: (&'static str, &'static str),
    /// Whether each load worker opens as a caller of its own, `<opener sub>-<worker index>`
    /// (in the opener's group): for a slice where one caller may not have two cases open at
    /// once. A worker runs one saga at a time, so its caller's case has ended (or failed)
    /// before the next.
    pub opener_per_worker: bool,
    /// The POST that opens a case (sent with an `Idempotency-Key`, answered 201 with the
    /// case's `id`).
    pub open_path: &'static str,
    /// The opening step, as the note names it.
    pub open_step: &'static str,
    /// A request run once before the load (not measured), whose answer's `id` every
    /// opening names (a resource the cases are opened on); `None` when there is none.
    pub setup: Option<SagaSetup>,
    /// The body of saga `n`'s opening request, and the phone number (E.164) its SMS go to,
    /// unique to the saga; the second argument is the id [`SagaSpec::setup`] answered (empty
    /// without one).
    pub open_body: OpenBody,
    /// What follows the opening, in order (at least one step; the last [`SagaAction::View`]'s
    /// status is what the floor answers).
    pub steps: &'static [SagaStep],
    /// A word of the last SMS, which also carries the case's short reference.
    pub sms_word: &'static str,
    /// The names of the figures: sagas per second, the opening request's latency (with
    /// `.p50` and `.p99`), the saga's latency (with `.p50`).
    pub throughput: &'static str,
    /// See [`SagaSpec::throughput`].
    pub open_latency: &'static str,
    /// See [`SagaSpec::throughput`].
    pub saga_latency: &'static str,
}

impl SagaSpec {
    /// The requests a saga needs when nothing has to be waited for: the opening and one per
    /// step.
    pub fn essential_requests(&self) -> usize {
        1 + self.steps.len()
    }

    /// The status of the last view the saga reads (empty if it reads none).
    pub fn settled(&self) -> &'static str {
        self.steps
            .iter()
            .rev()
            .find_map(|s| match s.action {
                SagaAction::View { settled, .. } => Some(settled),
                SagaAction::Act { .. } => None,
            })
            .unwrap_or("")
    }
}

/// One step of a saga after its opening.
#[derive(Debug)]
pub struct SagaStep {
    /// The step, as the note names it.
    pub name: &'static str,
    /// The caller who takes it; `None`: the opener.
    pub caller: Option<SagaCaller>,
    /// What it does.
    pub action: SagaAction,
}

/// Who takes a saga step: a subject in a group and, for a staff member who belongs to one
/// site, that site (the token's `custom:site` claim, which `POST /_local/token` signs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SagaCaller {
    /// The subject.
    pub sub: &'static str,
    /// The group.
    pub group: &'static str,
    /// The staff member's site, if they belong to one.
    pub site: Option<&'static str>,
}

impl SagaCaller {
    /// `sub` in `group`, of no site.
    pub const fn new(sub: &'static str, group: &'static str) -> Self {
        Self { sub, group, site: None }
    }

    /// The same caller, working at `site`.
    pub const fn at(self, site: &'static str) -> Self {
        Self { site: Some(site), ..self }
    }
}

/// What a saga step does with its case.
#[derive(Debug)]
pub enum SagaAction {
    /// A POST on the case, answered `status`; tried again while it answers 409 or 404 (the
    /// case has not reached the caller through the bus yet). With `keep`, the answer's `id`
    /// is kept for the steps after ([`SagaCase::kept`]: something the step made, such as
    /// an order of the case).
    Act {
        /// The path, of the case.
        path: fn(&SagaCase) -> String,
        /// Its JSON body, if it has one.
        body: Option<fn(&SagaCase) -> Value>,
        /// The status it answers.
        status: u16,
        /// Keep the answer's `id`.
        keep: bool,
    },
    /// A GET of the case's view, polled until its `status` is `settled` (and, with `shown`,
    /// until that field of the view is set too).
    View {
        /// The path, of the case.
        path: fn(&SagaCase) -> String,
        /// The view's status that ends the step.
        settled: &'static str,
        /// A field of the view (not `null`) that must be there too: what ends the step
        /// where the status does not change any more (a document issued after it).
        shown: Option<&'static str>,
    },
}

/// The case a saga runs: its id, and the id a step kept ([`SagaAction::Act`]'s `keep`;
/// empty before).
#[derive(Debug, Clone, Default)]
pub struct SagaCase {
    /// The case's id, as the opening answered it.
    pub id: String,
    /// The last id a step kept.
    pub kept: String,
}

/// Makes saga `n`'s opening body and the phone number its SMS go to, given the id the
/// saga's setup answered ([`SagaSpec::open_body`]).
pub type OpenBody = fn(u64, &str) -> anyhow::Result<(Vec<u8>, String)>;

/// The request a saga run makes once, before its load: a POST as `caller`, answered 201 with
/// the `id` passed to every [`SagaSpec::open_body`].
#[derive(Debug)]
pub struct SagaSetup {
    /// `(sub, group)` of the caller.
    pub caller: (&'static str, &'static str),
    /// The path of the POST.
    pub path: &'static str,
    /// Its JSON body (made when the run starts: it may name dates).
    pub body: fn() -> anyhow::Result<Value>,
}

/// What one saga does on AWS, counted from the code paths (the same counts as the README's
/// cost table).
#[derive(Debug)]
pub struct AwsModel {
    /// Lambda invocations per function.
    pub invocations: &'static [(&'static str, f64)],
    /// HTTP API requests.
    pub http_requests: f64,
    /// Events put on the bus.
    pub events: f64,
    /// DynamoDB write request units.
    pub wru: f64,
    /// DynamoDB read request units.
    pub rru: f64,
    /// The `handler_us` figures on the saga's critical path, in order.
    pub critical_path: &'static [&'static str],
    /// EventBridge → Lambda hops on the critical path.
    pub eventbridge_hops: f64,
    /// DynamoDB Streams → Lambda hops on the critical path.
    pub stream_hops: f64,
    /// The name of the projected latency figure.
    pub projected: &'static str,
    /// The name of the cost figure (per 1,000 sagas).
    pub cost: &'static str,
}

/// The default settings with every fixture's changes.
pub fn config() -> Config {
    let mut config = Config::default();
    configure(&mut config);
    config
}

/// Applies every fixture's changes to `config`.
pub fn configure(config: &mut Config) {
    for fixture in all() {
        fixture.configure(config);
    }
}

/// Every fixture's variables for the functions spawned on the emulator
/// ([`Fixture::environment`]), from the bench's settings ([`config`]).
pub fn environment() -> Vec<(String, String)> {
    let config = config();
    all().iter().flat_map(|f| f.environment(&config)).collect()
}

/// The first fixture: its entry request is what the floors echo.
pub fn first() -> anyhow::Result<&'static dyn Fixture> {
    all()
        .first()
        .copied()
        .context("no bench fixture: list one in bench/src/slices/mod.rs")
}

/// The fixture that drives `function` on the emulator: its slice's, or for a platform
/// function (which acts on any slice's cases) the first one. An HTTP function must be one
/// of its fixture's [`Fixture::http_functions`].
pub fn driver(function: &str) -> anyhow::Result<&'static dyn Fixture> {
    let f = clinicflow::catalog()
        .function(function)
        .with_context(|| format!("{function} is not a function of the catalog"))?;
    let owner = clinicflow::catalog()
        .slices
        .iter()
        .find(|s| s.functions.iter().any(|g| g.name == function));
    let fixture = match owner {
        Some(slice) => all().iter().copied().find(|x| x.slice().name == slice.name).with_context(|| {
            format!(
                "slice {} has no bench fixture, so nothing drives {function}: add bench/src/slices/{}.rs and list it in slices::all()",
                slice.name, slice.name
            )
        })?,
        None if topology::PLATFORM_FUNCTIONS.iter().any(|g| g.name == function) => first()?,
        None => bail!("{function} belongs to no slice and is not a platform function"),
    };
    // A platform HTTP function (the public routes) is driven by its own samples.
    let public = owner.is_none();
    if f.trigger == Trigger::Http && !public && !fixture.http_functions().contains(&function) {
        bail!(
            "the bench fixture of slice {} makes no request for {function}: add it to its http_functions and http_events",
            fixture.slice().name
        );
    }
    Ok(fixture)
}

/// Every function of the catalog has a fixture that drives it; otherwise every one that has
/// none, in one error.
pub fn check() -> anyhow::Result<()> {
    let problems: Vec<String> = clinicflow::catalog()
        .functions
        .iter()
        .filter_map(|f| driver(f.name).err().map(|e| format!("{e:#}")))
        .collect();
    if !problems.is_empty() {
        bail!("functions without a bench event:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_function_of_the_catalog_has_a_fixture() {
        check().expect("every function is driven");
    }

    #[test]
    fn every_slice_has_one_fixture_and_every_fixture_a_slice() {
        for slice in &clinicflow::catalog().slices {
            let n = all().iter().filter(|f| f.slice().name == slice.name).count();
            assert_eq!(n, 1, "slice {} has {n} fixtures", slice.name);
        }
        assert_eq!(all().len(), clinicflow::catalog().slices.len());
    }

    #[test]
    fn the_fixtures_name_their_figures_apart() {
        let config = config();
        let mut names = HashSet::new();
        for fixture in all() {
            let saga = fixture.saga();
            let model = fixture.model();
            let handlers = fixture.handlers(&config).expect("samples");
            let figures = handlers.http_cases().iter().map(|c| format!("handler_us.{}", c.name)).chain([
                saga.throughput.to_owned(),
                saga.open_latency.to_owned(),
                saga.saga_latency.to_owned(),
                model.projected.to_owned(),
                model.cost.to_owned(),
            ]);
            for name in figures {
                assert!(names.insert(name.clone()), "{name} is named twice");
            }
        }
    }

    #[test]
    fn a_function_nothing_drives_is_an_error() {
        let e = driver("no-such-function").err().expect("refused");
        assert!(format!("{e:#}").contains("no-such-function"), "{e:#}");
    }
}
