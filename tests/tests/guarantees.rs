//! The platform's guarantees, each tried hard through the local stack: no lost event across
//! a crash between write and publish, no double effect under redelivery, no overbooking
//! under concurrency, and bad input that never yields a 5xx and never writes.

use std::time::Duration;

use clinicflow::adapters::embedded::Embedded;
use clinicflow::adapters::sandbox::LedgerStatus;
use clinicflow::app::consumers::{self, Handled};
use clinicflow::app::faults::AFTER_COMMIT;
use clinicflow::app::projector;
use clinicflow::contexts::payment;
use clinicflow::flows::checkup::{centre, domain as checkup};
use clinicflow::ports::Outbox;
use clinicflow_tests::{Client, LocalStack, basic_places_taken, booking, fast_options, future_date, sms, start, wait_for_status};
use serde_json::{Value, json};

async fn book_ok(client: &Client, date: &str) -> String {
    let r = client.post("/checkups", &booking(date, "basic", "tok_ok")).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_publish_loses_no_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = fast_options();
    options.data_dir = Some(dir.path().to_owned());
    // The crashed run must not get the chance to sweep its own outbox.
    options.sweep_every = Duration::from_secs(3600);
    options.config.outbox_grace = Duration::from_secs(3600);

    let first = LocalStack::start(options.clone()).await.expect("first run");
    first.faults().set(AFTER_COMMIT, true);
    let patient = Client::new(&first, "patient-1", &["patient"]);
    let r = patient.post("/checkups", &booking(&future_date(30), "basic", "tok_ok")).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.body["detail"], "internal error", "a 500 says nothing more");
    first.shutdown().await;

    // The crash left the booking's events committed but unpublished.
    let db = Embedded::open(&dir.path().join("clinicflow.sqlite")).expect("db");
    let stranded = db
        .unpublished(chrono::Utc::now() + chrono::Duration::days(1), 10)
        .await
        .expect("outbox");
    let types: Vec<_> = stranded.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["CheckupBooked", "PaymentCaptured"]);
    let booking_id = stranded[0].aggregate_id.clone();
    drop(db);

    options.sweep_every = Duration::from_millis(100);
    let second = LocalStack::start(options).await.expect("restart");
    let patient = Client::new(&second, "patient-1", &["patient"]);
    let view = wait_for_status(&patient, &booking_id, "reservation", "received").await;
    assert_eq!(view["status"], "booked");
    assert!(second.settle(Duration::from_secs(10)).await);
    let texts = sms(&second).await;
    assert_eq!(texts.len(), 1, "exactly one booking SMS after recovery: {texts:?}");
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = fast_options();
    options.data_dir = Some(dir.path().to_owned());
    let first = LocalStack::start(options.clone()).await.expect("first run");
    let id = book_ok(&Client::new(&first, "patient-1", &["patient"]), &future_date(30)).await;
    assert!(first.settle(Duration::from_secs(10)).await);
    let kid = first.platform.signer().expect("a signing key").key_id().to_vec();
    first.shutdown().await;

    let second = LocalStack::start(options).await.expect("restart");
    let patient = Client::new(&second, "patient-1", &["patient"]);
    assert_eq!(patient.get(&format!("/checkups/{id}")).await.status, 200);
    assert_eq!(sms(&second).await.len(), 1, "nothing is sent again after a restart");
    assert_eq!(
        second.platform.signer().expect("a signing key").key_id(),
        kid,
        "the signing key is kept: documents sealed before the restart still verify"
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_cause_no_second_sms_refund_or_place_change() {
    let mut options = fast_options();
    options.bus.duplicate_every_delivery = true;
    let stack = LocalStack::start(options).await.expect("stack");
    let patient = Client::new(&stack, "patient-1", &["patient"]);
    let staff = Client::new(&stack, "staff-1", &["centre"]);
    let date = future_date(40);
    let id = book_ok(&patient, &date).await;
    wait_for_status(&patient, &id, "reservation", "received").await;
    assert_eq!(staff.post_empty(&format!("/centre/checkups/{id}/confirm")).await.status, 200);
    assert_eq!(patient.post_empty(&format!("/checkups/{id}/cancel")).await.status, 202);
    wait_for_status(&patient, &id, "payment", "refunded").await;
    assert!(stack.settle(Duration::from_secs(10)).await);

    let p = &stack.platform;
    let before_sms = sms(&stack).await.len();
    let before_view = p
        .views
        .get(&clinicflow::flows::checkup::view::view_key(&id))
        .await
        .expect("view")
        .expect("exists");
    assert_eq!(before_sms, 4, "booked, confirmed, cancelled, refunded");

    // Replay the whole history: every event to every consumer its rules name, and every
    // change record into the projector.
    let history = stack
        .embedded()
        .expect("on SQLite")
        .db
        .changes_after(0, 1000)
        .await
        .expect("history");
    let mut deliveries = 0;
    for (_, event) in &history {
        for rule in clinicflow::catalog()
            .rules
            .iter()
            .filter(|r| r.matches(&event.source, &event.event_type))
        {
            let handled = consumers::dispatch(p, rule.target, event).await.expect("redelivery handled");
            assert_eq!(
                handled,
                Handled::Skipped,
                "{} on {} did something twice",
                rule.target,
                event.event_type
            );
            deliveries += 1;
        }
        assert!(
            !projector::project(p, event).await.expect("replayed"),
            "a replayed record changed the view"
        );
    }
    assert!(deliveries >= 8);
    assert_eq!(sms(&stack).await.len(), before_sms);
    assert_eq!(basic_places_taken(&stack, &date).await, 0);
    let ledger = stack.sandbox.entries();
    assert_eq!(ledger.len(), 1);
    assert_eq!((ledger[0].status, ledger[0].refunds), (LedgerStatus::Refunded, 1));
    assert_eq!(
        p.views
            .get(&clinicflow::flows::checkup::view::view_key(&id))
            .await
            .expect("view")
            .expect("exists"),
        before_view
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_bookings_for_the_last_ten_places_yield_exactly_ten() {
    let mut options = fast_options();
    clinicflow_tests::set_daily_capacity(&mut options, 20);
    let stack = LocalStack::start(options).await.expect("stack");
    let date = future_date(50);
    let first = Client::new(&stack, "early-bird", &["patient"]);
    for _ in 0..10 {
        book_ok(&first, &date).await;
    }
    let contenders: Vec<_> = (0..200)
        .map(|i| {
            let c = Client::new(&stack, &format!("patient-{i}"), &["patient"]);
            let body = booking(&date, "basic", "tok_ok");
            tokio::spawn(async move { c.post("/checkups", &body).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in contenders {
        statuses.push(c.await.expect("joined"));
    }
    let won = statuses.iter().filter(|s| **s == 201).count();
    let full = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!(won, 10, "statuses: {statuses:?}");
    assert_eq!(full, 190, "every other contender is told the day is full: {statuses:?}");
    assert_eq!(basic_places_taken(&stack, &date).await, 20);
    // No money is kept for a booking that does not exist.
    let price = clinicflow_tests::basic_price(&stack);
    assert_eq!(stack.sandbox.kept().0, 20 * price);
    assert!(stack.sandbox.entries().iter().all(|e| e.status != LedgerStatus::Refunded));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_confirm_reject_and_cancel_on_one_booking_settle_on_one_outcome() {
    let stack = start().await;
    let patient = Client::new(&stack, "patient-1", &["patient"]);
    let staff = Client::new(&stack, "staff-1", &["centre"]);
    let date = future_date(60);
    for round in 0..10 {
        let id = book_ok(&patient, &date).await;
        wait_for_status(&patient, &id, "reservation", "received").await;
        let (a, b) = (staff.clone(), patient.clone());
        let decide = if round % 2 == 0 { "confirm" } else { "reject" };
        let path = format!("/centre/checkups/{id}/{decide}");
        let cancel_path = format!("/checkups/{id}/cancel");
        let staff_call = tokio::spawn(async move {
            a.send("POST", &path, Some(&json!({"reason": "doctor unavailable"})), &[])
                .await
                .status
        });
        let patient_call = tokio::spawn(async move { b.post_empty(&cancel_path).await.status });
        let (s, c) = (staff_call.await.expect("joined"), patient_call.await.expect("joined"));
        assert!(s < 500 && c < 500, "no 5xx: {s} {c}");
        let view = patient.get(&format!("/checkups/{id}")).await;
        let final_status = wait_for_status(&patient, &id, "payment", "refunded").await["status"].clone();
        match (decide, s, c) {
            // Confirm then cancel, or cancel first and the confirm refused.
            ("confirm", 200, 202) | ("confirm", 409, 202) => assert_eq!(final_status, "cancelled"),
            // Exactly one of reject and cancel wins.
            ("reject", 200, 409) => assert_eq!(final_status, "rejected"),
            ("reject", 409, 202) => assert_eq!(final_status, "cancelled"),
            other => panic!("impossible outcome {other:?}; view {:?}", view.body),
        }
    }
    assert!(stack.settle(Duration::from_secs(10)).await);
    let ledger = stack.sandbox.entries();
    assert_eq!(ledger.len(), 10);
    assert!(
        ledger.iter().all(|e| e.status == LedgerStatus::Refunded && e.refunds == 1),
        "{ledger:?}"
    );
    assert_eq!(basic_places_taken(&stack, &date).await, 0);
    stack.shutdown().await;
}

fn deep_json(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_never_yields_a_5xx_and_never_writes() {
    let stack = start().await;
    let patient = Client::new(&stack, "patient-1", &["patient"]);
    let date = future_date(30);
    let valid = booking(&date, "basic", "tok_ok");
    let with = |k: &str, v: Value| {
        let mut b = valid.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = valid.clone();
        b.as_object_mut().expect("object").remove(k);
        b
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (without("date"), 422, "date"),
        (without("package"), 422, "package"),
        (without("name"), 422, "name"),
        (without("phone"), 422, "phone"),
        (without("card_token"), 422, "card_token"),
        (with("date", json!("2020-01-01")), 422, "date"),
        (with("date", json!("2027-02-30")), 422, "date"),
        (with("date", json!("tomorrow")), 422, "date"),
        (with("date", json!(20270101)), 422, "date"),
        (with("package", json!("gold")), 422, "package"),
        (with("package", json!(null)), 422, "package"),
        (with("phone", json!("12")), 422, "phone"),
        (with("phone", json!("010-1234-567a")), 422, "phone"),
        (with("phone", json!("+1 555 000")), 422, "phone"),
        (with("phone", json!("0".repeat(5000))), 422, "phone"),
        (with("name", json!("")), 422, "name"),
        (with("name", json!("\u{202e}evil")), 422, "name"),
        (with("name", json!("a\u{0000}b")), 422, "name"),
        (with("name", json!("가".repeat(51))), 422, "name"),
        (with("name", json!(["array"])), 422, "name"),
        (with("locale", json!("fr")), 422, "locale"),
        (with("card_token", json!("tok ok; drop table")), 422, "card_token"),
        (with("surprise", json!(1)), 422, "surprise"),
        (json!([]), 422, "body"),
        (json!("text"), 422, "body"),
        (json!(null), 422, "body"),
    ];
    for (body, status, field) in &cases {
        let r = patient.post("/checkups", body).await;
        assert_eq!(r.status, *status, "{body}: {:?}", r.body);
        assert_eq!(r.content_type, "application/problem+json", "{body}");
        let fields: Vec<_> = r.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(fields.iter().any(|f| f == field), "{body}: expected {field} in {fields:?}");
    }
    let raw: Vec<(&str, Vec<u8>, u16)> = vec![
        ("application/json", b"{".to_vec(), 400),
        ("application/json", b"{\"date\": }".to_vec(), 400),
        ("application/json", vec![0xff, 0xfe, 0x00], 400),
        ("application/json", deep_json(4_000).into_bytes(), 422),
        ("application/json", format!("{{\"date\": {}}}", deep_json(4_000)).into_bytes(), 422),
        (
            "application/json",
            format!("{{\"name\": \"{}\"}}", "x".repeat(64 * 1024)).into_bytes(),
            413,
        ),
        ("text/plain", valid.to_string().into_bytes(), 415),
        ("application/x-www-form-urlencoded", b"date=2027-01-01".to_vec(), 415),
    ];
    for (ct, body, status) in raw {
        let r = patient.send_raw("POST", "/checkups", ct, body).await;
        assert_eq!(r.status, status, "{ct}");
        assert_eq!(r.content_type, "application/problem+json", "{ct}");
    }
    let staff = Client::new(&stack, "staff-1", &["centre"]);
    for (who, method, path, body, status) in [
        (&patient, "GET", "/checkups/not-an-id", None, 404),
        (&patient, "POST", "/checkups/01JD3M7Q0000000000000000AB/cancel", None, 404),
        (&staff, "POST", "/centre/checkups/01JD3M7Q0000000000000000AB/confirm", None, 404),
        (
            &staff,
            "POST",
            "/centre/checkups/01JD3M7Q0000000000000000AB/reject",
            Some(json!({"reason": ""})),
            422,
        ),
        (
            &staff,
            "POST",
            "/centre/checkups/01JD3M7Q0000000000000000AB/reject",
            Some(json!({})),
            422,
        ),
        (&staff, "GET", "/centre/checkups?date=someday", None, 422),
        (&staff, "GET", "/centre/checkups?status=lost", None, 422),
        (&staff, "GET", "/centre/checkups?limit=0", None, 422),
        (&patient, "GET", "/checkups?cursor=garbage", None, 422),
        (&patient, "GET", "/checkups?limit=1000", None, 422),
        (&patient, "DELETE", "/checkups", None, 405),
        (&patient, "GET", "/nowhere", None, 404),
    ] {
        let r = who.send(method, path, body.as_ref(), &[]).await;
        assert_eq!(r.status, status, "{method} {path}: {:?}", r.body);
        assert_eq!(r.content_type, "application/problem+json", "{method} {path}");
    }
    let bad_key = patient
        .send(
            "POST",
            "/checkups",
            Some(&with("package", json!("gold"))),
            &[("idempotency-key", "")],
        )
        .await;
    assert_eq!(bad_key.status, 422);

    // Nothing was written anywhere.
    assert!(
        stack
            .embedded()
            .expect("on SQLite")
            .db
            .changes_after(0, 10)
            .await
            .expect("feed")
            .is_empty(),
        "no event"
    );
    for context in [checkup::CONTEXT, payment::CONTEXT, centre::CONTEXT] {
        assert!(
            stack
                .embedded()
                .expect("on SQLite")
                .db
                .all_aggregates(context)
                .await
                .expect("aggregates")
                .is_empty(),
            "{context}"
        );
    }
    assert!(stack.sandbox.entries().is_empty(), "no payment taken");
    assert_eq!(basic_places_taken(&stack, &date).await, 0);
    assert!(sms(&stack).await.is_empty());
    stack.shutdown().await;
}

/// How the platform's role gate begins its 403 (`http::routes`): "this route is for: …".
const ROLE_GATE: &str = "this route is for: ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_missing_bad_and_wrongly_scoped_tokens() {
    let stack = start().await;
    let id = "01JD3M7Q0000000000000000AB";
    let expired = stack.tokens.issue("patient-1", &["patient".into()], -600).expect("token");
    let wrong_audience = stack
        .tokens
        .issue_with("patient-1", &["patient".into()], 600, "someone-else")
        .expect("token");
    let foreign = clinicflow::http::auth::DevTokens::new(b"not-the-local-secret-at-all-0000")
        .issue("patient-1", &["patient".into()], 600)
        .expect("token");
    let nobody = Client::new(&stack, "nobody", &[]);
    for route in &clinicflow::catalog().routes {
        let path = route.path.replace("{id}", id);
        let body = (route.method == clinicflow::topology::Method::Post).then(|| json!({}));
        if route.is_public() {
            // Like API Gateway without an authorizer: any caller, any token, is answered (an
            // empty body where the route wants one is the caller's mistake, 422, not a refusal).
            for client in [Client::anonymous(&stack), Client::with_token(&stack, &expired), nobody.clone()] {
                let r = client.send(route.method.as_str(), &path, body.as_ref(), &[]).await;
                let answered = match route.method {
                    clinicflow::topology::Method::Post => [200, 422].contains(&r.status),
                    _ => r.status == 200,
                };
                assert!(
                    answered,
                    "public: {} {}: {} {}",
                    route.method.as_str(),
                    route.path,
                    r.status,
                    r.body
                );
            }
            continue;
        }
        for client in [
            Client::anonymous(&stack),
            Client::with_token(&stack, &expired),
            Client::with_token(&stack, &wrong_audience),
            Client::with_token(&stack, &foreign),
        ] {
            let r = client.send(route.method.as_str(), &path, body.as_ref(), &[]).await;
            assert_eq!(r.status, 401, "{} {}", route.method.as_str(), route.path);
        }
        let r = nobody.send(route.method.as_str(), &path, body.as_ref(), &[]).await;
        assert_eq!(r.status, 403, "no group: {} {}", route.method.as_str(), route.path);
        for role in &clinicflow::catalog().roles {
            let client = Client::new(&stack, "someone", &[role.group()]);
            let r = client.send(route.method.as_str(), &path, body.as_ref(), &[]).await;
            // The role gate's refusal; a route's own 403 past the gate (a staff member whose
            // token names no site, where the slice's staff each belong to one) is the
            // slice's to test.
            let gated = r.status == 403 && r.body["detail"].as_str().is_some_and(|d| d.starts_with(ROLE_GATE));
            if route.roles.contains(role) {
                assert!(
                    !gated,
                    "{} may call {} {}: {}",
                    role.group(),
                    route.method.as_str(),
                    route.path,
                    r.body
                );
            } else {
                assert!(
                    gated,
                    "{} may not call {} {}: {} {}",
                    role.group(),
                    route.method.as_str(),
                    route.path,
                    r.status,
                    r.body
                );
            }
            assert!(r.status < 500);
        }
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn the_local_token_endpoint_signs_a_staff_members_site_and_refuses_a_bad_one() {
    let stack = start().await;
    let anyone = Client::anonymous(&stack);
    let r = anyone
        .post(
            "/_local/token",
            &json!({"sub": "site-staff-1", "groups": ["patient"], "site": "mapo"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let token = r.body["token"].as_str().expect("a token");
    let claims = stack.tokens.verify(token).expect("the local stack's own token");
    assert_eq!(claims.site.as_deref(), Some("mapo"));
    assert!(claims.works_at("mapo") && !claims.works_at("gangnam"));
    let plain = anyone.post("/_local/token", &json!({"sub": "p1", "groups": ["patient"]})).await;
    let plain = stack.tokens.verify(plain.body["token"].as_str().expect("a token")).expect("valid");
    assert_eq!(plain.site, None, "no site asked, none given");
    for bad in ["mapo centre", "../x", &"x".repeat(65)] {
        let r = anyone
            .post("/_local/token", &json!({"sub": "s1", "groups": ["patient"], "site": bad}))
            .await;
        assert_eq!(r.status, 422, "site {bad:?}");
        assert_eq!(clinicflow_tests::error_fields(&r), vec!["site"]);
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_record_that_can_never_project_is_parked_and_the_feed_moves_on() {
    let stack = start().await;
    let patient = Client::new(&stack, "patient-1", &["patient"]);
    let poisoned = book_ok(&patient, &future_date(30)).await;
    assert!(stack.settle(Duration::from_secs(10)).await);
    // Corrupt the poisoned case's view so that its next record cannot be applied.
    let p = &stack.platform;
    let mut record = p
        .views
        .get(&clinicflow::flows::checkup::view::view_key(&poisoned))
        .await
        .expect("view")
        .expect("exists");
    let revision = record.revision;
    record.body = json!("not a view");
    record.revision += 1;
    p.views.put(record, revision).await.expect("corrupted");

    assert_eq!(patient.post_empty(&format!("/checkups/{poisoned}/cancel")).await.status, 202);
    let healthy = book_ok(&patient, &future_date(31)).await;
    wait_for_status(&patient, &healthy, "reservation", "received").await;
    let parked = clinicflow_tests::eventually(Duration::from_secs(10), || async {
        let dead = stack.dead_letters().await.expect("dlq");
        dead.iter()
            .any(|d| d.target == "status-projector" && d.event.correlation_id == poisoned)
            .then_some(dead)
    })
    .await;
    assert!(parked.is_some(), "the poison record is in the dead-letter queue");
    stack.shutdown().await;
}
