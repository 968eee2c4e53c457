//! The `privacy` area: every log line of the run scanned for personal data.
//!
//! First it runs every slice's flows itself, so that it scans something even when run
//! alone: every journey of its fixture that opens a case (then the case read back by every
//! role its read routes allow, `404` for staff who see only the cases that reached their desk,
//! [`Fixture::staff_sees`], and its lists), an idempotent retry, the journeys whose
//! payment is refused (by the sandbox's `tok_declined` and by unknown tokens), the provider
//! slow and down until the circuit opens and closes again (for a slice with a journey that
//! meets the provider down), bad input carrying personal data (invalid fields, unknown
//! fields, broken JSON, wrong media type, an oversized body, personal data in the query and
//! in the path, free text too long or with a NUL), and unauthorized calls carrying personal
//! data. Requests come from the catalog's routes and the fixture's opening body, personal
//! fields and route calls ([`crate::slices`]). Each run uses distinctive data: Korean and
//! Latin names with a random suffix, phone numbers with random digits written in six
//! formats, and card tokens of its own (the sandbox accepts only its fixed `tok_*` tokens,
//! so unknown ones are declined).
//!
//! Then it waits for the stack to settle and scans every line [`Captured`] holds (the whole
//! run: the other areas' flows too, at `debug` for clinicflow's crates) for
//! - every name it used, and the random part of each on its own;
//! - every phone number it used, in every format, and its 8 subscriber digits (and a foreign
//!   number, `+1 …`, in its formats);
//! - every card token it used, and anything starting with `tok_`;
//! - the fixed people the other areas open cases with ([`FIXTURE_PEOPLE`]);
//! - the confidential free texts (result notes, reasons) every fixture's steps send
//!   ([`Fixture::confidential`]), which its SMS are checked for too;
//! - any Korean mobile number: `+82 10…` (E.164, separators allowed) and `01[016789]…`.
//!
//! The masks the domain types print (`+82********78`, `프******`, `CardToken(***)`) are
//! fine; the detectors are checked at run time to flag each datum and none of its masks.
//! Lines the harness itself writes (target `clinicflow_reliability`) are not the product's
//! and are skipped. Zero lines scanned is a violation: the capture broke. So is a case of
//! this area that no captured line mentions.
//!
//! Cases: lines scanned. Violations: leaks, one per line and kind of datum, reported by
//! kind, field, message and target, never with the datum itself.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use clinicflow::domain::{PersonName, PhoneNumber};
use clinicflow::ports::CardToken;
use clinicflow::topology::{Method, PATIENT, Role, Route};
use clinicflow_tests::{LocalStack, fast_options};
use regex::Regex;
use serde_json::{Value, json};

use super::api::{Answer, Api, Call, FIXTURE_PEOPLE, Person, bearer, created_id};
use crate::logs::Captured;
use crate::slices::{self, Body, Driver, Fixture, Opens, Request, Sent, Step};
use crate::{AreaReport, Mode};

/// The prefix of every Korean name this area books with.
const KOREAN_STEM: &str = "프라이버시검사";
/// The prefix of every Latin name this area books with.
const LATIN_STEM: &str = "Privacy";

/// One person's distinctive data.
#[derive(Debug, Clone)]
struct Subject {
    korean: String,
    korean_suffix: String,
    latin: String,
    latin_suffix: String,
    /// The 8 digits after `010`.
    subscriber: String,
    /// A foreign (North American) number's 10 digits after `+1`.
    foreign: String,
}

impl Subject {
    fn new() -> Self {
        let korean_suffix: String = std::iter::repeat_with(|| char::from_u32(fastrand::u32(0xAC00..=0xD7A3)).unwrap_or('가'))
            .take(4)
            .collect();
        let latin_suffix: String = std::iter::once(fastrand::uppercase())
            .chain(std::iter::repeat_with(fastrand::lowercase).take(9))
            .collect();
        let subscriber = format!("{}{:07}", fastrand::u32(1..10), fastrand::u32(..10_000_000));
        Self {
            korean: format!("{KOREAN_STEM}{korean_suffix}"),
            korean_suffix,
            latin: format!("{LATIN_STEM} {latin_suffix}"),
            latin_suffix,
            subscriber,
            foreign: format!("4155{:06}", fastrand::u32(..1_000_000)),
        }
    }

    /// The foreign number in every format, named.
    fn foreign_phones(&self) -> Vec<(&'static str, String)> {
        let f = &self.foreign;
        vec![
            ("+1xxxxxxxxxx", format!("+1{f}")),
            ("+1 xxx xxx xxxx", format!("+1 {} {} {}", &f[..3], &f[3..6], &f[6..])),
            ("xxxxxxxxxx after +1", f.clone()),
        ]
    }

    /// The number in every format a client may send, named.
    fn phones(&self) -> Vec<(&'static str, String)> {
        phone_formats(&self.subscriber)
    }

    /// The phone in format `n` (cycling through the formats).
    fn phone(&self, n: usize) -> String {
        let all = self.phones();
        all[n % all.len()].1.clone()
    }
}

fn phone_formats(subscriber: &str) -> Vec<(&'static str, String)> {
    let (a, b) = subscriber.split_at(4);
    vec![
        ("010-xxxx-xxxx", format!("010-{a}-{b}")),
        ("010xxxxxxxx", format!("010{subscriber}")),
        ("+8210xxxxxxxx", format!("+8210{subscriber}")),
        ("+82 10 xxxx xxxx", format!("+82 10 {a} {b}")),
        ("010 xxxx xxxx", format!("010 {a} {b}")),
        ("+82-10-xxxx-xxxx", format!("+82-10-{a}-{b}")),
    ]
}

/// What the scan looks for: exact data and generic patterns, each with the kind it reports.
/// Phone needles (digits) count only between non-alphanumeric characters, so that a run of
/// digits inside an id is not taken for a number.
struct Detectors {
    needles: Vec<(String, String)>,
    phones: Vec<(String, String)>,
    patterns: Vec<(String, Regex)>,
}

/// Does `needle` occur in `text` with no ASCII letter or digit right before or after it?
fn contains_bounded(text: &str, needle: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.match_indices(needle)
        .any(|(at, _)| !alnum(text[..at].chars().next_back()) && !alnum(text[at + needle.len()..].chars().next()))
}

impl Detectors {
    fn new(subjects: &[Subject], tokens: &[String]) -> anyhow::Result<Self> {
        let mut needles = Vec::new();
        let mut phones = Vec::new();
        for s in subjects {
            needles.push(("a Korean name this run booked with".to_owned(), s.korean.clone()));
            needles.push(("the random part of a Korean name".to_owned(), s.korean_suffix.clone()));
            needles.push(("a Latin name this run booked with".to_owned(), s.latin.clone()));
            needles.push(("the random part of a Latin name".to_owned(), s.latin_suffix.clone()));
            for (format, phone) in s.phones() {
                phones.push((format!("a phone number this run used ({format} form)"), phone));
            }
            for (format, phone) in s.foreign_phones() {
                phones.push((format!("a foreign phone number this run used ({format} form)"), phone));
            }
            let (a, b) = s.subscriber.split_at(4);
            phones.push(("the 8 subscriber digits of a phone number".to_owned(), s.subscriber.clone()));
            phones.push(("the subscriber digits of a phone number (xxxx-xxxx)".to_owned(), format!("{a}-{b}")));
        }
        for t in tokens {
            needles.push(("a card token this run paid with".to_owned(), t.clone()));
        }
        for text in confidential() {
            needles.push((
                "a confidential free text a journey sent (a result note or a reason)".to_owned(),
                text.to_owned(),
            ));
        }
        for p in FIXTURE_PEOPLE {
            needles.push(("the name of a fixture person other areas book with".to_owned(), p.name.to_owned()));
            let subscriber: String = p.phone.chars().filter(char::is_ascii_digit).skip(3).collect();
            for (format, phone) in phone_formats(&subscriber) {
                phones.push((format!("a fixture person's phone number ({format} form)"), phone));
            }
        }
        let patterns = vec![
            (
                "a Korean mobile number (+82 pattern)".to_owned(),
                Regex::new(r"\+\s?82[\s.\-]?\(?0?\)?1[016789][\s.\-]?[0-9]{3,4}[\s.\-]?[0-9]{4}")?,
            ),
            (
                "a Korean mobile number (01x pattern)".to_owned(),
                Regex::new(r"(?:^|[^0-9A-Za-z])01[016789][\s.\-]?[0-9]{3,4}[\s.\-]?[0-9]{4}(?:[^0-9A-Za-z]|$)")?,
            ),
            ("a card token (tok_ prefix)".to_owned(), Regex::new(r"tok_")?),
        ];
        Ok(Self { needles, phones, patterns })
    }

    /// The kinds of personal data in `text`.
    fn kinds<'a>(&'a self, text: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let exact = self.needles.iter().filter(move |(_, n)| text.contains(n.as_str()));
        let phones = self.phones.iter().filter(move |(_, n)| contains_bounded(text, n));
        let generic = self.patterns.iter().filter(move |(_, r)| r.is_match(text)).map(|(k, _)| k.as_str());
        exact.chain(phones).map(|(k, _)| k.as_str()).chain(generic)
    }
}

/// The confidential free texts every fixture's steps send ([`Fixture::confidential`]).
fn confidential() -> impl Iterator<Item = &'static str> {
    slices::all().iter().flat_map(|f| f.confidential().iter().copied())
}

/// Every string (and number) in a JSON value, with its path; object keys count as strings.
fn leaves(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => out.push((path.to_owned(), s.clone())),
        Value::Number(n) => out.push((path.to_owned(), n.to_string())),
        Value::Array(items) => {
            for item in items {
                leaves(item, &format!("{path}[]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                out.push((format!("{here} (the key)"), k.clone()));
                leaves(v, &here, out);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// Where a leak was: kind of datum, field, message, target, level.
type Place = (String, String, String, String, String);

/// What the scan found.
#[derive(Debug, Default)]
struct Scan {
    scanned: u64,
    skipped: u64,
    leaks: u64,
    places: BTreeMap<Place, u64>,
}

/// Scans `lines`; the harness's own lines are skipped unless `harness` says otherwise.
fn scan_with(lines: &[String], detectors: &Detectors, harness: bool) -> Scan {
    let mut out = Scan::default();
    for line in lines {
        let parsed: Option<Value> = serde_json::from_str(line).ok();
        let text_of = |key: &str| parsed.as_ref().and_then(|v| v[key].as_str()).unwrap_or("?").to_owned();
        let target = text_of("target");
        if !harness && target.starts_with("clinicflow_reliability") {
            out.skipped += 1;
            continue;
        }
        out.scanned += 1;
        // Data carry no character JSON escapes, so a line whose raw text shows none holds none.
        if parsed.is_some() && detectors.kinds(line).next().is_none() {
            continue;
        }
        let mut fields = Vec::new();
        match &parsed {
            Some(v) => leaves(v, "", &mut fields),
            None => fields.push(("(not JSON: the whole line)".to_owned(), line.clone())),
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (field, text) in &fields {
            for kind in detectors.kinds(text) {
                seen.entry(kind).or_insert(field.as_str());
            }
        }
        for (kind, field) in seen {
            out.leaks += 1;
            let place = (
                kind.to_owned(),
                field.to_owned(),
                text_of("message"),
                target.clone(),
                text_of("level"),
            );
            *out.places.entry(place).or_default() += 1;
        }
    }
    out
}

/// Scans the product's lines.
fn scan(lines: &[String], detectors: &Detectors) -> Scan {
    scan_with(lines, detectors, false)
}

/// Checks the detectors against each datum (must flag) and its masks (must not).
fn self_check(detectors: &Detectors, subjects: &[Subject], tokens: &[String], report: &mut AreaReport) {
    let flagged = |text: &str| {
        let line = json!({"target": "clinicflow::canary", "message": "canary", "field": text}).to_string();
        scan(&[line], detectors).leaks > 0
    };
    let mut data: Vec<(&str, String)> = Vec::new();
    let mut masks: Vec<String> = vec![format!("{:?}", CardToken("tok_ok".into()))];
    for s in subjects {
        data.push(("a Korean name", s.korean.clone()));
        data.push(("a Latin name", s.latin.clone()));
        for (_, phone) in s.phones() {
            if let Ok(parsed) = PhoneNumber::parse(&phone) {
                masks.push(parsed.masked());
                masks.push(format!("{parsed:?}"));
            }
            data.push(("a phone number", phone));
        }
        for (_, phone) in s.foreign_phones().into_iter().take(2) {
            if let Ok(parsed) = PhoneNumber::parse(&phone) {
                masks.push(parsed.masked());
            }
            data.push(("a foreign phone number", phone));
        }
        for name in [&s.korean, &s.latin] {
            if let Ok(parsed) = PersonName::parse(name) {
                masks.push(parsed.masked());
                masks.push(format!("{parsed:?}"));
            }
        }
    }
    for t in tokens {
        data.push(("a card token", t.clone()));
    }
    for text in confidential() {
        data.push(("a confidential free text", text.to_owned()));
    }
    data.push(("an unknown Korean mobile number", "+82 10 9876 5432".to_owned()));
    data.push(("an unknown Korean mobile number", "phone=010-9876-5432".to_owned()));
    data.push(("an unknown card token", "tok_somebody_else".to_owned()));
    for (what, datum) in &data {
        if !flagged(datum) {
            report.violation(format!("privacy scan is blind: its detectors do not flag {what}"));
        }
    }
    for mask in &masks {
        if flagged(mask) {
            report.violation(format!(
                "privacy scan is wrong: it flags the masked form {:?} (masks are fine)",
                mask.chars().filter(|c| !c.is_ascii_digit()).collect::<String>()
            ));
        }
    }
}

/// Runs every flow, then scans every log line of the run.
pub async fn run(mode: Mode, logs: &Captured) -> anyhow::Result<AreaReport> {
    let mut report = AreaReport::new("privacy");
    let mut subjects = Vec::new();
    let mut tokens = vec![
        "tok_ok".to_owned(),
        "tok_declined".to_owned(),
        "tok_down".to_owned(),
        "tok_slow".to_owned(),
    ];
    let mut opened = Vec::new();
    let mut requests = 0;
    for round in 0..mode.pick(2, 1) {
        let mut flows = Flows::start(round, &mut report).await?;
        flows.run_all().await?;
        requests += flows.requests;
        subjects.append(&mut flows.subjects);
        tokens.append(&mut flows.tokens);
        opened.append(&mut flows.cases);
        flows.stack.shutdown().await;
    }

    // A canary through the real capture path: the JSON writer must keep the data findable.
    let canary = Subject::new();
    let marker = format!("privacy canary {}", fastrand::u64(..));
    tracing::info!(name = %canary.korean, phone = %canary.phone(0), "{marker}");
    subjects.push(canary);

    let detectors = Detectors::new(&subjects, &tokens)?;
    self_check(&detectors, &subjects, &tokens, &mut report);
    let lines = logs.lines();
    let canary_lines: Vec<String> = lines.iter().filter(|l| l.contains(&marker)).cloned().collect();
    if !lines.is_empty() && scan_with(&canary_lines, &detectors, true).leaks < 2 {
        report.violation("privacy scan is blind: a canary name and phone logged through the capture were not found".into());
    }
    let found = scan(&lines, &detectors);
    report.cases += found.scanned;
    if found.scanned == 0 {
        report.violation("no log line was captured: the capture is broken, so nothing was scanned".into());
    } else if let Some(missing) = opened.iter().find(|id| !lines.iter().any(|l| l.contains(id.as_str()))) {
        report.violation(format!(
            "no captured line mentions case {missing} of this area's flows: the capture misses the flows it should scan"
        ));
    }
    report.violations += found.leaks;
    for ((kind, field, message, target, level), n) in &found.places {
        if report.details.len() < 50 {
            report.details.push(format!(
                "leak: {kind} in field `{field}` of {level} {message:?} (target {target}): {n} line(s)"
            ));
        }
    }
    report.figure("log lines scanned", found.scanned);
    report.figure("leaks", found.leaks);
    report.figure("harness lines skipped", found.skipped);
    report.figure("flow requests sent", requests);
    report.figure("distinct people", subjects.len() as u64);
    Ok(report)
}

/// One round of flows on a stack of its own.
struct Flows<'r> {
    stack: LocalStack,
    api: Api,
    report: &'r mut AreaReport,
    round: usize,
    subjects: Vec<Subject>,
    tokens: Vec<String>,
    /// Every case this round opened.
    cases: Vec<String>,
    requests: u64,
    day: i64,
}

/// The routes of `f`'s slice.
fn routes_of(f: &dyn Fixture) -> impl Iterator<Item = &'static Route> + '_ {
    clinicflow::catalog()
        .routes
        .iter()
        .filter(move |r| !r.is_public() && slices::of_route(r).is_some_and(|g| g.slice() == f.slice()))
}

/// `value` with `field` set to `to`.
fn with(value: &Value, field: &str, to: Value) -> Value {
    let mut v = value.clone();
    v[field] = to;
    v
}

#[async_trait]
impl Driver for Flows<'_> {
    async fn send(&mut self, sub: &str, groups: &[&str], r: Request<'_>) -> anyhow::Result<Sent> {
        self.requests += 1;
        let auth = bearer(&slices::token(&self.stack, sub, groups));
        let headers: Vec<(&str, &str)> = r.key.map(|k| ("idempotency-key", k)).into_iter().collect();
        let call = Call {
            headers: &headers,
            ..Call::json(r.method, r.path, Some(&auth), r.body)
        };
        let answer = self.api.call(call).await?;
        Ok(Sent {
            status: answer.status,
            body: answer.body,
            retried: false,
        })
    }

    async fn ready(&mut self, fixture: &'static dyn Fixture, id: &str, step: Option<&Step>) -> anyhow::Result<bool> {
        Ok(slices::wait_ready_for(fixture, &self.stack, id, step, Duration::from_secs(10)).await)
    }
    async fn platform(&mut self) -> anyhow::Result<&clinicflow::app::Platform> {
        Ok(&self.stack.platform)
    }
}

impl<'r> Flows<'r> {
    async fn start(round: usize, report: &'r mut AreaReport) -> anyhow::Result<Self> {
        let stack = LocalStack::start(fast_options()).await?;
        let api = Api::new(&stack)?;
        Ok(Self {
            stack,
            api,
            report,
            round,
            subjects: Vec::new(),
            tokens: Vec::new(),
            cases: Vec::new(),
            requests: 0,
            day: 30,
        })
    }

    /// Prepares what an opening with `body` needs ([`Fixture::prepare`]); a failure is a
    /// violation (the openings that follow will say what it cost).
    async fn prepare(&mut self, f: &dyn Fixture, body: &Value) {
        if let Err(e) = f.prepare(&self.stack.platform, body).await {
            self.report
                .violation(format!("privacy: {} could not prepare an opening: {e:#}", f.slice()));
        }
    }

    fn subject(&mut self) -> Subject {
        let s = Subject::new();
        self.subjects.push(s.clone());
        s
    }

    fn patient_sub(&self, n: usize) -> String {
        format!("privacy-patient-{}-{n}", self.round)
    }

    fn patient(&self, n: usize) -> String {
        self.stack.token(&self.patient_sub(n), &[PATIENT.group])
    }

    /// A token of `role`: the case's owner (`owner`, a token) for the patient role, a staff
    /// member of this round otherwise (at their site, if they belong to one).
    fn token_of(&self, role: Role, owner: &str) -> String {
        if role == PATIENT {
            owner.to_owned()
        } else {
            slices::token(&self.stack, &format!("privacy-staff-{}-{}", self.round, role.group), &[role.group])
        }
    }

    fn day(&mut self) -> i64 {
        self.day += 1;
        self.day
    }

    /// Sends `call`; a status outside `allowed` is a violation (the flow did not run as
    /// planned, so the scan would prove less).
    async fn expect_status(&mut self, flow: &str, call: Call<'_>, allowed: &[u16]) -> Option<Answer> {
        self.requests += 1;
        match self.api.call(call).await {
            Ok(a) if allowed.contains(&a.status) => Some(a),
            Ok(a) => {
                self.report.violation(format!(
                    "privacy flow {flow:?}: expected {allowed:?}, got {} ({})",
                    a.status, a.body["detail"]
                ));
                None
            }
            Err(e) => {
                self.report.violation(format!("privacy flow {flow:?}: the request failed: {e}"));
                None
            }
        }
    }

    /// A token of the opener of a case of `f` owned by `owner` (a subject), and the body it
    /// sends for `body` ([`slices::opening_token`]).
    fn opener(&self, f: &dyn Fixture, owner: &str, body: &Value) -> (String, Value) {
        slices::opening_token(f, &self.stack, owner, body)
    }

    /// Opens a case of `f` owned by `owner` (a subject) with `body`, sent by its opener.
    async fn open(&mut self, f: &dyn Fixture, flow: &str, owner: &str, body: &Value, allowed: &[u16]) -> Option<String> {
        let (token, body) = self.opener(f, owner, body);
        let auth = bearer(&token);
        let answer = self
            .expect_status(flow, Call::json("POST", f.opening(), Some(&auth), Some(&body)), allowed)
            .await?;
        let id = created_id(&answer)?;
        if !self.cases.contains(&id) {
            self.cases.push(id.clone());
        }
        Some(id)
    }

    async fn ready_case(&mut self, f: &dyn Fixture, id: &str) {
        if !slices::wait_ready(f, &self.stack, id, Duration::from_secs(10)).await {
            self.report
                .violation(format!("privacy flow: {} case {id} never became ready", f.slice()));
        }
    }

    async fn run_all(&mut self) -> anyhow::Result<()> {
        for f in slices::all() {
            let first = self.journeys(*f).await?;
            self.idempotent_retry(*f).await;
            self.payments_refused(*f).await;
            self.bad_input(*f).await;
            self.unauthorized(*f, first.as_deref()).await;
            self.provider_trouble(*f).await;
        }
        if !self.stack.settle(Duration::from_secs(30)).await {
            self.report.violation("privacy flows: the stack did not settle within 30 s".into());
        }
        // No SMS says what a confidential free text said.
        for sms in self.stack.sms_sent().await? {
            self.report.cases += 1;
            if confidential().any(|text| sms.body.contains(text)) {
                self.report.violation(format!(
                    "leak: a confidential free text (a result note or a reason) in an SMS (seq {})",
                    sms.seq
                ));
            }
        }
        Ok(())
    }

    /// Every journey that opens a case, each case read back by every role its read routes
    /// allow; then the slice's lists. Returns the first case opened.
    async fn journeys(&mut self, f: &'static dyn Fixture) -> anyhow::Result<Option<String>> {
        let mut first = None;
        let opening: Vec<_> = f.journeys().iter().filter(|j| matches!(j.opens, Opens::Case(_))).collect();
        for (n, journey) in opening.into_iter().enumerate() {
            let s = self.subject();
            let (name, locale) = if n % 2 == 0 { (&s.korean, "ko") } else { (&s.latin, "en") };
            // Every fourth books with a foreign number.
            let phone = if n % 4 == 3 { s.foreign_phones()[1].1.clone() } else { s.phone(n) };
            let day = self.day();
            let body = f.open_body(
                day,
                &Person {
                    name,
                    phone: &phone,
                    locale,
                },
                journey.card,
            );
            self.prepare(f, &body).await;
            let owner = self.patient_sub(n);
            let walked = slices::walk(f, journey, self, &owner, &body, None).await?;
            for p in walked.problems {
                self.report.violation(format!("privacy flow {:?}: {p}", journey.name));
            }
            let Some(id) = walked.case.id else { continue };
            if !self.cases.contains(&id) {
                self.cases.push(id.clone());
            }
            first.get_or_insert_with(|| id.clone());
            // The owner and the staff read it back: staff who see only the cases that reached
            // their desk get 404 for the others ([`Fixture::staff_sees`]).
            let own = self.patient(n);
            let reads_case = |r: &&Route| r.method == Method::Get && f.route(r).is_some_and(|c| c.case);
            for route in routes_of(f).filter(reads_case) {
                let path = f.resolve(route.path, &id, &body);
                for role in route.roles {
                    let auth = bearer(&self.token_of(*role, &own));
                    let flow = format!("read the case as {}", role.group);
                    let sees = *role == PATIENT || f.staff_sees(&self.stack, &id, *role).await;
                    let status = if sees { 200 } else { 404 };
                    self.expect_status(&flow, Call::json("GET", &path, Some(&auth), None), &[status])
                        .await;
                }
            }
        }
        // The lists: routes naming no case, a place they name resolved by the fixture (a
        // site's waiting list).
        let owner = self.patient(0);
        let listed = f.open_body(self.day, &FIXTURE_PEOPLE[0], "tok_ok");
        for route in routes_of(f).filter(|r| r.method == Method::Get && !r.path.contains("{id}")) {
            let resolved = f.resolve(route.path, "", &listed);
            let path = f.route(route).map_or_else(|| resolved.clone(), |c| c.path(&resolved));
            for role in route.roles {
                let auth = bearer(&self.token_of(*role, &owner));
                let flow = format!("a list as {}", role.group);
                self.expect_status(&flow, Call::json("GET", &path, Some(&auth), None), &[200]).await;
            }
        }
        Ok(first)
    }

    /// An idempotent retry: the same key and body, answered twice the same way.
    async fn idempotent_retry(&mut self, f: &dyn Fixture) {
        let s = self.subject();
        let phone = s.phone(3);
        let day = self.day();
        let body = f.open_body(
            day,
            &Person {
                name: &s.korean,
                phone: &phone,
                locale: "ko",
            },
            "tok_ok",
        );
        self.prepare(f, &body).await;
        let (opener, body) = self.opener(f, &self.patient_sub(10), &body);
        let auth = bearer(&opener);
        let key = format!("privacy-{}", fastrand::u64(..));
        let headers = [("idempotency-key", key.as_str())];
        let mut ids = Vec::new();
        for _ in 0..2 {
            let call = Call {
                headers: &headers,
                ..Call::json("POST", f.opening(), Some(&auth), Some(&body))
            };
            if let Some(id) = self
                .expect_status("idempotent retry", call, &[201])
                .await
                .as_ref()
                .and_then(created_id)
            {
                ids.push(id);
            }
        }
        if ids.len() == 2 && ids[0] != ids[1] {
            self.report
                .violation("privacy flow \"idempotent retry\": the retry created a second case".into());
        }
        self.cases.extend(ids.into_iter().take(1));
    }

    /// The journeys refused for their card, with their card and with unknown tokens of this
    /// run's own.
    async fn payments_refused(&mut self, f: &dyn Fixture) {
        for journey in f.journeys() {
            let Opens::Refused(status) = journey.opens else { continue };
            let own_tokens = [format!("tok_prv{}", fastrand::u64(..)), format!("pm_privacy{}", fastrand::u64(..))];
            self.tokens.extend(own_tokens.iter().cloned());
            let cards: Vec<String> = std::iter::once(journey.card.to_owned()).chain(own_tokens).collect();
            for (n, card) in cards.iter().enumerate() {
                let s = self.subject();
                let patient = self.patient_sub(20 + n);
                let phone = s.phone(n + 1);
                let day = self.day();
                let body = f.open_body(
                    day,
                    &Person {
                        name: &s.latin,
                        phone: &phone,
                        locale: "en",
                    },
                    card,
                );
                self.prepare(f, &body).await;
                self.open(f, journey.name, &patient, &body, &[status]).await;
            }
        }
    }

    /// Personal data in every kind of bad input.
    async fn bad_input(&mut self, f: &'static dyn Fixture) {
        let s = self.subject();
        let patient = self.patient(30);
        let day = self.day();
        let phone = s.phone(0);
        let person = Person {
            name: &s.korean,
            phone: &phone,
            locale: "ko",
        };
        let valid = f.open_body(day, &person, "tok_ok");
        self.prepare(f, &valid).await;
        // The openings are sent by the slice's opener, for the patient.
        let (opener, valid) = self.opener(f, &self.patient_sub(30), &valid);
        let opening_auth = bearer(&opener);
        let fields = f.personal();
        let mut bodies = vec![
            ("invalid phone", with(&valid, fields.phone, json!(format!("{phone}9")))),
            ("phone with letters", with(&valid, fields.phone, json!(format!("{phone}a")))),
            ("name too long", with(&valid, fields.name, json!(s.korean.repeat(5)))),
            (
                "name with a control character",
                with(&valid, fields.name, json!(format!("{}\u{7}", s.latin))),
            ),
            ("unknown field with personal data", with(&valid, "mobile", json!(s.phone(1)))),
            ("wrong types", with(&valid, fields.name, json!([s.latin.clone()]))),
            (
                "phone as a number",
                with(
                    &valid,
                    fields.phone,
                    json!(format!("10{}", s.subscriber).parse::<u64>().unwrap_or(0)),
                ),
            ),
        ];
        if let Some(card) = fields.card {
            bodies.push((
                "card token with spaces",
                with(&valid, card, json!(format!("tok ok {}", s.subscriber))),
            ));
        }
        bodies.extend(f.invalid_openings(&valid));
        for (flow, body) in &bodies {
            self.expect_status(flow, Call::json("POST", f.opening(), Some(&opening_auth), Some(body)), &[422])
                .await;
        }
        let text = valid.to_string();
        let mut oversized = serde_json::Map::new();
        oversized.insert(fields.name.to_owned(), json!(s.latin.repeat(2000)));
        oversized.insert(fields.phone.to_owned(), json!(phone));
        let raw: [(&str, &str, Vec<u8>, u16); 4] = [
            ("broken JSON", "application/json", text.as_bytes()[..text.len() - 1].to_vec(), 400),
            (
                "trailing garbage",
                "application/json",
                format!("{text} {}", s.korean).into_bytes(),
                400,
            ),
            ("wrong media type", "text/plain", text.clone().into_bytes(), 415),
            (
                "oversized body",
                "application/json",
                Value::Object(oversized).to_string().into_bytes(),
                413,
            ),
        ];
        for (flow, content_type, bytes, status) in raw {
            let call = Call {
                method: "POST",
                path: f.opening(),
                authorization: Some(&opening_auth),
                body: Some((content_type, bytes)),
                headers: &[],
            };
            self.expect_status(flow, call, &[status]).await;
        }

        // Personal data in the URL: list parameters and filters, case ids, unknown paths.
        let subscriber = s.subscriber.clone();
        let mut queries: Vec<(String, String, u16)> = Vec::new();
        for route in routes_of(f).filter(|r| r.method == Method::Get) {
            let Some(role) = route.roles.first() else { continue };
            let who = self.token_of(*role, &patient);
            if route.path.contains("{id}") {
                queries.push((f.resolve(route.path, &format!("010{subscriber}"), &valid), who.clone(), 404));
                queries.push((f.resolve(route.path, &s.latin.replace(' ', "-"), &valid), who, 404));
                continue;
            }
            // A place the path names (a site) is the fixture's, as its staff would ask.
            let path = f.resolve(route.path, "", &valid);
            queries.push((format!("{path}?cursor={}", s.phone(1)), who.clone(), 422));
            queries.push((format!("{path}?name={}", s.latin.replace(' ', "%20")), who.clone(), 422));
            for filter in f.route(route).map_or(&[][..], |c| c.filters) {
                queries.push((format!("{path}?{filter}=010{subscriber}"), who.clone(), 422));
            }
        }
        queries.push((format!("/patients/010{subscriber}"), patient.clone(), 404));
        for (path, who, status) in &queries {
            let auth = bearer(who);
            self.expect_status("personal data in the URL", Call::json("GET", path, Some(&auth), None), &[*status])
                .await;
        }

        // Free text too long, and full of someone's details; free text with a NUL.
        for route in routes_of(f) {
            let Some(call) = f.route(route) else { continue };
            let (Some(field), true) = (call.text, call.case) else { continue };
            let other = self.subject();
            let owner = self.patient(31);
            let owner_sub = self.patient_sub(31);
            let other_phone = other.phone(2);
            let day = self.day();
            let body = f.open_body(
                day,
                &Person {
                    name: &other.latin,
                    phone: &other_phone,
                    locale: "en",
                },
                "tok_ok",
            );
            self.prepare(f, &body).await;
            let Some(id) = self.open(f, "case to send bad free text on", &owner_sub, &body, &[201]).await else {
                continue;
            };
            self.ready_case(f, &id).await;
            let base = match call.body {
                Body::Json(b) => b(),
                Body::Empty | Body::Opening => json!({}),
            };
            let path = route.path.replace("{id}", &id);
            let Some(role) = route.roles.first() else { continue };
            let auth = bearer(&self.token_of(*role, &owner));
            let long = with(&base, field, json!(format!("{} {} ", other.latin, other_phone).repeat(40)));
            self.expect_status(
                "over-long free text",
                Call::json(route.method.as_str(), &path, Some(&auth), Some(&long)),
                &[422],
            )
            .await;
            let nul = with(&base, field, json!(format!("{}\u{0}", other.korean)));
            self.expect_status(
                "free text with a NUL",
                Call::json(route.method.as_str(), &path, Some(&auth), Some(&nul)),
                &[422],
            )
            .await;
        }
    }

    /// Personal data sent without the right to send it.
    async fn unauthorized(&mut self, f: &dyn Fixture, case: Option<&str>) {
        let s = self.subject();
        let day = self.day();
        let phone = s.phone(4);
        let body = f.open_body(
            day,
            &Person {
                name: &s.korean,
                phone: &phone,
                locale: "ko",
            },
            "tok_ok",
        );
        self.prepare(f, &body).await;
        let expired = self
            .stack
            .tokens
            .issue(&format!("privacy-expired-{}", self.round), &[PATIENT.group.to_owned()], -600)
            .unwrap_or_default();
        let nobody = self.stack.token("privacy-no-role", &[]);
        let allowed = routes_of(f)
            .find(|r| r.method == Method::Post && r.path == f.opening())
            .map_or(&[][..], |r| r.roles);
        let mut calls: Vec<(String, Option<String>, u16)> = vec![
            ("no token".into(), None, 401),
            ("expired token".into(), Some(bearer(&expired)), 401),
            (
                "malformed token".into(),
                Some(bearer(&format!("{}.{}", s.latin_suffix, s.subscriber))),
                401,
            ),
        ];
        let patient = self.patient(41);
        for role in clinicflow::catalog().roles.iter().filter(|r| !allowed.contains(r)) {
            let token = self.token_of(*role, &patient);
            calls.push((format!("{} staff opening a case", role.group), Some(bearer(&token)), 403));
        }
        calls.push(("no role".into(), Some(bearer(&nobody)), 403));
        for (flow, auth, status) in &calls {
            self.expect_status(flow, Call::json("POST", f.opening(), auth.as_deref(), Some(&body)), &[*status])
                .await;
        }
        // Another patient's case is hidden, on every route of the case a patient may call.
        let Some(id) = case else { return };
        let intruder = bearer(&self.patient(40));
        for route in routes_of(f).filter(|r| r.path.contains("{id}") && r.roles.contains(&PATIENT)) {
            let path = route.path.replace("{id}", id);
            let body = f.route(route).and_then(|c| match c.body {
                Body::Json(b) => Some(b()),
                Body::Empty | Body::Opening => None,
            });
            let flow = format!("another patient's case ({} {})", route.method.as_str(), route.path);
            self.expect_status(
                &flow,
                Call::json(route.method.as_str(), &path, Some(&intruder), body.as_ref()),
                &[404],
            )
            .await;
        }
    }

    /// The provider slow and down until the circuit opens; then it closes again.
    async fn provider_trouble(&mut self, f: &dyn Fixture) {
        let Some(status) = f.journeys().iter().find_map(|j| match j.opens {
            Opens::Unavailable(status) => Some(status),
            Opens::Case(_) | Opens::Refused(_) => None,
        }) else {
            return;
        };
        let cool_down = self.stack.platform.config.payment.cool_down;
        for (n, card) in ["tok_slow", "tok_down", "tok_down", "tok_ok"].into_iter().enumerate() {
            let s = self.subject();
            let patient = self.patient_sub(50 + n);
            let phone = s.phone(n + 2);
            let day = self.day();
            let body = f.open_body(
                day,
                &Person {
                    name: &s.korean,
                    phone: &phone,
                    locale: "ko",
                },
                card,
            );
            self.prepare(f, &body).await;
            self.open(f, "payment provider slow or down", &patient, &body, &[status]).await;
        }
        tokio::time::sleep(cool_down + Duration::from_millis(200)).await;
        let s = self.subject();
        let patient = self.patient_sub(60);
        let phone = s.phone(5);
        let day = self.day();
        let body = f.open_body(
            day,
            &Person {
                name: &s.latin,
                phone: &phone,
                locale: "en",
            },
            "tok_ok",
        );
        self.prepare(f, &body).await;
        self.open(f, "payment provider back", &patient, &body, &[201]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detectors() -> (Detectors, Subject) {
        let s = Subject::new();
        let d = Detectors::new(std::slice::from_ref(&s), &["tok_ok".to_owned()]).expect("detectors");
        (d, s)
    }

    fn line(field: &str) -> String {
        json!({"target": "clinicflow::app", "level": "INFO", "message": "m", "error": field}).to_string()
    }

    #[test]
    fn every_format_of_a_phone_is_flagged_and_its_mask_is_not() {
        let (d, s) = detectors();
        for (_, phone) in s.phones() {
            assert!(scan(&[line(&phone)], &d).leaks > 0, "{phone}");
            let masked = PhoneNumber::parse(&phone).expect("valid").masked();
            assert_eq!(scan(&[line(&masked)], &d).leaks, 0, "{masked}");
        }
    }

    #[test]
    fn names_and_tokens_are_flagged_and_their_masks_are_not() {
        let (d, s) = detectors();
        for name in [&s.korean, &s.latin] {
            assert!(scan(&[line(name)], &d).leaks > 0);
            let masked = PersonName::parse(name).expect("valid").masked();
            assert_eq!(scan(&[line(&masked)], &d).leaks, 0);
        }
        assert!(scan(&[line("charged tok_anything")], &d).leaks > 0);
        assert_eq!(scan(&[line(&format!("{:?}", CardToken("tok_ok".into())))], &d).leaks, 0);
    }

    #[test]
    fn ids_timestamps_and_references_are_not_phone_numbers() {
        let (d, _) = detectors();
        for benign in [
            "01JD3M7Q0101234567800000AB",
            "2026-11-21T07:43:54.010123Z",
            "sbx_00000012",
            "slot#2026-12-01#basic",
            "+82********78",
        ] {
            assert_eq!(scan(&[line(benign)], &d).leaks, 0, "{benign}");
        }
    }

    #[test]
    fn the_harness_own_lines_are_skipped_and_a_leak_names_its_field_not_its_datum() {
        let (d, s) = detectors();
        let own = json!({"target": "clinicflow_reliability::areas", "message": s.korean}).to_string();
        let leak = json!({"target": "clinicflow::app", "level": "INFO", "message": "m", "span": {"who": s.latin}}).to_string();
        let found = scan(&[own, leak], &d);
        assert_eq!((found.scanned, found.skipped), (1, 1));
        let places: Vec<_> = found.places.keys().collect();
        assert!(places.iter().all(|(_, field, ..)| field == "span.who"), "{places:?}");
        assert!(places.iter().all(|(kind, field, message, ..)| !kind.contains(&s.latin_suffix)
            && !field.contains(&s.latin_suffix)
            && !message.contains(&s.latin_suffix)));
    }
}
