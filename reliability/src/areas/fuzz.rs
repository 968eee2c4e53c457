//! The `fuzz` area: hostile input. Schemathesis (`scripts/fuzz_api.py`) fuzzes every
//! operation of `docs/openapi.json` against a local stack with a patient's token and a token
//! for each staff role of the catalog (`--token <group>=<token>`): no 5xx, every response as
//! documented. Then hand-made hostile requests go to every POST route of the catalog —
//! bodies over the size limit, JSON nested thousands deep, wrong or missing content types,
//! bytes that are not UTF-8, unicode edge cases in names, bad `Idempotency-Key`s — and each
//! must be refused with a 4xx problem naming the field at fault, and must write nothing: no
//! aggregate, event, payment or SMS.
//!
//! What a valid request to each route is comes from the fixture of the slice that serves it
//! ([`Fixture::route`](crate::slices::Fixture::route)): the opening body (whose name field,
//! [`Fixture::personal`](crate::slices::Fixture::personal), gets the hostile names; it alone
//! takes an `Idempotency-Key`), or the route's own body; a route naming a case aims at one
//! case of its slice, opened and ready. A POST route without a call in its fixture is a
//! violation, as in the `authz` area.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use clinicflow::http::PROBLEM_JSON;
use clinicflow::http::routes::MAX_BODY_BYTES;
use clinicflow::topology::{self, Method, PROCESSED, VIEWS};
use clinicflow_tests::{LocalStack, fast_options};
use serde_json::{Value, json};

use super::api::SOMEONE;
use crate::slices::{self, Body, Fixture};
use crate::{AreaReport, Mode, workspace_root};

/// The owner of the cases the hostile requests aim at.
const PATIENT: &str = "fuzz-patient";
/// The staff member who would decide on them.
const STAFF: &str = "fuzz-staff";

/// The catalog's staff roles (every role but the platform's patient).
fn staff_roles() -> impl Iterator<Item = topology::Role> {
    clinicflow::catalog().roles.iter().copied().filter(|r| *r != topology::PATIENT)
}

/// Runs the area.
pub async fn run(mode: Mode) -> anyhow::Result<AreaReport> {
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    let script = root.join("scripts/fuzz_api.py");
    if !python.exists() {
        bail!(
            "{} not found: the fuzz area runs schemathesis from the project's venv \
             (python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt)",
            python.display()
        );
    }
    let mut report = AreaReport::new("fuzz");

    let stack = LocalStack::start(fast_options()).await.context("a local stack for schemathesis")?;
    let fuzzed = schemathesis(&stack, &python, &script, mode.pick(100, 10), &mut report).await;
    stack.shutdown().await;
    let server_errors = fuzzed?;

    // A fresh stack, so that what the hand-made requests could write stands out.
    let stack = LocalStack::start(fast_options())
        .await
        .context("a local stack for the hostile requests")?;
    let hostile = hand_made(&stack, &mut report).await;
    stack.shutdown().await;
    let (hand_made_cases, hand_made_5xx) = hostile?;

    report.figure("hand-made cases", hand_made_cases);
    report.figure("5xx", server_errors + hand_made_5xx);
    Ok(report)
}

/// Runs `scripts/fuzz_api.py`; counts its cases, and its server errors and schema
/// violations as violations. Returns the number of server errors.
async fn schemathesis(
    stack: &LocalStack,
    python: &std::path::Path,
    script: &std::path::Path,
    max_examples: u32,
    report: &mut AreaReport,
) -> anyhow::Result<u64> {
    let out_dir = tempfile::tempdir().context("a temporary directory")?;
    let out = out_dir.path().join("fuzz.json");
    let mut command = tokio::process::Command::new(python);
    let patient = stack.token(PATIENT, &[topology::PATIENT.group]);
    command
        .arg(script)
        .arg("--base-url")
        .arg(stack.url())
        .arg("--token")
        .arg(format!("{}={patient}", topology::PATIENT.group));
    // One token per staff role of the catalog (with its site, for staff who belong to one).
    for role in staff_roles() {
        command
            .arg("--token")
            .arg(format!("{}={}", role.group, slices::token(stack, STAFF, &[role.group])));
    }
    let run = command
        .arg("--max-examples")
        .arg(max_examples.to_string())
        .arg("--out")
        .arg(&out)
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let done = tokio::time::timeout(Duration::from_secs(1800), run)
        .await
        .context("scripts/fuzz_api.py did not finish within 30 minutes")?
        .with_context(|| format!("{} could not be started", python.display()))?;
    let stderr = String::from_utf8_lossy(&done.stderr);
    for line in stderr.lines().filter(|l| l.starts_with("fuzz_api:")) {
        eprintln!("    {line}");
    }
    if !done.status.success() {
        let tail: String = stderr
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        bail!(
            "scripts/fuzz_api.py could not run ({}): is schemathesis installed (.venv/bin/pip install -r requirements-dev.txt)?\n{tail}",
            done.status
        );
    }
    let result: Value = serde_json::from_slice(&std::fs::read(&out).context("scripts/fuzz_api.py wrote no result")?)
        .context("scripts/fuzz_api.py's result is not JSON")?;
    let count = |key: &str| result[key].as_u64().with_context(|| format!("{key} missing from the fuzz result"));
    let (cases, server_errors, schema_violations) = (count("cases")?, count("server_errors")?, count("schema_violations")?);
    let failures: Vec<&str> = result["failures"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    report.cases += cases;
    report.figure("schemathesis cases", cases);
    // The script lists server errors first, then schema violations, then anything else.
    let counted = server_errors + schema_violations;
    for i in 0..counted {
        let what = usize::try_from(i).ok().and_then(|i| failures.get(i)).copied();
        report.violation(format!(
            "schemathesis: {}",
            what.unwrap_or("a failure beyond the listed ones (rerun scripts/fuzz_api.py)")
        ));
    }
    for other in failures.iter().skip(usize::try_from(counted).unwrap_or(usize::MAX)) {
        eprintln!("    schemathesis (not counted): {other}");
    }
    Ok(server_errors)
}

/// What the store holds that a request could have written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    aggregates: Vec<(&'static str, String, u64)>,
    events: usize,
    payments: usize,
    sms: usize,
}

async fn snapshot(stack: &LocalStack) -> anyhow::Result<Snapshot> {
    let db = &stack.embedded().context("the hostile requests run on the embedded store")?.db;
    let mut aggregates = Vec::new();
    // Every table that holds aggregates: the contexts' and the notifier's.
    for table in clinicflow::catalog()
        .tables
        .iter()
        .filter(|t| t.name != VIEWS && t.name != PROCESSED)
    {
        for (id, stored) in db.all_aggregates(table.name).await? {
            aggregates.push((table.name, id, stored.version));
        }
    }
    aggregates.sort();
    Ok(Snapshot {
        aggregates,
        events: db.changes_after(0, usize::MAX >> 1).await?.len(),
        payments: stack.sandbox.entries().len(),
        sms: stack.sms_sent().await?.len(),
    })
}

/// One hostile request: what is sent, and what must come back.
struct Hostile {
    /// What it tries (no personal data: it is printed).
    label: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
    /// Acceptable statuses (all 4xx).
    statuses: &'static [u16],
    /// The field a 422 must name.
    field: Option<&'static str>,
}

impl Hostile {
    fn new(label: impl Into<String>, content_type: Option<&'static str>, body: impl Into<Vec<u8>>, statuses: &'static [u16]) -> Self {
        Self {
            label: label.into(),
            content_type,
            body: body.into(),
            headers: vec![],
            statuses,
            field: None,
        }
    }

    fn naming(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
}

const JSON: Option<&str> = Some("application/json");
const MALFORMED: &[u16] = &[400, 422];
const INVALID: &[u16] = &[422];
const TOO_LARGE: &[u16] = &[413];
const UNSUPPORTED: &[u16] = &[415];

/// Names that must be refused, as JSON string literals (so that a lone surrogate escape
/// can be sent as the client would write it): what each is, the literal, the statuses
/// allowed, and whether it is text at all (a command that ignores its fields must still
/// refuse a body it cannot read).
fn hostile_names() -> Vec<(&'static str, String, &'static [u16], bool)> {
    let lit = |s: &str| Value::String(s.to_owned()).to_string();
    vec![
        ("empty", lit(""), INVALID, true),
        ("only whitespace", lit(" \t \u{3000} "), INVALID, true),
        ("only zero-width characters", lit("\u{200B}\u{200C}\u{200D}"), INVALID, true),
        ("a byte-order mark", lit("\u{FEFF}"), INVALID, true),
        ("an RTL override", lit("\u{202E}abc"), INVALID, true),
        ("directional isolates", lit("\u{2066}abc\u{2069}"), INVALID, true),
        ("a NUL", lit("a\u{0}b"), INVALID, true),
        ("a C1 control", lit("a\u{85}b"), INVALID, true),
        ("a lone surrogate escape", r#""\ud800""#.to_owned(), INVALID, false),
        ("a lone trailing surrogate escape", r#""a\udc00b""#.to_owned(), INVALID, false),
        (
            "a combining-mark flood",
            lit(&format!("e{}", "\u{0301}".repeat(5_000))),
            INVALID,
            true,
        ),
        ("10,000 characters", lit(&"x".repeat(10_000)), INVALID, true),
        ("51 emoji", lit(&"\u{1F600}".repeat(51)), INVALID, true),
        (
            "a ZWJ emoji sequence",
            lit("\u{1F469}\u{200D}\u{1F469}\u{200D}\u{1F467}"),
            INVALID,
            true,
        ),
        (
            "10,000 Hangul syllables (over the size limit)",
            lit(&"가".repeat(10_000)),
            TOO_LARGE,
            true,
        ),
    ]
}

/// What a route's valid body is made of, where it matters to the hostile requests.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    /// The field that holds a person's name (a slice's opening request).
    name: Option<&'static str>,
    /// Takes an `Idempotency-Key` (a slice's opening request).
    idempotent: bool,
}

/// The hostile requests for one POST route; `valid` is a body it would accept.
fn hostile_requests(shape: Shape, valid: &Value) -> Vec<Hostile> {
    let takes_a_body = valid.as_object().is_some_and(|o| !o.is_empty());
    let valid_bytes = valid.to_string().into_bytes();
    let mut cases = vec![
        Hostile::new(
            "a body over the size limit",
            JSON,
            format!("{{\"name\": \"{}\"}}", "x".repeat(MAX_BODY_BYTES + 1)),
            TOO_LARGE,
        ),
        Hostile::new(
            "JSON nested 10,000 deep (over the size limit)",
            JSON,
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
            TOO_LARGE,
        ),
        Hostile::new("10,000 unclosed brackets", JSON, "[".repeat(10_000), MALFORMED),
        Hostile::new("objects nested 3,000 deep", JSON, "{\"a\":".repeat(3_000), MALFORMED),
        Hostile::new(
            "a field nested 5,000 deep",
            JSON,
            format!("{{\"name\": {}{}}}", "[".repeat(5_000), "]".repeat(5_000)),
            MALFORMED,
        )
        .naming("name"),
        Hostile::new("text/plain", Some("text/plain"), valid_bytes.clone(), UNSUPPORTED),
        Hostile::new(
            "application/xml",
            Some("application/xml"),
            b"<case><name>x</name></case>".to_vec(),
            UNSUPPORTED,
        ),
        Hostile::new(
            "multipart/form-data",
            Some("multipart/form-data; boundary=XyZ"),
            b"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--XyZ--\r\n".to_vec(),
            UNSUPPORTED,
        ),
        Hostile::new(
            "application/x-www-form-urlencoded",
            Some("application/x-www-form-urlencoded"),
            b"name=x".to_vec(),
            UNSUPPORTED,
        ),
        Hostile::new("no content type", None, valid_bytes.clone(), UNSUPPORTED),
        Hostile::new("bytes that are not UTF-8", JSON, vec![0xff, 0xfe, 0x00, 0x7b], MALFORMED),
        Hostile::new("a name that is not UTF-8", JSON, b"{\"name\": \"\xff\xfe\"}".to_vec(), INVALID).naming("name"),
        Hostile::new(
            "JSON with trailing bytes",
            JSON,
            [valid_bytes.clone(), b" {}".to_vec()].concat(),
            MALFORMED,
        ),
    ];
    if takes_a_body {
        cases.push(Hostile::new("an empty body", JSON, Vec::new(), MALFORMED));
    }
    for (what, literal, statuses, text) in hostile_names() {
        let body = if let Some(field) = shape.name {
            // An opening request that is valid but for its name.
            let mut b = valid.clone();
            b[field] = json!("PLACEHOLDER");
            b.to_string().replace("\"PLACEHOLDER\"", &literal)
        } else if takes_a_body || !text || statuses == TOO_LARGE {
            // A route with fields but no name refuses it as an unknown field, by name; a
            // command without fields ignores them, but not a body it cannot read.
            format!("{{\"name\": {literal}}}")
        } else {
            continue;
        };
        let case = Hostile::new(format!("name: {what}"), JSON, body, statuses);
        cases.push(if statuses == INVALID {
            case.naming(shape.name.unwrap_or("name"))
        } else {
            case
        });
    }
    if shape.idempotent {
        for (what, key) in [
            ("not ASCII", b"\xff\xfe".to_vec()),
            ("256 characters", vec![b'k'; 256]),
            ("with a space", b"a b".to_vec()),
        ] {
            let mut case = Hostile::new(format!("Idempotency-Key {what}"), JSON, valid_bytes.clone(), INVALID).naming("Idempotency-Key");
            case.headers.push(("idempotency-key", key));
            cases.push(case);
        }
    }
    cases
}

/// A valid body of `route` and its shape, as its fixture says.
fn valid_request(f: &dyn Fixture, call: &slices::RouteCall) -> (Value, Shape) {
    match call.body {
        Body::Opening => (
            f.open_body(30, &SOMEONE, "tok_ok"),
            Shape {
                name: Some(f.personal().name),
                idempotent: true,
            },
        ),
        Body::Json(body) => (body(), Shape::default()),
        Body::Empty => (json!({}), Shape::default()),
    }
}

/// Opens the case of `f` every hostile request to its routes aims at, and waits until it is
/// ready for the decisions they would take.
async fn target_case(f: &dyn Fixture, stack: &LocalStack, http: &reqwest::Client) -> anyhow::Result<String> {
    f.prepare(&stack.platform, &f.open_body(30, &SOMEONE, "tok_ok")).await?;
    // Opened as the slice opens a case: by its owner, or by staff on the owner's behalf.
    let (opener, body) = slices::opening_token(f, stack, PATIENT, &f.open_body(30, &SOMEONE, "tok_ok"));
    let booked = http
        .post(format!("{}{}", stack.url(), f.opening()))
        .bearer_auth(opener)
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(
        booked.status().as_u16() == 201,
        "the target {} case was refused: {}",
        f.slice(),
        booked.status()
    );
    let id = booked.json::<Value>().await?["id"]
        .as_str()
        .context("the case has an id")?
        .to_owned();
    anyhow::ensure!(
        slices::wait_ready(f, stack, &id, Duration::from_secs(10)).await,
        "the target {} case {id} never became ready",
        f.slice()
    );
    Ok(id)
}

/// Sends every hostile request to every POST route; returns (cases, 5xx answers).
async fn hand_made(stack: &LocalStack, report: &mut AreaReport) -> anyhow::Result<(u64, u64)> {
    let http = reqwest::Client::new();
    let patient = stack.token(PATIENT, &[topology::PATIENT.group]);
    let staff: Vec<(topology::Role, String)> = staff_roles().map(|r| (r, slices::token(stack, STAFF, &[r.group]))).collect();

    // One case per slice that every hostile request aims at, waiting for its decisions.
    let mut targets = Vec::new();
    for f in slices::all() {
        targets.push((f.slice(), target_case(*f, stack, &http).await?));
    }
    anyhow::ensure!(
        stack.settle(Duration::from_secs(10)).await,
        "the stack did not settle after the target cases"
    );
    let mut before = snapshot(stack).await?;

    let (mut cases, mut five_hundreds) = (0u64, 0u64);
    for route in clinicflow::catalog().routes.iter().filter(|r| r.method == Method::Post) {
        let Some((f, call)) = slices::of_route(route).and_then(|f| f.route(route).map(|c| (f, c))) else {
            report.violation(format!(
                "untested route: POST {} has no call in its slice's fixture, so no hostile request reaches it",
                route.path
            ));
            continue;
        };
        let token = if route.roles.contains(&topology::PATIENT) {
            &patient
        } else {
            match staff.iter().find(|(r, _)| route.roles.contains(r)) {
                Some((_, token)) => token,
                None => &patient,
            }
        };
        let (valid, shape) = valid_request(f, &call);
        let id = targets
            .iter()
            .find(|(slice, _)| *slice == f.slice())
            .map_or("", |(_, id)| id.as_str());
        let url = format!("{}{}", stack.url(), route.path.replace("{id}", id));
        for case in hostile_requests(shape, &valid) {
            let mut req = http.post(&url).bearer_auth(token).body(case.body.clone());
            if let Some(ct) = case.content_type {
                req = req.header("content-type", ct);
            }
            for (name, value) in &case.headers {
                req = req.header(*name, reqwest::header::HeaderValue::from_bytes(value)?);
            }
            let what = format!("POST {} ({})", route.path, case.label);
            let res = req.send().await.with_context(|| format!("{what}: not sent"))?;
            let status = res.status().as_u16();
            let content_type = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body: Value = serde_json::from_slice(&res.bytes().await?).unwrap_or(Value::Null);
            if status >= 500 {
                five_hundreds += 1;
            }
            let mut broken = judge(&case, status, &content_type, &body);
            // Settle first: a command that slipped through would also set the saga going.
            stack.settle(Duration::from_secs(5)).await;
            let after = snapshot(stack).await?;
            if after != before {
                let wrote = describe_writes(&before, &after);
                broken = Some(match broken {
                    Some(b) => format!("{b}; and it wrote {wrote}"),
                    None => format!("got {status} but wrote {wrote}"),
                });
                before = after;
            }
            cases += 1;
            report.case(broken.map(|b| format!("{what}: {b}")));
        }
    }
    Ok((cases, five_hundreds))
}

/// Why the answer to a hostile request breaks a promise, if it does.
fn judge(case: &Hostile, status: u16, content_type: &str, body: &Value) -> Option<String> {
    if !(400..500).contains(&status) {
        return Some(format!("got {status}, expected a 4xx ({:?})", case.statuses));
    }
    if !case.statuses.contains(&status) {
        return Some(format!("got {status}, expected one of {:?}", case.statuses));
    }
    if !content_type.starts_with(PROBLEM_JSON) {
        return Some(format!("{status} came as {content_type:?}, not {PROBLEM_JSON}"));
    }
    if body["status"].as_u64() != Some(u64::from(status)) || !body["type"].is_string() || !body["title"].is_string() {
        return Some(format!("{status}: the body is not a problem document"));
    }
    if status == 422
        && let Some(field) = case.field
    {
        let named = body["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|e| e["field"] == field));
        if !named {
            let fields: Vec<&str> = body["errors"]
                .as_array()
                .map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect())
                .unwrap_or_default();
            return Some(format!("422 does not name {field} (it names {fields:?})"));
        }
    }
    None
}

fn describe_writes(before: &Snapshot, after: &Snapshot) -> String {
    let mut what = Vec::new();
    let changed = after.aggregates.iter().filter(|a| !before.aggregates.contains(a)).count();
    if changed > 0 {
        what.push(format!("{changed} aggregate(s)"));
    }
    for (name, b, a) in [
        ("event(s)", before.events, after.events),
        ("payment(s)", before.payments, after.payments),
        ("SMS", before.sms, after.sms),
    ] {
        if a != b {
            what.push(format!("{} {name}", a.abs_diff(b)));
        }
    }
    what.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, fields: &[&str]) -> Value {
        let errors: Vec<Value> = fields.iter().map(|f| json!({"field": f, "detail": "bad"})).collect();
        json!({"type": "https://clinicflow.dev/problems/x", "title": "X", "status": status, "detail": "", "errors": errors})
    }

    #[test]
    fn a_refusal_naming_the_field_passes_and_every_other_answer_is_a_breach() {
        let case = Hostile::new("name", JSON, Vec::new(), INVALID).naming("name");
        assert_eq!(judge(&case, 422, PROBLEM_JSON, &problem(422, &["name"])), None);
        assert!(judge(&case, 500, PROBLEM_JSON, &problem(500, &[])).is_some(), "a 5xx");
        assert!(judge(&case, 201, "application/json", &json!({})).is_some(), "accepted");
        assert!(judge(&case, 400, PROBLEM_JSON, &problem(400, &[])).is_some(), "another 4xx");
        assert!(judge(&case, 422, "text/plain", &problem(422, &["name"])).is_some(), "not a problem");
        assert!(judge(&case, 422, PROBLEM_JSON, &problem(422, &["date"])).is_some(), "another field");
        assert!(judge(&case, 422, PROBLEM_JSON, &json!({"status": 422})).is_some(), "no type");
    }

    #[test]
    fn writes_are_described_without_their_content() {
        let before = Snapshot {
            aggregates: vec![("case", "A".into(), 1)],
            events: 2,
            payments: 1,
            sms: 0,
        };
        let after = Snapshot {
            aggregates: vec![("case", "A".into(), 2)],
            events: 3,
            payments: 1,
            sms: 1,
        };
        assert_eq!(describe_writes(&before, &after), "1 aggregate(s), 1 event(s), 1 SMS");
    }

    #[test]
    fn every_post_route_gets_hostile_requests_and_names_are_tried_where_they_can_be_read() {
        for route in clinicflow::catalog().routes.iter().filter(|r| r.method == Method::Post) {
            let f = slices::of_route(route).expect("a fixture");
            let call = f.route(route).expect("a call");
            let (valid, shape) = valid_request(f, &call);
            let cases = hostile_requests(shape, &valid);
            assert!(cases.len() >= 15, "{}: {}", route.path, cases.len());
            assert!(cases.iter().all(|c| c.statuses.iter().all(|s| (400..500).contains(s))));
        }
    }
}
