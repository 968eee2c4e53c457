//! The guarantees of `guarantees.rs` that depend on the store and the bus, tried again on
//! the AWS path (DynamoDB, EventBridge to SQS, SNS on moto): no lost event across a crash
//! between write and publish, no double effect under redelivery, no overbooking under
//! concurrency.

use std::time::Duration;

use clinicflow::adapters::sandbox::LedgerStatus;
use clinicflow::app::faults::AFTER_COMMIT;
use clinicflow_tests::{Client, LocalStack, On, basic_places_taken, booking, future_date, options_on, sms, wait_for_status};

async fn book_ok(client: &Client, date: &str) -> String {
    let r = client.post("/checkups", &booking(date, "basic", "tok_ok")).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_publish_loses_no_event() {
    let mut options = options_on(On::Moto).await;
    // The crashed run must not get the chance to sweep its own outbox.
    options.sweep_every = Duration::from_secs(3600);
    options.config.outbox_grace = Duration::from_secs(3600);
    let first = LocalStack::start(options.clone()).await.expect("first run");
    first.faults().set(AFTER_COMMIT, true);
    let patient = Client::new(&first, "patient-1", &["patient"]);
    let r = patient.post("/checkups", &booking(&future_date(30), "basic", "tok_ok")).await;
    assert_eq!(r.status, 500);
    let stranded = first
        .platform
        .outbox
        .unpublished(chrono::Utc::now() + chrono::Duration::days(1), 10)
        .await
        .expect("outbox");
    let mut types: Vec<_> = stranded.iter().map(|e| e.event_type.clone()).collect();
    types.sort();
    assert_eq!(types, ["CheckupBooked", "PaymentCaptured"], "committed, not published");
    let booking_id = stranded
        .iter()
        .find(|e| e.event_type == "CheckupBooked")
        .map(|e| e.aggregate_id.clone());
    first.shutdown().await;

    // The same tables, bus and queues: the restart publishes what the crash left behind.
    options.sweep_every = Duration::from_millis(100);
    let second = LocalStack::start(options).await.expect("restart");
    let patient = Client::new(&second, "patient-1", &["patient"]);
    let view = wait_for_status(&patient, &booking_id.expect("a booking"), "reservation", "received").await;
    assert_eq!(view["status"], "booked");
    assert!(second.settle(Duration::from_secs(20)).await);
    assert_eq!(sms(&second).await.len(), 1, "exactly one booking SMS after recovery");
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_cause_no_second_sms_refund_or_place_change() {
    let mut options = options_on(On::Moto).await;
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
    assert!(stack.settle(Duration::from_secs(20)).await);

    let texts = sms(&stack).await;
    assert_eq!(texts.len(), 4, "booked, confirmed, cancelled, refunded, once each: {texts:?}");
    let ledger = stack.sandbox.entries();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].refunds, 1, "refunded once: {ledger:?}");
    assert_eq!(basic_places_taken(&stack, &date).await, 0, "the place was given back once");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_bookings_for_the_last_five_places_yield_exactly_five() {
    let mut options = options_on(On::Moto).await;
    clinicflow_tests::set_daily_capacity(&mut options, 5);
    let stack = LocalStack::start(options).await.expect("stack");
    let date = future_date(50);
    let contenders: Vec<_> = (0..40)
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
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 35, "{statuses:?}");
    assert_eq!(basic_places_taken(&stack, &date).await, 5);
    let price = clinicflow_tests::basic_price(&stack);
    assert_eq!(stack.sandbox.kept().0, 5 * price, "no money kept for a booking that does not exist");
    assert!(stack.sandbox.entries().iter().all(|e| e.status != LedgerStatus::Refunded));
    stack.shutdown().await;
}
