// The seed 002 scenarios (COVID testing), written once and run on every backend:
// `include!`d by `tests/tests/covid_scenarios.rs` (SQLite) and `tests/tests/covid_on_moto.rs`
// (the AWS adapters against a moto server), each of which defines `ON`. One or more tests
// per requirement of the seed and of issue 17, through the HTTP API only:
// - FR1 a citizen applies to the health centre (201 + Location, `applied`, an SMS at
//   application), bad input is a 422 naming each field and writes nothing, an unknown site
//   is a 422 listing the known ones, an Idempotency-Key applies once;
// - FR2 the application reaches its test site's waiting list asynchronously (oldest first,
//   no other site's), and the site's count rises;
// - FR3 the site's staff take the sample, then record the result; a result before the
//   sample is a 409; only the site's own staff record there (another site's staff: 403 on
//   the site's paths, 404 on its applications; no site claim: 403; other roles: 403);
// - FR5 a negative result gets a certificate, issued asynchronously, which its citizen
//   reads (no one else), which the public verifier (no token) finds valid with its holder,
//   result and expiry, and finds invalid with one byte changed or under another key, whose
//   public key is a JWK, and which the independent Python verifier accepts, refuses once
//   altered and reports expired past its expiry;
// - FR6 a positive result sends a transfer request to the transfer centre (its open
//   requests), which dispatches the citizen to an isolation centre (unknown: 422; an
//   admission before the dispatch: 409);
// - FR7/FR8 the isolation centre's board (free beds, occupants), admission (`isolated`),
//   release (`released`) freeing the bed exactly once;
// - NFR1 (the saga) the waiting count falls only when the test is taken, the citizen
//   withdraws before it (202), or a no-show is marked; a withdrawal after the sample is
//   refused (409 once the health centre knows, `refused` by the site otherwise); the count
//   always equals the applications waiting;
// - NFR2 fault isolation, every centre hearing the others asynchronously: applications
//   taken while the test site is down, each reaching the list once it recovers; the site
//   testing while the health centre is down; results recorded while the transfer centre is
//   down, and dispatches while the isolation centre is, each catching up once;
// - NFR3 (CQRS) the citizen's own view (status, site, result once known, certificate once
//   issued, transfer and isolation, timeline) and their list of applications, only theirs;
// - NFR4 four centres behind one API gateway: every scenario reaches all four through the
//   stack's single entry point, each centre's staff with their own role;
// - every delivery made twice: one certificate, one transfer, one SMS each, a bed freed once;
// - the race: dispatches for the last beds never put a centre over capacity;
// - the SMS at application, result ("your result is ready", with a link path), transfer and
//   release, never the result nor the name.
use std::time::Duration;

use clinicflow::flows::covid::config::{CovidConfig, IsolationCentre};
use clinicflow::flows::covid::faults;
use clinicflow_tests::{
    Client, LocalOptions, LocalStack, Reply, assert_problem, e164, error_fields, eventually, eventually_every, future_date, options_on,
    options_on_own_server, short_ref, sms, start_on, texts_to, timeline, wait_texts,
};
use serde_json::{Value, json};

/// How long any eventual effect may take before a test gives up.
const PATIENCE: Duration = Duration::from_secs(20);
/// The pause between polls that list SMS (on moto, a read of its whole state).
const GENTLY: Duration = Duration::from_millis(200);
/// How long the load scenarios may take to settle.
const LOAD_PATIENCE: Duration = Duration::from_secs(180);
/// Applications taken while the test site is down: fewer on moto, which serializes every
/// DynamoDB call in one Python process.
const LOAD: usize = if matches!(ON, On::Moto) { 20 } else { 50 };
/// Positive citizens racing for an isolation centre's last two beds.
const RACERS: usize = 5;
/// The test sites configured by default, as a refusal lists them.
const SITES: &str = "gangnam, mapo";
/// The isolation centres configured by default, as a refusal lists them.
const CENTRES: &str = "incheon, suwon";
/// The test site most scenarios apply at.
const MAPO: &str = "mapo";
/// Its display name.
const MAPO_NAME: &str = "마포구 선별진료소";
/// Another test site.
const GANGNAM: &str = "gangnam";
/// The isolation centre most scenarios dispatch to.
const INCHEON: &str = "incheon";
/// Another isolation centre.
const SUWON: &str = "suwon";
/// The beds of each isolation centre by default.
const BEDS: u64 = 50;
/// The citizen's name (the certificate's holder).
const NAME: &str = "김서연";
/// What no SMS may say: the results, as the API and as Korean say them.
const RESULT_WORDS: [&str; 4] = ["negative", "positive", "음성", "양성"];
/// An id no application has.
const NOBODY: &str = "01KBHSP0000000000000000ZZZ";

fn citizen(stack: &LocalStack, sub: &str) -> Client {
    Client::new(stack, sub, &["patient"])
}

/// A member of test site `site`'s staff (their token's `custom:site`).
fn site_staff(stack: &LocalStack, site: &str) -> Client {
    Client::with_token(stack, &stack.token_at(&format!("{site}-staff"), &["test-site"], site))
}

/// The transfer centre's staff (the transfer centre is one: no site).
fn dispatcher(stack: &LocalStack) -> Client {
    Client::new(stack, "dispatcher-1", &["transfer-centre"])
}

/// A member of isolation centre `centre`'s staff (their token's `custom:site`).
fn isolation_staff(stack: &LocalStack, centre: &str) -> Client {
    Client::with_token(stack, &stack.token_at(&format!("{centre}-staff"), &["isolation-centre"], centre))
}

async fn settled(stack: &LocalStack) {
    assert!(stack.settle(PATIENCE).await, "the stack did not settle");
}

/// The load scenarios' wait: hundreds of events to project and deliver, on moto at its pace.
async fn settled_after_load(stack: &LocalStack) {
    assert!(stack.settle(LOAD_PATIENCE).await, "the stack did not settle after the load");
}

/// `options` with isolation centre `incheon` of `beds` beds (and `suwon` of the default 50).
fn with_incheon_beds(mut options: LocalOptions, beds: u32) -> LocalOptions {
    options.config.slice_mut::<CovidConfig>().centres = vec![
        IsolationCentre { id: INCHEON.into(), beds },
        IsolationCentre {
            id: SUWON.into(),
            beds: 50,
        },
    ];
    options
}

fn id_of(r: &Reply) -> String {
    r.body["id"].as_str().unwrap_or_else(|| panic!("an id in {:?}", r.body)).to_owned()
}

fn items(page: &Value) -> Vec<Value> {
    page["items"].as_array().cloned().unwrap_or_else(|| panic!("a page: {page:?}"))
}

fn ids_of(list: &[Value]) -> Vec<String> {
    list.iter().map(|v| v["id"].as_str().expect("an id").to_owned()).collect()
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

/// How many times the view's timeline shows `step`.
fn count(view: &Value, step: &str) -> usize {
    timeline(view).iter().filter(|s| *s == step).count()
}

/// When a view or a list item was created.
fn created(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v["created_at"].as_str().expect("created_at").parse().expect("a time")
}

/// A time field of `v`, as Unix seconds.
fn seconds(v: &Value, field: &str) -> i64 {
    v[field]
        .as_str()
        .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
        .unwrap_or_else(|| panic!("a time in {field}: {v:?}"))
        .timestamp()
}

/// The detail of the problem's error on `field`.
fn error_detail(r: &Reply, field: &str) -> String {
    r.body["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|e| e["field"] == field))
        .and_then(|e| e["detail"].as_str())
        .unwrap_or_else(|| panic!("no error on {field}: {:?}", r.body))
        .to_owned()
}

/// An application at `site` for tomorrow, texted to `phone`.
fn application(site: &str, phone: &str) -> Value {
    json!({"site": site, "date": future_date(1), "name": NAME, "phone": phone})
}

/// `who` applies with `body`; returns the application's id.
async fn apply_with(who: &Client, body: &Value) -> String {
    let r = who.post("/covid/applications", body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    id_of(&r)
}

/// `who` applies at `site`, texted at `phone`; returns the application's id.
async fn apply(who: &Client, site: &str, phone: &str) -> String {
    apply_with(who, &application(site, phone)).await
}

/// The site's waiting list as its staff read it, every page: its count and the ids listed.
async fn queue(stack: &LocalStack, site: &str) -> (u64, Vec<String>) {
    let staff = site_staff(stack, site);
    let mut waiting = None;
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/covid/sites/{site}/queue?limit=100&cursor={c}"),
            None => format!("/covid/sites/{site}/queue?limit=100"),
        };
        let r = staff.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        waiting.get_or_insert_with(|| r.body["waiting"].as_u64().unwrap_or_else(|| panic!("a count: {:?}", r.body)));
        ids.extend(ids_of(&items(&r.body)));
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (waiting.unwrap_or_default(), ids),
        }
    }
}

/// The site's count, as its staff read it.
async fn waiting_count(stack: &LocalStack, site: &str) -> u64 {
    let r = site_staff(stack, site).get(&format!("/covid/sites/{site}/queue?limit=1")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["waiting"].as_u64().unwrap_or_else(|| panic!("a count: {:?}", r.body))
}

/// Waits until the site's waiting list holds exactly `want` (in any order) and its count
/// says as many; returns the ids in the order listed.
async fn wait_queue(stack: &LocalStack, site: &str, want: &[String]) -> Vec<String> {
    let want = sorted(want);
    let listed = eventually(PATIENCE, || async {
        let (waiting, ids) = queue(stack, site).await;
        (usize::try_from(waiting).ok() == Some(want.len()) && sorted(&ids) == want).then_some(ids)
    })
    .await;
    match listed {
        Some(ids) => ids,
        None => panic!("the {site} waiting list never came to {want:?}: {:?}", queue(stack, site).await),
    }
}

/// Waits until application `id` is on the site's waiting list.
async fn wait_queued(stack: &LocalStack, site: &str, id: &str) {
    let queued = eventually(PATIENCE, || async {
        queue(stack, site).await.1.iter().any(|q| q == id).then_some(())
    })
    .await;
    assert!(queued.is_some(), "application {id} never reached the {site} waiting list");
}

/// Waits until the view of application `id`, as `client` reads it, is `ready`; returns it.
async fn wait_view<F: Fn(&Value) -> bool>(client: &Client, id: &str, what: &str, ready: F) -> Value {
    let path = format!("/covid/applications/{id}");
    let seen = eventually(PATIENCE, || async {
        let r = client.get(&path).await;
        (r.status == 200 && ready(&r.body)).then_some(r.body)
    })
    .await;
    match seen {
        Some(view) => view,
        None => panic!("application {id} never showed {what}: {:?}", client.get(&path).await.body),
    }
}

/// Every step of a positive citizen's view, from application to release.
const JOURNEY: [&str; 8] = [
    "applied",
    "waiting",
    "sampled",
    "result",
    "transfer-requested",
    "dispatched",
    "isolated",
    "released",
];

/// Waits until the view of application `id`, as `client` reads it, shows `status` and has
/// each of `steps` in its timeline: a status and a step may come from two centres' events,
/// folded in either order.
async fn wait_steps(client: &Client, id: &str, status: &str, steps: &[&str]) -> Value {
    let what = format!("{status} with the steps {steps:?}");
    wait_view(client, id, &what, |v| {
        v["status"] == status && steps.iter().all(|s| count(v, s) > 0)
    })
    .await
}

/// Waits until the view of application `id`, as `client` reads it, shows `status`.
async fn wait_status(client: &Client, id: &str, status: &str) -> Value {
    wait_view(client, id, status, |v| v["status"] == status).await
}

/// Site staff of `site` do `action` (`sample`, `noshow`) on application `id`.
async fn at_site(stack: &LocalStack, site: &str, id: &str, action: &str) -> Reply {
    site_staff(stack, site)
        .post_empty(&format!("/covid/applications/{id}/{action}"))
        .await
}

/// Site staff of `site` take the sample of application `id`.
async fn sample(stack: &LocalStack, site: &str, id: &str) {
    let r = at_site(stack, site, id, "sample").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "sampled", "{:?}", r.body);
}

/// Site staff of `site` record `result` for application `id`.
async fn record(stack: &LocalStack, site: &str, id: &str, result: &str) -> Reply {
    site_staff(stack, site)
        .post(&format!("/covid/applications/{id}/result"), &json!({"result": result}))
        .await
}

/// `who` applies at `site`; once the application is on the site's list, its sample is taken
/// and `result` recorded. Returns the application's id.
async fn tested(stack: &LocalStack, who: &Client, site: &str, phone: &str, result: &str) -> String {
    let id = apply(who, site, phone).await;
    wait_queued(stack, site, &id).await;
    sample(stack, site, &id).await;
    let r = record(stack, site, &id, result).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "resulted", "{:?}", r.body);
    id
}

/// The transfer centre's transfers of `status`.
async fn transfers(stack: &LocalStack, status: &str) -> Vec<Value> {
    let r = dispatcher(stack).get(&format!("/covid/transfers?status={status}&limit=100")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    items(&r.body)
}

/// Waits until application `id`'s transfer is listed among the transfers of `status`;
/// returns it.
async fn wait_transfer(stack: &LocalStack, id: &str, status: &str) -> Value {
    eventually(PATIENCE, || async {
        transfers(stack, status).await.into_iter().find(|t| t["id"] == id)
    })
    .await
    .unwrap_or_else(|| panic!("transfer {id} never listed {status}"))
}

/// The transfer centre dispatches application `id`'s citizen to `centre`.
async fn dispatch(stack: &LocalStack, id: &str, centre: &str) -> Reply {
    dispatcher(stack)
        .post(&format!("/covid/transfers/{id}/dispatch"), &json!({"isolation_centre": centre}))
        .await
}

/// An isolation centre's board as its staff read it, with its stays of `status`.
async fn board(stack: &LocalStack, centre: &str, status: &str) -> Value {
    let r = isolation_staff(stack, centre)
        .get(&format!("/covid/isolation/{centre}?status={status}&limit=100"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// The centre's free beds.
async fn free_beds(stack: &LocalStack, centre: &str) -> u64 {
    let b = board(stack, centre, "isolated").await;
    b["free_beds"].as_u64().unwrap_or_else(|| panic!("free beds: {b:?}"))
}

/// Waits until the centre has `n` free beds.
async fn wait_free_beds(stack: &LocalStack, centre: &str, n: u64) {
    let freed = eventually(PATIENCE, || async { (free_beds(stack, centre).await == n).then_some(()) }).await;
    assert!(
        freed.is_some(),
        "{centre} never had {n} free beds: {}",
        free_beds(stack, centre).await
    );
}

/// Waits until the centre's board lists application `id` among its stays of `status`.
async fn wait_on_board(stack: &LocalStack, centre: &str, id: &str, status: &str) -> Value {
    eventually(PATIENCE, || async {
        items(&board(stack, centre, status).await).into_iter().find(|s| s["id"] == id)
    })
    .await
    .unwrap_or_else(|| panic!("{id} never on the {centre} board as {status}"))
}

/// Isolation staff of `centre` do `action` (`admit`, `release`) on application `id`.
async fn at_isolation(stack: &LocalStack, centre: &str, id: &str, action: &str) -> Reply {
    isolation_staff(stack, centre)
        .post_empty(&format!("/covid/isolation/{id}/{action}"))
        .await
}

/// Waits until the citizen's view of application `id` names its certificate; returns the
/// certificate as its citizen reads it.
async fn wait_certificate(owner: &Client, id: &str) -> Value {
    let view = wait_view(owner, id, "its certificate", |v| v["certificate"].is_object()).await;
    let certificate = view["certificate"]["id"].as_str().expect("a certificate id");
    let r = owner.get(&format!("/covid/certificates/{certificate}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// The public verifier's answer for `payload`, asked without a token.
async fn verify(stack: &LocalStack, payload: &str) -> Reply {
    Client::anonymous(stack)
        .post("/covid/certificates/verify", &json!({"payload": payload}))
        .await
}

/// The public key, asked without a token.
async fn public_key(stack: &LocalStack) -> Value {
    let r = Client::anonymous(stack).get("/covid/certificates/key").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

/// The independent verifier's (`tests/verifiers/verify_sealed.py`) answer to `request`:
/// `{payload, jwk, now}` (one answer) or `{payloads, jwk, now}` (a list of answers).
async fn verify_outside(request: Value) -> Value {
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/verifiers/verify_sealed.py");
        let mut child = std::process::Command::new(clinicflow_tests::moto::python())
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python runs (./scripts/test.sh installs cbor2 and cryptography in .venv)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(request.to_string().as_bytes())
            .expect("request written");
        let out = child.wait_with_output().expect("the verifier ends");
        assert!(
            out.status.success(),
            "the verifier failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("the verifier answers JSON")
    })
    .await
    .expect("the verifier's task")
}

/// `payload` with the byte at `at` of its COSE bytes changed.
fn one_byte_changed(payload: &str, at: usize) -> String {
    let prefix = clinicflow::sealing::PREFIX;
    let mut bytes = base45::decode(&payload[prefix.len()..]).expect("base45");
    bytes[at] = bytes[at].wrapping_add(1);
    format!("{prefix}{}", base45::encode(&bytes))
}

/// How many bytes `payload`'s COSE structure has.
fn cose_len(payload: &str) -> usize {
    base45::decode(&payload[clinicflow::sealing::PREFIX.len()..]).expect("base45").len()
}

/// An SMS says no result, in any language, and not the citizen's name.
fn assert_says_no_result(text: &str) {
    let lower = text.to_lowercase();
    for word in RESULT_WORDS {
        assert!(!lower.contains(word), "a result ({word}) in an SMS: {text}");
    }
    assert!(!text.contains(NAME), "the citizen's name in an SMS: {text}");
}

/// Every SMS the stack sent says no result.
async fn assert_no_sms_says_a_result(stack: &LocalStack) {
    for s in sms(stack).await {
        assert_says_no_result(s["body"].as_str().expect("sms body"));
    }
}

// FR1 — a citizen applies to the health centre.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_a_citizen_applies_and_gets_201_with_its_location_the_applied_view_and_an_sms() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr1-citizen");
    let phone = "010-7100-0001";
    let date = future_date(2);
    let r = me
        .post(
            "/covid/applications",
            &json!({"site": MAPO, "date": date, "name": NAME, "phone": phone}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = id_of(&r);
    assert_eq!(r.location.as_deref(), Some(format!("/covid/applications/{id}").as_str()));
    for (field, want) in [
        ("status", json!("applied")),
        ("name", json!(NAME)),
        ("site", json!(MAPO)),
        ("site_name", json!(MAPO_NAME)),
        ("date", json!(date)),
        ("withdrawal", Value::Null),
        ("sampled_at", Value::Null),
        ("result", Value::Null),
        ("certificate", Value::Null),
        ("transfer", Value::Null),
        ("isolation", Value::Null),
    ] {
        assert_eq!(r.body[field], want, "{field}: {:?}", r.body);
    }
    assert_eq!(timeline(&r.body), ["applied"]);

    let texts = wait_texts(&stack, &e164(phone), 1).await;
    settled(&stack).await;
    let texts_now = texts_to(&stack, &e164(phone)).await;
    assert_eq!(texts_now.len(), 1, "one SMS at application: {texts_now:?}");
    assert!(
        texts[0].contains(short_ref(&id)) && texts[0].contains("신청이 접수") && texts[0].contains(MAPO_NAME),
        "the application, its site and its reference: {texts:?}"
    );
    assert_says_no_result(&texts[0]);
    let view = wait_status(&me, &id, "waiting").await;
    assert_eq!(view["site"], MAPO);

    // In English on request.
    let english = "010-7100-0002";
    let mut body = application(GANGNAM, english);
    body["locale"] = json!("en");
    let en = apply_with(&me, &body).await;
    let texts = wait_texts(&stack, &e164(english), 1).await;
    assert!(
        texts[0].contains("application") && texts[0].contains("is received") && texts[0].contains(short_ref(&en)),
        "{texts:?}"
    );
    assert_problem(
        &Client::anonymous(&stack)
            .post("/covid/applications", &application(MAPO, phone))
            .await,
        401,
    );
    for staff in [site_staff(&stack, MAPO), dispatcher(&stack), isolation_staff(&stack, INCHEON)] {
        assert_problem(&staff.post("/covid/applications", &application(MAPO, phone)).await, 403);
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_bad_input_is_a_422_naming_each_field_an_unknown_site_lists_the_known_ones_and_nothing_is_written() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr1-bad");
    let phone = "010-7100-0101";

    let unknown = me.post("/covid/applications", &application("jongno", phone)).await;
    assert_problem(&unknown, 422);
    assert_eq!(error_fields(&unknown), ["site"]);
    let detail = error_detail(&unknown, "site");
    assert!(detail.contains(SITES), "the known sites are listed: {detail}");

    let missing = me.post("/covid/applications", &json!({})).await;
    assert_problem(&missing, 422);
    let fields = error_fields(&missing);
    for f in ["site", "date", "name", "phone"] {
        assert!(fields.contains(&f.to_owned()), "{f} named: {:?}", missing.body);
    }

    let all_wrong = me
        .post(
            "/covid/applications",
            &json!({"site": "jongno", "date": "2000-01-01", "name": "", "phone": "12", "locale": "fr"}),
        )
        .await;
    assert_problem(&all_wrong, 422);
    let fields = error_fields(&all_wrong);
    for f in ["site", "date", "name", "phone", "locale"] {
        assert!(fields.contains(&f.to_owned()), "{f} named: {:?}", all_wrong.body);
    }

    for (field, value) in [
        ("date", json!(future_date(60))),
        ("date", json!("02-03-2027")),
        ("phone", json!("12")),
        ("name", json!("   ")),
    ] {
        let mut body = application(MAPO, phone);
        body[field] = value.clone();
        let r = me.post("/covid/applications", &body).await;
        assert_problem(&r, 422);
        assert_eq!(error_fields(&r), [field], "{field} = {value}: {:?}", r.body);
    }

    let mut typo = application(MAPO, phone);
    typo["sitee"] = json!(GANGNAM);
    let unknown_field = me.post("/covid/applications", &typo).await;
    assert_problem(&unknown_field, 422);
    assert_eq!(error_fields(&unknown_field), ["sitee"]);

    let raw = me
        .send_raw("POST", "/covid/applications", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(raw.status, 400, "{:?}", raw.body);

    settled(&stack).await;
    let mine = me.get("/covid/applications").await;
    assert_eq!(mine.status, 200, "{:?}", mine.body);
    assert!(items(&mine.body).is_empty(), "nothing applied: {:?}", mine.body);
    assert_eq!(queue(&stack, MAPO).await, (0, Vec::new()), "nobody waiting");
    assert!(sms(&stack).await.is_empty(), "nobody texted");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_the_same_idempotency_key_applies_once() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr1-idem");
    let phone = "010-7100-0201";
    let body = application(MAPO, phone);
    let key = [("idempotency-key", "covid-7d1f0c2a")];
    let first = me.send("POST", "/covid/applications", Some(&body), &key).await;
    let again = me.send("POST", "/covid/applications", Some(&body), &key).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(first.body["id"], again.body["id"], "the same application");
    assert_eq!(again.location, first.location);
    let id = id_of(&first);
    let mut other = body.clone();
    other["site"] = json!(GANGNAM);
    assert_problem(&me.send("POST", "/covid/applications", Some(&other), &key).await, 422);

    wait_queue(&stack, MAPO, std::slice::from_ref(&id)).await;
    settled(&stack).await;
    let mine = items(&me.get("/covid/applications").await.body);
    assert_eq!(ids_of(&mine), std::slice::from_ref(&id), "one application");
    assert_eq!(queue(&stack, MAPO).await, (1, vec![id.clone()]), "waiting once, counted once");
    assert_eq!(queue(&stack, GANGNAM).await, (0, Vec::new()));
    assert_eq!(texts_to(&stack, &e164(phone)).await.len(), 1, "texted once");
    stack.shutdown().await;
}

// FR2 — the application reaches its test site's waiting list.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr2_an_application_reaches_its_sites_waiting_list_asynchronously_oldest_first_and_no_other_site() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr2-citizen");
    let first = apply(&me, MAPO, "010-7200-0001").await;
    wait_queue(&stack, MAPO, std::slice::from_ref(&first)).await;
    let second = apply(&me, MAPO, "010-7200-0002").await;
    let elsewhere = apply(&me, GANGNAM, "010-7200-0003").await;

    let listed = wait_queue(&stack, MAPO, &[first.clone(), second.clone()]).await;
    assert_eq!(listed, [first.clone(), second.clone()], "oldest first");
    wait_queue(&stack, GANGNAM, std::slice::from_ref(&elsewhere)).await;
    let page = site_staff(&stack, MAPO).get("/covid/sites/mapo/queue").await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    assert_eq!(page.body["waiting"], 2, "{:?}", page.body);
    assert_eq!(page.body["next_cursor"], Value::Null);
    let on_list = items(&page.body);
    assert!(created(&on_list[0]) <= created(&on_list[1]));
    for v in &on_list {
        assert_eq!(v["status"], "waiting", "{v:?}");
        assert_eq!(v["site"], MAPO, "{v:?}");
        assert_eq!(v["name"], NAME, "the site calls the citizen by name: {v:?}");
    }

    // Pages of one, with a cursor.
    let one = site_staff(&stack, MAPO).get("/covid/sites/mapo/queue?limit=1").await;
    assert_eq!(ids_of(&items(&one.body)), std::slice::from_ref(&first));
    let cursor = one.body["next_cursor"].as_str().expect("a next page");
    let next = site_staff(&stack, MAPO)
        .get(&format!("/covid/sites/mapo/queue?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(ids_of(&items(&next.body)), std::slice::from_ref(&second));
    for (query, field) in [("limit=0", "limit"), ("cursor=nope", "cursor"), ("colour=red", "colour")] {
        let r = site_staff(&stack, MAPO).get(&format!("/covid/sites/mapo/queue?{query}")).await;
        assert_problem(&r, 422);
        assert_eq!(error_fields(&r), [field], "{query}: {:?}", r.body);
    }

    let view = wait_steps(&me, &first, "waiting", &["waiting"]).await;
    assert_eq!(count(&view, "waiting"), 1, "{view:?}");
    assert_eq!(timeline(&view)[0], "applied", "{view:?}");
    stack.shutdown().await;
}

// FR3 — the test: the sample, then the result, by the site's own staff only.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_site_staff_take_the_sample_then_record_the_result_and_a_result_before_the_sample_is_a_409() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr3-citizen");
    let staff = site_staff(&stack, MAPO);
    let id = apply(&me, MAPO, "010-7300-0001").await;
    let result_path = format!("/covid/applications/{id}/result");
    wait_queued(&stack, MAPO, &id).await;

    assert_problem(&staff.post(&result_path, &json!({"result": "negative"})).await, 409);
    let r = at_site(&stack, MAPO, &id, "sample").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.body["id"].clone(), r.body["site"].clone(), r.body["status"].clone()),
        (json!(id), json!(MAPO), json!("sampled"))
    );
    let sampled_at = seconds(&r.body, "sampled_at");
    assert_eq!(
        at_site(&stack, MAPO, &id, "sample").await.status,
        200,
        "taking the sample twice is harmless"
    );
    let view = wait_status(&me, &id, "sampled").await;
    assert_eq!(seconds(&view, "sampled_at"), sampled_at, "{view:?}");
    assert_eq!(view["result"], Value::Null);

    for (body, field) in [
        (json!({"result": "maybe"}), "result"),
        (json!({}), "result"),
        (json!({"result": 7}), "result"),
        (json!({"result": "negative", "note": "clear"}), "note"),
    ] {
        let r = staff.post(&result_path, &body).await;
        assert_problem(&r, 422);
        assert_eq!(error_fields(&r), [field], "{body}: {:?}", r.body);
    }
    let r = record(&stack, MAPO, &id, "negative").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "resulted", "{:?}", r.body);
    assert_eq!(
        record(&stack, MAPO, &id, "negative").await.status,
        200,
        "the same result again is harmless"
    );
    assert_problem(&record(&stack, MAPO, &id, "positive").await, 409);
    assert_problem(&at_site(&stack, MAPO, &id, "noshow").await, 409);

    let view = wait_steps(&me, &id, "negative", &["sampled", "result"]).await;
    assert_eq!(view["result"], "negative", "{view:?}");
    assert_eq!(count(&view, "sampled"), 1, "{view:?}");
    assert_eq!(count(&view, "result"), 1, "{view:?}");
    assert_problem(&at_site(&stack, MAPO, NOBODY, "sample").await, 404);
    assert_problem(&at_site(&stack, MAPO, "not-an-id", "sample").await, 404);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_only_a_sites_own_staff_read_its_list_and_record_there() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr3-matrix");
    let id = apply(&me, MAPO, "010-7300-0101").await;
    wait_queued(&stack, MAPO, &id).await;
    let (mapo, gangnam) = (site_staff(&stack, MAPO), site_staff(&stack, GANGNAM));
    let siteless = Client::new(&stack, "siteless-staff", &["test-site"]);
    let misplaced = Client::with_token(&stack, &stack.token_at("misplaced-staff", &["test-site"], INCHEON));

    // Another site's staff: 403 on the site's list, its applications not found.
    assert_problem(&gangnam.get("/covid/sites/mapo/queue").await, 403);
    assert_problem(&gangnam.get(&format!("/covid/applications/{id}")).await, 404);
    for action in ["sample", "noshow"] {
        assert_problem(&gangnam.post_empty(&format!("/covid/applications/{id}/{action}")).await, 404);
    }
    assert_problem(
        &gangnam
            .post(&format!("/covid/applications/{id}/result"), &json!({"result": "negative"}))
            .await,
        404,
    );
    // No site, or a site that is no test site: 403.
    for nowhere in [&siteless, &misplaced] {
        assert_problem(&nowhere.get("/covid/sites/mapo/queue").await, 403);
        assert_problem(&nowhere.post_empty(&format!("/covid/applications/{id}/sample")).await, 403);
        assert_problem(&nowhere.get(&format!("/covid/applications/{id}")).await, 404);
    }
    // An unknown site: 422 listing the known ones.
    let unknown = gangnam.get("/covid/sites/jongno/queue").await;
    assert_problem(&unknown, 422);
    assert_eq!(error_fields(&unknown), ["site"]);
    assert!(error_detail(&unknown, "site").contains(SITES), "{:?}", unknown.body);
    // Other roles: 403.
    for other in [citizen(&stack, "fr3-matrix"), dispatcher(&stack), isolation_staff(&stack, INCHEON)] {
        assert_problem(&other.get("/covid/sites/mapo/queue").await, 403);
        assert_problem(&other.post_empty(&format!("/covid/applications/{id}/sample")).await, 403);
        assert_problem(
            &other
                .post(&format!("/covid/applications/{id}/result"), &json!({"result": "positive"}))
                .await,
            403,
        );
        assert_problem(&other.post_empty(&format!("/covid/applications/{id}/noshow")).await, 403);
    }
    assert_problem(&Client::anonymous(&stack).get("/covid/sites/mapo/queue").await, 401);

    settled(&stack).await;
    assert_eq!(queue(&stack, MAPO).await, (1, vec![id.clone()]), "nothing recorded by the others");
    assert_eq!(wait_status(&me, &id, "waiting").await["sampled_at"], Value::Null);
    // The site's own staff read it and record there.
    let read = mapo.get(&format!("/covid/applications/{id}")).await;
    assert_eq!(read.status, 200, "{:?}", read.body);
    sample(&stack, MAPO, &id).await;
    assert_eq!(record(&stack, MAPO, &id, "negative").await.status, 200);
    stack.shutdown().await;
}

// NFR1 (the saga) — the waiting count falls only when the citizen leaves the list.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr1_the_waiting_count_rises_at_application_and_falls_only_at_the_sample_a_withdrawal_or_a_noshow() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "nfr1-citizen");
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(apply(&me, MAPO, &format!("010-7400-000{i}")).await);
        wait_queue(&stack, MAPO, &ids).await;
    }
    let (sampled, withdrawn, absent, left) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    sample(&stack, MAPO, sampled).await;
    assert_eq!(waiting_count(&stack, MAPO).await, 3, "the sample drops the count in its own write");
    wait_queue(&stack, MAPO, &ids[1..]).await;

    let r = me.post_empty(&format!("/covid/applications/{withdrawn}/withdraw")).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(
        (r.body["id"].clone(), r.body["withdrawal"].clone()),
        (json!(withdrawn), json!("requested")),
        "the site decides: {:?}",
        r.body
    );
    let view = wait_steps(&me, withdrawn, "withdrawn", &["withdrawn"]).await;
    assert_eq!(count(&view, "withdrawn"), 1, "{view:?}");
    wait_queue(&stack, MAPO, &[absent.clone(), left.clone()]).await;
    assert_eq!(
        me.post_empty(&format!("/covid/applications/{withdrawn}/withdraw")).await.status,
        202,
        "withdrawing twice is harmless"
    );

    // A citizen who does not come stays counted until the site marks the no-show.
    settled(&stack).await;
    assert_eq!(queue(&stack, MAPO).await, (2, vec![absent.clone(), left.clone()]));
    let r = at_site(&stack, MAPO, absent, "noshow").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "noshow");
    assert_eq!(waiting_count(&stack, MAPO).await, 1);
    assert_eq!(
        at_site(&stack, MAPO, absent, "noshow").await.status,
        200,
        "marking twice is harmless"
    );
    wait_status(&me, absent, "noshow").await;
    wait_queue(&stack, MAPO, std::slice::from_ref(left)).await;

    // A withdrawal after the sample: 409 once the health centre knows of it.
    settled(&stack).await;
    assert_problem(&me.post_empty(&format!("/covid/applications/{sampled}/withdraw")).await, 409);
    assert_problem(&me.post_empty(&format!("/covid/applications/{absent}/withdraw")).await, 409);
    // Nobody leaves the list twice.
    assert_problem(&at_site(&stack, MAPO, withdrawn, "sample").await, 409);
    assert_problem(&at_site(&stack, MAPO, withdrawn, "noshow").await, 409);
    assert_problem(&at_site(&stack, MAPO, absent, "sample").await, 409);
    assert_problem(&at_site(&stack, MAPO, sampled, "noshow").await, 409);
    settled(&stack).await;
    assert_eq!(
        queue(&stack, MAPO).await,
        (1, vec![left.clone()]),
        "the count is the applications waiting"
    );
    assert_eq!(wait_status(&me, sampled, "sampled").await["withdrawal"], Value::Null);

    // The last one leaves: the count is zero, never below.
    sample(&stack, MAPO, left).await;
    assert_eq!(at_site(&stack, MAPO, left, "sample").await.status, 200);
    wait_queue(&stack, MAPO, &[]).await;
    settled(&stack).await;
    assert_eq!(queue(&stack, MAPO).await, (0, Vec::new()));
    stack.shutdown().await;
}

// FR5 — a negative result gets a signed certificate anyone verifies.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr5_a_negative_result_gets_a_certificate_asynchronously_which_only_its_citizen_reads_and_anyone_verifies() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr5-citizen");
    let id = tested(&stack, &me, MAPO, "010-7500-0001", "negative").await;
    let cert = wait_certificate(&me, &id).await;
    let view = wait_view(&me, &id, "its certificate issued", |v| count(v, "certificate-issued") == 1).await;
    let certificate = view["certificate"]["id"].as_str().expect("a certificate id").to_owned();
    assert_eq!(view["status"], "negative", "{view:?}");
    assert_eq!(view["result"], "negative", "{view:?}");
    assert_eq!(view["transfer"], Value::Null, "{view:?}");
    for (field, want) in [
        ("id", json!(certificate)),
        ("application_id", json!(id)),
        ("holder", json!(NAME)),
        ("test_type", json!("RT-PCR")),
        ("result", json!("negative")),
        ("site_name", json!(MAPO_NAME)),
        ("issuer", json!("clinicflow health centre")),
    ] {
        assert_eq!(cert[field], want, "{field}: {cert:?}");
    }
    assert_eq!(seconds(&cert, "sampled_at"), seconds(&view, "sampled_at"));
    assert_eq!(
        seconds(&cert, "expires_at"),
        seconds(&cert, "sampled_at") + 48 * 3600,
        "48 hours from the sample"
    );
    assert_eq!(seconds(&cert, "expires_at"), seconds(&view["certificate"], "expires_at"));
    assert!(seconds(&cert, "issued_at") >= seconds(&cert, "sampled_at"));
    let payload = cert["qr_payload"].as_str().expect("a payload").to_owned();
    assert!(payload.starts_with("CF1:"), "{payload}");

    // Its citizen only.
    let path = format!("/covid/certificates/{certificate}");
    assert_problem(&citizen(&stack, "fr5-someone-else").get(&path).await, 404);
    assert_problem(&me.get(&format!("/covid/certificates/{NOBODY}")).await, 404);
    assert_problem(&me.get(&format!("/covid/certificates/{id}")).await, 404);
    for staff in [site_staff(&stack, MAPO), dispatcher(&stack), isolation_staff(&stack, INCHEON)] {
        assert_problem(&staff.get(&path).await, 403);
    }
    assert_problem(&Client::anonymous(&stack).get(&path).await, 401);

    // Anyone verifies it, without a token.
    let r = verify(&stack, &payload).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["valid"], true, "{:?}", r.body);
    assert_eq!(r.body["holder"], NAME);
    assert_eq!(r.body["result"], "negative");
    assert_eq!(r.body["certificate_id"], certificate.as_str());
    assert_eq!(seconds(&r.body, "expires_at"), seconds(&cert, "expires_at"));
    assert!(r.body.get("reason").is_none(), "{:?}", r.body);

    // The key that verifies it offline.
    let key = public_key(&stack).await;
    for (field, want) in [("kty", "EC"), ("crv", "P-256"), ("alg", "ES256"), ("use", "sig")] {
        assert_eq!(key[field], want, "{field}: {key:?}");
    }
    for field in ["x", "y", "kid"] {
        assert!(key[field].as_str().is_some_and(|v| !v.is_empty()), "{field}: {key:?}");
    }
    settled(&stack).await;
    let view = wait_steps(&me, &id, "negative", &["certificate-issued"]).await;
    assert_eq!(count(&view, "certificate-issued"), 1, "one certificate: {view:?}");
    assert_eq!(view["certificate"]["id"], certificate.as_str(), "the same certificate");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr5_the_public_verifier_refuses_a_payload_with_one_byte_changed_or_another_key_and_malformed_input_is_a_422() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr5-tamper");
    let id = tested(&stack, &me, GANGNAM, "010-7500-0101", "negative").await;
    let cert = wait_certificate(&me, &id).await;
    let payload = cert["qr_payload"].as_str().expect("a payload").to_owned();
    assert_eq!(verify(&stack, &payload).await.body["valid"], true);

    // One byte changed, anywhere: the header, the claims, the signature.
    let n = cose_len(&payload);
    for at in [0, 3, n / 4, n / 2, 3 * n / 4, n - 1] {
        let altered = one_byte_changed(&payload, at);
        let r = verify(&stack, &altered).await;
        assert_eq!(r.status, 200, "byte {at}: {:?}", r.body);
        assert_eq!(r.body["valid"], false, "byte {at} changed and still valid: {:?}", r.body);
        assert!(
            r.body["reason"].as_str().is_some_and(|why| !why.is_empty()),
            "a reason: {:?}",
            r.body
        );
        assert!(r.body.get("holder").is_none(), "nothing read from an altered payload: {:?}", r.body);
    }
    let mut text: Vec<char> = payload.chars().collect();
    let last = text.len() - 1;
    text[last] = if text[last] == '0' { '1' } else { '0' };
    let r = verify(&stack, &text.into_iter().collect::<String>()).await;
    assert_eq!((r.status, r.body["valid"].clone()), (200, json!(false)), "{:?}", r.body);

    // Another issuer's key.
    let stranger = clinicflow::sealing::KeySigner::random();
    let now = chrono::Utc::now().timestamp();
    let document = clinicflow::sealing::Document {
        issuer: "clinicflow health centre".into(),
        id: NOBODY.into(),
        issued_at: now,
        expires_at: now + 3600,
        claims: vec![
            ("holder".into(), coset::cbor::value::Value::Text(NAME.into())),
            ("result".into(), coset::cbor::value::Value::Text("negative".into())),
        ],
    };
    let foreign = clinicflow::sealing::seal(&stranger, &document).await.expect("sealed");
    let r = verify(&stack, &foreign).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.body["valid"].clone(), r.body["reason"].clone()),
        (json!(false), json!("unknown key")),
        "{:?}",
        r.body
    );
    let r = verify(&stack, "HC1:not ours at all").await;
    assert_eq!((r.status, r.body["valid"].clone()), (200, json!(false)), "{:?}", r.body);
    assert_eq!(r.body["reason"], "not a certificate");

    // Malformed input: 422 naming the payload; not JSON: 400.
    let anyone = Client::anonymous(&stack);
    for (body, field) in [
        (json!({"payload": 7}), "payload"),
        (json!({"payload": ""}), "payload"),
        (json!({"payload": "x".repeat(4097)}), "payload"),
        (json!({}), "payload"),
        (json!({"payload": payload, "kid": "x"}), "kid"),
    ] {
        let r = anyone.post("/covid/certificates/verify", &body).await;
        assert_problem(&r, 422);
        assert_eq!(error_fields(&r), [field], "{:?}", r.body);
    }
    let raw = anyone
        .send_raw("POST", "/covid/certificates/verify", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(raw.status, 400, "{:?}", raw.body);
    assert_eq!(verify(&stack, &payload).await.body["valid"], true, "the original still verifies");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr5_a_certificate_verifies_with_the_independent_verifier_fails_it_with_any_byte_changed_and_is_told_expired() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr5-outside");
    let id = tested(&stack, &me, MAPO, "010-7500-0201", "negative").await;
    let cert = wait_certificate(&me, &id).await;
    let payload = cert["qr_payload"].as_str().expect("a payload").to_owned();
    let jwk = public_key(&stack).await;
    let now = chrono::Utc::now().timestamp();

    let answer = verify_outside(json!({"payload": payload, "jwk": jwk, "now": now})).await;
    assert_eq!(answer["valid"], true, "{answer}");
    assert_eq!(answer["expired"], false, "{answer}");
    for (claim, want) in [
        ("holder", json!(NAME)),
        ("result", json!("negative")),
        ("cti", cert["id"].clone()),
        ("exp", json!(seconds(&cert, "expires_at"))),
    ] {
        assert_eq!(answer["claims"][claim], want, "{claim}: {answer}");
    }

    let expired = verify_outside(json!({"payload": payload, "jwk": jwk, "now": seconds(&cert, "expires_at")})).await;
    assert_eq!(expired["expired"], true, "past its expiry: {expired}");

    let variants: Vec<String> = (0..cose_len(&payload)).map(|at| one_byte_changed(&payload, at)).collect();
    let answers = verify_outside(json!({"payloads": variants, "jwk": jwk, "now": now})).await;
    let answers = answers.as_array().expect("one answer per payload");
    assert_eq!(answers.len(), variants.len());
    for (at, answer) in answers.iter().enumerate() {
        assert_eq!(answer["valid"], false, "byte {at} changed and still valid outside: {answer}");
    }
    stack.shutdown().await;
}

// FR6–FR8 — a positive result: transfer, dispatch, isolation, release.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr6_to_fr8_a_positive_result_is_transferred_dispatched_admitted_and_released_freeing_its_bed() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr6-citizen");
    let id = tested(&stack, &me, MAPO, "010-7600-0001", "positive").await;
    let view = wait_view(&me, &id, "its transfer requested", |v| v["transfer"]["status"] == "requested").await;
    assert_eq!(view["status"], "positive", "{view:?}");
    assert_eq!(view["certificate"], Value::Null, "no certificate for a positive result: {view:?}");

    // FR6: the transfer centre's open requests.
    let requested = wait_transfer(&stack, &id, "requested").await;
    for (field, want) in [
        ("site", json!(MAPO)),
        ("status", json!("requested")),
        ("isolation_centre", Value::Null),
    ] {
        assert_eq!(requested[field], want, "{field}: {requested:?}");
    }
    let default = dispatcher(&stack).get("/covid/transfers").await;
    assert!(
        ids_of(&items(&default.body)).contains(&id),
        "requested by default: {:?}",
        default.body
    );
    assert!(transfers(&stack, "dispatched").await.is_empty());
    let bad = dispatcher(&stack).get("/covid/transfers?status=lost").await;
    assert_problem(&bad, 422);
    assert_eq!(error_fields(&bad), ["status"]);
    for other in [
        citizen(&stack, "fr6-citizen"),
        site_staff(&stack, MAPO),
        isolation_staff(&stack, INCHEON),
    ] {
        assert_problem(&other.get("/covid/transfers").await, 403);
        assert_problem(
            &other
                .post(&format!("/covid/transfers/{id}/dispatch"), &json!({"isolation_centre": INCHEON}))
                .await,
            403,
        );
    }

    // An admission before the dispatch: 409. An unknown centre: 422 listing the known ones.
    assert_problem(&at_isolation(&stack, INCHEON, &id, "admit").await, 409);
    let unknown = dispatch(&stack, &id, "busan").await;
    assert_problem(&unknown, 422);
    assert_eq!(error_fields(&unknown), ["isolation_centre"]);
    assert!(error_detail(&unknown, "isolation_centre").contains(CENTRES), "{:?}", unknown.body);
    let none = dispatcher(&stack)
        .post(&format!("/covid/transfers/{id}/dispatch"), &json!({}))
        .await;
    assert_problem(&none, 422);
    assert_eq!(error_fields(&none), ["isolation_centre"]);
    assert_problem(&dispatch(&stack, NOBODY, INCHEON).await, 404);
    assert_eq!(free_beds(&stack, INCHEON).await, BEDS);

    // The dispatch takes a bed in its own write.
    let r = dispatch(&stack, &id, INCHEON).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"id": id, "status": "dispatched", "isolation_centre": INCHEON}));
    assert_eq!(free_beds(&stack, INCHEON).await, BEDS - 1);
    assert_eq!(
        dispatch(&stack, &id, INCHEON).await.status,
        200,
        "the same dispatch again is harmless"
    );
    assert_problem(&dispatch(&stack, &id, SUWON).await, 409);
    assert_eq!(free_beds(&stack, INCHEON).await, BEDS - 1, "one bed, once");
    assert_eq!(free_beds(&stack, SUWON).await, BEDS);
    let assigned = wait_on_board(&stack, INCHEON, &id, "assigned").await;
    assert_eq!(assigned["isolation_centre"], INCHEON, "{assigned:?}");
    wait_transfer(&stack, &id, "dispatched").await;
    let view = wait_view(&me, &id, "the centre expecting the citizen", |v| {
        v["isolation"]["status"] == "assigned"
    })
    .await;
    assert_eq!(view["status"], "dispatched", "{view:?}");
    assert_eq!(
        view["transfer"],
        json!({"status": "dispatched", "isolation_centre": INCHEON}),
        "{view:?}"
    );
    assert_eq!(
        view["isolation"],
        json!({"status": "assigned", "isolation_centre": INCHEON}),
        "{view:?}"
    );

    // FR7: the isolation centre admits the citizen; its board shows them and its free beds.
    assert_problem(&at_isolation(&stack, SUWON, &id, "admit").await, 404);
    let r = at_isolation(&stack, INCHEON, &id, "admit").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"id": id, "isolation_centre": INCHEON, "status": "isolated"}));
    assert_eq!(
        at_isolation(&stack, INCHEON, &id, "admit").await.status,
        200,
        "admitting twice is harmless"
    );
    let occupant = wait_on_board(&stack, INCHEON, &id, "isolated").await;
    assert!(occupant["admitted_at"].is_string(), "{occupant:?}");
    assert_eq!(occupant["released_at"], Value::Null);
    let isolated = board(&stack, INCHEON, "isolated").await;
    assert_eq!(isolated["beds"], BEDS);
    assert_eq!(isolated["free_beds"], BEDS - 1, "{isolated:?}");
    assert_eq!(ids_of(&items(&isolated)), std::slice::from_ref(&id));
    let default = isolation_staff(&stack, INCHEON).get("/covid/isolation/incheon").await;
    assert_eq!(ids_of(&items(&default.body)), std::slice::from_ref(&id), "isolated by default");
    let view = wait_status(&me, &id, "isolated").await;
    assert_eq!(view["isolation"], json!({"status": "isolated", "isolation_centre": INCHEON}));

    // FR8: the release frees the bed, once.
    let r = at_isolation(&stack, INCHEON, &id, "release").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "released");
    assert_eq!(
        at_isolation(&stack, INCHEON, &id, "release").await.status,
        200,
        "releasing twice is harmless"
    );
    wait_free_beds(&stack, INCHEON, BEDS).await;
    let released = wait_on_board(&stack, INCHEON, &id, "released").await;
    assert!(released["released_at"].is_string(), "{released:?}");
    wait_transfer(&stack, &id, "closed").await;
    let view = wait_view(&me, &id, "released, the transfer closed", |v| {
        v["isolation"]["status"] == "released" && v["transfer"]["status"] == "closed"
    })
    .await;
    assert_eq!(view["status"], "released", "{view:?}");
    assert_problem(&at_isolation(&stack, INCHEON, &id, "admit").await, 409);
    settled(&stack).await;
    assert_eq!(free_beds(&stack, INCHEON).await, BEDS, "the bed freed once, not twice");
    assert!(items(&board(&stack, INCHEON, "isolated").await).is_empty());
    assert_eq!(ids_of(&transfers(&stack, "closed").await), std::slice::from_ref(&id));
    let view = wait_steps(&me, &id, "released", &JOURNEY).await;
    for step in JOURNEY {
        assert_eq!(count(&view, step), 1, "{step} once: {view:?}");
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr7_only_an_isolation_centres_own_staff_read_its_board_and_admit_or_release_there() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "fr7-citizen");
    let id = tested(&stack, &me, GANGNAM, "010-7700-0001", "positive").await;
    wait_transfer(&stack, &id, "requested").await;
    assert_eq!(dispatch(&stack, &id, INCHEON).await.status, 200);
    wait_on_board(&stack, INCHEON, &id, "assigned").await;
    let (incheon, suwon) = (isolation_staff(&stack, INCHEON), isolation_staff(&stack, SUWON));
    let siteless = Client::new(&stack, "siteless-isolation", &["isolation-centre"]);

    assert_problem(&suwon.get("/covid/isolation/incheon").await, 403);
    assert_problem(&siteless.get("/covid/isolation/incheon").await, 403);
    let unknown = incheon.get("/covid/isolation/busan").await;
    assert_problem(&unknown, 422);
    assert_eq!(error_fields(&unknown), ["centre"]);
    assert!(error_detail(&unknown, "centre").contains(CENTRES), "{:?}", unknown.body);
    let bad = incheon.get("/covid/isolation/incheon?status=gone").await;
    assert_problem(&bad, 422);
    assert_eq!(error_fields(&bad), ["status"]);
    for action in ["admit", "release"] {
        assert_problem(&suwon.post_empty(&format!("/covid/isolation/{id}/{action}")).await, 404);
        assert_problem(&siteless.post_empty(&format!("/covid/isolation/{id}/{action}")).await, 403);
        for other in [citizen(&stack, "fr7-citizen"), site_staff(&stack, GANGNAM), dispatcher(&stack)] {
            assert_problem(&other.post_empty(&format!("/covid/isolation/{id}/{action}")).await, 403);
        }
    }
    for other in [citizen(&stack, "fr7-citizen"), site_staff(&stack, GANGNAM), dispatcher(&stack)] {
        assert_problem(&other.get("/covid/isolation/incheon").await, 403);
    }
    // The centre involved reads the application; one not involved does not.
    assert_eq!(incheon.get(&format!("/covid/applications/{id}")).await.status, 200);
    assert_problem(&suwon.get(&format!("/covid/applications/{id}")).await, 404);
    assert_eq!(dispatcher(&stack).get(&format!("/covid/applications/{id}")).await.status, 200);

    settled(&stack).await;
    assert_eq!(
        wait_status(&me, &id, "dispatched").await["isolation"]["status"],
        "assigned",
        "nothing done by the others"
    );
    assert_eq!(at_isolation(&stack, INCHEON, &id, "admit").await.status, 200);
    wait_status(&me, &id, "isolated").await;
    stack.shutdown().await;
}

// The race — dispatches for the last beds never put a centre over capacity.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_dispatches_for_the_last_two_beds_take_two_and_a_release_frees_exactly_one() {
    let options = with_incheon_beds(options_on(ON).await, 2);
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let me = citizen(&stack, "race-citizen");
    let mut ids = Vec::new();
    for i in 0..RACERS {
        ids.push(tested(&stack, &me, MAPO, &format!("010-7800-000{i}"), "positive").await);
    }
    for id in &ids {
        wait_transfer(&stack, id, "requested").await;
    }
    assert_eq!(free_beds(&stack, INCHEON).await, 2);

    let answers = futures::future::join_all(ids.iter().map(|id| dispatch(&stack, id, INCHEON))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    let mut want = vec![200, 200];
    want.extend(std::iter::repeat_n(409, RACERS - 2));
    assert_eq!(statuses, want, "two beds, two dispatches: {answers:?}");
    let (won, lost): (Vec<_>, Vec<_>) = ids.iter().zip(&answers).partition(|(_, r)| r.status == 200);
    let won: Vec<String> = won.into_iter().map(|(id, _)| id.clone()).collect();
    let lost: Vec<String> = lost.into_iter().map(|(id, _)| id.clone()).collect();
    for (_, r) in ids.iter().zip(&answers).filter(|(_, r)| r.status == 409) {
        assert_problem(r, 409);
    }
    assert_eq!(free_beds(&stack, INCHEON).await, 0, "never over capacity");
    for id in &won {
        wait_on_board(&stack, INCHEON, id, "assigned").await;
    }
    settled(&stack).await;
    assert_eq!(sorted(&ids_of(&items(&board(&stack, INCHEON, "assigned").await))), sorted(&won));
    assert_eq!(
        sorted(&ids_of(&transfers(&stack, "requested").await)),
        sorted(&lost),
        "the others still wait"
    );
    assert_problem(&dispatch(&stack, &lost[0], INCHEON).await, 409);
    assert_eq!(
        dispatch(&stack, &lost[0], SUWON).await.status,
        200,
        "a centre with free beds takes them"
    );

    // One released (who never arrived): exactly one bed is free again, for one of the rest.
    assert_eq!(at_isolation(&stack, INCHEON, &won[0], "release").await.status, 200);
    wait_free_beds(&stack, INCHEON, 1).await;
    let rest = &lost[1..];
    let answers = futures::future::join_all(rest.iter().map(|id| dispatch(&stack, id, INCHEON))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    let mut want = vec![200];
    want.extend(std::iter::repeat_n(409, rest.len() - 1));
    assert_eq!(statuses, want, "one bed, one dispatch: {answers:?}");
    settled(&stack).await;
    assert_eq!(free_beds(&stack, INCHEON).await, 0);
    let stays = board(&stack, INCHEON, "assigned").await;
    assert_eq!(items(&stays).len(), 2, "two citizens at a centre of two beds: {stays:?}");
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

// NFR3 (CQRS) — the citizen reads their own applications, whatever the centres are doing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr3_a_citizen_reads_their_own_applications_with_result_certificate_transfer_and_isolation_and_no_one_elses() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "cqrs-me");
    let other = citizen(&stack, "cqrs-other");
    let negative = tested(&stack, &me, MAPO, "010-7900-0001", "negative").await;
    let positive = tested(&stack, &me, GANGNAM, "010-7900-0002", "positive").await;
    let theirs = apply(&other, MAPO, "010-7900-0003").await;

    // The negative one: result and certificate.
    let cert = wait_certificate(&me, &negative).await;
    let view = wait_steps(&me, &negative, "negative", &["sampled", "result", "certificate-issued"]).await;
    assert_eq!((view["site"].clone(), view["site_name"].clone()), (json!(MAPO), json!(MAPO_NAME)));
    assert_eq!(view["result"], "negative");
    assert_eq!(view["certificate"]["id"], cert["id"]);
    assert_eq!((view["transfer"].clone(), view["isolation"].clone()), (Value::Null, Value::Null));
    let steps = timeline(&view);
    for step in ["applied", "waiting", "sampled", "result", "certificate-issued"] {
        assert!(steps.iter().any(|s| s == step), "{step}: {steps:?}");
    }

    // The positive one, as each centre moves it.
    wait_view(&me, &positive, "its transfer", |v| v["transfer"]["status"] == "requested").await;
    wait_transfer(&stack, &positive, "requested").await;
    assert_eq!(dispatch(&stack, &positive, SUWON).await.status, 200);
    wait_on_board(&stack, SUWON, &positive, "assigned").await;
    assert_eq!(at_isolation(&stack, SUWON, &positive, "admit").await.status, 200);
    let view = wait_view(&me, &positive, "isolated, dispatched", |v| {
        v["status"] == "isolated"
            && v["transfer"]["status"] == "dispatched"
            && ["sampled", "result", "transfer-requested", "dispatched", "isolated"]
                .iter()
                .all(|step| count(v, step) > 0)
    })
    .await;
    assert_eq!(view["result"], "positive");
    assert_eq!(view["certificate"], Value::Null);
    assert_eq!(view["transfer"], json!({"status": "dispatched", "isolation_centre": SUWON}));
    assert_eq!(view["isolation"], json!({"status": "isolated", "isolation_centre": SUWON}));
    let steps = timeline(&view);
    for step in [
        "applied",
        "waiting",
        "sampled",
        "result",
        "transfer-requested",
        "dispatched",
        "isolated",
    ] {
        assert!(steps.iter().any(|s| s == step), "{step}: {steps:?}");
    }

    // Their own list, newest first; the other citizen's, only theirs.
    let mine = me.get("/covid/applications").await;
    assert_eq!(mine.status, 200, "{:?}", mine.body);
    let listed = items(&mine.body);
    assert_eq!(ids_of(&listed), [positive.clone(), negative.clone()], "newest first");
    assert!(created(&listed[0]) >= created(&listed[1]));
    let by_status = items(&me.get("/covid/applications?status=negative").await.body);
    assert_eq!(ids_of(&by_status), std::slice::from_ref(&negative));
    let bad = me.get("/covid/applications?status=lost").await;
    assert_problem(&bad, 422);
    assert_eq!(error_fields(&bad), ["status"]);
    let pages = me.get("/covid/applications?limit=1").await;
    assert_eq!(ids_of(&items(&pages.body)), std::slice::from_ref(&positive));
    assert!(pages.body["next_cursor"].is_string(), "{:?}", pages.body);
    let others = wait_view(&other, &theirs, "waiting", |v| v["status"] == "waiting").await;
    assert_eq!(others["name"], NAME);
    assert_eq!(
        ids_of(&items(&other.get("/covid/applications").await.body)),
        std::slice::from_ref(&theirs)
    );
    assert!(items(&citizen(&stack, "cqrs-nobody").get("/covid/applications").await.body).is_empty());

    // Nobody reads another's application or certificate, nor withdraws it.
    assert_problem(&other.get(&format!("/covid/applications/{negative}")).await, 404);
    assert_problem(&other.get(&format!("/covid/applications/{positive}")).await, 404);
    assert_problem(&me.get(&format!("/covid/applications/{theirs}")).await, 404);
    assert_problem(
        &other
            .get(&format!("/covid/certificates/{}", cert["id"].as_str().expect("an id")))
            .await,
        404,
    );
    assert_problem(&other.post_empty(&format!("/covid/applications/{negative}/withdraw")).await, 404);
    assert_problem(&me.post_empty(&format!("/covid/applications/{theirs}/withdraw")).await, 404);
    assert_problem(&me.get(&format!("/covid/applications/{NOBODY}")).await, 404);
    for staff in [site_staff(&stack, MAPO), dispatcher(&stack), isolation_staff(&stack, SUWON)] {
        assert_problem(&staff.get("/covid/applications").await, 403);
    }
    stack.shutdown().await;
}

// The SMS — where the citizen is, never the result.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_tell_the_citizen_of_the_application_the_result_ready_the_transfer_and_the_release_and_never_the_result() {
    let stack = start_on(ON).await;
    let me = citizen(&stack, "sms-citizen");
    let (ko_negative, en_positive, ko_positive) = ("010-7110-0001", "010-7110-0002", "010-7110-0003");
    let negative = tested(&stack, &me, MAPO, ko_negative, "negative").await;
    let mut body = application(GANGNAM, en_positive);
    body["locale"] = json!("en");
    let english = apply_with(&me, &body).await;
    let korean = apply(&me, MAPO, ko_positive).await;
    for (site, id) in [(GANGNAM, &english), (MAPO, &korean)] {
        wait_queued(&stack, site, id).await;
        sample(&stack, site, id).await;
        assert_eq!(record(&stack, site, id, "positive").await.status, 200);
        wait_transfer(&stack, id, "requested").await;
        assert_eq!(dispatch(&stack, id, INCHEON).await.status, 200);
        wait_on_board(&stack, INCHEON, id, "assigned").await;
        assert_eq!(at_isolation(&stack, INCHEON, id, "admit").await.status, 200);
        wait_on_board(&stack, INCHEON, id, "isolated").await;
        assert_eq!(at_isolation(&stack, INCHEON, id, "release").await.status, 200);
    }
    wait_certificate(&me, &negative).await;
    wait_texts(&stack, &e164(ko_negative), 2).await;
    wait_texts(&stack, &e164(en_positive), 4).await;
    wait_texts(&stack, &e164(ko_positive), 4).await;
    settled(&stack).await;

    let texts = texts_to(&stack, &e164(ko_negative)).await;
    assert_eq!(texts.len(), 2, "application and result: {texts:?}");
    for (phone, id, said) in [
        (ko_negative, &negative, &["신청이 접수", "결과가 나왔습니다"][..]),
        (
            ko_positive,
            &korean,
            &["신청이 접수", "결과가 나왔습니다", "이송이 배정", "격리 조치가 종료"][..],
        ),
        (
            en_positive,
            &english,
            &[
                "is received",
                "result is ready",
                "assigned to isolation centre",
                "isolation has ended",
            ][..],
        ),
    ] {
        let texts = texts_to(&stack, &e164(phone)).await;
        assert_eq!(texts.len(), said.len(), "{phone}: {texts:?}");
        for phrase in said {
            assert_eq!(texts.iter().filter(|t| t.contains(phrase)).count(), 1, "{phrase:?} once: {texts:?}");
        }
        assert!(
            texts.iter().all(|t| t.contains(short_ref(id))),
            "each quotes the application: {texts:?}"
        );
        let ready = texts
            .iter()
            .find(|t| t.contains("결과가 나왔습니다") || t.contains("result is ready"))
            .expect("the result's SMS");
        assert!(ready.contains("/covid/applications"), "a link path to read it: {ready}");
        for t in &texts {
            assert_says_no_result(t);
        }
    }
    let transfer = texts_to(&stack, &e164(ko_positive)).await;
    assert!(
        transfer.iter().any(|t| t.contains("이송이 배정") && t.contains(INCHEON)),
        "the transfer names the centre: {transfer:?}"
    );
    assert_no_sms_says_a_result(&stack).await;
    stack.shutdown().await;
}

// NFR2 — fault isolation: every centre hears the others asynchronously, and catches up once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr2_applications_are_taken_while_the_test_site_is_down_and_each_reaches_its_waiting_list_once_it_recovers() {
    let mut options = options_on_own_server(ON).await;
    options.bus.max_attempts = 1000;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    stack.faults().set(faults::SITE_QUEUE, true);
    let me = citizen(&stack, "nfr2-citizen");

    let mut ids = Vec::new();
    for i in 0..LOAD {
        ids.push(apply(&me, MAPO, &format!("010-8000-{i:04}")).await);
    }
    let taken = eventually_every(LOAD_PATIENCE, GENTLY, || async {
        let listed = me.get("/covid/applications?limit=100").await;
        (items(&listed.body).len() == LOAD).then_some(listed.body)
    })
    .await
    .expect("every application in the citizen's list while the site is down");
    assert!(
        items(&taken).iter().all(|v| v["status"] == "applied"),
        "applied, not waiting: {taken:?}"
    );
    let retried = eventually(PATIENCE, || async { (stack.faults().fired(faults::SITE_QUEUE) >= 2).then_some(()) }).await;
    assert!(retried.is_some(), "the site's waiting list is being retried");
    assert_eq!(queue(&stack, MAPO).await, (0, Vec::new()), "nobody waiting while the site is down");
    // The site knows of no such application yet: nothing to sample.
    assert_problem(&at_site(&stack, MAPO, &ids[0], "sample").await, 404);
    // The health centre still texts each citizen at application.
    let texted = eventually_every(LOAD_PATIENCE, GENTLY, || async { (sms(&stack).await.len() >= LOAD).then_some(()) }).await;
    assert!(texted.is_some(), "each citizen texted while the site is down");

    stack.faults().set(faults::SITE_QUEUE, false);
    let caught_up = eventually_every(LOAD_PATIENCE, GENTLY, || async {
        let (waiting, listed) = queue(&stack, MAPO).await;
        (waiting >= LOAD as u64 && listed.len() >= LOAD).then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the waiting list never caught up (dead letters: {:?})",
        stack.dead_letters().await.expect("dead letters")
    );
    settled_after_load(&stack).await;
    let (waiting, listed) = queue(&stack, MAPO).await;
    assert_eq!(waiting, LOAD as u64, "counted once each");
    assert_eq!(listed.len(), LOAD, "listed once each");
    assert_eq!(sorted(&listed), sorted(&ids), "every application on the list");
    for id in &ids {
        let view = me.get(&format!("/covid/applications/{id}")).await.body;
        assert_eq!(view["status"], "waiting", "{view:?}");
        assert_eq!(count(&view, "waiting"), 1, "application {id} queued once: {view:?}");
    }
    assert_eq!(sms(&stack).await.len(), LOAD, "one SMS each");
    sample(&stack, MAPO, &ids[0]).await;
    assert_eq!(waiting_count(&stack, MAPO).await, LOAD as u64 - 1);
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr2_the_site_tests_while_the_health_centre_is_down_a_late_withdrawal_is_refused_and_the_certificate_follows_once() {
    let mut options = options_on(ON).await;
    options.bus.max_attempts = 1000;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let me = citizen(&stack, "nfr2-health");
    let phone = "010-8100-0001";
    let id = apply(&me, MAPO, phone).await;
    wait_queue(&stack, MAPO, std::slice::from_ref(&id)).await;
    stack.faults().set(faults::CENTRE_FOLLOW, true);

    // The site works on: the sample, the count, the result.
    sample(&stack, MAPO, &id).await;
    assert_eq!(waiting_count(&stack, MAPO).await, 0);
    // The health centre has not heard of the sample: it asks, and the site refuses.
    let r = me.post_empty(&format!("/covid/applications/{id}/withdraw")).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let view = wait_view(&me, &id, "the withdrawal refused", |v| v["withdrawal"] == "refused").await;
    assert_eq!(view["status"], "sampled", "{view:?}");
    assert_eq!(count(&view, "withdrawal-refused"), 1, "{view:?}");
    assert_eq!(count(&view, "withdrawn"), 0, "{view:?}");
    assert_eq!(waiting_count(&stack, MAPO).await, 0, "a refused withdrawal moves no count");
    assert_eq!(record(&stack, MAPO, &id, "negative").await.status, 200);
    // The citizen reads the result from the view, the site's word, before the health centre hears it.
    let view = wait_status(&me, &id, "negative").await;
    assert_eq!(view["certificate"], Value::Null, "{view:?}");
    let retried = eventually(PATIENCE, || async {
        (stack.faults().fired(faults::CENTRE_FOLLOW) >= 2).then_some(())
    })
    .await;
    assert!(retried.is_some(), "the health centre is being retried");
    let texts = wait_texts(&stack, &e164(phone), 1).await;
    assert_eq!(texts.len(), 1, "no result SMS before the health centre hears the result: {texts:?}");

    stack.faults().set(faults::CENTRE_FOLLOW, false);
    let cert = wait_certificate(&me, &id).await;
    assert_eq!(cert["result"], "negative");
    wait_texts(&stack, &e164(phone), 2).await;
    settled(&stack).await;
    let view = wait_steps(&me, &id, "negative", &["certificate-issued"]).await;
    assert_eq!(count(&view, "certificate-issued"), 1, "one certificate: {view:?}");
    assert_eq!(view["withdrawal"], "refused", "{view:?}");
    assert_eq!(texts_to(&stack, &e164(phone)).await.len(), 2, "application and result, once each");
    assert_eq!(queue(&stack, MAPO).await, (0, Vec::new()));
    assert_problem(&me.post_empty(&format!("/covid/applications/{id}/withdraw")).await, 409);
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr2_results_are_recorded_while_the_transfer_centre_is_down_and_dispatches_while_the_isolation_centre_is() {
    let mut options = options_on(ON).await;
    options.bus.max_attempts = 1000;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let me = citizen(&stack, "nfr2-transfer");
    stack.faults().set(faults::TRANSFER_FOLLOW, true);

    let mut positives = Vec::new();
    for i in 0..3 {
        positives.push(tested(&stack, &me, MAPO, &format!("010-8200-000{i}"), "positive").await);
    }
    let negative = tested(&stack, &me, GANGNAM, "010-8200-0009", "negative").await;
    // The health centre asked for the transfers, and issues the negative's certificate.
    for id in &positives {
        let view = wait_view(&me, id, "its transfer requested", |v| v["transfer"]["status"] == "requested").await;
        assert_eq!(view["status"], "positive", "{view:?}");
    }
    wait_certificate(&me, &negative).await;
    let retried = eventually(PATIENCE, || async {
        (stack.faults().fired(faults::TRANSFER_FOLLOW) >= 2).then_some(())
    })
    .await;
    assert!(retried.is_some(), "the transfer centre is being retried");
    assert!(
        transfers(&stack, "requested").await.is_empty(),
        "no transfer opened while the centre is down"
    );
    assert_problem(&dispatch(&stack, &positives[0], INCHEON).await, 404);

    stack.faults().set(faults::TRANSFER_FOLLOW, false);
    let caught_up = eventually(PATIENCE, || async {
        (transfers(&stack, "requested").await.len() >= 3).then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the transfers never caught up (dead letters: {:?})",
        stack.dead_letters().await.expect("dead letters")
    );
    settled(&stack).await;
    let open = transfers(&stack, "requested").await;
    assert_eq!(sorted(&ids_of(&open)), sorted(&positives), "each transfer once: {open:?}");
    assert!(open.windows(2).all(|w| created(&w[0]) <= created(&w[1])), "oldest first");

    // The isolation centre down: the dispatch takes the bed; admission waits for the centre.
    stack.faults().set(faults::ISOLATION_ASSIGN, true);
    let id = &positives[0];
    assert_eq!(dispatch(&stack, id, INCHEON).await.status, 200);
    assert_eq!(free_beds(&stack, INCHEON).await, BEDS - 1);
    let view = wait_status(&me, id, "dispatched").await;
    assert_eq!(view["isolation"], Value::Null, "the isolation centre has not heard: {view:?}");
    let retried = eventually(PATIENCE, || async {
        (stack.faults().fired(faults::ISOLATION_ASSIGN) >= 2).then_some(())
    })
    .await;
    assert!(retried.is_some(), "the isolation centre is being retried");
    assert_problem(&at_isolation(&stack, INCHEON, id, "admit").await, 409);
    assert!(items(&board(&stack, INCHEON, "assigned").await).is_empty());

    stack.faults().set(faults::ISOLATION_ASSIGN, false);
    wait_on_board(&stack, INCHEON, id, "assigned").await;
    assert_eq!(at_isolation(&stack, INCHEON, id, "admit").await.status, 200);
    wait_status(&me, id, "isolated").await;
    settled(&stack).await;
    assert_eq!(items(&board(&stack, INCHEON, "isolated").await).len(), 1);
    assert_eq!(free_beds(&stack, INCHEON).await, BEDS - 1);
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

// Redelivered events — every delivery made twice changes nothing twice.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_made_twice_counts_once_issues_one_certificate_opens_one_transfer_and_frees_a_released_bed_once() {
    let mut options = with_incheon_beds(options_on(ON).await, 2);
    options.bus.duplicate_every_delivery = true;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let me = citizen(&stack, "twice-citizen");

    // The count: each application counted once, each withdrawal once.
    let a = apply(&me, GANGNAM, "010-8300-0001").await;
    let b = apply(&me, GANGNAM, "010-8300-0002").await;
    wait_queue(&stack, GANGNAM, &[a.clone(), b.clone()]).await;
    assert_eq!(me.post_empty(&format!("/covid/applications/{a}/withdraw")).await.status, 202);
    wait_status(&me, &a, "withdrawn").await;
    settled(&stack).await;
    assert_eq!(queue(&stack, GANGNAM).await, (1, vec![b.clone()]));

    // One certificate.
    let negative_phone = "010-8300-0003";
    let negative = tested(&stack, &me, MAPO, negative_phone, "negative").await;
    let cert = wait_certificate(&me, &negative).await;

    // One transfer each; a release heard twice frees its bed once.
    let mut positives = Vec::new();
    for i in 0..3 {
        positives.push(tested(&stack, &me, MAPO, &format!("010-8300-001{i}"), "positive").await);
    }
    for id in &positives {
        wait_transfer(&stack, id, "requested").await;
    }
    settled(&stack).await;
    assert_eq!(
        sorted(&ids_of(&transfers(&stack, "requested").await)),
        sorted(&positives),
        "one transfer each"
    );
    for id in &positives[..2] {
        assert_eq!(dispatch(&stack, id, INCHEON).await.status, 200);
        wait_on_board(&stack, INCHEON, id, "assigned").await;
        assert_eq!(at_isolation(&stack, INCHEON, id, "admit").await.status, 200);
    }
    assert_eq!(free_beds(&stack, INCHEON).await, 0);
    let released = &positives[0];
    wait_on_board(&stack, INCHEON, released, "isolated").await;
    assert_eq!(at_isolation(&stack, INCHEON, released, "release").await.status, 200);
    assert_eq!(at_isolation(&stack, INCHEON, released, "release").await.status, 200);
    wait_transfer(&stack, released, "closed").await;
    settled(&stack).await;
    assert_eq!(free_beds(&stack, INCHEON).await, 1, "one bed freed, once");
    assert_eq!(dispatch(&stack, &positives[2], INCHEON).await.status, 200);
    assert_eq!(free_beds(&stack, INCHEON).await, 0);
    settled(&stack).await;

    let view = wait_steps(&me, &negative, "negative", &["certificate-issued"]).await;
    assert_eq!(count(&view, "certificate-issued"), 1, "{view:?}");
    assert_eq!(view["certificate"]["id"], cert["id"], "the same certificate");
    for step in ["applied", "waiting", "sampled", "result"] {
        assert_eq!(count(&view, step), 1, "{step} once: {view:?}");
    }
    let view = wait_steps(&me, released, "released", &JOURNEY).await;
    for step in JOURNEY {
        assert_eq!(count(&view, step), 1, "{step} once: {view:?}");
    }
    assert_eq!(
        texts_to(&stack, &e164(negative_phone)).await.len(),
        2,
        "application and result, once each"
    );
    let released_phone = e164("010-8300-0010");
    assert_eq!(
        texts_to(&stack, &released_phone).await.len(),
        4,
        "application, result, transfer, release"
    );
    assert_no_sms_says_a_result(&stack).await;
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}
