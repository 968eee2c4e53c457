//! The sample events under `events/<function>/` and the event schemas under `docs/events/`
//! held to the code: every sample deserializes into what its function's trigger delivers and
//! agrees with `topology.rs`; every function has a sample; every sample gets, from its
//! function on the embedded platform, the outcome its name promises; every event type has a
//! schema that accepts the envelopes the Rust types really produce, and the samples' too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, NaiveDate, Utc};
use clinicflow::adapters::dynamodb::outbox_envelope;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::consumers::{self, Handled};
use clinicflow::app::{Faults, Platform, projector, relay};
use clinicflow::config::Config;
use clinicflow::contexts::payment;
use clinicflow::domain::{Contact, Locale, PersonName, PhoneNumber, Won};
use clinicflow::events::{Causality, EventEnvelope};
use clinicflow::flows::checkup::centre;
use clinicflow::flows::checkup::domain::{self as checkup, Package};
use clinicflow::http::Claims;
use clinicflow::ports::{Clock, Ids};
use clinicflow::topology::{self, Trigger};
use clinicflow::wiring::{self, EmbeddedParts};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use tower::ServiceExt;

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
    let jwt = request
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .unwrap_or_else(|| panic!("{name}: no requestContext.authorizer.jwt"));
    let claims = Claims::from_authorizer(&jwt.claims).unwrap_or_else(|| panic!("{name}: the claims have no sub"));
    assert!(
        route.roles.iter().any(|r| claims.has(*r)),
        "{name}: groups {:?} may not call {route_key}",
        claims.groups
    );
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
    let decoded = match envelope.source.as_str() {
        "clinicflow.checkup" => envelope.decode::<checkup::Event>().map(drop),
        "clinicflow.payment" => envelope.decode::<payment::Event>().map(drop),
        "clinicflow.centre" => envelope.decode::<centre::Event>().map(drop),
        other => panic!("{name}: unknown source {other}"),
    };
    decoded.unwrap_or_else(|e| panic!("{name}: detail does not decode into its domain event: {e}"));
    envelope
}

fn check_schedule_sample(function: &topology::Function, path: &Path, raw: Value) {
    let name = display(path);
    let event: EventBridgeEvent<Value> =
        serde_json::from_value(raw).unwrap_or_else(|e| panic!("{name}: not an EventBridge scheduled event: {e}"));
    assert_eq!(event.source, "aws.events", "{name}: source of {}", function.name);
    assert_eq!(event.detail_type, "Scheduled Event", "{name}: detail-type");
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
struct Schemas(BTreeMap<String, jsonschema::Validator>);

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

    fn assert_invalid(&self, what: &str, instance: &Value) {
        assert!(
            !self.errors(instance).is_empty(),
            "{what}: should be refused by its schema:\n{instance:#}"
        );
    }
}

fn contact(name: &str, phone: &str, locale: Locale) -> Contact {
    Contact {
        name: PersonName::parse(name).expect("a valid name"),
        phone: PhoneNumber::parse(phone).expect("a valid phone"),
        locale,
    }
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a valid date")
}

/// Every check-up event, several shapes of each; the `match` breaks the build when a variant
/// is added without a case here.
fn checkup_events() -> Vec<checkup::Event> {
    let payment_id = ulid::Ulid::new().to_string();
    let all = vec![
        checkup::Event::CheckupBooked {
            patient_sub: "3c5e1f0a-8b7d-4e2a-9f61-0d2c4b6a8e10".into(),
            date: date("2027-06-01"),
            package: Package::Basic,
            price: Won(100_000),
            payment_id: payment_id.clone(),
            contact: contact("홍길동", "010-1234-5678", Locale::Ko),
        },
        checkup::Event::CheckupBooked {
            patient_sub: "p".into(),
            date: date("2026-12-31"),
            package: Package::Premium,
            price: Won(0),
            payment_id,
            contact: contact(&"가".repeat(50), "+14155550123", Locale::En),
        },
        checkup::Event::CheckupConfirmed {},
        checkup::Event::CheckupRejected {
            reason: "No doctor available on that date".into(),
        },
        checkup::Event::CheckupRejected {
            reason: checkup::parse_reason(&"x".repeat(checkup::MAX_REASON_CHARS)).expect("longest reason"),
        },
        checkup::Event::CheckupCancelled {},
    ];
    for e in &all {
        match e {
            checkup::Event::CheckupBooked { .. }
            | checkup::Event::CheckupConfirmed {}
            | checkup::Event::CheckupRejected { .. }
            | checkup::Event::CheckupCancelled {} => {}
        }
    }
    all
}

fn payment_events() -> Vec<payment::Event> {
    let all = vec![
        payment::Event::PaymentCaptured {
            case_id: ulid::Ulid::new().to_string(),
            amount: Won(250_000),
            provider_ref: "sandbox_ch_0001".into(),
        },
        payment::Event::PaymentRefunded { amount: Won(250_000) },
        payment::Event::PaymentRefunded { amount: Won(u64::MAX) },
    ];
    for e in &all {
        match e {
            payment::Event::PaymentCaptured { .. } | payment::Event::PaymentRefunded { .. } => {}
        }
    }
    all
}

fn centre_events() -> Vec<centre::Event> {
    let all = vec![
        centre::Event::ReservationReceived {},
        centre::Event::ReservationConfirmed {},
        centre::Event::ReservationRejected {
            reason: "The centre is closed that day".into(),
        },
        centre::Event::ReservationWithdrawn {},
    ];
    for e in &all {
        match e {
            centre::Event::ReservationReceived {}
            | centre::Event::ReservationConfirmed {}
            | centre::Event::ReservationRejected { .. }
            | centre::Event::ReservationWithdrawn {} => {}
        }
    }
    all
}

fn wrap<E: serde::Serialize>(context: &str, version: u64, causation_id: &str, at: DateTime<Utc>, event: &E) -> Value {
    let case = ulid::Ulid::new().to_string();
    let causality = Causality {
        correlation_id: case.clone(),
        causation_id: causation_id.to_owned(),
    };
    let envelope = EventEnvelope::wrap(ulid::Ulid::new().to_string(), context, &case, version, &causality, at, event).expect("wraps");
    serde_json::to_value(&envelope).expect("serializes")
}

/// Envelopes of every domain event, as the use cases build them: request ids and event ids
/// as causes, whole and fractional timestamps.
fn real_envelopes() -> Vec<Value> {
    let whole = DateTime::parse_from_rfc3339("2026-11-21T09:30:00Z")
        .expect("ts")
        .with_timezone(&Utc);
    let mut out = Vec::new();
    for (i, e) in checkup_events().iter().enumerate() {
        out.push(wrap(checkup::CONTEXT, 1 + i as u64, "Vq3xRgAbIE0EJbA=", whole, e));
    }
    for (i, e) in payment_events().iter().enumerate() {
        out.push(wrap(payment::CONTEXT, 1 + i as u64, &ulid::Ulid::new().to_string(), Utc::now(), e));
    }
    for (i, e) in centre_events().iter().enumerate() {
        out.push(wrap(centre::CONTEXT, 1 + i as u64, &ulid::Ulid::new().to_string(), Utc::now(), e));
    }
    out
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
type Edit = fn(&mut Value);

fn remove(object: &mut Value, field: &str) {
    if let Some(o) = object.as_object_mut() {
        o.remove(field);
    }
}

#[test]
fn the_schemas_refuse_what_the_rust_types_would_not_produce() {
    let envelopes = real_envelopes();
    let schemas = Schemas::load(&event_types(&envelopes));
    let booked = envelopes.iter().find(|e| e["type"] == "CheckupBooked").expect("a booking").clone();
    let rejected = envelopes
        .iter()
        .find(|e| e["type"] == "CheckupRejected")
        .expect("a rejection")
        .clone();
    let edits: &[(&str, Edit)] = &[
        ("an unknown data field", |e| e["data"]["extra"] = json!(1)),
        ("an unknown envelope field", |e| e["extra"] = json!(1)),
        ("another type", |e| e["type"] = json!("CheckupConfirmed")),
        ("another source", |e| e["source"] = json!("clinicflow.payment")),
        ("version 0", |e| e["version"] = json!(0)),
        ("a version that is not an integer", |e| e["version"] = json!(1.5)),
        ("an id that is not a ULID", |e| e["id"] = json!("not-a-ulid")),
        ("an occurred_at that is not a date-time", |e| e["occurred_at"] = json!("yesterday")),
        ("no correlation id", |e| remove(e, "correlation_id")),
        ("a national phone number", |e| {
            e["data"]["contact"]["phone"] = json!("010-1234-5678")
        }),
        ("an unknown locale", |e| e["data"]["contact"]["locale"] = json!("ja")),
        ("an unknown contact field", |e| e["data"]["contact"]["email"] = json!("a@b.c")),
        ("a name over 50 characters", |e| {
            e["data"]["contact"]["name"] = json!("가".repeat(51))
        }),
        ("an unknown package", |e| e["data"]["package"] = json!("gold")),
        ("a negative price", |e| e["data"]["price"] = json!(-1)),
        ("a fractional price", |e| e["data"]["price"] = json!(1000.5)),
        ("a date with a time", |e| e["data"]["date"] = json!("2027-06-01T00:00:00Z")),
        ("an impossible date", |e| e["data"]["date"] = json!("2027-02-30")),
        ("no payment id", |e| remove(&mut e["data"], "payment_id")),
    ];
    for (what, edit) in edits {
        let mut e = booked.clone();
        edit(&mut e);
        schemas.assert_invalid(&format!("CheckupBooked with {what}"), &e);
    }
    for (what, reason) in [
        ("an empty reason", json!("")),
        ("a reason over 500 characters", json!("x".repeat(501))),
        ("a null reason", Value::Null),
    ] {
        let mut e = rejected.clone();
        e["data"]["reason"] = reason;
        schemas.assert_invalid(&format!("CheckupRejected with {what}"), &e);
    }
    let mut confirmed = envelopes
        .iter()
        .find(|e| e["type"] == "CheckupConfirmed")
        .expect("a confirmation")
        .clone();
    confirmed["data"]["reason"] = json!("fields on an event that has none");
    schemas.assert_invalid("CheckupConfirmed with a field", &confirmed);
}

/// The time the samples were taken at (see `events/`), so that their check-up date is valid.
const SAMPLE_NOW: &str = "2026-11-21T00:30:00Z";
/// The booking and payment ids the samples refer to.
const SAMPLE_BOOKING: &str = "01JD3M7Q0000000000000000AB";
const SAMPLE_PAYMENT: &str = "01JD3M7Q0000000000000000PY";
/// The booking every sample but the booking ones starts from.
const SEED_BOOKING: &str = "checkup-book/book-basic.json";

/// What each sample gets from its function: the HTTP status, or for events whether the
/// consumer handles it.
const EXPECTED: &[(&str, u16)] = &[
    ("checkup-book/book-basic.json", 201),
    ("checkup-book/book-premium-en-idempotent.json", 201),
    ("checkup-book/missing-phone.json", 422),
    ("checkup-book/card-declined.json", 402),
    ("checkup-book/payment-provider-down.json", 503),
    ("checkup-cancel/cancel.json", 202),
    ("checkup-query/get-one.json", 200),
    ("checkup-query/centre-get-one.json", 200),
    ("checkup-query/list-mine.json", 200),
    ("checkup-query/centre-list.json", 200),
    ("centre-confirm/confirm.json", 200),
    ("centre-reject/reject.json", 200),
    ("centre-reject/missing-reason.json", 422),
];

#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// The samples' booking and payment ids first, then fresh ULIDs.
#[derive(Debug, Default)]
struct SampleIds(AtomicUsize);

impl Ids for SampleIds {
    fn new_id(&self) -> String {
        match self.0.fetch_add(1, Ordering::SeqCst) {
            0 => SAMPLE_BOOKING.to_owned(),
            1 => SAMPLE_PAYMENT.to_owned(),
            _ => ulid::Ulid::new().to_string(),
        }
    }
}

fn sample_platform() -> (Arc<Platform>, EmbeddedParts) {
    let db = Embedded::in_memory().expect("an in-memory database");
    let (mut platform, parts) = wiring::embedded(clinicflow::catalog(), db, Config::default(), Faults::none());
    let now = DateTime::parse_from_rfc3339(SAMPLE_NOW).expect("ts").with_timezone(&Utc);
    platform.clock = Arc::new(FixedClock(now));
    platform.ids = Arc::new(SampleIds::default());
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

/// A platform on which the seed booking was made and every consequence has settled.
async fn booked_platform() -> (Arc<Platform>, EmbeddedParts) {
    let (p, parts) = sample_platform();
    let (status, body) = invoke_http(&p, "checkup-book", &events_dir().join(SEED_BOOKING)).await;
    assert_eq!(status, 201, "{SEED_BOOKING}: {body:#}");
    assert_eq!(body["id"], SAMPLE_BOOKING, "the samples refer to the seed booking by its id");
    settle(&p, &parts).await;
    (p, parts)
}

#[tokio::test]
async fn every_sample_gets_from_its_function_what_its_name_promises() {
    let expected: BTreeMap<&str, u16> = EXPECTED.iter().copied().collect();
    for (function, path) in samples() {
        let rel = path.strip_prefix(events_dir()).map(|r| r.display().to_string()).unwrap_or_default();
        match function.trigger {
            Trigger::Http => {
                let want = *expected
                    .get(rel.as_str())
                    .unwrap_or_else(|| panic!("{rel}: add its expected status to EXPECTED"));
                let (p, _parts) = if function.name == "checkup-book" {
                    sample_platform()
                } else {
                    booked_platform().await
                };
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
                let (p, parts) = booked_platform().await;
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
            Trigger::Schedule(_) => {
                let (p, _parts) = booked_platform().await;
                let report = relay::sweep(&p, std::time::Duration::ZERO).await.expect("sweeps");
                assert_eq!(report.failed, 0, "{rel}");
            }
            Trigger::Stream => {
                let (p, _parts) = sample_platform();
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
                        p.views
                            .get(&clinicflow::flows::checkup::view::view_key(SAMPLE_BOOKING))
                            .await
                            .expect("views")
                            .is_none(),
                        "{rel}: nothing projected early"
                    );
                    continue;
                }
                assert!(failed.is_empty(), "{rel}: {failed:?}");
                let view = p
                    .views
                    .get(&clinicflow::flows::checkup::view::view_key(SAMPLE_BOOKING))
                    .await
                    .expect("views")
                    .expect("the view exists");
                assert_eq!(view.body["status"], "booked", "{rel}");
                assert_eq!(view.body["payment_status"], "paid", "{rel}");
                for (sample, reservation) in [
                    ("worklist-confirmed", "confirmed"),
                    ("worklist-rejected", "rejected"),
                    ("worklist-withdrawn", "withdrawn"),
                ] {
                    if rel.contains(sample) {
                        assert_eq!(view.body["reservation_status"], reservation, "{rel}");
                    }
                }
                let again = invoke(batch).await.expect("the handler answers");
                assert!(again.batch_item_failures.is_empty(), "{rel}: a replay is harmless");
                let replayed = p
                    .views
                    .get(&clinicflow::flows::checkup::view::view_key(SAMPLE_BOOKING))
                    .await
                    .expect("views")
                    .expect("the view exists");
                assert_eq!(replayed.revision, view.revision, "{rel}: a replay changes nothing");
            }
        }
    }
}
