//! The sample events under `events/<function>/` and the event schemas under `docs/events/`
//! held to the code: every sample deserializes into what its function's trigger delivers and
//! agrees with `topology.rs`; every function has a sample; every sample gets, from its
//! function on the embedded platform, the outcome its name promises; every event type has a
//! schema that accepts the envelopes the Rust types really produce, and the samples' too.
//!
//! What is particular to a slice (the case its samples act on, the status each HTTP sample
//! gets, its domain events and what their schemas refuse) is its fixture, one module per
//! slice under `samples/`, listed in `FIXTURES`; a slice without one fails
//! `every_slice_has_a_sample_fixture`, an HTTP sample without an expected status fails too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use clinicflow::adapters::dynamodb::outbox_envelope;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::consumers::{self, Handled};
use clinicflow::app::{Faults, Platform, projector, relay};
use clinicflow::config::Config;
use clinicflow::events::EventEnvelope;
use clinicflow::http::Claims;
use clinicflow::ports::{Clock, Ids};
use clinicflow::topology::{self, Trigger};
use clinicflow::wiring::{self, EmbeddedParts};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use tower::ServiceExt;

/// One module per slice: its fixture.
#[path = "samples/checkup.rs"]
mod checkup;
#[path = "samples/covid.rs"]
mod covid;
#[path = "samples/hospital.rs"]
mod hospital;
#[path = "samples/vaccine.rs"]
mod vaccine;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn events_dir() -> PathBuf {
    workspace().join("events")
}

fn schema_path(event_type: &str) -> PathBuf {
    workspace().join("docs").join("events").join(format!("{event_type}.schema.json"))
}

fn display(path: &Path) -> String {
    path.strip_prefix(workspace()).unwrap_or(path).display().to_string()
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: cannot read: {e}", display(path)));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", display(path)))
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: cannot list: {e}", display(dir)));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{}: cannot list: {e}", display(dir))).path();
        if path.is_dir() {
            collect_json(&path, out);
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
}

/// Every sample file with the function it belongs to (its folder under `events/`).
fn samples() -> Vec<(&'static topology::Function, PathBuf)> {
    let root = events_dir();
    let mut files = Vec::new();
    collect_json(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let folder = path
                .strip_prefix(&root)
                .ok()
                .and_then(|rel| rel.components().next())
                .and_then(|c| c.as_os_str().to_str())
                .map(str::to_owned)
                .unwrap_or_default();
            let function = clinicflow::catalog().function(&folder).unwrap_or_else(|| {
                panic!(
                    "{}: folder {folder:?} is not a function in clinicflow::catalog().functions",
                    display(&path)
                )
            });
            (function, path)
        })
        .collect()
}

/// Does a concrete path match a route template (`/checkups/{id}/cancel`)?
fn path_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

fn check_http_sample(function: &topology::Function, path: &Path, raw: Value) {
    let name = display(path);
    let request: ApiGatewayV2httpRequest =
        serde_json::from_value(raw).unwrap_or_else(|e| panic!("{name}: not an API Gateway HTTP API v2 request: {e}"));
    assert_eq!(request.version.as_deref(), Some("2.0"), "{name}: payload version");
    let method = request.request_context.http.method.as_str().to_owned();
    let raw_path = request.raw_path.clone().unwrap_or_default();
    let route_key = request.route_key.clone().unwrap_or_default();
    let route = clinicflow::catalog()
        .routes_of(function.name)
        .find(|r| format!("{} {}", r.method.as_str(), r.path) == route_key)
        .unwrap_or_else(|| panic!("{name}: routeKey {route_key:?} is not a route of {}", function.name));
    assert_eq!(method, route.method.as_str(), "{name}: requestContext.http.method");
    assert!(
        path_matches(route.path, &raw_path),
        "{name}: rawPath {raw_path:?} does not match {}",
        route.path
    );
    assert_eq!(
        request.request_context.http.path.as_deref(),
        Some(raw_path.as_str()),
        "{name}: requestContext.http.path"
    );
    assert_eq!(
        request.request_context.route_key.as_deref(),
        Some(route_key.as_str()),
        "{name}: requestContext.routeKey"
    );
    assert_eq!(request.request_context.stage.as_deref(), Some("$default"), "{name}: stage");
    assert!(
        request.request_context.request_id.as_deref().is_some_and(|id| !id.is_empty()),
        "{name}: requestId"
    );
    let jwt = request.request_context.authorizer.as_ref().and_then(|a| a.jwt.as_ref());
    if route.is_public() {
        // No authorizer runs on a public route: its request carries no claims.
        assert!(
            jwt.is_none(),
            "{name}: a public route's request has no requestContext.authorizer.jwt"
        );
    } else {
        let jwt = jwt.unwrap_or_else(|| panic!("{name}: no requestContext.authorizer.jwt"));
        let claims = Claims::from_authorizer(&jwt.claims).unwrap_or_else(|| panic!("{name}: the claims have no sub"));
        assert!(
            route.roles.iter().any(|r| claims.has(*r)),
            "{name}: groups {:?} may not call {route_key}",
            claims.groups
        );
    }
    if let Some(body) = &request.body {
        assert!(!request.is_base64_encoded, "{name}: keep sample bodies readable");
        let content_type = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "{name}: a body needs content-type application/json"
        );
        serde_json::from_str::<Value>(body).unwrap_or_else(|e| panic!("{name}: body is not JSON: {e}"));
    }
}

fn check_event_sample(function: &topology::Function, path: &Path, raw: Value) -> EventEnvelope {
    let name = display(path);
    let event: EventBridgeEvent<EventEnvelope> =
        serde_json::from_value(raw).unwrap_or_else(|e| panic!("{name}: not an EventBridge event carrying an EventEnvelope: {e}"));
    let envelope = event.detail;
    assert_eq!(
        event.detail_type, envelope.event_type,
        "{name}: detail-type must be the envelope's type"
    );
    assert_eq!(event.source, envelope.source, "{name}: source must be the envelope's source");
    assert!(
        clinicflow::catalog()
            .rules
            .iter()
            .any(|r| r.target == function.name && r.matches(&event.source, &event.detail_type)),
        "{name}: no rule routes {} {} to {}",
        event.source,
        event.detail_type,
        function.name
    );
    // The schemas are generated from the domain event types: a detail they accept is one the
    // slice's event enum decodes (the consumer run below decodes it for real).
    let schemas = Schemas::load(&BTreeSet::from([envelope.event_type.clone()]));
    schemas.assert_valid(&name, &serde_json::to_value(&envelope).expect("json"));
    envelope
}

fn check_schedule_sample(function: &topology::Function, path: &Path, raw: Value) {
    let name = display(path);
    if clinicflow::catalog().job(function.name).is_some() {
        // A slice's job gets EventBridge's scheduled event: its `time` is the run's instant.
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(raw).unwrap_or_else(|e| panic!("{name}: not an EventBridge scheduled event: {e}"));
        assert_eq!(event.detail_type, "Scheduled Event", "{name}: detail-type");
        assert_eq!(event.source, "aws.events", "{name}: source");
        assert!(event.time.is_some(), "{name}: time");
        return;
    }
    // A flow's stack schedules the sweeper with a constant input naming its tables.
    let input: clinicflow::wiring::SweepInput =
        serde_json::from_value(raw).unwrap_or_else(|e| panic!("{name}: not the input of {}'s schedule: {e}", function.name));
    input.contexts(clinicflow::catalog()).unwrap_or_else(|e| panic!("{name}: {e}"));
}

#[test]
fn every_sample_deserializes_into_what_its_function_receives() {
    let all = samples();
    assert!(!all.is_empty(), "no samples under events/");
    for (function, path) in &all {
        let raw = read_json(path);
        match function.trigger {
            Trigger::Http => check_http_sample(function, path, raw),
            Trigger::Events => {
                check_event_sample(function, path, raw);
            }
            Trigger::Schedule(_) => check_schedule_sample(function, path, raw),
            Trigger::Stream => check_stream_sample(path, raw),
        }
    }
}

/// A DynamoDB stream batch whose inserted outbox items hold envelopes the schemas accept.
fn check_stream_sample(path: &Path, raw: Value) {
    let name = display(path);
    let batch: aws_lambda_events::dynamodb::Event =
        serde_json::from_value(raw).unwrap_or_else(|e| panic!("{name}: not a DynamoDB stream batch: {e}"));
    assert!(!batch.records.is_empty(), "{name}: no records");
    let mut events = 0;
    for r in batch.records {
        assert!(r.change.sequence_number.is_some(), "{name}: a record without a sequence number");
        if let Some(envelope) = outbox_envelope(r.change.new_image).unwrap_or_else(|e| panic!("{name}: {e}")) {
            let schemas = Schemas::load(&BTreeSet::from([envelope.event_type.clone()]));
            schemas.assert_valid(&name, &serde_json::to_value(&envelope).expect("json"));
            events += 1;
        }
    }
    assert!(events > 0, "{name}: no outbox event in the batch");
}

#[test]
fn every_function_has_a_sample() {
    let sampled: BTreeSet<&str> = samples().iter().map(|(f, _)| f.name).collect();
    let missing: Vec<&str> = clinicflow::catalog()
        .functions
        .iter()
        .map(|f| f.name)
        .filter(|n| !sampled.contains(n))
        .collect();
    assert!(missing.is_empty(), "functions without a sample under events/: {missing:?}");
}

/// A validator for one event type's schema, with formats (`date`, `date-time`) checked.
pub struct Schemas(BTreeMap<String, jsonschema::Validator>);

impl Schemas {
    fn load(types: &BTreeSet<String>) -> Self {
        let mut map = BTreeMap::new();
        for t in types {
            let path = schema_path(t);
            let schema = read_json(&path);
            if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
                panic!("{}: not a valid draft 2020-12 schema: {e} at {}", display(&path), e.instance_path());
            }
            assert_eq!(schema["properties"]["type"]["const"], json!(t), "{}: type const", display(&path));
            let validator = jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("{}: does not compile: {e}", display(&path)));
            map.insert(t.clone(), validator);
        }
        Self(map)
    }

    fn errors(&self, instance: &Value) -> Vec<String> {
        let t = instance["type"].as_str().unwrap_or_default();
        let Some(v) = self.0.get(t) else {
            return vec![format!("no schema for type {t:?}")];
        };
        v.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path())).collect()
    }

    fn assert_valid(&self, what: &str, instance: &Value) {
        let errors = self.errors(instance);
        assert!(
            errors.is_empty(),
            "{what}: {} refused by its schema:\n  {}\n{instance:#}",
            instance["type"],
            errors.join("\n  ")
        );
    }

    /// Asserts that the instance's schema refuses it.
    pub fn assert_invalid(&self, what: &str, instance: &Value) {
        assert!(
            !self.errors(instance).is_empty(),
            "{what}: should be refused by its schema:\n{instance:#}"
        );
    }
}

/// What the samples of one slice need (`samples/<slice>.rs`, listed in [`FIXTURES`]).
pub struct Fixture {
    /// The slice.
    pub slice: &'static str,
    /// When the samples were taken (their dates are valid then).
    pub now: &'static str,
    /// The ids the samples refer to, in the order the seed sample takes them.
    pub ids: &'static [&'static str],
    /// The HTTP samples (under `events/`), in order, that open the cases every other sample
    /// acts on; a seed itself runs on the platform the seeds before it made.
    pub seeds: &'static [&'static str],
    /// The id of the case a seed opened whose view the stream samples build.
    pub case: &'static str,
    /// The id of a case's status view.
    pub view_id: fn(&str) -> String,
    /// What each HTTP sample of the slice gets from its function.
    pub expected: &'static [(&'static str, u16)],
    /// How many cases each sample of the slice's scheduled jobs moves on the seeded platform
    /// (a second run moves none).
    pub jobs: &'static [(&'static str, usize)],
    /// Envelopes of every domain event of the slice, several shapes of each.
    pub envelopes: fn() -> Vec<Value>,
    /// Asserts that the schemas refuse what the Rust types would not produce.
    pub refusals: fn(&Schemas, &[Value]),
    /// What a stream sample (of the case's events) must leave in the case's view.
    pub stream_view: fn(&str, &Value),
}

/// What each HTTP sample of the platform's own functions gets (the public routes).
const PLATFORM_EXPECTED: &[(&str, u16)] = &[("platform-api/health.json", 200), ("platform-api/openapi.json", 200)];

/// Every slice's samples.
const FIXTURES: &[&Fixture] = &[&checkup::FIXTURE, &vaccine::FIXTURE, &hospital::FIXTURE, &covid::FIXTURE];

/// The fixture of a slice.
fn fixture(slice: &str) -> &'static Fixture {
    FIXTURES
        .iter()
        .copied()
        .find(|f| f.slice == slice)
        .unwrap_or_else(|| panic!("slice {slice} has no sample fixture in shared/tests/samples/"))
}

/// The fixtures a sample of `function` runs under: its slice's, or for a platform function
/// the one of the slice whose events the sample carries (every one if it carries none).
fn fixtures_of(function: &topology::Function, path: &Path) -> Vec<&'static Fixture> {
    if let Some(slice) = clinicflow::catalog().slice_of(function.name) {
        return vec![fixture(slice.name)];
    }
    let text = fs::read_to_string(path).unwrap_or_default();
    match FIXTURES.iter().copied().find(|f| {
        clinicflow::catalog()
            .slices
            .iter()
            .any(|s| s.name == f.slice && s.events.iter().any(|e| text.contains(&format!("\"{}\"", e.source))))
    }) {
        Some(f) => vec![f],
        None => FIXTURES.to_vec(),
    }
}

/// Envelopes of every domain event of every slice.
fn real_envelopes() -> Vec<Value> {
    FIXTURES.iter().flat_map(|f| (f.envelopes)()).collect()
}

#[test]
fn every_slice_has_a_sample_fixture() {
    for s in &clinicflow::catalog().slices {
        let f = fixture(s.name);
        assert!(!f.seeds.is_empty(), "slice {}: no seed sample", s.name);
        for seed in f.seeds {
            assert!(
                f.expected.iter().any(|(rel, _)| rel == seed),
                "slice {}: its seed sample {seed} needs an expected status",
                s.name,
            );
        }
    }
}

fn event_types(envelopes: &[Value]) -> BTreeSet<String> {
    envelopes.iter().filter_map(|e| e["type"].as_str().map(str::to_owned)).collect()
}

#[test]
fn every_event_type_has_exactly_one_schema_and_every_schema_an_event_type() {
    let types = event_types(&real_envelopes());
    let routed: BTreeSet<String> = clinicflow::catalog()
        .rules
        .iter()
        .flat_map(|r| r.detail_types.iter().map(|t| (*t).to_owned()))
        .collect();
    let unknown: Vec<_> = routed.difference(&types).collect();
    assert!(unknown.is_empty(), "rules route event types no domain event has: {unknown:?}");
    let dir = workspace().join("docs").join("events");
    let mut on_disk = BTreeSet::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", display(&dir))) {
        let name = entry.expect("a directory entry").file_name().to_string_lossy().into_owned();
        if let Some(t) = name.strip_suffix(".schema.json") {
            on_disk.insert(t.to_owned());
        }
    }
    assert_eq!(on_disk, types, "docs/events/*.schema.json must be one per domain event type");
}

/// `docs/events/<Type>.schema.json` is what `events::schema` generates from the Rust event
/// types (schemars). Regenerate with
/// `CLINICFLOW_UPDATE_SCHEMAS=1 cargo test -p clinicflow --test samples`.
#[test]
fn the_schemas_are_generated_from_the_rust_types() {
    let generated = clinicflow::events::schema::catalog_documents(clinicflow::catalog()).expect("schemas");
    let update = std::env::var_os("CLINICFLOW_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (t, doc) in &generated {
        let path = schema_path(t);
        let expected = clinicflow::events::schema::to_text(doc);
        if update {
            fs::write(&path, &expected).unwrap_or_else(|e| panic!("{}: {e}", display(&path)));
        } else if fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
            stale.push(display(&path));
        }
    }
    assert!(
        stale.is_empty(),
        "not the schemas of the Rust types: {stale:?}; regenerate them with\n  \
         CLINICFLOW_UPDATE_SCHEMAS=1 cargo test -p clinicflow --test samples"
    );
    let declared: BTreeSet<String> = clinicflow::catalog()
        .slices
        .iter()
        .flat_map(|s| s.events)
        .flat_map(|e| e.types.iter().map(|t| (*t).to_owned()))
        .collect();
    assert_eq!(generated.keys().cloned().collect::<BTreeSet<_>>(), declared);
}

#[test]
fn the_schemas_accept_the_envelopes_the_rust_types_produce() {
    let envelopes = real_envelopes();
    let schemas = Schemas::load(&event_types(&envelopes));
    for e in &envelopes {
        schemas.assert_valid("EventEnvelope::wrap", e);
    }
}

#[test]
fn the_schemas_accept_every_consumer_samples_detail() {
    let envelopes = real_envelopes();
    let schemas = Schemas::load(&event_types(&envelopes));
    let mut checked = 0;
    for (function, path) in samples() {
        if function.trigger != Trigger::Events {
            continue;
        }
        let event: EventBridgeEvent<Value> = serde_json::from_value(read_json(&path)).unwrap_or_else(|e| panic!("{}: {e}", display(&path)));
        schemas.assert_valid(&display(&path), &event.detail);
        checked += 1;
    }
    assert!(checked > 0, "no consumer samples were checked");
}

/// A change that makes an envelope one the Rust types would not produce.
pub type Edit = fn(&mut Value);

/// Removes `field` from `object`.
pub fn remove(object: &mut Value, field: &str) {
    if let Some(o) = object.as_object_mut() {
        o.remove(field);
    }
}

#[test]
fn the_schemas_refuse_what_the_rust_types_would_not_produce() {
    for f in FIXTURES {
        let envelopes = (f.envelopes)();
        let schemas = Schemas::load(&event_types(&envelopes));
        (f.refusals)(&schemas, &envelopes);
    }
}

#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// The ids the samples refer to first, then fresh ULIDs.
#[derive(Debug)]
struct SampleIds(&'static [&'static str], AtomicUsize);

impl Ids for SampleIds {
    fn new_id(&self) -> String {
        match self.0.get(self.1.fetch_add(1, Ordering::SeqCst)) {
            Some(id) => (*id).to_owned(),
            None => ulid::Ulid::new().to_string(),
        }
    }
}

fn sample_platform(f: &Fixture) -> (Arc<Platform>, EmbeddedParts) {
    let db = Embedded::in_memory().expect("an in-memory database");
    let (mut platform, parts) = wiring::embedded(clinicflow::catalog(), db, Config::default(), Faults::none());
    let now = DateTime::parse_from_rfc3339(f.now).expect("ts").with_timezone(&Utc);
    platform.clock = Arc::new(FixedClock(now));
    platform.ids = Arc::new(SampleIds(f.ids, AtomicUsize::new(0)));
    // A slice that seals documents holds a signing key, as the local stack does.
    let platform = platform.with_signer(Arc::new(clinicflow::sealing::KeySigner::random()));
    (Arc::new(platform), parts)
}

/// Delivers every queued event and projects every change, until nothing is left.
async fn settle(p: &Platform, parts: &EmbeddedParts) {
    let mut projected = 0;
    for _ in 0..20 {
        let due = parts
            .bus
            .due(Utc::now() + chrono::Duration::hours(1), 100)
            .await
            .expect("the bus queue");
        for d in &due {
            let handled = consumers::dispatch(p, &d.target, &d.event).await;
            assert!(handled.is_ok(), "{} failed on {}: {handled:?}", d.target, d.event.event_type);
            parts.bus.complete(d.id).await.expect("completes");
        }
        let changes = parts.db.changes_after(projected, 100).await.expect("the change feed");
        for (seq, e) in &changes {
            projector::project(p, e).await.expect("projects");
            projected = *seq;
        }
        if due.is_empty() && changes.is_empty() {
            return;
        }
    }
    panic!("the platform did not settle");
}

async fn invoke_http(p: &Arc<Platform>, function: &str, path: &Path) -> (u16, Value) {
    let text = fs::read_to_string(path).expect("readable");
    let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{}: lambda_http refuses it: {e}", display(path)));
    let response = clinicflow::http::router(p.clone(), Some(function))
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A platform on which the fixture's seeds before `until` (every seed if `until` is none of
/// them) ran, each with every consequence settled.
async fn seeded_platform(f: &Fixture, until: Option<&str>) -> (Arc<Platform>, EmbeddedParts) {
    let (p, parts) = sample_platform(f);
    let mut cases = Vec::new();
    for seed in f.seeds.iter().take_while(|s| Some(**s) != until) {
        let function = seed.split('/').next().unwrap_or_default();
        let (status, body) = invoke_http(&p, function, &events_dir().join(seed)).await;
        let want = f.expected.iter().find(|(rel, _)| rel == seed).map_or(0, |(_, s)| *s);
        assert_eq!(status, want, "{seed}: {body:#}");
        cases.push(body["id"].as_str().unwrap_or_default().to_owned());
        settle(&p, &parts).await;
    }
    if until.is_none() {
        assert!(
            cases.iter().any(|c| c == f.case),
            "the samples refer to the seeded case {} by its id; the seeds opened {cases:?}",
            f.case
        );
    }
    (p, parts)
}

#[tokio::test]
async fn every_sample_gets_from_its_function_what_its_name_promises() {
    for (function, path) in samples() {
        for f in fixtures_of(function, &path) {
            run_sample(f, function, &path).await;
        }
    }
}

async fn run_sample(f: &Fixture, function: &topology::Function, path: &Path) {
    let expected: BTreeMap<&str, u16> = f.expected.iter().copied().collect();
    let path = path.to_path_buf();
    {
        let rel = path.strip_prefix(events_dir()).map(|r| r.display().to_string()).unwrap_or_default();
        match function.trigger {
            Trigger::Http => {
                let want = *expected
                    .get(rel.as_str())
                    .or_else(|| PLATFORM_EXPECTED.iter().find(|(r, _)| *r == rel).map(|(_, s)| s))
                    .unwrap_or_else(|| panic!("{rel}: add its expected status to the {} fixture", f.slice));
                let until = f.seeds.iter().copied().find(|s| *s == rel);
                let (p, _parts) = seeded_platform(f, until).await;
                let (status, body) = invoke_http(&p, function.name, &path).await;
                assert_eq!(status, want, "{rel}: {body:#}");
                if status >= 400 {
                    assert!(
                        body["type"].as_str().is_some_and(|t| t.starts_with("https://")),
                        "{rel}: not a problem document: {body:#}"
                    );
                }
            }
            Trigger::Events => {
                let (p, parts) = seeded_platform(f, None).await;
                let sent = parts.sms.list().await.expect("sms").len();
                let event: EventBridgeEvent<EventEnvelope> = serde_json::from_value(read_json(&path)).expect("checked above");
                let handled = consumers::dispatch(&p, function.name, &event.detail).await;
                assert_eq!(handled, Ok(Handled::Applied), "{rel}");
                let again = consumers::dispatch(&p, function.name, &event.detail).await;
                assert_eq!(again, Ok(Handled::Skipped), "{rel}: a redelivery must do nothing");
                if function.name == "sms-notifier" {
                    assert_eq!(parts.sms.list().await.expect("sms").len(), sent + 1, "{rel}: one SMS");
                }
            }
            Trigger::Schedule(_) if clinicflow::catalog().job(function.name).is_some() => {
                let want = f
                    .jobs
                    .iter()
                    .find(|(r, _)| *r == rel)
                    .map(|(_, n)| *n)
                    .unwrap_or_else(|| panic!("{rel}: add what it moves to the {} fixture's jobs", f.slice));
                let (p, _parts) = seeded_platform(f, None).await;
                let job = clinicflow::catalog().job(function.name).expect("a job");
                let invoke = || wiring::handle_job(&p, job, LambdaEvent::new(read_json(&path), lambda_runtime::Context::default()));
                let first = invoke().await.unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert_eq!(first["moved"], json!(want), "{rel}");
                let again = invoke().await.unwrap_or_else(|e| panic!("{rel}: {e}"));
                assert_eq!(again["moved"], json!(0), "{rel}: a second run moves nothing");
            }
            Trigger::Schedule(_) => {
                let (p, _parts) = seeded_platform(f, None).await;
                let report = relay::sweep(&p, std::time::Duration::ZERO).await.expect("sweeps");
                assert_eq!(report.failed, 0, "{rel}");
            }
            Trigger::Stream => {
                let (p, _parts) = sample_platform(f);
                let text = fs::read_to_string(&path).expect("readable");
                let batch: aws_lambda_events::dynamodb::Event = serde_json::from_str(&text).expect("checked above");
                let last = batch.records.last().and_then(|r| r.change.sequence_number.clone());
                let invoke = |batch| wiring::handle_stream(&p, LambdaEvent::new(batch, lambda_runtime::Context::default()));
                let response = invoke(batch.clone()).await.expect("the handler answers");
                let failed: Vec<_> = response
                    .batch_item_failures
                    .iter()
                    .filter_map(|f| f.item_identifier.clone())
                    .collect();
                if rel.contains("out-of-order") {
                    assert_eq!(failed, [last.unwrap_or_default()], "{rel}: the early event is reported for a retry");
                    assert!(
                        p.views.get(&(f.view_id)(f.case)).await.expect("views").is_none(),
                        "{rel}: nothing projected early"
                    );
                    return;
                }
                assert!(failed.is_empty(), "{rel}: {failed:?}");
                let view = p.views.get(&(f.view_id)(f.case)).await.expect("views").expect("the view exists");
                (f.stream_view)(&rel, &view.body);
                let again = invoke(batch).await.expect("the handler answers");
                assert!(again.batch_item_failures.is_empty(), "{rel}: a replay is harmless");
                let replayed = p.views.get(&(f.view_id)(f.case)).await.expect("views").expect("the view exists");
                assert_eq!(replayed.revision, view.revision, "{rel}: a replay changes nothing");
            }
        }
    }
}
