// The seed 000 scenarios (hospital visit), written once and run on every backend:
// `include!`d by `tests/tests/hospital_scenarios.rs` (SQLite) and
// `tests/tests/hospital_on_moto.rs` (the AWS adapters against a moto server), each of which
// defines `ON`. One or more tests per step of the visit, through the HTTP API only:
// - FR1 reception registers a visit (201, `received`/`arrived`, one SMS with the short
//   reference), bad input is a 422 naming each field and writes nothing, an
//   Idempotency-Key registers once;
// - FR2 the patient joins the department's doctors' queue (asynchronously), oldest first,
//   and no other department's;
// - FR3 a doctor takes the patient (`in-progress`, out of the queue, called in by SMS) and
//   prescribes exams; only the patient's doctor acts on the treatment, a second doctor
//   cannot take them;
// - FR4 each prescription reaches the examiners' work list (asynchronously);
// - FR5 an examiner performs an exam with a note or cancels it with a reason, once;
// - FR6 the doctor sees each outcome on the visit and reviews a performed exam;
// - FR7 completion waits for every exam to end and every result to be reviewed, a refusal
//   revokes the pending exam orders, and reception's visit follows by itself;
// - FR8 reception closes a visit once its treatment is over, and cancels one only before a
//   doctor took the patient;
// - the views: the visit's own (its patient with the notes, the staff without them), the
//   customer team's board (filters, cursor pages, read only);
// - fault isolation: diagnosis down while reception registers 50 visits, examination down
//   while doctors prescribe, each catching up exactly once;
// - three exams ended in any order with every delivery duplicated end in the same view, and
//   no completion before the last one ends;
// - the races: two doctors taking one patient, reception's cancel against a doctor's start,
//   an examiner's cancel against the doctor's completion;
// - the SMS: registration, call-in and outcome, never an exam, a note or a reason.
use std::time::Duration;

use clinicflow::flows::hospital::faults;
use clinicflow_tests::{
    Client, LocalStack, Reply, assert_problem, e164, error_fields, eventually, eventually_every, options_on, options_on_own_server,
    short_ref, sms, start_on, texts_to, timeline, wait_texts,
};
use serde_json::{Value, json};

/// How long any eventual effect may take before a test gives up.
const PATIENCE: Duration = Duration::from_secs(20);
/// The pause between polls that list SMS (on moto, a read of its whole state).
const GENTLY: Duration = Duration::from_millis(200);
/// How long the load scenarios may take to settle.
const LOAD_PATIENCE: Duration = Duration::from_secs(180);
/// The departments configured by default, as a refusal lists them.
const DEPARTMENTS: &str = "internal, surgery, paediatrics, dermatology";
/// The exams configured by default, as a refusal lists them.
const EXAMS: &str = "blood, urine, xray, ecg, ultrasound, ct";
/// The exams configured by default.
const EXAM_KINDS: [&str; 6] = ["blood", "urine", "xray", "ecg", "ultrasound", "ct"];
/// Why an exam revoked with its refused treatment was cancelled.
const REVOKED: &str = clinicflow::flows::hospital::exam::REVOKED;
/// The department most scenarios register at.
const INTERNAL: &str = "internal";
/// The patient's name.
const NAME: &str = "홍길동";
/// The phone of most registrations.
const PHONE: &str = "010-1234-5678";
/// A result note.
const NOTE: &str = "haemoglobin within normal limits";
/// Why an examiner cancelled an exam.
const REASON: &str = "the patient could not keep still";
/// Why a doctor refused a treatment.
const REFUSAL: &str = "the patient declined the operation";

fn reception(stack: &LocalStack) -> Client {
    Client::new(stack, "reception-1", &["reception"])
}

fn doctor(stack: &LocalStack, sub: &str) -> Client {
    Client::new(stack, sub, &["doctor"])
}

fn examiner(stack: &LocalStack) -> Client {
    Client::new(stack, "examiner-1", &["examiner"])
}

fn team(stack: &LocalStack) -> Client {
    Client::new(stack, "team-1", &["customer-team"])
}

fn patient(stack: &LocalStack, sub: &str) -> Client {
    Client::new(stack, sub, &["patient"])
}

async fn settled(stack: &LocalStack) {
    assert!(stack.settle(PATIENCE).await, "the stack did not settle");
}

/// The load scenarios' wait: hundreds of events to project and deliver, on moto at its pace.
async fn settled_after_load(stack: &LocalStack) {
    assert!(stack.settle(LOAD_PATIENCE).await, "the stack did not settle after the load");
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

/// How many times the view's timeline shows `step`.
fn count(view: &Value, step: &str) -> usize {
    timeline(view).iter().filter(|s| *s == step).count()
}

/// When a view or an exam order was created.
fn created(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v["created_at"].as_str().expect("created_at").parse().expect("a time")
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

/// A registration at `department` for `phone`, followed by `patient_sub` when given.
fn visit_of(department: &str, phone: &str, patient_sub: Option<&str>) -> Value {
    let mut body = json!({"name": NAME, "phone": phone, "department": department});
    if let Some(sub) = patient_sub {
        body["patient_sub"] = json!(sub);
    }
    body
}

/// Registers `body` at reception; returns the visit's id.
async fn register_with(stack: &LocalStack, body: &Value) -> String {
    let r = reception(stack).post("/visits", body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    id_of(&r)
}

/// Registers a visit at `department` on the default phone; returns its id.
async fn register(stack: &LocalStack, department: &str, patient_sub: Option<&str>) -> String {
    register_with(stack, &visit_of(department, PHONE, patient_sub)).await
}

/// The department's doctors' queue, as a doctor reads it.
async fn queue_of(stack: &LocalStack, department: &str) -> Vec<Value> {
    let r = doctor(stack, "doctor-on-call")
        .get(&format!("/doctor/queue?department={department}&limit=100"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    items(&r.body)
}

async fn queue_ids(stack: &LocalStack, department: &str) -> Vec<String> {
    ids_of(&queue_of(stack, department).await)
}

/// Waits until the visit is in its department's doctors' queue.
async fn wait_queued(stack: &LocalStack, department: &str, id: &str) {
    let queued = eventually(PATIENCE, || async {
        queue_ids(stack, department).await.iter().any(|q| q == id).then_some(())
    })
    .await;
    assert!(queued.is_some(), "visit {id} never joined the {department} queue");
}

/// Waits until the visit has left its department's doctors' queue.
async fn wait_unqueued(stack: &LocalStack, department: &str, id: &str) {
    let left = eventually(PATIENCE, || async {
        (!queue_ids(stack, department).await.iter().any(|q| q == id)).then_some(())
    })
    .await;
    assert!(left.is_some(), "visit {id} never left the {department} queue");
}

/// `doc` takes the patient of visit `id`.
async fn take(doc: &Client, id: &str) {
    let r = doc.post_empty(&format!("/visits/{id}/start")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "in-progress", "{:?}", r.body);
}

/// Registers `body`, waits for the patient to be in the queue and has `doc` take them.
async fn taken_visit(stack: &LocalStack, doc: &Client, body: &Value) -> String {
    let id = register_with(stack, body).await;
    let department = body["department"].as_str().expect("a department");
    wait_queued(stack, department, &id).await;
    take(doc, &id).await;
    id
}

/// `doc` prescribes `exam` on visit `visit`; returns the exam order's id.
async fn prescribe(doc: &Client, visit: &str, exam: &str) -> String {
    let r = doc.post(&format!("/visits/{visit}/exams"), &json!({"exam": exam})).await;
    assert_eq!(r.status, 201, "{exam}: {:?}", r.body);
    id_of(&r)
}

/// The examiners' work list; `filters` (`&status=…`) are added to it.
async fn work_list(stack: &LocalStack, filters: &str) -> Vec<Value> {
    let r = examiner(stack).get(&format!("/exams?limit=100{filters}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    items(&r.body)
}

/// Waits until the exam order is on the examiners' work list (the exams to do); returns it.
async fn wait_on_work_list(stack: &LocalStack, exam_id: &str) -> Value {
    eventually(PATIENCE, || async {
        work_list(stack, "").await.into_iter().find(|e| e["id"] == exam_id)
    })
    .await
    .unwrap_or_else(|| panic!("exam {exam_id} never reached the work list"))
}

/// Prescribes each of `exams` in turn, each once on the work list; returns their ids.
async fn prescribed(stack: &LocalStack, doc: &Client, visit: &str, exams: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for exam in exams {
        let id = prescribe(doc, visit, exam).await;
        wait_on_work_list(stack, &id).await;
        ids.push(id);
    }
    ids
}

/// An examiner performs the exam with `note`.
async fn perform(stack: &LocalStack, exam_id: &str, note: &str) -> Reply {
    let r = examiner(stack)
        .post(&format!("/exams/{exam_id}/perform"), &json!({"note": note}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r
}

/// An examiner cancels the exam for `reason`.
async fn cancel_exam(stack: &LocalStack, exam_id: &str, reason: &str) -> Reply {
    let r = examiner(stack)
        .post(&format!("/exams/{exam_id}/cancel"), &json!({"reason": reason}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r
}

async fn read_visit(client: &Client, id: &str) -> Reply {
    client.get(&format!("/visits/{id}")).await
}

/// Waits until the visit's view, as `client` reads it, is `ready`; returns it.
async fn wait_view<F: Fn(&Value) -> bool>(client: &Client, id: &str, what: &str, ready: F) -> Value {
    let path = format!("/visits/{id}");
    eventually(PATIENCE, || async {
        let r = client.get(&path).await;
        (r.status == 200 && ready(&r.body)).then_some(r.body)
    })
    .await
    .unwrap_or_else(|| panic!("visit {id} never showed {what}"))
}

/// Waits until the visit's view, as `client` reads it, shows `status`.
async fn wait_status(client: &Client, id: &str, status: &str) -> Value {
    wait_view(client, id, status, |v| v["status"] == status).await
}

/// The visit's exam `exam_id`, if the view has heard of it.
fn find_exam<'a>(view: &'a Value, exam_id: &str) -> Option<&'a Value> {
    view["exams"].as_array().and_then(|exams| exams.iter().find(|e| e["id"] == exam_id))
}

/// The visit's exam `exam_id`.
fn exam_in<'a>(view: &'a Value, exam_id: &str) -> &'a Value {
    find_exam(view, exam_id).unwrap_or_else(|| panic!("exam {exam_id} on the visit: {view:?}"))
}

/// The view lists `n` exams, none still to do.
fn exams_ended(view: &Value, n: usize) -> bool {
    view["exams"]
        .as_array()
        .is_some_and(|exams| exams.len() == n && exams.iter().all(|e| e["status"] != "ordered"))
}

/// Sends `POST path` until it is no longer refused with 409 (diagnosis has not heard of an
/// exam's outcome yet); it must then succeed.
async fn until_done(client: &Client, path: &str, body: Option<&Value>) -> Reply {
    let done = eventually(PATIENCE, || async {
        let r = client.send("POST", path, body, &[]).await;
        (r.status != 409).then_some(r)
    })
    .await;
    let Some(r) = done else {
        let last = client.send("POST", path, body, &[]).await;
        panic!("{path} was still refused after {PATIENCE:?}: {:?}", last.body);
    };
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    r
}

/// The doctor reviews the exam's result, once diagnosis heard it was performed.
async fn review(doc: &Client, visit: &str, exam_id: &str) -> Reply {
    until_done(doc, &format!("/visits/{visit}/review"), Some(&json!({"exam_id": exam_id}))).await
}

/// The doctor completes the treatment, once diagnosis heard of every exam's outcome.
async fn complete(doc: &Client, visit: &str) -> Reply {
    until_done(doc, &format!("/visits/{visit}/complete"), None).await
}

/// The words of a text, lowercase (a word is a run of letters and digits).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// An SMS names no exam, quotes none of `secrets` and not the patient's name.
fn assert_says_nothing_clinical(text: &str, secrets: &[&str]) {
    let words = words(text);
    for exam in EXAM_KINDS {
        assert!(!words.iter().any(|w| w == exam), "an exam ({exam}) in an SMS: {text}");
    }
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} in an SMS: {text}");
    }
    assert!(!text.contains(NAME), "the patient's name in an SMS: {text}");
}

/// Every page of the board for `query` (which names at least the date), as `client` reads it.
async fn board_pages(client: &Client, query: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/visits?{query}&cursor={c}"),
            None => format!("/visits?{query}"),
        };
        let r = client.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        pages.push(items(&r.body));
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return pages,
        }
    }
}

/// The board for `query`, every page.
async fn board(client: &Client, query: &str) -> Vec<Value> {
    board_pages(client, query).await.into_iter().flatten().collect()
}

/// Waits until the board for `query` lists exactly `want` (in any order); returns it.
async fn wait_board(client: &Client, query: &str, want: &[String]) -> Vec<Value> {
    let mut want = want.to_vec();
    want.sort();
    let listed = eventually(PATIENCE, || async {
        let listed = board(client, query).await;
        let mut ids = ids_of(&listed);
        ids.sort();
        (ids == want).then_some(listed)
    })
    .await;
    listed.unwrap_or_else(|| panic!("the board for {query} never listed {want:?}"))
}

// FR1 — reception registers a visit.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_reception_registers_a_visit_which_is_received_and_texts_the_patient_its_reference() {
    let stack = start_on(ON).await;
    let phone = "010-2100-0001";
    let r = reception(&stack)
        .post("/visits", &visit_of(INTERNAL, phone, Some("fr1-patient")))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = id_of(&r);
    assert_eq!(r.location.as_deref(), Some(format!("/visits/{id}").as_str()));
    for (field, want) in [
        ("status", json!("received")),
        ("fhir_status", json!("arrived")),
        ("department", json!(INTERNAL)),
        ("name", json!(NAME)),
        ("queued", json!(false)),
        ("doctor", Value::Null),
        ("exams", json!([])),
        ("reason", Value::Null),
    ] {
        assert_eq!(r.body[field], want, "{field}: {:?}", r.body);
    }
    assert_eq!(timeline(&r.body), ["received"]);

    wait_texts(&stack, &e164(phone), 1).await;
    settled(&stack).await;
    let texts = texts_to(&stack, &e164(phone)).await;
    assert_eq!(texts.len(), 1, "one SMS: {texts:?}");
    assert!(
        texts[0].contains(short_ref(&id)) && texts[0].contains("접수"),
        "the registration, with its reference: {texts:?}"
    );
    assert_says_nothing_clinical(&texts[0], &[]);
    let seen = wait_status(&patient(&stack, "fr1-patient"), &id, "received").await;
    assert_eq!(seen["department"], INTERNAL);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_bad_input_is_a_422_naming_each_field_listing_the_known_departments_and_writes_nothing() {
    let stack = start_on(ON).await;
    let desk = reception(&stack);

    let unknown = desk.post("/visits", &visit_of("cardiology", PHONE, None)).await;
    assert_problem(&unknown, 422);
    assert_eq!(error_fields(&unknown), ["department"]);
    let detail = error_detail(&unknown, "department");
    assert!(detail.contains(DEPARTMENTS), "the known departments are listed: {detail}");

    let missing = desk.post("/visits", &json!({"department": INTERNAL})).await;
    assert_problem(&missing, 422);
    let fields = error_fields(&missing);
    for f in ["name", "phone"] {
        assert!(fields.contains(&f.to_owned()), "{f} named: {:?}", missing.body);
    }

    let bad_phone = desk
        .post("/visits", &json!({"name": NAME, "phone": "12", "department": INTERNAL}))
        .await;
    assert_problem(&bad_phone, 422);
    assert_eq!(error_fields(&bad_phone), ["phone"]);

    let all_wrong = desk
        .post(
            "/visits",
            &json!({"name": "", "phone": "12", "department": "cardiology", "locale": "fr", "patient_sub": "not an account"}),
        )
        .await;
    assert_problem(&all_wrong, 422);
    let fields = error_fields(&all_wrong);
    for f in ["name", "phone", "department", "locale", "patient_sub"] {
        assert!(fields.contains(&f.to_owned()), "{f} named: {:?}", all_wrong.body);
    }

    let mut typo = visit_of(INTERNAL, PHONE, None);
    typo["departement"] = json!("surgery");
    let unknown_field = desk.post("/visits", &typo).await;
    assert_problem(&unknown_field, 422);
    assert_eq!(error_fields(&unknown_field), ["departement"]);

    let raw = desk.send_raw("POST", "/visits", "application/json", b"{not json".to_vec()).await;
    assert_eq!(raw.status, 400, "{:?}", raw.body);

    settled(&stack).await;
    let today = desk.get("/visits?limit=100").await;
    assert_eq!(today.status, 200, "{:?}", today.body);
    assert!(items(&today.body).is_empty(), "nothing registered: {:?}", today.body);
    assert!(queue_ids(&stack, INTERNAL).await.is_empty(), "nobody queued");
    assert!(sms(&stack).await.is_empty(), "nobody texted");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_the_same_idempotency_key_registers_once() {
    let stack = start_on(ON).await;
    let desk = reception(&stack);
    let phone = "010-2100-0003";
    let body = visit_of(INTERNAL, phone, None);
    let key = [("idempotency-key", "hv-5c2e9a71")];
    let first = desk.send("POST", "/visits", Some(&body), &key).await;
    let again = desk.send("POST", "/visits", Some(&body), &key).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(first.body["id"], again.body["id"], "the same visit");
    let id = id_of(&first);
    let mut other = body.clone();
    other["department"] = json!("surgery");
    assert_problem(&desk.send("POST", "/visits", Some(&other), &key).await, 422);

    wait_queued(&stack, INTERNAL, &id).await;
    settled(&stack).await;
    let date = first.body["date"].as_str().expect("a date");
    assert_eq!(
        ids_of(&board(&desk, &format!("date={date}")).await),
        std::slice::from_ref(&id),
        "one visit"
    );
    assert_eq!(queue_ids(&stack, INTERNAL).await, std::slice::from_ref(&id), "queued once");
    assert_eq!(texts_to(&stack, &e164(phone)).await.len(), 1, "texted once");
    stack.shutdown().await;
}

// FR2 — the patient joins the department's doctors' queue.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr2_a_registered_patient_joins_their_departments_queue_oldest_first_and_no_other() {
    let stack = start_on(ON).await;
    let first = register(&stack, INTERNAL, None).await;
    wait_queued(&stack, INTERNAL, &first).await;
    let second = register(&stack, INTERNAL, None).await;
    let elsewhere = register(&stack, "surgery", None).await;
    wait_queued(&stack, INTERNAL, &second).await;
    wait_queued(&stack, "surgery", &elsewhere).await;

    let internal = queue_of(&stack, INTERNAL).await;
    assert_eq!(ids_of(&internal), [first.clone(), second.clone()], "oldest first");
    assert!(created(&internal[0]) <= created(&internal[1]));
    for v in &internal {
        assert_eq!(v["queued"], true, "{v:?}");
        assert_eq!(v["department"], INTERNAL, "{v:?}");
        assert_eq!(v["status"], "received", "{v:?}");
        assert_eq!(v["name"], NAME, "the doctor calls the patient by name: {v:?}");
    }
    assert_eq!(queue_ids(&stack, "surgery").await, std::slice::from_ref(&elsewhere));
    assert!(queue_ids(&stack, "dermatology").await.is_empty());

    let view = wait_view(&reception(&stack), &first, "the queue", |v| v["queued"] == true).await;
    assert_eq!(count(&view, "queued"), 1, "{view:?}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr2_the_queue_needs_a_known_department_and_is_for_doctors_only() {
    let stack = start_on(ON).await;
    let doc = doctor(&stack, "doctor-a");
    let missing = doc.get("/doctor/queue").await;
    assert_problem(&missing, 422);
    assert_eq!(error_fields(&missing), ["department"]);
    let unknown = doc.get("/doctor/queue?department=cardiology").await;
    assert_problem(&unknown, 422);
    assert_eq!(error_fields(&unknown), ["department"]);
    assert!(error_detail(&unknown, "department").contains(DEPARTMENTS), "{:?}", unknown.body);
    let extra = doc.get("/doctor/queue?department=internal&sort=name").await;
    assert_problem(&extra, 422);
    assert_eq!(error_fields(&extra), ["sort"]);
    assert_problem(&reception(&stack).get("/doctor/queue?department=internal").await, 403);
    assert_problem(&patient(&stack, "p-1").get("/doctor/queue?department=internal").await, 403);
    stack.shutdown().await;
}

// FR3 — a doctor takes the patient and prescribes exams.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_a_doctor_takes_the_patient_who_leaves_the_queue_is_called_in_and_gets_exams_prescribed() {
    let stack = start_on(ON).await;
    let phone = "010-2300-0001";
    let id = register_with(&stack, &visit_of(INTERNAL, phone, None)).await;
    let doc = doctor(&stack, "doctor-a");
    let exams_path = format!("/visits/{id}/exams");
    wait_queued(&stack, INTERNAL, &id).await;
    assert_problem(&doc.post(&exams_path, &json!({"exam": "blood"})).await, 409);

    let r = doc.post_empty(&format!("/visits/{id}/start")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"id": id, "status": "in-progress", "fhir_status": "in-progress"}));
    assert_eq!(
        doc.post_empty(&format!("/visits/{id}/start")).await.status,
        200,
        "taking one's own patient twice is harmless"
    );
    wait_unqueued(&stack, INTERNAL, &id).await;
    let texts = wait_texts(&stack, &e164(phone), 2).await;
    assert!(
        texts.iter().any(|t| t.contains("진료실") && t.contains(short_ref(&id))),
        "called in: {texts:?}"
    );

    let r = doc.post(&exams_path, &json!({"exam": "blood"})).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let blood = id_of(&r);
    // The visit shows the exam at once; the work list, once examination heard of it.
    assert_eq!(r.location.as_deref(), Some(format!("/visits/{id}").as_str()));
    assert_eq!(
        r.body,
        json!({"id": blood, "visit_id": id, "status": "ordered", "fhir_status": "active"})
    );
    let unknown = doc.post(&exams_path, &json!({"exam": "mri"})).await;
    assert_problem(&unknown, 422);
    assert_eq!(error_fields(&unknown), ["exam"]);
    assert!(
        error_detail(&unknown, "exam").contains(EXAMS),
        "the known exams are listed: {:?}",
        unknown.body
    );
    let none = doc.post(&exams_path, &json!({})).await;
    assert_problem(&none, 422);
    assert_eq!(error_fields(&none), ["exam"]);
    assert_problem(&doc.post(&exams_path, &json!({"exam": "blood"})).await, 409);
    let xray = prescribe(&doc, &id, "xray").await;

    // Both desks' events about each exam: examination's order may be folded before
    // diagnosis's prescription (which adds the timeline's step), and the reverse.
    let view = wait_view(&doc, &id, "in progress with two exams", |v| {
        v["status"] == "in-progress" && v["exams"].as_array().is_some_and(|e| e.len() == 2) && count(v, "exam-ordered") == 2
    })
    .await;
    assert_eq!(view["doctor"], "doctor-a");
    assert_eq!(view["fhir_status"], "in-progress");
    assert_eq!(view["queued"], false);
    for (exam, kind) in [(&blood, "blood"), (&xray, "xray")] {
        let e = exam_in(&view, exam);
        assert_eq!(
            (e["exam"].clone(), e["status"].clone(), e["fhir_status"].clone()),
            (json!(kind), json!("ordered"), json!("active"))
        );
    }
    assert_eq!(count(&view, "exam-ordered"), 2, "{view:?}");
    assert_eq!(count(&view, "in-progress"), 1, "{view:?}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_only_the_patients_doctor_acts_on_the_treatment_and_a_second_doctor_cannot_take_them() {
    let stack = start_on(ON).await;
    let mine = doctor(&stack, "doctor-a");
    let other = doctor(&stack, "doctor-b");
    let id = taken_visit(&stack, &mine, &visit_of(INTERNAL, PHONE, None)).await;
    let blood = prescribe(&mine, &id, "blood").await;

    assert_problem(&other.post_empty(&format!("/visits/{id}/start")).await, 409);
    assert_problem(&other.post(&format!("/visits/{id}/exams"), &json!({"exam": "xray"})).await, 403);
    assert_problem(&other.post_empty(&format!("/visits/{id}/complete")).await, 403);
    assert_problem(&other.post(&format!("/visits/{id}/review"), &json!({"exam_id": blood})).await, 403);
    assert_problem(&other.post(&format!("/visits/{id}/refuse"), &json!({"reason": REFUSAL})).await, 403);
    for not_a_doctor in [reception(&stack), examiner(&stack), patient(&stack, "p-1")] {
        assert_problem(&not_a_doctor.post_empty(&format!("/visits/{id}/start")).await, 403);
        assert_problem(
            &not_a_doctor.post(&format!("/visits/{id}/exams"), &json!({"exam": "xray"})).await,
            403,
        );
    }
    settled(&stack).await;
    let view = wait_status(&mine, &id, "in-progress").await;
    assert_eq!(view["doctor"], "doctor-a");
    assert_eq!(view["exams"].as_array().map(Vec::len), Some(1), "nothing prescribed by the others");
    stack.shutdown().await;
}

// FR4 — each prescription reaches the examiners' work list.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr4_a_prescription_reaches_the_examiners_work_list_with_the_patient_and_the_department() {
    let stack = start_on(ON).await;
    let doc = doctor(&stack, "doctor-a");
    let id = taken_visit(&stack, &doc, &visit_of("surgery", PHONE, None)).await;
    let blood = prescribe(&doc, &id, "blood").await;
    let xray = prescribe(&doc, &id, "xray").await;

    let item = wait_on_work_list(&stack, &blood).await;
    wait_on_work_list(&stack, &xray).await;
    for (field, want) in [
        ("visit_id", json!(id)),
        ("exam", json!("blood")),
        ("patient_name", json!(NAME)),
        ("department", json!("surgery")),
        ("status", json!("ordered")),
        ("fhir_status", json!("active")),
        ("note", Value::Null),
        ("reason", Value::Null),
    ] {
        assert_eq!(item[field], want, "{field}: {item:?}");
    }
    let listed = work_list(&stack, "").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(created(&listed[0]) <= created(&listed[1]), "oldest first: {listed:?}");

    for reader in [examiner(&stack), doctor(&stack, "doctor-b")] {
        let r = reader.get(&format!("/exams/{blood}")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, item);
    }
    let by_department = work_list(&stack, "&department=surgery").await;
    assert_eq!(by_department.len(), 2);
    assert!(work_list(&stack, "&department=internal").await.is_empty());
    assert!(work_list(&stack, "&status=performed").await.is_empty());
    let bad = examiner(&stack).get("/exams?status=done").await;
    assert_problem(&bad, 422);
    assert_eq!(error_fields(&bad), ["status"]);
    assert_problem(&examiner(&stack).get("/exams/01KBHSP0000000000000000ZZZ").await, 404);
    assert_problem(&doc.get("/exams").await, 403);
    assert_problem(&reception(&stack).get(&format!("/exams/{blood}")).await, 403);
    assert_problem(&patient(&stack, "p-1").get(&format!("/exams/{blood}")).await, 403);
    stack.shutdown().await;
}

// FR5 — an examiner performs an exam with a note or cancels it with a reason.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr5_an_examiner_performs_an_exam_with_a_note_or_cancels_it_with_a_reason_once() {
    let stack = start_on(ON).await;
    let doc = doctor(&stack, "doctor-a");
    let id = taken_visit(&stack, &doc, &visit_of(INTERNAL, PHONE, None)).await;
    let exams = prescribed(&stack, &doc, &id, &["blood", "xray", "ecg"]).await;
    let (blood, xray, ecg) = (&exams[0], &exams[1], &exams[2]);
    let ex = examiner(&stack);

    let r = perform(&stack, blood, NOTE).await;
    assert_eq!(
        r.body,
        json!({"id": blood, "visit_id": id, "status": "performed", "fhir_status": "completed"})
    );
    assert_eq!(
        ex.post(&format!("/exams/{blood}/perform"), &json!({"note": NOTE})).await.status,
        200,
        "performing twice is harmless"
    );
    let r = cancel_exam(&stack, xray, REASON).await;
    assert_eq!(
        r.body,
        json!({"id": xray, "visit_id": id, "status": "cancelled", "fhir_status": "revoked"})
    );
    assert_eq!(
        ex.post(&format!("/exams/{xray}/cancel"), &json!({"reason": REASON})).await.status,
        200,
        "cancelling twice is harmless"
    );
    assert_problem(&ex.post(&format!("/exams/{xray}/perform"), &json!({"note": NOTE})).await, 409);
    assert_problem(&ex.post(&format!("/exams/{blood}/cancel"), &json!({"reason": REASON})).await, 409);
    assert_problem(&doc.post(&format!("/exams/{ecg}/perform"), &json!({"note": NOTE})).await, 403);
    assert_problem(&doc.post(&format!("/exams/{ecg}/cancel"), &json!({"reason": REASON})).await, 403);
    for (body, field) in [
        (json!({"note": "   "}), "note"),
        (json!({}), "note"),
        (json!({"note": 5}), "note"),
        (json!({"note": NOTE, "result": "x"}), "result"),
    ] {
        let r = ex.post(&format!("/exams/{ecg}/perform"), &body).await;
        assert_problem(&r, 422);
        assert_eq!(error_fields(&r), [field], "{body}: {:?}", r.body);
    }
    let blank = ex.post(&format!("/exams/{ecg}/cancel"), &json!({"reason": ""})).await;
    assert_problem(&blank, 422);
    assert_eq!(error_fields(&blank), ["reason"]);
    assert_problem(
        &ex.post("/exams/01KBHSP0000000000000000ZZZ/perform", &json!({"note": NOTE})).await,
        404,
    );

    let to_do = eventually(PATIENCE, || async {
        let ids = ids_of(&work_list(&stack, "").await);
        (ids == std::slice::from_ref(ecg)).then_some(ids)
    })
    .await;
    assert!(to_do.is_some(), "only the ecg is left to do");
    let done = work_list(&stack, "&status=performed").await;
    assert_eq!(ids_of(&done), std::slice::from_ref(blood));
    assert_eq!(done[0]["note"], NOTE);
    let dropped = work_list(&stack, "&status=cancelled").await;
    assert_eq!(ids_of(&dropped), std::slice::from_ref(xray));
    assert_eq!(dropped[0]["reason"], REASON);
    assert_eq!(dropped[0]["fhir_status"], "revoked");
    let ordered = ex.get(&format!("/exams/{ecg}")).await;
    assert_eq!(
        ordered.body["status"], "ordered",
        "a refused note changed nothing: {:?}",
        ordered.body
    );
    stack.shutdown().await;
}

// FR6 — the doctor sees each exam's outcome on the visit and reviews it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr6_the_doctor_sees_each_exams_outcome_on_the_visit_and_reviews_a_performed_one() {
    let stack = start_on(ON).await;
    let doc = doctor(&stack, "doctor-a");
    let id = taken_visit(&stack, &doc, &visit_of(INTERNAL, PHONE, None)).await;
    let exams = prescribed(&stack, &doc, &id, &["blood", "xray", "ecg"]).await;
    let (blood, xray, ecg) = (&exams[0], &exams[1], &exams[2]);
    perform(&stack, blood, NOTE).await;
    cancel_exam(&stack, xray, REASON).await;

    let view = wait_view(&doc, &id, "two outcomes", |v| {
        v["exams"]
            .as_array()
            .is_some_and(|es| es.iter().filter(|e| e["status"] != "ordered").count() == 2)
    })
    .await;
    let b = exam_in(&view, blood);
    for (field, want) in [
        ("exam", json!("blood")),
        ("status", json!("performed")),
        ("fhir_status", json!("completed")),
        ("note", json!(NOTE)),
        ("reason", Value::Null),
        ("reviewed", json!(false)),
    ] {
        assert_eq!(b[field], want, "blood {field}: {b:?}");
    }
    let x = exam_in(&view, xray);
    for (field, want) in [
        ("exam", json!("xray")),
        ("status", json!("cancelled")),
        ("fhir_status", json!("revoked")),
        ("note", Value::Null),
        ("reason", json!(REASON)),
    ] {
        assert_eq!(x[field], want, "xray {field}: {x:?}");
    }
    assert_eq!(exam_in(&view, ecg)["status"], "ordered");
    assert_eq!(count(&view, "exam-performed"), 1, "{view:?}");
    assert_eq!(count(&view, "exam-cancelled"), 1, "{view:?}");

    let review_path = format!("/visits/{id}/review");
    assert_problem(&doc.post(&review_path, &json!({"exam_id": ecg})).await, 409);
    settled(&stack).await;
    assert_problem(&doc.post(&review_path, &json!({"exam_id": xray})).await, 409);
    for body in [json!({"exam_id": "nope"}), json!({})] {
        let bad = doc.post(&review_path, &body).await;
        assert_problem(&bad, 422);
        assert_eq!(error_fields(&bad), ["exam_id"], "{body}");
    }
    let r = review(&doc, &id, blood).await;
    assert_eq!(r.body, json!({"id": id, "status": "in-progress", "fhir_status": "in-progress"}));
    assert_eq!(
        doc.post(&review_path, &json!({"exam_id": blood})).await.status,
        200,
        "reviewing twice is harmless"
    );
    let reviewed = wait_view(&doc, &id, "the blood result reviewed", |v| {
        find_exam(v, blood).is_some_and(|e| e["reviewed"] == true)
    })
    .await;
    assert_eq!(exam_in(&reviewed, xray)["reviewed"], false);
    settled(&stack).await;
    assert_eq!(count(&read_visit(&doc, &id).await.body, "exam-reviewed"), 1, "reviewed once");
    stack.shutdown().await;
}

// FR7 — the doctor completes or refuses; reception follows.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr7_the_doctor_completes_only_once_every_exam_ended_and_was_reviewed_and_reception_follows() {
    let stack = start_on(ON).await;
    let phone = "010-2700-0001";
    let doc = doctor(&stack, "doctor-a");
    let id = taken_visit(&stack, &doc, &visit_of(INTERNAL, phone, None)).await;
    let exams = prescribed(&stack, &doc, &id, &["blood", "xray"]).await;
    let (blood, xray) = (&exams[0], &exams[1]);
    let complete_path = format!("/visits/{id}/complete");
    assert_problem(&doc.post_empty(&complete_path).await, 409);

    perform(&stack, blood, NOTE).await;
    settled(&stack).await;
    let pending = doc.post_empty(&complete_path).await;
    assert_problem(&pending, 409);
    assert!(
        pending.body["detail"].as_str().is_some_and(|d| d.contains("pending")),
        "{:?}",
        pending.body
    );

    cancel_exam(&stack, xray, REASON).await;
    settled(&stack).await;
    let unread = doc.post_empty(&complete_path).await;
    assert_problem(&unread, 409);
    assert!(
        unread.body["detail"].as_str().is_some_and(|d| d.contains("review")),
        "{:?}",
        unread.body
    );

    review(&doc, &id, blood).await;
    let r = doc.post_empty(&complete_path).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"id": id, "status": "completed", "fhir_status": "finished"}));
    assert_eq!(doc.post_empty(&complete_path).await.status, 200, "completing twice is harmless");

    let seen = wait_status(&reception(&stack), &id, "completed").await;
    assert_eq!(seen["fhir_status"], "finished");
    assert_problem(&doc.post(&format!("/visits/{id}/exams"), &json!({"exam": "ecg"})).await, 409);
    assert_problem(&doc.post(&format!("/visits/{id}/refuse"), &json!({"reason": REFUSAL})).await, 409);
    let texts = wait_texts(&stack, &e164(phone), 3).await;
    assert!(
        texts.iter().any(|t| t.contains("진료가 끝났습니다") && t.contains(short_ref(&id))),
        "the outcome SMS: {texts:?}"
    );
    settled(&stack).await;
    assert_eq!(count(&read_visit(&doc, &id).await.body, "completed"), 1);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr7_a_refusal_revokes_the_pending_exam_orders_and_reception_follows() {
    let stack = start_on(ON).await;
    let doc = doctor(&stack, "doctor-a");
    let id = taken_visit(&stack, &doc, &visit_of(INTERNAL, PHONE, None)).await;
    let exams = prescribed(&stack, &doc, &id, &["urine", "ecg", "ct"]).await;
    let (urine, ecg, ct) = (&exams[0], &exams[1], &exams[2]);
    perform(&stack, urine, NOTE).await;
    wait_view(&doc, &id, "the urine performed", |v| {
        find_exam(v, urine).is_some_and(|e| e["status"] == "performed")
    })
    .await;

    let refuse_path = format!("/visits/{id}/refuse");
    for body in [json!({}), json!({"reason": "  "})] {
        let bad = doc.post(&refuse_path, &body).await;
        assert_problem(&bad, 422);
        assert_eq!(error_fields(&bad), ["reason"], "{body}");
    }
    let r = doc.post(&refuse_path, &json!({"reason": REFUSAL})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"id": id, "status": "refused", "fhir_status": "finished"}));
    assert_eq!(
        doc.post(&refuse_path, &json!({"reason": REFUSAL})).await.status,
        200,
        "refusing twice is harmless"
    );

    let ex = examiner(&stack);
    for exam in [ecg, ct] {
        let revoked = eventually(PATIENCE, || async {
            let r = ex.get(&format!("/exams/{exam}")).await;
            (r.status == 200 && r.body["status"] == "cancelled").then_some(r.body)
        })
        .await
        .unwrap_or_else(|| panic!("exam {exam} was never revoked"));
        assert_eq!(revoked["fhir_status"], "revoked");
        assert_eq!(revoked["reason"], REVOKED);
        assert_problem(&ex.post(&format!("/exams/{exam}/perform"), &json!({"note": NOTE})).await, 409);
    }
    assert_eq!(
        ex.get(&format!("/exams/{urine}")).await.body["status"],
        "performed",
        "a performed exam stays"
    );
    assert!(work_list(&stack, "").await.is_empty(), "nothing left to do");
    let mut cancelled = ids_of(&work_list(&stack, "&status=cancelled").await);
    cancelled.sort();
    let mut want = vec![ecg.clone(), ct.clone()];
    want.sort();
    assert_eq!(cancelled, want);

    let seen = wait_status(&reception(&stack), &id, "refused").await;
    assert_eq!(seen["fhir_status"], "finished");
    let clinical = wait_view(&doc, &id, "the revoked exams", |v| exams_ended(v, 3)).await;
    assert_eq!(clinical["reason"], REFUSAL);
    assert_eq!(exam_in(&clinical, ecg)["reason"], REVOKED);
    assert_eq!(exam_in(&clinical, ct)["fhir_status"], "revoked");
    assert_problem(&doc.post_empty(&format!("/visits/{id}/complete")).await, 409);
    stack.shutdown().await;
}

// FR8 — reception closes the visit, or cancels it before a doctor took the patient.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr8_reception_closes_a_visit_once_its_treatment_is_over() {
    let stack = start_on(ON).await;
    let desk = reception(&stack);
    let doc = doctor(&stack, "doctor-a");
    let id = register(&stack, INTERNAL, None).await;
    let close_path = format!("/visits/{id}/close");
    wait_queued(&stack, INTERNAL, &id).await;
    assert_problem(&desk.post_empty(&close_path).await, 409);
    take(&doc, &id).await;
    wait_status(&desk, &id, "in-progress").await;
    assert_problem(&desk.post_empty(&close_path).await, 409);

    complete(&doc, &id).await;
    wait_status(&desk, &id, "completed").await;
    let r = desk.post_empty(&close_path).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"id": id, "status": "closed", "fhir_status": "finished"}));
    assert_eq!(desk.post_empty(&close_path).await.status, 200, "closing twice is harmless");
    assert_problem(&desk.post_empty(&format!("/visits/{id}/cancel")).await, 409);
    let closed = wait_status(&desk, &id, "closed").await;
    assert_eq!(closed["fhir_status"], "finished");
    settled(&stack).await;
    let view = read_visit(&desk, &id).await.body;
    assert_eq!(view["status"], "closed", "a late event moves nothing back");
    assert_eq!(count(&view, "closed"), 1);

    let refused = taken_visit(&stack, &doc, &visit_of(INTERNAL, PHONE, None)).await;
    assert_eq!(
        doc.post(&format!("/visits/{refused}/refuse"), &json!({"reason": REFUSAL}))
            .await
            .status,
        200
    );
    wait_status(&desk, &refused, "refused").await;
    assert_eq!(desk.post_empty(&format!("/visits/{refused}/close")).await.status, 200);
    wait_status(&desk, &refused, "closed").await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr8_reception_cancels_a_waiting_visit_which_leaves_the_queue_but_not_one_a_doctor_took() {
    let stack = start_on(ON).await;
    let desk = reception(&stack);
    let doc = doctor(&stack, "doctor-a");
    let phone = "010-2800-0002";
    let id = register_with(&stack, &visit_of(INTERNAL, phone, None)).await;
    wait_queued(&stack, INTERNAL, &id).await;
    let r = desk.post_empty(&format!("/visits/{id}/cancel")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body, json!({"id": id, "status": "cancelled", "fhir_status": "cancelled"}));
    assert_eq!(
        desk.post_empty(&format!("/visits/{id}/cancel")).await.status,
        200,
        "cancelling twice is harmless"
    );
    assert_problem(&doc.post_empty(&format!("/visits/{id}/start")).await, 409);
    wait_unqueued(&stack, INTERNAL, &id).await;
    let view = wait_status(&desk, &id, "cancelled").await;
    assert_eq!(view["fhir_status"], "cancelled");
    assert_eq!(view["doctor"], Value::Null);
    assert_problem(&desk.post_empty(&format!("/visits/{id}/close")).await, 409);
    let texts = wait_texts(&stack, &e164(phone), 2).await;
    assert!(texts.iter().any(|t| t.contains("취소") && t.contains(short_ref(&id))), "{texts:?}");

    let taken = taken_visit(&stack, &doc, &visit_of(INTERNAL, PHONE, None)).await;
    assert_problem(&desk.post_empty(&format!("/visits/{taken}/cancel")).await, 409);
    wait_status(&desk, &taken, "in-progress").await;
    assert_problem(&desk.post_empty(&format!("/visits/{taken}/cancel")).await, 409);
    assert_problem(&desk.post_empty("/visits/01KBHSP0000000000000000ZZZ/cancel").await, 404);
    settled(&stack).await;
    assert_eq!(read_visit(&desk, &taken).await.body["status"], "in-progress");
    assert_eq!(read_visit(&desk, &id).await.body["status"], "cancelled");
    stack.shutdown().await;
}

// Views — the visit's own view, and the customer team's board.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_a_patient_reads_their_own_visit_with_its_notes_and_the_desks_read_statuses_without_them() {
    let stack = start_on(ON).await;
    let doc = doctor(&stack, "doctor-a");
    let own = patient(&stack, "views-patient");
    let id = taken_visit(&stack, &doc, &visit_of(INTERNAL, PHONE, Some("views-patient"))).await;
    let exams = prescribed(&stack, &doc, &id, &["blood", "xray"]).await;
    let (blood, xray) = (&exams[0], &exams[1]);
    perform(&stack, blood, NOTE).await;
    cancel_exam(&stack, xray, REASON).await;
    settled(&stack).await;
    review(&doc, &id, blood).await;
    assert_eq!(
        doc.post(&format!("/visits/{id}/refuse"), &json!({"reason": REFUSAL})).await.status,
        200
    );

    let mine = wait_view(&own, &id, "refused with its reason", |v| {
        v["status"] == "refused" && v["reason"] == REFUSAL
    })
    .await;
    assert_eq!(mine["fhir_status"], "finished");
    assert_eq!(mine["doctor"], "doctor-a");
    assert_eq!(exam_in(&mine, blood)["note"], NOTE);
    assert_eq!(exam_in(&mine, blood)["reviewed"], true);
    assert_eq!(exam_in(&mine, xray)["reason"], REASON);
    let listed = eventually(PATIENCE, || async {
        let page = own.get("/me/visits").await.body;
        items(&page)
            .into_iter()
            .find(|v| v["id"] == id.as_str() && v["status"] == "refused")
    })
    .await
    .expect("the patient's own list shows the visit");
    assert_eq!(exam_in(&listed, blood)["note"], NOTE);
    assert_eq!(listed["reason"], REFUSAL);
    assert_eq!(
        ids_of(&items(&own.get("/me/visits?status=refused").await.body)),
        std::slice::from_ref(&id)
    );
    assert!(items(&own.get("/me/visits?status=closed").await.body).is_empty());
    let dated = own.get("/me/visits?date=2027-01-04").await;
    assert_problem(&dated, 422);
    assert_eq!(error_fields(&dated), ["date"]);

    let stranger = patient(&stack, "someone-else");
    assert_problem(&read_visit(&stranger, &id).await, 404);
    assert!(items(&stranger.get("/me/visits").await.body).is_empty(), "nobody else's visits");
    assert_problem(&own.get("/visits").await, 403);
    assert_problem(&own.get("/exams").await, 403);

    for (who, staff) in [("reception", reception(&stack)), ("customer team", team(&stack))] {
        let r = read_visit(&staff, &id).await;
        assert_eq!(r.status, 200, "{who}: {:?}", r.body);
        let v = &r.body;
        assert_eq!(v["status"], "refused", "{who}");
        assert_eq!(v["fhir_status"], "finished", "{who}");
        assert_eq!(v["reason"], Value::Null, "{who}: no refusal reason");
        assert_eq!(exam_in(v, blood)["status"], "performed", "{who}");
        assert_eq!(exam_in(v, xray)["status"], "cancelled", "{who}");
        for exam in [blood, xray] {
            assert_eq!(exam_in(v, exam)["note"], Value::Null, "{who}: no note");
            assert_eq!(exam_in(v, exam)["reason"], Value::Null, "{who}: no reason");
        }
    }
    let clinical = read_visit(&examiner(&stack), &id).await;
    assert_eq!(exam_in(&clinical.body, blood)["note"], NOTE, "the clinicians read the notes");
    assert_eq!(read_visit(&doc, &id).await.body["reason"], REFUSAL);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_the_customer_teams_board_filters_a_days_visits_and_pages_through_each_once_read_only() {
    let stack = start_on(ON).await;
    let desk = reception(&stack);
    let doc = doctor(&stack, "doctor-a");
    let first = desk.post("/visits", &visit_of(INTERNAL, PHONE, None)).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let date = first.body["date"].as_str().expect("a date").to_owned();
    let mut internal = vec![id_of(&first)];
    for _ in 0..2 {
        internal.push(register(&stack, INTERNAL, None).await);
    }
    let mut surgery = Vec::new();
    for _ in 0..2 {
        surgery.push(register(&stack, "surgery", None).await);
    }
    let all: Vec<String> = internal.iter().chain(&surgery).cloned().collect();
    assert_eq!(desk.post_empty(&format!("/visits/{}/cancel", internal[2])).await.status, 200);
    wait_queued(&stack, "surgery", &surgery[0]).await;
    take(&doc, &surgery[0]).await;

    let board_team = team(&stack);
    wait_board(&board_team, &format!("date={date}&status=cancelled"), &[internal[2].clone()]).await;
    wait_board(
        &board_team,
        &format!("date={date}&status=in-progress&department=surgery"),
        &[surgery[0].clone()],
    )
    .await;
    wait_board(&board_team, &format!("date={date}&department=surgery"), &surgery).await;
    wait_board(
        &board_team,
        &format!("date={date}&status=received&department=internal"),
        &internal[..2],
    )
    .await;
    wait_board(&board_team, &format!("date={date}"), &all).await;

    let pages = board_pages(&board_team, &format!("date={date}&limit=2")).await;
    assert!(pages.iter().all(|p| p.len() <= 2), "pages of 2: {pages:?}");
    assert_eq!(pages.len(), 3, "five visits, two a page");
    let listed: Vec<Value> = pages.into_iter().flatten().collect();
    let mut ids = ids_of(&listed);
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "no visit listed twice");
    let mut want = all.clone();
    want.sort();
    assert_eq!(ids, want, "every visit once");
    assert!(listed.windows(2).all(|w| created(&w[0]) >= created(&w[1])), "newest first");
    for v in &listed {
        assert_eq!(v["reason"], Value::Null, "no clinical detail: {v:?}");
        assert_eq!(v["date"], date.as_str());
    }
    assert_eq!(
        board(&desk, &format!("date={date}")).await.len(),
        5,
        "reception reads the board too"
    );
    assert!(board(&board_team, "date=2000-01-01").await.is_empty(), "another day's");

    for (query, field) in [
        ("department=cardiology", "department"),
        ("status=waiting", "status"),
        ("date=04-01-2027", "date"),
        ("limit=0", "limit"),
        ("cursor=nope", "cursor"),
        ("colour=red", "colour"),
    ] {
        let r = board_team.get(&format!("/visits?{query}")).await;
        assert_problem(&r, 422);
        assert_eq!(error_fields(&r), [field], "{query}: {:?}", r.body);
    }
    assert_problem(&doc.get("/visits").await, 403);

    // Read only.
    let waiting = &internal[0];
    assert_problem(&board_team.post("/visits", &visit_of(INTERNAL, PHONE, None)).await, 403);
    for action in ["cancel", "close", "start"] {
        assert_problem(&board_team.post_empty(&format!("/visits/{waiting}/{action}")).await, 403);
    }
    assert_problem(
        &board_team
            .post(&format!("/visits/{waiting}/exams"), &json!({"exam": "blood"}))
            .await,
        403,
    );
    settled(&stack).await;
    assert_eq!(
        board(&board_team, &format!("date={date}")).await.len(),
        5,
        "nothing registered by the team"
    );
    assert_eq!(
        read_visit(&board_team, waiting).await.body["status"],
        "received",
        "nothing changed by the team"
    );
    stack.shutdown().await;
}

// NFR fault isolation — each desk works while another is down, and catches up once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_reception_registers_50_visits_while_diagnosis_fails_and_each_joins_the_queue_once_it_recovers() {
    let mut options = options_on_own_server(ON).await;
    options.bus.max_attempts = 1000;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    stack.faults().set(faults::QUEUE, true);
    stack.faults().set(faults::EXAM_OUTCOME, true);

    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(register_with(&stack, &visit_of(INTERNAL, &format!("010-6000-{i:04}"), None)).await);
    }
    let desk = reception(&stack);
    let registered = eventually_every(LOAD_PATIENCE, GENTLY, || async {
        let listed = desk.get("/visits?limit=100").await;
        (items(&listed.body).len() == 50).then_some(())
    })
    .await;
    assert!(registered.is_some(), "the 50 visits are on the board while diagnosis is down");
    let retried = eventually(PATIENCE, || async { (stack.faults().fired(faults::QUEUE) >= 2).then_some(()) }).await;
    assert!(retried.is_some(), "the queue is being retried");
    assert!(
        queue_ids(&stack, INTERNAL).await.is_empty(),
        "nobody queued while diagnosis is down"
    );
    // Diagnosis knows no such patient yet: nothing to take.
    assert_problem(
        &doctor(&stack, "doctor-a").post_empty(&format!("/visits/{}/start", ids[0])).await,
        404,
    );

    stack.faults().set(faults::QUEUE, false);
    stack.faults().set(faults::EXAM_OUTCOME, false);
    let caught_up = eventually_every(LOAD_PATIENCE, GENTLY, || async {
        (queue_ids(&stack, INTERNAL).await.len() >= 50).then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the queue never caught up (dead letters: {:?})",
        stack.dead_letters().await.expect("dead letters")
    );
    settled_after_load(&stack).await;
    let queue = queue_of(&stack, INTERNAL).await;
    let mut queued = ids_of(&queue);
    queued.sort();
    queued.dedup();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(queue.len(), 50, "each once");
    assert_eq!(queued, want, "every visit queued");
    assert!(queue.windows(2).all(|w| created(&w[0]) <= created(&w[1])), "oldest first");
    for id in &ids {
        let view = read_visit(&desk, id).await.body;
        assert_eq!(count(&view, "queued"), 1, "visit {id} queued once: {view:?}");
    }
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_doctors_prescribe_while_examination_fails_and_each_exam_reaches_the_work_list_once_it_recovers() {
    let mut options = options_on(ON).await;
    options.bus.max_attempts = 1000;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let doc = doctor(&stack, "doctor-a");
    let mut visits = Vec::new();
    for department in [INTERNAL, "surgery", "paediatrics"] {
        visits.push(taken_visit(&stack, &doc, &visit_of(department, PHONE, None)).await);
    }
    stack.faults().set(faults::EXAM_ORDER, true);

    let mut exams = Vec::new();
    for visit in &visits {
        for kind in ["blood", "ecg"] {
            exams.push(prescribe(&doc, visit, kind).await);
        }
    }
    for visit in &visits {
        let view = wait_view(&doc, visit, "its two exams ordered", |v| {
            v["exams"].as_array().is_some_and(|e| e.len() == 2) && count(v, "exam-ordered") == 2
        })
        .await;
        assert!(
            view["exams"].as_array().is_some_and(|e| e.iter().all(|x| x["status"] == "ordered")),
            "diagnosis works while examination is down: {view:?}"
        );
    }
    let retried = eventually(PATIENCE, || async { (stack.faults().fired(faults::EXAM_ORDER) >= 2).then_some(()) }).await;
    assert!(retried.is_some(), "the exam orders are being retried");
    assert!(
        work_list(&stack, "").await.is_empty(),
        "nothing on the work list while examination is down"
    );
    assert_problem(
        &examiner(&stack)
            .post(&format!("/exams/{}/perform", exams[0]), &json!({"note": NOTE}))
            .await,
        404,
    );

    stack.faults().set(faults::EXAM_ORDER, false);
    let caught_up = eventually(PATIENCE, || async {
        (work_list(&stack, "").await.len() >= exams.len()).then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the work list never caught up (dead letters: {:?})",
        stack.dead_letters().await.expect("dead letters")
    );
    settled(&stack).await;
    let listed = work_list(&stack, "").await;
    assert_eq!(listed.len(), exams.len(), "each exam once: {listed:?}");
    let mut ids = ids_of(&listed);
    ids.sort();
    let mut want = exams.clone();
    want.sort();
    assert_eq!(ids, want);
    for exam in &exams {
        let r = examiner(&stack).get(&format!("/exams/{exam}")).await;
        assert_eq!(r.body["status"], "ordered", "{:?}", r.body);
    }
    perform(&stack, &exams[0], NOTE).await;
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

// Redelivered and reordered events — three exams ended in any order end in the same view.

/// What a visit's view comes to, whatever the ids and times: its status, its exams by kind
/// and its timeline's steps, sorted.
fn outline(view: &Value) -> Value {
    let mut exams: Vec<Value> = view["exams"]
        .as_array()
        .expect("exams")
        .iter()
        .map(|e| {
            json!({
                "exam": e["exam"],
                "status": e["status"],
                "fhir_status": e["fhir_status"],
                "note": e["note"],
                "reason": e["reason"],
                "reviewed": e["reviewed"],
            })
        })
        .collect();
    exams.sort_by_key(|e| e["exam"].as_str().unwrap_or_default().to_owned());
    let mut steps = timeline(view);
    steps.sort();
    json!({"status": view["status"], "fhir_status": view["fhir_status"], "exams": exams, "timeline": steps})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_exams_ended_in_any_order_with_every_delivery_duplicated_end_in_the_same_view_and_no_completion_before_the_last() {
    let mut options = options_on(ON).await;
    options.bus.duplicate_every_delivery = true;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let doc = doctor(&stack, "doctor-a");
    let kinds = ["blood", "xray", "ecg"];
    let notes = ["haemoglobin within normal limits", "", "sinus rhythm"];
    let mut steps = vec![
        "received",
        "queued",
        "in-progress",
        "exam-ordered",
        "exam-ordered",
        "exam-ordered",
        "exam-performed",
        "exam-cancelled",
        "exam-performed",
        "exam-reviewed",
        "exam-reviewed",
        "completed",
    ];
    steps.sort_unstable();
    let expected = json!({
        "status": "completed",
        "fhir_status": "finished",
        "exams": [
            {"exam": "blood", "status": "performed", "fhir_status": "completed", "note": notes[0], "reason": null, "reviewed": true},
            {"exam": "ecg", "status": "performed", "fhir_status": "completed", "note": notes[2], "reason": null, "reviewed": true},
            {"exam": "xray", "status": "cancelled", "fhir_status": "revoked", "note": null, "reason": REASON, "reviewed": false},
        ],
        "timeline": steps,
    });

    let mut visits = Vec::new();
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let id = taken_visit(&stack, &doc, &visit_of(INTERNAL, PHONE, None)).await;
        let exams = prescribed(&stack, &doc, &id, &kinds).await;
        for (step, &i) in order.iter().enumerate() {
            if step == 2 {
                // Diagnosis has heard of the first two outcomes: the last exam still holds it.
                settled(&stack).await;
                assert_problem(&doc.post_empty(&format!("/visits/{id}/complete")).await, 409);
            }
            if i == 1 {
                cancel_exam(&stack, &exams[i], REASON).await;
            } else {
                perform(&stack, &exams[i], notes[i]).await;
            }
        }
        wait_view(&doc, &id, "its three exams ended", |v| exams_ended(v, 3)).await;
        settled(&stack).await;
        assert_problem(&doc.post_empty(&format!("/visits/{id}/complete")).await, 409);
        review(&doc, &id, &exams[0]).await;
        review(&doc, &id, &exams[2]).await;
        let done = complete(&doc, &id).await;
        assert_eq!(done.body["status"], "completed");
        wait_view(&doc, &id, "completed with two results reviewed", |v| {
            v["status"] == "completed" && count(v, "exam-reviewed") == 2
        })
        .await;
        visits.push((id, exams, order));
    }
    settled(&stack).await;
    for (id, exams, order) in &visits {
        let view = read_visit(&doc, id).await.body;
        assert_eq!(outline(&view), expected, "visit {id}, exams ended in the order {order:?}");
        for (exam, kind) in exams.iter().zip(kinds) {
            assert_eq!(exam_in(&view, exam)["exam"], kind, "{view:?}");
        }
    }
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

// The races between desks.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_two_doctors_taking_the_same_patient_one_wins_and_the_other_gets_409() {
    let stack = start_on(ON).await;
    let (a, b) = (doctor(&stack, "doctor-a"), doctor(&stack, "doctor-b"));
    for _ in 0..3 {
        let id = register(&stack, INTERNAL, None).await;
        wait_queued(&stack, INTERNAL, &id).await;
        let path = format!("/visits/{id}/start");
        let (ra, rb) = tokio::join!(a.post_empty(&path), b.post_empty(&path));
        let mut statuses = [ra.status, rb.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "a: {:?}, b: {:?}", ra.body, rb.body);
        let (winner, loser, sub) = if ra.status == 200 {
            (&a, &b, "doctor-a")
        } else {
            (&b, &a, "doctor-b")
        };
        let view = wait_view(winner, &id, "its doctor", |v| v["status"] == "in-progress" && v["doctor"] == sub).await;
        assert_eq!(count(&view, "in-progress"), 1, "{view:?}");
        assert_problem(&loser.post(&format!("/visits/{id}/exams"), &json!({"exam": "blood"})).await, 403);
        prescribe(winner, &id, "blood").await;
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_receptions_cancel_against_a_doctors_start_one_wins_and_the_visit_agrees() {
    let stack = start_on(ON).await;
    let desk = reception(&stack);
    let doc = doctor(&stack, "doctor-a");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(register(&stack, INTERNAL, None).await);
    }
    for id in &ids {
        wait_queued(&stack, INTERNAL, id).await;
    }
    let mut outcomes = Vec::new();
    for id in &ids {
        let (cancel_path, start_path) = (format!("/visits/{id}/cancel"), format!("/visits/{id}/start"));
        let (cancel, start) = tokio::join!(desk.post_empty(&cancel_path), doc.post_empty(&start_path));
        let mut statuses = [cancel.status, start.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "cancel: {:?}, start: {:?}", cancel.body, start.body);
        let want = if cancel.status == 200 { "cancelled" } else { "in-progress" };
        wait_status(&desk, id, want).await;
        outcomes.push(want);
    }
    settled(&stack).await;
    for (id, want) in ids.iter().zip(&outcomes) {
        let view = read_visit(&desk, id).await.body;
        assert_eq!(view["status"], *want, "visit {id} stays as the race decided: {view:?}");
        if *want == "cancelled" {
            assert_eq!(view["doctor"], Value::Null, "{view:?}");
            assert_eq!(view["queued"], false, "{view:?}");
            assert_problem(&doc.post_empty(&format!("/visits/{id}/start")).await, 409);
        } else {
            assert_eq!(view["doctor"], "doctor-a", "{view:?}");
            assert_eq!(count(&view, "cancelled"), 0, "{view:?}");
            assert_problem(&desk.post_empty(&format!("/visits/{id}/cancel")).await, 409);
        }
    }
    assert!(queue_ids(&stack, INTERNAL).await.is_empty(), "every patient taken or withdrawn");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_an_examiners_cancel_against_the_doctors_completion_ends_in_an_allowed_outcome() {
    let stack = start_on(ON).await;
    let doc = doctor(&stack, "doctor-a");
    let ex = examiner(&stack);
    for _ in 0..2 {
        let id = taken_visit(&stack, &doc, &visit_of(INTERNAL, PHONE, None)).await;
        let exams = prescribed(&stack, &doc, &id, &["blood"]).await;
        let blood = &exams[0];
        let (cancel_path, complete_path) = (format!("/exams/{blood}/cancel"), format!("/visits/{id}/complete"));
        let reason = json!({"reason": REASON});
        let (cancel, done) = tokio::join!(ex.post(&cancel_path, &reason), doc.post_empty(&complete_path));
        assert_eq!(cancel.status, 200, "examination does not wait for diagnosis: {:?}", cancel.body);
        // Either the completion came first and waits for the exam (409), or diagnosis had
        // already heard the exam ended and both succeed.
        assert!(done.status == 200 || done.status == 409, "{:?}", done.body);
        if done.status == 409 {
            complete(&doc, &id).await;
        }
        wait_status(&doc, &id, "completed").await;
        settled(&stack).await;
        let view = read_visit(&doc, &id).await.body;
        assert_eq!(view["status"], "completed");
        assert!(
            exams_ended(&view, 1),
            "never a completed treatment with an exam still to do: {view:?}"
        );
        assert_eq!(exam_in(&view, blood)["status"], "cancelled");
        let order = ex.get(&format!("/exams/{blood}")).await.body;
        assert_eq!(order["status"], "cancelled");
        assert_eq!(order["reason"], REASON, "the examiner's, not a revocation");
    }

    // Performing races the completion too: the result still needs the doctor's review.
    let id = taken_visit(&stack, &doc, &visit_of(INTERNAL, PHONE, None)).await;
    let exams = prescribed(&stack, &doc, &id, &["ecg"]).await;
    let (perform_path, complete_path) = (format!("/exams/{}/perform", exams[0]), format!("/visits/{id}/complete"));
    let note = json!({"note": NOTE});
    let (performed, done) = tokio::join!(ex.post(&perform_path, &note), doc.post_empty(&complete_path));
    assert_eq!(performed.status, 200, "{:?}", performed.body);
    assert_problem(&done, 409);
    review(&doc, &id, &exams[0]).await;
    complete(&doc, &id).await;
    let view = wait_status(&doc, &id, "completed").await;
    assert_eq!(exam_in(&view, &exams[0])["reviewed"], true);
    stack.shutdown().await;
}

// The SMS — where the patient is, never what the exams found or why.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_tell_the_patient_of_registration_call_in_and_outcome_and_never_an_exam_a_note_or_a_reason() {
    let stack = start_on(ON).await;
    let doc = doctor(&stack, "doctor-a");
    let ko = "010-4000-0001";
    let en = "010-4000-0002";
    let notes = ["anaemia suspected, ferritin low", "sinus rhythm, no ischaemia"];
    let reasons = ["had eaten before the test", "claustrophobic in the scanner"];
    let refusal = "declined the operation after the results";

    let refused = taken_visit(&stack, &doc, &visit_of(INTERNAL, ko, None)).await;
    let exams = prescribed(&stack, &doc, &refused, &["blood", "xray"]).await;
    perform(&stack, &exams[0], notes[0]).await;
    cancel_exam(&stack, &exams[1], reasons[0]).await;
    review(&doc, &refused, &exams[0]).await;
    assert_eq!(
        doc.post(&format!("/visits/{refused}/refuse"), &json!({"reason": refusal}))
            .await
            .status,
        200
    );

    let mut english = visit_of("dermatology", en, None);
    english["locale"] = json!("en");
    let completed = taken_visit(&stack, &doc, &english).await;
    let exams = prescribed(&stack, &doc, &completed, &["ecg", "ct"]).await;
    perform(&stack, &exams[0], notes[1]).await;
    cancel_exam(&stack, &exams[1], reasons[1]).await;
    review(&doc, &completed, &exams[0]).await;
    complete(&doc, &completed).await;

    wait_texts(&stack, &e164(ko), 3).await;
    wait_texts(&stack, &e164(en), 3).await;
    settled(&stack).await;
    for (phone, id, said) in [
        (ko, &refused, ["접수가 완료", "진료실", "진료가 종료"]),
        (en, &completed, ["You are registered", "will see you now", "consultation is over"]),
    ] {
        let texts = texts_to(&stack, &e164(phone)).await;
        assert_eq!(texts.len(), 3, "registration, call-in and outcome: {texts:?}");
        for phrase in said {
            assert_eq!(texts.iter().filter(|t| t.contains(phrase)).count(), 1, "{phrase:?} once: {texts:?}");
        }
        assert!(texts.iter().all(|t| t.contains(short_ref(id))), "each quotes the visit: {texts:?}");
    }
    let secrets: Vec<&str> = notes.iter().chain(&reasons).copied().chain([refusal, REVOKED]).collect();
    for s in sms(&stack).await {
        assert_says_nothing_clinical(s["body"].as_str().expect("sms body"), &secrets);
    }
    stack.shutdown().await;
}
