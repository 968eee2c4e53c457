// The seed 003 scenarios (vaccine reservation), written once and run on every backend:
// `include!`d by `tests/tests/vaccine_scenarios.rs` (SQLite) and
// `tests/tests/vaccine_on_moto.rs` (the AWS adapters against a moto server), each of which
// defines `ON`. One or more tests per functional requirement (FR1–FR8), per non-functional
// one (transaction, load shedding, fault isolation, CQRS), and for what the issue adds: the
// rush on a sharded slot, the waiting list, the day-before reminder.
use std::time::Duration;

use chrono::Utc;
use clinicflow::flows::vaccine::config::VaccineConfig;
use clinicflow_tests::{
    Client, LocalStack, Reply, assert_problem, error_fields, eventually, eventually_every, future_date, options_on, options_on_own_server,
    short_ref, sms, start_on, texts_to, timeline, wait_texts,
};
use serde_json::{Value, json};

/// How long any eventual effect may take before a test gives up.
const PATIENCE: Duration = Duration::from_secs(20);
/// The pause between polls that list SMS (on moto, a read of its whole state).
const GENTLY: Duration = Duration::from_millis(200);
/// How long the load scenarios may take to settle.
const LOAD_PATIENCE: Duration = Duration::from_secs(180);
/// The consumer that gives a cancelled reservation's dose back.
const DOSE_RETURN: &str = "vaccine-dose-return";
/// The consumer that tells a new slot's subscribers.
const SLOT_NOTICE: &str = "vaccine-slot-notice";
/// Subscribers of the fan-out scenario, on every backend (on moto it takes about three
/// minutes: moto serializes DynamoDB calls in one Python process).
const FAN_OUT: usize = 500;
/// The phone of `person()` in E.164.
const PHONE: &str = "+821012345678";

fn admin(stack: &LocalStack) -> Client {
    Client::new(stack, "vaccine-admin-1", &["vaccine-admin"])
}

fn citizen(stack: &LocalStack, sub: &str) -> Client {
    Client::new(stack, sub, &["patient"])
}

fn person() -> Value {
    json!({"name": "홍길동", "phone": "010-1234-5678", "locale": "ko"})
}

fn reservation(slot: &str) -> Value {
    let mut body = person();
    body["slot_id"] = json!(slot);
    body
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

/// Registers a slot; returns its id.
async fn open_slot(stack: &LocalStack, date: &str, hospital: &str, vaccine: &str, quantity: u32, shards: u8) -> String {
    let r = admin(stack)
        .post(
            "/vaccine/slots",
            &json!({"date": date, "hospital": hospital, "vaccine": vaccine, "quantity": quantity, "shards": shards}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    id_of(&r)
}

async fn reserve_ok(client: &Client, slot: &str) -> String {
    let r = client.post("/vaccine/reservations", &reservation(slot)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    id_of(&r)
}

async fn remaining(stack: &LocalStack, slot: &str) -> i64 {
    let r = admin(stack).get(&format!("/vaccine/slots/{slot}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["remaining"].as_i64().expect("remaining")
}

/// Waits until the reservation's view (as `client` reads it) shows `status`.
async fn wait_for(client: &Client, id: &str, status: &str) -> Value {
    let path = format!("/vaccine/reservations/{id}");
    eventually(PATIENCE, || async {
        let r = client.get(&path).await;
        (r.status == 200 && r.body["status"] == status).then_some(r.body)
    })
    .await
    .unwrap_or_else(|| panic!("reservation {id} never became {status}"))
}

/// Waits until the slot has `want` doses left.
async fn wait_remaining(stack: &LocalStack, slot: &str, want: i64) {
    let reached = eventually(PATIENCE, || async { (remaining(stack, slot).await == want).then_some(()) }).await;
    assert!(
        reached.is_some(),
        "slot {slot} never had {want} doses left (has {})",
        remaining(stack, slot).await
    );
}

/// 09:00 in Korea today: the reminders for tomorrow's slots are due.
fn nine_in_korea_today() -> chrono::DateTime<Utc> {
    let today = (Utc::now() + chrono::Duration::hours(9)).date_naive();
    today.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

/// Tomorrow in Korea.
fn korean_tomorrow() -> String {
    ((Utc::now() + chrono::Duration::hours(9)).date_naive() + chrono::Duration::days(1)).to_string()
}

// FR1 — the government administrator registers doses per date, hospital and vaccine.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_an_administrator_registers_a_slot_and_citizens_see_it_listed_with_its_doses() {
    let stack = start_on(ON).await;
    let date = future_date(14);
    let r = admin(&stack)
        .post(
            "/vaccine/slots",
            &json!({"date": date, "hospital": "seoul-central", "vaccine": "pfizer", "quantity": 100}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = id_of(&r);
    assert_eq!(r.location.as_deref(), Some(format!("/vaccine/slots/{id}").as_str()));
    for (field, want) in [
        ("date", json!(date)),
        ("hospital", json!("seoul-central")),
        ("vaccine", json!("pfizer")),
        ("quantity", json!(100)),
        ("remaining", json!(100)),
        ("status", json!("open")),
    ] {
        assert_eq!(r.body[field], want, "{field}: {:?}", r.body);
    }
    settled(&stack).await;
    let alice = citizen(&stack, "alice");
    let list = alice
        .get(&format!("/vaccine/slots?date={date}&hospital=seoul-central&vaccine=pfizer"))
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    let listed = items(&list.body);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["remaining"], 100);
    let other = alice.get(&format!("/vaccine/slots?date={date}&vaccine=moderna")).await;
    assert!(items(&other.body).is_empty(), "another vaccine's list: {:?}", other.body);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_an_unknown_hospital_or_vaccine_is_refused_listing_the_known_ones_and_nothing_is_stored() {
    let stack = start_on(ON).await;
    let date = future_date(14);
    let r = admin(&stack)
        .post(
            "/vaccine/slots",
            &json!({"date": date, "hospital": "nowhere", "vaccine": "sputnik", "quantity": 0}),
        )
        .await;
    assert_problem(&r, 422);
    let fields = error_fields(&r);
    for f in ["hospital", "vaccine", "quantity"] {
        assert!(fields.contains(&f.to_owned()), "{f} named: {:?}", r.body);
    }
    let text = r.body.to_string();
    assert!(
        text.contains("seoul-central") && text.contains("pfizer"),
        "the known ones are listed: {text}"
    );
    settled(&stack).await;
    assert!(
        items(&citizen(&stack, "alice").get("/vaccine/slots").await.body).is_empty(),
        "nothing stored"
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_only_an_administrator_registers_changes_and_closes_slots() {
    let stack = start_on(ON).await;
    let alice = citizen(&stack, "alice");
    let body = json!({"date": future_date(14), "hospital": "seoul-central", "vaccine": "pfizer", "quantity": 5});
    assert_problem(&alice.post("/vaccine/slots", &body).await, 403);
    let slot = open_slot(&stack, &future_date(14), "seoul-central", "pfizer", 5, 1).await;
    assert_problem(&alice.post(&format!("/vaccine/slots/{slot}/doses"), &json!({"add": 5})).await, 403);
    assert_problem(&alice.post_empty(&format!("/vaccine/slots/{slot}/close")).await, 403);
    assert_eq!(remaining(&stack, &slot).await, 5);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_doses_can_be_added_and_a_closed_slot_takes_no_reservation_but_keeps_its_own() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(14), "seoul-central", "pfizer", 1, 1).await;
    let alice = citizen(&stack, "alice");
    let kept = reserve_ok(&alice, &slot).await;
    let added = admin(&stack)
        .post(&format!("/vaccine/slots/{slot}/doses"), &json!({"add": 2}))
        .await;
    assert_eq!(added.status, 200, "{:?}", added.body);
    assert_eq!(added.body["quantity"], 3);
    assert_eq!(added.body["remaining"], 2);
    let closed = admin(&stack).post_empty(&format!("/vaccine/slots/{slot}/close")).await;
    assert_eq!(closed.status, 200, "{:?}", closed.body);
    assert_eq!(closed.body["status"], "closed");
    assert_eq!(
        admin(&stack).post_empty(&format!("/vaccine/slots/{slot}/close")).await.status,
        200,
        "twice is harmless"
    );
    let refused = citizen(&stack, "bob").post("/vaccine/reservations", &reservation(&slot)).await;
    assert_problem(&refused, 409);
    assert_problem(
        &admin(&stack)
            .post(&format!("/vaccine/slots/{slot}/doses"), &json!({"add": 1}))
            .await,
        409,
    );
    wait_for(&alice, &kept, "booked").await;
    stack.shutdown().await;
}

// FR2 — registering a slot notifies the citizens who asked for it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr2_a_new_slot_texts_each_matching_subscriber_once_and_nobody_else() {
    let stack = start_on(ON).await;
    let subscribe = |sub: &'static str, body: Value| {
        let c = citizen(&stack, sub);
        async move {
            let r = c.post("/vaccine/subscriptions", &body).await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            id_of(&r)
        }
    };
    subscribe("hospital-fan", json!({"hospital": "seoul-central", "phone": "010-1111-0001"})).await;
    subscribe(
        "vaccine-fan",
        json!({"vaccine": "pfizer", "phone": "010-1111-0002", "locale": "en"}),
    )
    .await;
    subscribe("anything-fan", json!({"phone": "010-1111-0003"})).await;
    subscribe("busan-fan", json!({"hospital": "busan-city", "phone": "010-1111-0004"})).await;
    let gone = subscribe("gone-fan", json!({"phone": "010-1111-0005"})).await;
    let leaver = citizen(&stack, "gone-fan");
    assert_eq!(
        leaver
            .send("DELETE", &format!("/vaccine/subscriptions/{gone}"), None, &[])
            .await
            .status,
        204
    );
    assert_eq!(
        leaver
            .send("DELETE", &format!("/vaccine/subscriptions/{gone}"), None, &[])
            .await
            .status,
        204,
        "twice is harmless"
    );
    assert_eq!(
        citizen(&stack, "someone-else")
            .send("DELETE", &format!("/vaccine/subscriptions/{gone}"), None, &[])
            .await
            .status,
        404,
        "another citizen's subscription is not found"
    );
    settled(&stack).await;
    let before = sms(&stack).await.len();

    open_slot(&stack, &future_date(10), "seoul-central", "pfizer", 50, 2).await;
    settled(&stack).await;

    for phone in ["+821011110001", "+821011110002", "+821011110003"] {
        let texts = texts_to(&stack, phone).await;
        let notices: Vec<_> = texts.iter().filter(|t| t.contains("pfizer")).collect();
        assert_eq!(notices.len(), 1, "{phone}: one notice: {texts:?}");
    }
    assert!(
        texts_to(&stack, "+821011110002").await.iter().any(|t| t.contains("vaccination on")),
        "English for the English subscriber"
    );
    for phone in ["+821011110004", "+821011110005"] {
        assert!(
            texts_to(&stack, phone).await.iter().all(|t| !t.contains("pfizer")),
            "{phone}: no notice"
        );
    }
    assert_eq!(sms(&stack).await.len(), before + 3, "three notices, nothing else");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr2_the_fan_out_texts_every_subscriber_once_under_duplicated_delivery_and_skips_an_opted_out_number() {
    let mut options = options_on_own_server(ON).await;
    options.bus.duplicate_every_delivery = true;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let opted_out = "+821055550099";
    stack.opt_out(opted_out).await.expect("opts out");
    let subscribers: Vec<(String, String)> = (0..FAN_OUT)
        .map(|i| (format!("fan-{i}"), format!("+8210{:08}", 20_000_000 + i * 10)))
        .collect();
    for chunk in subscribers.chunks(50) {
        // As a client does: a shed or timed-out request (503) is sent again after the time
        // it asks for, under the same Idempotency-Key, so that it subscribes once.
        let calls = chunk.iter().map(|(sub, phone)| {
            let c = citizen(&stack, sub);
            let body = json!({"vaccine": "moderna", "phone": phone});
            let key = format!("{sub}-subscription");
            async move {
                for _ in 0..30 {
                    let r = c
                        .send("POST", "/vaccine/subscriptions", Some(&body), &[("idempotency-key", key.as_str())])
                        .await;
                    if r.status != 503 {
                        return r.status;
                    }
                    let secs: u64 = r
                        .retry_after
                        .as_deref()
                        .and_then(|s| s.parse().ok())
                        .expect("a 503 carries Retry-After");
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                }
                503
            }
        });
        for status in futures::future::join_all(calls).await {
            assert_eq!(status, 201);
        }
    }
    let r = citizen(&stack, "opted-out-fan")
        .post("/vaccine/subscriptions", &json!({"vaccine": "moderna", "phone": opted_out}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    settled_after_load(&stack).await;

    let slot = open_slot(&stack, &future_date(9), "busan-city", "moderna", 1000, 4).await;
    let all_told = eventually_every(LOAD_PATIENCE, GENTLY, || async {
        let n = sms(&stack)
            .await
            .iter()
            .filter(|s| s["body"].as_str().is_some_and(|b| b.contains("moderna")))
            .count();
        (n >= FAN_OUT).then_some(n)
    })
    .await;
    assert!(all_told.is_some(), "every subscriber was told of slot {slot}");
    settled_after_load(&stack).await;
    let notices: Vec<Value> = sms(&stack)
        .await
        .into_iter()
        .filter(|s| s["body"].as_str().is_some_and(|b| b.contains("moderna")))
        .collect();
    assert_eq!(notices.len(), FAN_OUT, "exactly one notice each, none to the opted-out number");
    let mut phones: Vec<&str> = notices.iter().map(|s| s["to"].as_str().expect("to")).collect();
    phones.sort_unstable();
    phones.dedup();
    assert_eq!(phones.len(), FAN_OUT, "no subscriber told twice");
    assert!(!phones.contains(&opted_out));
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

// FR3, FR4 — a citizen reserves; the dose is taken from the slot at once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_fr4_a_reservation_takes_a_dose_from_the_slot_in_the_same_write() {
    let stack = start_on(ON).await;
    let date = future_date(12);
    let slot = open_slot(&stack, &date, "seoul-central", "pfizer", 10, 3).await;
    let alice = citizen(&stack, "alice");
    let r = alice.post("/vaccine/reservations", &reservation(&slot)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = id_of(&r);
    assert_eq!(r.location.as_deref(), Some(format!("/vaccine/reservations/{id}").as_str()));
    assert_eq!(r.body["status"], "booked");
    assert_eq!(r.body["date"], date.as_str());
    assert_eq!(r.body["hospital"], "seoul-central");
    assert_eq!(r.body["vaccine"], "pfizer");
    assert_eq!(remaining(&stack, &slot).await, 9, "the dose is gone as the reservation answers");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_a_citizen_holds_one_active_reservation_per_vaccine() {
    let stack = start_on(ON).await;
    let pfizer = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 10, 1).await;
    let other_day = open_slot(&stack, &future_date(13), "busan-city", "pfizer", 10, 1).await;
    let moderna = open_slot(&stack, &future_date(12), "seoul-central", "moderna", 10, 1).await;
    let alice = citizen(&stack, "alice");
    let first = reserve_ok(&alice, &pfizer).await;
    let twice = alice.post("/vaccine/reservations", &reservation(&other_day)).await;
    assert_problem(&twice, 409);
    assert_eq!(remaining(&stack, &other_day).await, 10, "a refused reservation takes no dose");
    reserve_ok(&alice, &moderna).await;
    assert_eq!(alice.post_empty(&format!("/vaccine/reservations/{first}/cancel")).await.status, 202);
    reserve_ok(&alice, &other_day).await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_bad_input_is_a_422_naming_each_field_and_takes_nothing() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 10, 1).await;
    let alice = citizen(&stack, "alice");
    let r = alice
        .post(
            "/vaccine/reservations",
            &json!({"slot_id": "not-a-slot", "name": "", "phone": "12", "locale": "fr"}),
        )
        .await;
    assert_problem(&r, 422);
    let fields = error_fields(&r);
    for f in ["slot_id", "name", "phone", "locale"] {
        assert!(fields.contains(&f.to_owned()), "{f} named: {:?}", r.body);
    }
    let unknown = alice
        .post("/vaccine/reservations", &reservation("01KBVAC0000000000000000ZZZ"))
        .await;
    assert_problem(&unknown, 422);
    assert_eq!(error_fields(&unknown), ["slot_id"]);
    let raw = alice
        .send_raw("POST", "/vaccine/reservations", "application/json", b"{not json".to_vec())
        .await;
    assert_eq!(raw.status, 400, "{:?}", raw.body);
    settled(&stack).await;
    assert_eq!(remaining(&stack, &slot).await, 10);
    assert!(items(&alice.get("/vaccine/reservations").await.body).is_empty());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_an_empty_slot_answers_409_pointing_at_its_waiting_list() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 1, 1).await;
    reserve_ok(&citizen(&stack, "alice"), &slot).await;
    let r = citizen(&stack, "bob").post("/vaccine/reservations", &reservation(&slot)).await;
    assert_problem(&r, 409);
    assert!(r.body.to_string().contains("waitlist"), "{:?}", r.body);
    let listed = items(
        &citizen(&stack, "bob")
            .get(&format!("/vaccine/slots?date={}", future_date(12)))
            .await
            .body,
    );
    assert_eq!(listed.len(), 1, "an empty open slot is still listed");
    assert_eq!(listed[0]["remaining"], 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_the_same_idempotency_key_reserves_once() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 10, 1).await;
    let alice = citizen(&stack, "alice");
    let body = reservation(&slot);
    let key = [("idempotency-key", "vx-7d1f0c3e")];
    let first = alice.send("POST", "/vaccine/reservations", Some(&body), &key).await;
    let again = alice.send("POST", "/vaccine/reservations", Some(&body), &key).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(again.status, 201, "{:?}", again.body);
    assert_eq!(first.body["id"], again.body["id"], "the same reservation");
    assert_eq!(remaining(&stack, &slot).await, 9, "one dose taken");
    let mut other = body.clone();
    other["name"] = json!("김철수");
    assert_problem(&alice.send("POST", "/vaccine/reservations", Some(&other), &key).await, 422);
    stack.shutdown().await;
}

// FR5 — a reservation is confirmed by SMS.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr5_a_reservation_is_confirmed_by_one_sms_in_the_citizens_language() {
    let stack = start_on(ON).await;
    let date = future_date(12);
    let slot = open_slot(&stack, &date, "seoul-central", "pfizer", 10, 1).await;
    let id = reserve_ok(&citizen(&stack, "alice"), &slot).await;
    let mut english = reservation(&slot);
    english["phone"] = json!("+14155550123");
    english["locale"] = json!("en");
    let r = citizen(&stack, "bob").post("/vaccine/reservations", &english).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    settled(&stack).await;
    let texts = texts_to(&stack, PHONE).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(
        texts[0].contains("예약") && texts[0].contains(short_ref(&id)) && texts[0].contains(&date),
        "{texts:?}"
    );
    assert!(!texts[0].contains("홍길동"), "no name in an SMS");
    let en = texts_to(&stack, "+14155550123").await;
    assert_eq!(en.len(), 1);
    assert!(en[0].contains("reserved"), "{en:?}");
    stack.shutdown().await;
}

// FR6, FR7 — a citizen cancels; the dose goes back; a cancellation SMS.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr6_fr7_a_cancellation_gives_the_dose_back_once_and_texts_the_citizen() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 5, 2).await;
    let alice = citizen(&stack, "alice");
    let id = reserve_ok(&alice, &slot).await;
    assert_eq!(remaining(&stack, &slot).await, 4);
    let r = alice.post_empty(&format!("/vaccine/reservations/{id}/cancel")).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    assert_eq!(
        alice.post_empty(&format!("/vaccine/reservations/{id}/cancel")).await.status,
        202,
        "twice is harmless"
    );
    wait_remaining(&stack, &slot, 5).await;
    settled(&stack).await;
    assert_eq!(remaining(&stack, &slot).await, 5, "given back once");
    let view = wait_for(&alice, &id, "cancelled").await;
    assert_eq!(timeline(&view), ["booked", "cancelled"]);
    let texts = texts_to(&stack, PHONE).await;
    assert_eq!(texts.len(), 2, "a confirmation and a cancellation: {texts:?}");
    assert!(texts[1].contains("취소") && texts[1].contains(short_ref(&id)), "{texts:?}");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr6_only_its_citizen_cancels_a_reservation() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 5, 1).await;
    let alice = citizen(&stack, "alice");
    let id = reserve_ok(&alice, &slot).await;
    assert_problem(
        &citizen(&stack, "mallory")
            .post_empty(&format!("/vaccine/reservations/{id}/cancel"))
            .await,
        404,
    );
    assert_problem(&admin(&stack).post_empty(&format!("/vaccine/reservations/{id}/cancel")).await, 403);
    settled(&stack).await;
    wait_for(&alice, &id, "booked").await;
    assert_eq!(remaining(&stack, &slot).await, 4);
    stack.shutdown().await;
}

// FR8 — a citizen reads their reservations; staff read a slot's.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr8_a_citizen_reads_their_own_reservations_newest_first_and_nobody_elses() {
    let stack = start_on(ON).await;
    let date = future_date(12);
    let pfizer = open_slot(&stack, &date, "seoul-central", "pfizer", 5, 1).await;
    let moderna = open_slot(&stack, &date, "busan-city", "moderna", 5, 1).await;
    let alice = citizen(&stack, "alice");
    let first = reserve_ok(&alice, &pfizer).await;
    let second = reserve_ok(&alice, &moderna).await;
    reserve_ok(&citizen(&stack, "bob"), &pfizer).await;
    settled(&stack).await;
    let view = wait_for(&alice, &first, "booked").await;
    for (field, want) in [
        ("id", json!(first)),
        ("date", json!(date)),
        ("hospital", json!("seoul-central")),
        ("vaccine", json!("pfizer")),
    ] {
        assert_eq!(view[field], want, "{field}: {view:?}");
    }
    assert_eq!(timeline(&view), ["booked"]);
    let mine = alice.get("/vaccine/reservations").await;
    let ids: Vec<String> = items(&mine.body).iter().map(|v| v["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(ids, [second.clone(), first.clone()], "own, newest first");
    assert_problem(&citizen(&stack, "bob").get(&format!("/vaccine/reservations/{first}")).await, 404);
    let staff = admin(&stack).get(&format!("/vaccine/slots/{pfizer}/reservations")).await;
    assert_eq!(staff.status, 200, "{:?}", staff.body);
    assert_eq!(items(&staff.body).len(), 2, "the slot's reservations: {:?}", staff.body);
    assert_eq!(admin(&stack).get(&format!("/vaccine/reservations/{first}")).await.status, 200);
    assert_problem(&alice.get(&format!("/vaccine/slots/{pfizer}/reservations")).await, 403);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr8_the_hospital_marks_a_dose_given_or_a_no_show_and_the_citizen_may_reserve_again() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 5, 1).await;
    let alice = citizen(&stack, "alice");
    let bob = citizen(&stack, "bob");
    let given = reserve_ok(&alice, &slot).await;
    let missed = reserve_ok(&bob, &slot).await;
    let r = admin(&stack).post_empty(&format!("/vaccine/reservations/{given}/fulfil")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "fulfilled");
    assert_eq!(
        admin(&stack)
            .post_empty(&format!("/vaccine/reservations/{missed}/noshow"))
            .await
            .status,
        200
    );
    assert_problem(&alice.post_empty(&format!("/vaccine/reservations/{given}/fulfil")).await, 403);
    assert_eq!(timeline(&wait_for(&alice, &given, "fulfilled").await), ["booked", "fulfilled"]);
    wait_for(&bob, &missed, "noshow").await;
    assert_problem(
        &admin(&stack).post_empty(&format!("/vaccine/reservations/{missed}/fulfil")).await,
        409,
    );
    reserve_ok(&bob, &slot).await;
    stack.shutdown().await;
}

// The waiting list: a dose given back is held for the first in line, then the next.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_list_a_returned_dose_is_held_for_the_first_in_line_then_passes_on_when_the_hold_ends() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 1, 1).await;
    let alice = citizen(&stack, "alice");
    let held = reserve_ok(&alice, &slot).await;
    let join = |sub: &'static str, phone: &'static str| {
        let c = citizen(&stack, sub);
        let slot = slot.clone();
        async move {
            let r = c
                .post(
                    &format!("/vaccine/slots/{slot}/waitlist"),
                    &json!({"name": "대기자", "phone": phone}),
                )
                .await;
            assert_eq!(r.status, 201, "{:?}", r.body);
            assert_eq!(r.body["status"], "waitlist");
            (c, id_of(&r))
        }
    };
    let (bob, bob_entry) = join("bob", "010-2222-0001").await;
    let (carol, carol_entry) = join("carol", "010-2222-0002").await;
    let listed = items(&bob.get("/vaccine/reservations").await.body);
    assert_eq!(listed.first().map(|v| v["status"].clone()), Some(json!("waitlist")), "{listed:?}");
    assert_problem(&bob.post_empty(&format!("/vaccine/offers/{bob_entry}/accept")).await, 409);

    assert_eq!(alice.post_empty(&format!("/vaccine/reservations/{held}/cancel")).await.status, 202);
    let offers = eventually(PATIENCE, || async {
        let page = bob.get("/vaccine/offers").await.body;
        (!items(&page).is_empty()).then_some(page)
    })
    .await
    .expect("the dose is offered to the first in line");
    let offer = &items(&offers)[0];
    assert_eq!(offer["id"], bob_entry.as_str());
    let expires: chrono::DateTime<Utc> = offer["offer"]["expires_at"].as_str().expect("an expiry").parse().expect("a time");
    assert!(
        expires > Utc::now() + chrono::Duration::minutes(29),
        "held 30 minutes by default: {expires}"
    );
    let texts = wait_texts(&stack, "+821022220001", 2).await;
    assert!(
        texts.iter().any(|t| t.contains(short_ref(&bob_entry)) && t.contains("배정")),
        "the offer SMS names it: {texts:?}"
    );
    assert!(
        items(&carol.get("/vaccine/offers").await.body).is_empty(),
        "nothing held for the second"
    );
    assert_eq!(remaining(&stack, &slot).await, 0, "the dose is held, not free");

    // The hold ends unanswered: the next in line gets it.
    let moved = stack
        .run_job("vaccine-offer-expiry", expires + chrono::Duration::seconds(1))
        .await
        .expect("the job runs");
    assert_eq!(moved, 1);
    assert_eq!(
        stack
            .run_job("vaccine-offer-expiry", expires + chrono::Duration::seconds(2))
            .await
            .expect("runs"),
        0,
        "a second run moves nothing"
    );
    wait_for(&bob, &bob_entry, "cancelled").await;
    assert_problem(&bob.post_empty(&format!("/vaccine/offers/{bob_entry}/accept")).await, 410);
    let carol_offer = eventually(PATIENCE, || async {
        let page = carol.get("/vaccine/offers").await.body;
        (!items(&page).is_empty()).then_some(page)
    })
    .await;
    assert!(carol_offer.is_some(), "the dose passed to the next in line");
    let taken = carol.post_empty(&format!("/vaccine/offers/{carol_entry}/accept")).await;
    assert_eq!(taken.status, 201, "{:?}", taken.body);
    assert_eq!(taken.body["status"], "booked");
    let view = wait_for(&carol, &carol_entry, "booked").await;
    assert!(timeline(&view).contains(&"offered".to_owned()), "{view:?}");
    settled(&stack).await;
    assert_eq!(remaining(&stack, &slot).await, 0);
    let booked: Vec<Value> = items(&admin(&stack).get(&format!("/vaccine/slots/{slot}/reservations")).await.body)
        .into_iter()
        .filter(|v| v["status"] == "booked")
        .collect();
    assert_eq!(booked.len(), 1, "one dose, one booked citizen: {booked:?}");
    assert_problem(&bob.post_empty(&format!("/vaccine/offers/{carol_entry}/accept")).await, 404);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_list_two_citizens_never_hold_the_same_dose_and_a_slot_with_doses_has_no_waiting_list() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 2, 1).await;
    let early = citizen(&stack, "early")
        .post(&format!("/vaccine/slots/{slot}/waitlist"), &person())
        .await;
    assert_problem(&early, 409);
    let holders = [citizen(&stack, "a1"), citizen(&stack, "a2")];
    let mut held = Vec::new();
    for c in &holders {
        held.push(reserve_ok(c, &slot).await);
    }
    let waiters: Vec<Client> = (0..6).map(|i| citizen(&stack, &format!("w{i}"))).collect();
    let mut entries = Vec::new();
    for w in &waiters {
        let r = w.post(&format!("/vaccine/slots/{slot}/waitlist"), &person()).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        entries.push(id_of(&r));
    }
    // Both doses come back at once: each is held for one waiter, never the same one twice.
    let cancels = holders
        .iter()
        .zip(&held)
        .map(|(c, id)| async move { c.post_empty(&format!("/vaccine/reservations/{id}/cancel")).await });
    for r in futures::future::join_all(cancels).await {
        assert_eq!(r.status, 202);
    }
    settled(&stack).await;
    let mut offered = Vec::new();
    for w in &waiters {
        offered.extend(
            items(&w.get("/vaccine/offers").await.body)
                .into_iter()
                .map(|o| o["id"].as_str().expect("id").to_owned()),
        );
    }
    assert_eq!(offered, entries[..2].to_vec(), "the first two in line, one dose each");
    let accepts = waiters
        .iter()
        .zip(&entries)
        .map(|(w, e)| async move { w.post_empty(&format!("/vaccine/offers/{e}/accept")).await });
    let statuses: Vec<u16> = futures::future::join_all(accepts).await.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 2, "{statuses:?}");
    settled(&stack).await;
    assert_eq!(remaining(&stack, &slot).await, 0);
    stack.shutdown().await;
}

// The reminder: the day before, at 09:00 in Korea, once per active reservation.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminder_the_day_before_each_booked_citizen_gets_one_reminder_and_a_cancelled_one_none() {
    let stack = start_on(ON).await;
    let tomorrow = korean_tomorrow();
    let slot = open_slot(&stack, &tomorrow, "seoul-central", "pfizer", 5, 1).await;
    let later = open_slot(&stack, &future_date(20), "seoul-central", "moderna", 5, 1).await;
    let alice = citizen(&stack, "alice");
    let kept = reserve_ok(&alice, &slot).await;
    reserve_ok(&alice, &later).await;
    let bob = citizen(&stack, "bob");
    let mut english = reservation(&slot);
    english["phone"] = json!("+14155550123");
    english["locale"] = json!("en");
    let r = bob.post("/vaccine/reservations", &english).await;
    assert_eq!(r.status, 201);
    let dropped = id_of(&r);
    assert_eq!(bob.post_empty(&format!("/vaccine/reservations/{dropped}/cancel")).await.status, 202);
    settled(&stack).await;
    let before_bob = texts_to(&stack, "+14155550123").await.len();

    let early = nine_in_korea_today() - chrono::Duration::hours(1);
    assert_eq!(
        stack.run_job("vaccine-reminder", early).await.expect("runs"),
        0,
        "not before 09:00 in Korea"
    );
    assert_eq!(stack.run_job("vaccine-reminder", nine_in_korea_today()).await.expect("runs"), 1);
    assert_eq!(
        stack
            .run_job("vaccine-reminder", nine_in_korea_today() + chrono::Duration::minutes(5))
            .await
            .expect("runs"),
        0,
        "once"
    );
    settled(&stack).await;
    let texts = texts_to(&stack, PHONE).await;
    let reminders: Vec<_> = texts.iter().filter(|t| t.contains("내일")).collect();
    assert_eq!(reminders.len(), 1, "{texts:?}");
    assert!(reminders[0].contains(short_ref(&kept)) && reminders[0].contains(&tomorrow));
    assert_eq!(
        texts_to(&stack, "+14155550123").await.len(),
        before_bob,
        "none after a cancellation"
    );
    assert!(timeline(&wait_for(&alice, &kept, "booked").await).contains(&"reminded".to_owned()));
    stack.shutdown().await;
}

// NFR transaction + the rush — no reservation without its dose, no overbooking.

/// Reserves on `slot` as `n` citizens at once, each retrying a shed request (503) after a
/// pause as a client honouring `Retry-After` would, under one `Idempotency-Key` per citizen
/// (a request that timed out may have committed: its retry is answered as it was); returns
/// the final statuses and how many requests were shed on the way.
async fn rush(stack: &LocalStack, slot: &str, prefix: &str, n: usize) -> (Vec<Rushed>, usize) {
    let shed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls = (0..n).map(|i| {
        let c = citizen(stack, &format!("{prefix}-{i}"));
        let body = reservation(slot);
        let shed = shed.clone();
        let key = format!("{prefix}-{i}-reservation");
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
            let mut in_doubt = false;
            loop {
                let r = c
                    .send("POST", "/vaccine/reservations", Some(&body), &[("idempotency-key", key.as_str())])
                    .await;
                if r.status != 503 || tokio::time::Instant::now() >= deadline {
                    return Rushed {
                        status: r.status,
                        id: r.body["id"].as_str().map(str::to_owned),
                        in_doubt,
                    };
                }
                // A store call that timed out may still commit, after the retry is answered.
                in_doubt |= r.body["detail"].as_str().is_some_and(|d| d.contains("timed out"));
                // Retry after the time the answer asks for, spread so retries do not align.
                let secs: u64 = r
                    .retry_after
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .expect("a 503 carries Retry-After");
                shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(secs) + Duration::from_millis((i % 10) as u64 * 100)).await;
            }
        }
    });
    let out = futures::future::join_all(calls).await;
    (out, shed.load(std::sync::atomic::Ordering::Relaxed))
}

/// What one contender of a rush was finally answered.
#[derive(Debug)]
struct Rushed {
    status: u16,
    id: Option<String>,
    /// A store call of one of its attempts timed out (on moto under load): that attempt may
    /// have committed after the retry was answered, which the retry's idempotency check, made
    /// before, could not see. Such a citizen holds a reservation their last answer (a 409)
    /// denies, as a client that reads its reservations after a timeout finds.
    in_doubt: bool,
}

/// The ids of the slot's booked reservations, as staff list them.
async fn booked_on(stack: &LocalStack, slot: &str) -> Vec<String> {
    let staff = admin(stack);
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/vaccine/slots/{slot}/reservations?limit=100&cursor={c}"),
            None => format!("/vaccine/slots/{slot}/reservations?limit=100"),
        };
        let page = staff.get(&path).await.body;
        ids.extend(
            items(&page)
                .iter()
                .filter(|v| v["status"] == "booked")
                .filter_map(|v| v["id"].as_str().map(str::to_owned)),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rush_1000_concurrent_reservations_on_a_100_dose_slot_of_4_shards_book_exactly_100() {
    let stack = LocalStack::start(options_on_own_server(ON).await)
        .await
        .expect("local stack starts");
    let slot = open_slot(&stack, &future_date(15), "seoul-central", "novavax", 100, 4).await;
    let (results, shed) = rush(&stack, &slot, "rush", 1000).await;
    let booked: Vec<&String> = results.iter().filter(|r| r.status == 201).filter_map(|r| r.id.as_ref()).collect();
    let others: Vec<u16> = results.iter().map(|r| r.status).filter(|s| *s != 201).collect();
    let in_doubt = results.iter().filter(|r| r.status == 409 && r.in_doubt).count();
    assert!(others.iter().all(|s| *s == 409), "every other request is a 409: {others:?}");
    assert_eq!(remaining(&stack, &slot).await, 0);
    settled_after_load(&stack).await;
    let stored = booked_on(&stack, &slot).await;
    assert_eq!(stored.len(), 100, "100 reservations stored, no more");
    assert!(booked.iter().all(|id| stored.contains(id)), "every 201 is a stored reservation");
    assert!(
        booked.len() <= 100 && booked.len() + in_doubt >= 100,
        "the doses there were: {} answered 201, {in_doubt} refused after a timed-out attempt (shed {shed} on the way)",
        booked.len()
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rush_cancellations_racing_reservations_keep_remaining_equal_to_quantity_minus_active() {
    let stack = LocalStack::start(options_on_own_server(ON).await)
        .await
        .expect("local stack starts");
    let quantity = 60;
    let slot = open_slot(&stack, &future_date(15), "busan-city", "pfizer", quantity, 4).await;
    let mut first = Vec::new();
    for i in 0..40 {
        let c = citizen(&stack, &format!("early-{i}"));
        first.push((reserve_ok(&c, &slot).await, c));
    }
    // A cancellation is idempotent: a client sends a shed or timed-out one (503) again.
    let cancels = first.iter().take(30).map(|(id, c)| async move {
        let path = format!("/vaccine/reservations/{id}/cancel");
        let mut r = c.post_empty(&path).await;
        for _ in 0..30 {
            if r.status != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            r = c.post_empty(&path).await;
        }
        r
    });
    let (cancelled, (results, _)) = tokio::join!(futures::future::join_all(cancels), rush(&stack, &slot, "late", 400));
    assert!(cancelled.iter().all(|r| r.status == 202));
    let late_booked = results.iter().filter(|r| r.status == 201).count() as i64;
    let in_doubt = results.iter().filter(|r| r.status == 409 && r.in_doubt).count() as i64;
    assert!(results.iter().all(|r| r.status == 201 || r.status == 409), "{results:?}");
    settled_after_load(&stack).await;
    // Read together until they agree: an attempt in doubt (its store call timed out on moto)
    // may land after the stack settled, taking its dose and storing its reservation at once.
    let agree = eventually_every(LOAD_PATIENCE, GENTLY, || async {
        let active = booked_on(&stack, &slot).await.len() as i64;
        let left = remaining(&stack, &slot).await;
        (left == i64::from(quantity) - active).then_some(active)
    })
    .await;
    let Some(active) = agree else {
        panic!(
            "remaining never equalled quantity − active reservations (dead letters: {:?})",
            stack.dead_letters().await.expect("dead letters")
        );
    };
    assert!(active <= i64::from(quantity), "never more reservations than doses: {active}");
    assert!(
        (10 + late_booked..=10 + late_booked + in_doubt).contains(&active),
        "the 10 kept and the late 201s are stored ({active} active, {late_booked} late 201s, {in_doubt} in doubt)"
    );
    stack.shutdown().await;
}

// NFR fault isolation — the service sheds load rather than queue.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nfr_overload_sheds_with_503_and_retry_after_and_a_shed_request_takes_nothing() {
    let mut options = options_on_own_server(ON).await;
    options.config.slice_mut::<VaccineConfig>().max_in_flight = 1;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let slot = open_slot(&stack, &future_date(15), "seoul-central", "pfizer", 1000, 4).await;
    let calls = (0..200).map(|i| {
        let c = citizen(&stack, &format!("load-{i}"));
        let body = reservation(&slot);
        async move { c.post("/vaccine/reservations", &body).await }
    });
    let replies = futures::future::join_all(calls).await;
    let shed: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    let booked = replies.iter().filter(|r| r.status == 201).count() as i64;
    assert!(!shed.is_empty(), "200 at once on a limit of 1 shed some");
    for r in &shed {
        assert_problem(r, 503);
        assert!(
            r.retry_after.as_deref().and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1),
            "Retry-After"
        );
    }
    assert_eq!(booked + shed.len() as i64, 200, "each is booked or shed");
    assert_eq!(remaining(&stack, &slot).await, 1000 - booked, "a shed request takes no dose");
    stack.shutdown().await;
}

// NFR fault isolation — a cancellation is taken while slot management is down.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_a_cancellation_is_accepted_while_slot_management_fails_and_the_dose_returns_once_when_it_recovers() {
    let mut options = options_on(ON).await;
    options.bus.max_attempts = 1000;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 3, 1).await;
    let alice = citizen(&stack, "alice");
    let id = reserve_ok(&alice, &slot).await;
    stack.faults().set(DOSE_RETURN, true);

    let r = alice.post_empty(&format!("/vaccine/reservations/{id}/cancel")).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    wait_for(&alice, &id, "cancelled").await;
    let retried = eventually(PATIENCE, || async { (stack.faults().fired(DOSE_RETURN) >= 2).then_some(()) }).await;
    assert!(retried.is_some(), "the dose return is being retried");
    assert_eq!(remaining(&stack, &slot).await, 2, "not given back while slot management is down");
    wait_texts(&stack, PHONE, 2).await;

    stack.faults().set(DOSE_RETURN, false);
    wait_remaining(&stack, &slot, 3).await;
    settled(&stack).await;
    assert_eq!(remaining(&stack, &slot).await, 3, "given back exactly once");
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_redelivered_cancellations_give_nothing_back_twice() {
    let mut options = options_on(ON).await;
    options.bus.duplicate_every_delivery = true;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 10, 2).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = citizen(&stack, &format!("dup-{i}"));
        ids.push((reserve_ok(&c, &slot).await, c));
    }
    for (id, c) in &ids[..3] {
        assert_eq!(c.post_empty(&format!("/vaccine/reservations/{id}/cancel")).await.status, 202);
    }
    settled(&stack).await;
    assert_eq!(remaining(&stack, &slot).await, 8, "three given back, once each");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_reservations_go_on_while_the_slot_notice_fails_and_subscribers_are_told_once_it_recovers() {
    let mut options = options_on(ON).await;
    options.bus.max_attempts = 1000;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let r = citizen(&stack, "fan")
        .post("/vaccine/subscriptions", &json!({"phone": "010-3333-0001"}))
        .await;
    assert_eq!(r.status, 201);
    settled(&stack).await;
    stack.faults().set(SLOT_NOTICE, true);
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 10, 1).await;
    reserve_ok(&citizen(&stack, "alice"), &slot).await;
    let retried = eventually(PATIENCE, || async { (stack.faults().fired(SLOT_NOTICE) >= 2).then_some(()) }).await;
    assert!(retried.is_some());
    assert_eq!(
        texts_to(&stack, "+821033330001").await.len(),
        1,
        "only the subscription's own SMS so far"
    );
    stack.faults().set(SLOT_NOTICE, false);
    let told = wait_texts(&stack, "+821033330001", 2).await;
    assert!(told[1].contains("pfizer"), "{told:?}");
    settled(&stack).await;
    assert_eq!(texts_to(&stack, "+821033330001").await.len(), 2, "told once");
    stack.shutdown().await;
}

// NFR CQRS — reservation details are read from the view alone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_cqrs_a_reservation_is_served_from_its_view_which_catches_up_after_the_projector_stops() {
    let stack = start_on(ON).await;
    let slot = open_slot(&stack, &future_date(12), "seoul-central", "pfizer", 5, 1).await;
    let alice = citizen(&stack, "alice");
    let id = reserve_ok(&alice, &slot).await;
    let served = wait_for(&alice, &id, "booked").await;
    settled(&stack).await;
    stack.faults().set(clinicflow::app::faults::PROJECTOR, true);
    assert_eq!(
        alice.get(&format!("/vaccine/reservations/{id}")).await.body,
        served,
        "the view is served while projection stops"
    );
    assert_eq!(alice.post_empty(&format!("/vaccine/reservations/{id}/cancel")).await.status, 202);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        alice.get(&format!("/vaccine/reservations/{id}")).await.body["status"],
        "booked",
        "not in the view until projected"
    );
    stack.faults().set(clinicflow::app::faults::PROJECTOR, false);
    wait_for(&alice, &id, "cancelled").await;
    stack.shutdown().await;
}
