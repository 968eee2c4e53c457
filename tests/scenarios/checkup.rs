// The seed 001 scenarios, written once and run on every backend: `include!`d by
// `tests/tests/checkup_scenarios.rs` (SQLite) and `tests/tests/checkup_on_moto.rs` (the AWS
// adapters against a moto server), each of which defines `ON`.
use std::collections::HashSet;
use std::time::Duration;

use clinicflow::adapters::sandbox::LedgerStatus;
use clinicflow::app::faults::PROJECTOR;
use clinicflow::domain::Won;
use clinicflow::flows::checkup::view::CheckupView;
use clinicflow_tests::{
    Client, LocalStack, Reply, assert_problem, booking, error_fields, eventually, future_date, options_on, short_ref, sms, start_on,
    timeline, wait_for_status,
};
use serde_json::{Value, json};

/// How long any eventual effect may take before a test gives up.
const PATIENCE: Duration = Duration::from_secs(10);
/// The phone of `booking()` in E.164.
const PHONE: &str = "+821012345678";
/// The name of `booking()`.
const NAME: &str = "홍길동";
/// The consumer that puts bookings on the centre's work list.
const CENTRE_WORKLIST: &str = "centre-worklist";

fn patient(stack: &LocalStack, sub: &str) -> Client {
    Client::new(stack, sub, &["patient"])
}

fn centre(stack: &LocalStack) -> Client {
    Client::new(stack, "centre-staff-1", &["centre"])
}

async fn book_ok(client: &Client, date: &str, package: &str) -> (String, Reply) {
    let r = client.post("/checkups", &booking(date, package, "tok_ok")).await;
    assert_eq!(r.status, 201, "booking {date} {package}: {:?}", r.body);
    let id = r.body["id"].as_str().expect("a booking has an id").to_owned();
    (id, r)
}

async fn settled(stack: &LocalStack) {
    assert!(stack.settle(PATIENCE).await, "the stack did not settle");
}

fn assert_retry_after(r: &Reply) {
    let secs: u64 = r
        .retry_after
        .as_deref()
        .expect("a 503 carries Retry-After")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(secs >= 1, "Retry-After {secs}");
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("a page has items")
        .iter()
        .map(|v| v["id"].as_str().expect("item id").to_owned())
        .collect()
}

fn bodies(texts: &[Value]) -> Vec<String> {
    texts.iter().map(|t| t["body"].as_str().expect("sms body").to_owned()).collect()
}

fn is_korean(text: &str) -> bool {
    text.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

/// Nothing of a refused booking is left: no booking, no money kept, no SMS.
async fn assert_nothing_stored(stack: &LocalStack, client: &Client) {
    settled(stack).await;
    let list = client.get("/checkups").await;
    assert_eq!(list.status, 200);
    assert!(ids(&list.body).is_empty(), "no booking was stored: {:?}", list.body);
    assert_eq!(stack.sandbox.kept(), Won(0), "no money is kept");
    assert!(
        stack.sandbox.entries().iter().all(|e| e.status != LedgerStatus::Captured),
        "{:?}",
        stack.sandbox.entries()
    );
    assert!(sms(stack).await.is_empty(), "no SMS for a booking that does not exist");
}

// FR1 — a patient picks a date and a package and books it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_a_patient_books_a_date_and_a_package_and_gets_it_back_as_booked() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let date = future_date(30);

    let r = alice.post("/checkups", &booking(&date, "basic", "tok_ok")).await;

    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().expect("id");
    assert_eq!(r.location.as_deref(), Some(format!("/checkups/{id}").as_str()));
    assert_eq!(r.body["status"], "booked");
    assert_eq!(r.body["date"], date.as_str());
    assert_eq!(r.body["package"], "basic");
    assert_eq!(r.body["price"], 100_000);
    assert_eq!(timeline(&r.body), ["booked"]);
    let view = wait_for_status(&alice, id, "status", "booked").await;
    assert_eq!(view["date"], date.as_str());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr1_each_package_is_priced_from_the_default_price_list() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let date = future_date(31);

    for (package, price) in [("basic", 100_000), ("standard", 250_000), ("premium", 500_000)] {
        let (_, r) = book_ok(&alice, &date, package).await;
        assert_eq!(r.body["package"], package);
        assert_eq!(r.body["price"], price, "price of {package}");
    }
    stack.shutdown().await;
}

// FR2 — the patient pays.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr2_booking_takes_one_payment_of_the_package_price() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");

    let (id, _) = book_ok(&alice, &future_date(30), "standard").await;

    let ledger = stack.sandbox.entries();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0].status, LedgerStatus::Captured);
    assert_eq!(ledger[0].amount, Won(250_000));
    assert_eq!(ledger[0].reference, id);
    assert_eq!(stack.sandbox.kept(), Won(250_000));
    let view = wait_for_status(&alice, &id, "payment", "paid").await;
    assert_eq!(view["price"], 250_000);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr2_a_declined_card_is_refused_with_402_naming_the_card_and_nothing_is_stored() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");

    let r = alice.post("/checkups", &booking(&future_date(30), "basic", "tok_declined")).await;

    assert_problem(&r, 402);
    assert!(error_fields(&r).contains(&"card_token".to_owned()), "{:?}", r.body);
    assert!(r.location.is_none());
    assert!(stack.sandbox.entries().is_empty(), "a declined card leaves nothing in the ledger");
    assert_nothing_stored(&stack, &alice).await;
    stack.shutdown().await;
}

// FR3 — the booking reaches the centre.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr3_a_booking_reaches_the_centres_work_list_for_its_date() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let staff = centre(&stack);
    let date = future_date(40);
    let other_date = future_date(41);
    let (id, _) = book_ok(&alice, &date, "basic").await;
    let (elsewhere, _) = book_ok(&alice, &other_date, "basic").await;

    let view = wait_for_status(&alice, &id, "reservation", "received").await;
    assert_eq!(view["status"], "booked");

    let path = format!("/centre/checkups?date={date}");
    let item = eventually(PATIENCE, || async {
        let r = staff.get(&path).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["items"].as_array().and_then(|items| {
            items
                .iter()
                .find(|v| v["id"] == id.as_str() && v["reservation"]["status"] == "received")
                .cloned()
        })
    })
    .await
    .expect("the booking appears on the centre's work list as received");
    assert_eq!(item["date"], date.as_str());
    assert_eq!(item["package"], "basic");
    let list = staff.get(&path).await;
    assert!(
        !ids(&list.body).contains(&elsewhere),
        "the list for {date} holds only that date: {:?}",
        list.body
    );

    let forbidden = alice.get(&path).await;
    assert_problem(&forbidden, 403);
    stack.shutdown().await;
}

// FR4 — the centre confirms (or rejects).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr4_the_centre_confirms_a_booking_and_the_patient_sees_it_confirmed() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let staff = centre(&stack);
    let (id, _) = book_ok(&alice, &future_date(30), "premium").await;
    wait_for_status(&alice, &id, "reservation", "received").await;

    let r = staff.post_empty(&format!("/centre/checkups/{id}/confirm")).await;

    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "confirmed");
    let view = wait_for_status(&alice, &id, "status", "confirmed").await;
    let view = if view["reservation"]["status"] == "confirmed" {
        view
    } else {
        wait_for_status(&alice, &id, "reservation", "confirmed").await
    };
    assert_eq!(timeline(&view), ["booked", "confirmed"]);
    assert_eq!(view["payment"]["status"], "paid");
    assert!(view["reservation"].get("reason").is_none(), "{view:?}");

    let again = staff.post_empty(&format!("/centre/checkups/{id}/confirm")).await;
    assert_eq!(again.status, 200, "confirming twice is harmless: {:?}", again.body);
    let patient_tries = alice.post_empty(&format!("/centre/checkups/{id}/confirm")).await;
    assert_problem(&patient_tries, 403);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr4_the_centre_rejects_a_booking_with_a_reason_and_the_payment_is_refunded() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let staff = centre(&stack);
    let (id, _) = book_ok(&alice, &future_date(30), "basic").await;
    wait_for_status(&alice, &id, "reservation", "received").await;

    let r = staff
        .post(
            &format!("/centre/checkups/{id}/reject"),
            &json!({"reason": "no doctor on that day"}),
        )
        .await;

    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["status"], "rejected");
    let view = wait_for_status(&alice, &id, "status", "rejected").await;
    assert_eq!(view["reservation"]["reason"], "no doctor on that day");
    assert_eq!(timeline(&view), ["booked", "rejected"]);
    wait_for_status(&alice, &id, "payment", "refunded").await;
    // Each table's stream reaches the view on its own: the centre's half of the rejection
    // may land after the payment's refund.
    wait_for_status(&alice, &id, "reservation", "rejected").await;
    settled(&stack).await;
    let ledger = stack.sandbox.entries();
    assert_eq!(ledger.len(), 1);
    assert_eq!((ledger[0].status, ledger[0].refunds), (LedgerStatus::Refunded, 1));
    assert_eq!(stack.sandbox.kept(), Won(0));
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr4_a_rejection_without_a_reason_is_refused_naming_the_reason_and_changes_nothing() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let staff = centre(&stack);
    let (id, _) = book_ok(&alice, &future_date(30), "basic").await;
    wait_for_status(&alice, &id, "reservation", "received").await;

    for body in [json!({}), json!({"reason": "   "})] {
        let r = staff.post(&format!("/centre/checkups/{id}/reject"), &body).await;
        assert_problem(&r, 422);
        assert_eq!(error_fields(&r), ["reason"], "{body}: {:?}", r.body);
    }

    settled(&stack).await;
    let view = alice.get(&format!("/checkups/{id}")).await;
    assert_eq!(view.body["status"], "booked");
    assert_eq!(view.body["reservation"]["status"], "received");
    assert_eq!(view.body["payment"]["status"], "paid");
    assert_eq!(stack.sandbox.kept(), Won(100_000));
    stack.shutdown().await;
}

// FR5 — the patient can cancel.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr5_a_patient_cancels_a_booking_and_cancelling_twice_is_harmless() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let (id, _) = book_ok(&alice, &future_date(30), "basic").await;
    wait_for_status(&alice, &id, "reservation", "received").await;

    let first = alice.post_empty(&format!("/checkups/{id}/cancel")).await;
    let second = alice.post_empty(&format!("/checkups/{id}/cancel")).await;

    assert_eq!(first.status, 202, "{:?}", first.body);
    assert_eq!(first.body["status"], "cancelled");
    assert_eq!(second.status, 202, "{:?}", second.body);
    assert_eq!(second.body, first.body);
    wait_for_status(&alice, &id, "payment", "refunded").await;
    settled(&stack).await;
    let ledger = stack.sandbox.entries();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].refunds, 1, "one refund: {ledger:?}");
    let texts = bodies(&sms(&stack).await);
    assert_eq!(
        texts.iter().filter(|t| t.contains("취소되었습니다")).count(),
        1,
        "one cancel SMS: {texts:?}"
    );
    assert_eq!(
        texts.iter().filter(|t| t.contains("환불되었습니다")).count(),
        1,
        "one refund SMS: {texts:?}"
    );
    let view = alice.get(&format!("/checkups/{id}")).await;
    assert_eq!(timeline(&view.body), ["booked", "cancelled"]);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr5_only_the_booking_patient_can_cancel_it() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let bob = patient(&stack, "bob");
    let (id, _) = book_ok(&alice, &future_date(30), "basic").await;

    let r = bob.post_empty(&format!("/checkups/{id}/cancel")).await;

    assert_problem(&r, 404);
    let view = wait_for_status(&alice, &id, "status", "booked").await;
    assert_eq!(view["payment"]["status"], "paid");
    stack.shutdown().await;
}

// FR6 — a cancelled booking is taken off the centre's work list.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr6_a_cancelled_booking_is_withdrawn_from_the_centres_work_list() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let staff = centre(&stack);
    let date = future_date(30);
    let (id, _) = book_ok(&alice, &date, "basic").await;
    wait_for_status(&alice, &id, "reservation", "received").await;

    assert_eq!(alice.post_empty(&format!("/checkups/{id}/cancel")).await.status, 202);

    // The booking's and the centre's halves reach the view through two tables' streams, in
    // either order: wait for both.
    wait_for_status(&alice, &id, "reservation", "withdrawn").await;
    let view = wait_for_status(&alice, &id, "status", "cancelled").await;
    assert_eq!(view["reservation"]["status"], "withdrawn");
    let list = staff.get(&format!("/centre/checkups?date={date}")).await;
    let item = list.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|v| v["id"] == id.as_str()).cloned())
        .expect("on the list");
    assert_eq!(item["reservation"]["status"], "withdrawn");
    let confirm = staff.post_empty(&format!("/centre/checkups/{id}/confirm")).await;
    assert_problem(&confirm, 409);
    stack.shutdown().await;
}

// FR7 — a cancelled booking's payment is refunded.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr7_a_cancelled_booking_has_its_payment_refunded_once() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let (id, _) = book_ok(&alice, &future_date(30), "premium").await;
    assert_eq!(stack.sandbox.kept(), Won(500_000));

    assert_eq!(alice.post_empty(&format!("/checkups/{id}/cancel")).await.status, 202);

    let cancelled = wait_for_status(&alice, &id, "status", "cancelled").await;
    let payment = cancelled["payment"]["status"].as_str().expect("payment status");
    assert!(
        ["refund_pending", "refunded"].contains(&payment),
        "a cancelled booking is never shown as paid: {cancelled:?}"
    );
    let view = wait_for_status(&alice, &id, "payment", "refunded").await;
    assert_eq!(view["status"], "cancelled");
    settled(&stack).await;
    let ledger = stack.sandbox.entries();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0].reference, id);
    assert_eq!(ledger[0].status, LedgerStatus::Refunded);
    assert_eq!(ledger[0].refunds, 1);
    assert_eq!(stack.sandbox.kept(), Won(0));
    stack.shutdown().await;
}

// FR8 — a cancelled booking is kept as cancelled (the seed's "deleted") and its place is freed.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr8_a_cancelled_booking_is_marked_cancelled_and_gives_its_place_back() {
    let mut options = options_on(ON).await;
    clinicflow_tests::set_daily_capacity(&mut options, 1);
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let alice = patient(&stack, "alice");
    let bob = patient(&stack, "bob");
    let date = future_date(30);
    let (id, _) = book_ok(&alice, &date, "standard").await;

    let full = bob.post("/checkups", &booking(&date, "standard", "tok_ok")).await;
    assert_problem(&full, 409);
    let other_package = bob.post("/checkups", &booking(&date, "basic", "tok_ok")).await;
    assert_eq!(
        other_package.status, 201,
        "the capacity is per date and package: {:?}",
        other_package.body
    );
    assert_eq!(stack.sandbox.entries().len(), 2, "the refused booking took no payment");

    assert_eq!(alice.post_empty(&format!("/checkups/{id}/cancel")).await.status, 202);

    let view = wait_for_status(&alice, &id, "status", "cancelled").await;
    assert_eq!(view["id"], id.as_str(), "a cancelled booking is kept and still readable");
    let rebooked = eventually(PATIENCE, || async {
        let r = bob.post("/checkups", &booking(&date, "standard", "tok_ok")).await;
        match r.status {
            201 => Some(r),
            409 => None,
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    })
    .await
    .expect("the freed place can be booked again");
    assert_eq!(rebooked.body["status"], "booked");
    let after = bob.post("/checkups", &booking(&date, "standard", "tok_ok")).await;
    assert_problem(&after, 409);
    settled(&stack).await;
    assert_eq!(stack.sandbox.kept(), Won(250_000 + 100_000), "refused bookings keep no money");
    stack.shutdown().await;
}

// FR9 — the patient reads their status whenever they want.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr9_a_patient_reads_their_own_booking_and_nobody_else_can() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let bob = patient(&stack, "bob");
    let staff = centre(&stack);
    let (id, _) = book_ok(&alice, &future_date(30), "basic").await;

    let own = wait_for_status(&alice, &id, "status", "booked").await;
    for field in [
        "id",
        "status",
        "date",
        "package",
        "price",
        "payment",
        "reservation",
        "timeline",
        "created_at",
    ] {
        assert!(own.get(field).is_some(), "the view has {field}: {own:?}");
    }
    let path = format!("/checkups/{id}");
    let foreign = bob.get(&path).await;
    assert_problem(&foreign, 404);
    let as_staff = staff.get(&path).await;
    assert_eq!(as_staff.status, 200, "{:?}", as_staff.body);
    assert_eq!(as_staff.body["id"], id.as_str());
    assert_problem(&Client::anonymous(&stack).get(&path).await, 401);
    assert_problem(&alice.get("/checkups/01ARZ3NDEKTSV4RRFFQ69G5FAV").await, 404);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr9_a_patient_lists_only_their_own_bookings_newest_first() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let bob = patient(&stack, "bob");
    let mut booked = Vec::new();
    for (days, package) in [(30, "basic"), (31, "standard"), (32, "premium")] {
        booked.push(book_ok(&alice, &future_date(days), package).await.0);
    }
    let (bobs, _) = book_ok(&bob, &future_date(30), "basic").await;
    settled(&stack).await;

    let list = alice.get("/checkups").await;

    assert_eq!(list.status, 200, "{:?}", list.body);
    let newest_first: Vec<String> = booked.iter().rev().cloned().collect();
    assert_eq!(ids(&list.body), newest_first);
    assert!(list.body["next_cursor"].is_null());
    let created: Vec<&str> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| v["created_at"].as_str().expect("created_at"))
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first: {created:?}");
    assert_eq!(ids(&bob.get("/checkups").await.body), [bobs]);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr9_the_list_pages_through_every_booking_exactly_once() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let mut booked = HashSet::new();
    for days in 30..35 {
        booked.insert(book_ok(&alice, &future_date(days), "basic").await.0);
    }
    settled(&stack).await;

    let mut pages = Vec::new();
    let mut seen = Vec::new();
    let mut path = "/checkups?limit=2".to_owned();
    loop {
        let r = alice.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        let page = ids(&r.body);
        pages.push(page.len());
        seen.extend(page);
        match r.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/checkups?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages.len() < 10, "the cursor never ends");
    }

    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(seen.len(), 5);
    assert_eq!(
        seen.iter().cloned().collect::<HashSet<_>>(),
        booked,
        "every booking once, no duplicates"
    );
    for bad in ["/checkups?limit=0", "/checkups?limit=101", "/checkups?cursor=not-a-cursor"] {
        assert_problem(&alice.get(bad).await, 422);
    }
    stack.shutdown().await;
}

// FR10 — an SMS for every status change.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr10_booking_and_confirming_send_two_korean_sms_to_the_patient() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let staff = centre(&stack);
    let date = future_date(30);
    let (id, _) = book_ok(&alice, &date, "premium").await;
    wait_for_status(&alice, &id, "reservation", "received").await;
    assert_eq!(staff.post_empty(&format!("/centre/checkups/{id}/confirm")).await.status, 200);
    wait_for_status(&alice, &id, "status", "confirmed").await;
    settled(&stack).await;

    let texts = sms(&stack).await;

    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts.iter().all(|t| t["to"] == PHONE), "{texts:?}");
    let bodies = bodies(&texts);
    assert!(bodies.iter().all(|b| is_korean(b) && b.contains(short_ref(&id))), "{bodies:?}");
    assert!(bodies[0].contains("접수") && bodies[0].contains(&date), "booked: {}", bodies[0]);
    assert!(bodies[1].contains("확정"), "confirmed: {}", bodies[1]);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr10_a_patient_who_asks_for_english_gets_english_sms() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let staff = centre(&stack);
    let mut request = booking(&future_date(30), "basic", "tok_ok");
    request["locale"] = json!("en");
    let r = alice.post("/checkups", &request).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().expect("id").to_owned();
    wait_for_status(&alice, &id, "reservation", "received").await;
    assert_eq!(staff.post_empty(&format!("/centre/checkups/{id}/confirm")).await.status, 200);
    settled(&stack).await;

    let texts = sms(&stack).await;

    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts.iter().all(|t| t["to"] == PHONE));
    let bodies = bodies(&texts);
    assert!(bodies.iter().all(|b| !is_korean(b) && b.contains(short_ref(&id))), "{bodies:?}");
    assert!(bodies[0].contains("booked"), "{}", bodies[0]);
    assert!(bodies[1].contains("confirmed"), "{}", bodies[1]);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fr10_cancelling_sends_a_cancel_and_a_refund_sms_without_name_or_package() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let (id, _) = book_ok(&alice, &future_date(30), "premium").await;
    wait_for_status(&alice, &id, "reservation", "received").await;
    assert_eq!(alice.post_empty(&format!("/checkups/{id}/cancel")).await.status, 202);
    wait_for_status(&alice, &id, "payment", "refunded").await;
    settled(&stack).await;

    let texts = sms(&stack).await;

    assert_eq!(texts.len(), 3, "booked, cancelled, refunded: {texts:?}");
    assert!(texts.iter().all(|t| t["to"] == PHONE));
    let bodies = bodies(&texts);
    assert_eq!(bodies.iter().filter(|b| b.contains("취소되었습니다")).count(), 1, "{bodies:?}");
    let refund = bodies.iter().find(|b| b.contains("환불되었습니다")).expect("a refund SMS");
    assert!(refund.contains("₩500,000"), "the refund SMS states the amount: {refund}");
    for body in &bodies {
        assert!(body.contains(short_ref(&id)), "{body}");
        assert!(!body.contains(NAME) && !body.contains("길동"), "no name in an SMS: {body}");
        for package in ["basic", "standard", "premium", "프리미엄"] {
            assert!(!body.to_lowercase().contains(package), "no package in an SMS: {body}");
        }
    }
    stack.shutdown().await;
}

// NFR transaction — no payment, no booking; a slow or failing provider fails fast.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_transaction_a_payment_provider_that_is_down_gets_503_with_retry_after_and_stores_nothing() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");

    let r = alice.post("/checkups", &booking(&future_date(30), "basic", "tok_down")).await;

    assert_problem(&r, 503);
    assert_retry_after(&r);
    assert!(stack.sandbox.entries().is_empty());
    assert_nothing_stored(&stack, &alice).await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_transaction_a_slow_payment_provider_gets_503_with_retry_after_and_stores_nothing() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");

    let r = alice.post("/checkups", &booking(&future_date(30), "basic", "tok_slow")).await;

    assert_problem(&r, 503);
    assert_retry_after(&r);
    assert!(stack.sandbox.entries().is_empty(), "a timed-out charge is not recorded");
    assert_nothing_stored(&stack, &alice).await;
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_transaction_repeated_provider_failures_open_the_circuit_which_closes_again_after_the_cool_down() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let date = future_date(30);
    let threshold = stack.platform.config.payment.failure_threshold;

    for i in 0..threshold {
        let token = if i % 2 == 0 { "tok_down" } else { "tok_slow" };
        let r = alice.post("/checkups", &booking(&date, "basic", token)).await;
        assert_problem(&r, 503);
        assert_retry_after(&r);
    }
    let health = Client::anonymous(&stack).get("/health").await;
    assert_eq!(health.body["payment_circuit"], "open", "{:?}", health.body);

    let refused = alice.post("/checkups", &booking(&date, "basic", "tok_ok")).await;
    assert_problem(&refused, 503);
    assert_retry_after(&refused);
    assert!(
        stack.sandbox.entries().is_empty(),
        "with the circuit open the provider is not even called"
    );

    let booked = eventually(PATIENCE, || async {
        let r = alice.post("/checkups", &booking(&date, "basic", "tok_ok")).await;
        match r.status {
            201 => Some(r),
            503 => None,
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    })
    .await
    .expect("after the cool-down a good card books again by itself");
    assert_eq!(booked.body["status"], "booked");
    let health = Client::anonymous(&stack).get("/health").await;
    assert_eq!(health.body["payment_circuit"], "closed", "{:?}", health.body);
    settled(&stack).await;
    assert_eq!(ids(&alice.get("/checkups").await.body).len(), 1);
    assert_eq!(stack.sandbox.kept(), Won(100_000));
    stack.shutdown().await;
}

// NFR fault isolation — bookings are taken while the centre's side is down.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_fault_isolation_bookings_are_taken_while_the_centre_work_list_is_down_and_reach_it_later() {
    let mut options = options_on(ON).await;
    // However slow this machine, the outage must not outlast the retries into the DLQ.
    options.bus.max_attempts = 1000;
    let stack = LocalStack::start(options).await.expect("local stack starts");
    let alice = patient(&stack, "alice");
    stack.faults().set(CENTRE_WORKLIST, true);

    let (id, _) = book_ok(&alice, &future_date(30), "basic").await;
    let (second, _) = book_ok(&alice, &future_date(31), "standard").await;

    // Both bookings' deliveries fail, and are delivered again.
    let retried = eventually(PATIENCE, || async { (stack.faults().fired(CENTRE_WORKLIST) >= 4).then_some(()) }).await;
    assert!(retried.is_some(), "the work list's deliveries are being retried");
    for booking_id in [&id, &second] {
        let view = wait_for_status(&alice, booking_id, "status", "booked").await;
        assert_eq!(view["reservation"]["status"], "pending", "{view:?}");
    }
    let booked_sms = eventually(PATIENCE, || async { (sms(&stack).await.len() == 2).then_some(()) }).await;
    assert!(booked_sms.is_some(), "the other consumers are not held up by the failing one");

    stack.faults().set(CENTRE_WORKLIST, false);

    for booking_id in [&id, &second] {
        let view = wait_for_status(&alice, booking_id, "reservation", "received").await;
        assert_eq!(view["status"], "booked");
    }
    settled(&stack).await;
    assert!(stack.dead_letters().await.expect("dead letters").is_empty());
    stack.shutdown().await;
}

// NFR CQRS — the status view is served from the view table alone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfr_cqrs_the_status_view_is_served_from_the_view_table_alone() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let (id, _) = book_ok(&alice, &future_date(30), "basic").await;
    wait_for_status(&alice, &id, "reservation", "received").await;
    settled(&stack).await;
    let path = format!("/checkups/{id}");

    let served = alice.get(&path).await;
    let record = stack
        .platform
        .views
        .get(&clinicflow::flows::checkup::view::view_key(&id))
        .await
        .expect("view store")
        .expect("the view exists");
    let stored: CheckupView = serde_json::from_value(record.body.clone()).expect("a check-up view");
    assert_eq!(stored.render(), Some(served.body.clone()), "GET returns the view record");

    stack.faults().set(PROJECTOR, true);
    assert_eq!(
        alice.get(&path).await.body,
        served.body,
        "the existing view is served while projection is stopped"
    );
    assert_eq!(alice.post_empty(&format!("{path}/cancel")).await.status, 202);
    let refunded = eventually(PATIENCE, || async {
        stack
            .sandbox
            .entries()
            .iter()
            .any(|e| e.reference == id && e.status == LedgerStatus::Refunded)
            .then_some(())
    })
    .await;
    assert!(refunded.is_some(), "the cancel's saga ran");
    let stale = alice.get(&path).await;
    assert_eq!(stale.status, 200);
    assert_eq!(
        stale.body, served.body,
        "the cancel is not in the view until the projector runs again"
    );

    stack.faults().set(PROJECTOR, false);

    let view = wait_for_status(&alice, &id, "status", "cancelled").await;
    let view = if view["payment"]["status"] == "refunded" {
        view
    } else {
        wait_for_status(&alice, &id, "payment", "refunded").await
    };
    assert_eq!(timeline(&view), ["booked", "cancelled"]);
    settled(&stack).await;
    let record = stack
        .platform
        .views
        .get(&clinicflow::flows::checkup::view::view_key(&id))
        .await
        .expect("view store")
        .expect("the view exists");
    let stored: CheckupView = serde_json::from_value(record.body).expect("a check-up view");
    assert_eq!(stored.render(), Some(alice.get(&path).await.body));
    stack.shutdown().await;
}

// Idempotency-Key — a retried booking books and pays once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_the_same_key_and_body_book_and_pay_once() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let body = booking(&future_date(30), "standard", "tok_ok");
    let key = [("Idempotency-Key", "retry-me-7f3a")];

    let first = alice.send("POST", "/checkups", Some(&body), &key).await;
    let second = alice.send("POST", "/checkups", Some(&body), &key).await;

    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(second.status, 201, "{:?}", second.body);
    assert_eq!(second.body, first.body);
    assert_eq!(second.location, first.location);
    let id = first.body["id"].as_str().expect("id");
    assert_eq!(stack.sandbox.entries().len(), 1, "one payment");
    settled(&stack).await;
    assert_eq!(ids(&alice.get("/checkups").await.body), [id], "one booking");
    assert_eq!(stack.sandbox.kept(), Won(250_000));
    assert_eq!(sms(&stack).await.len(), 1, "one booking SMS");

    let bob = patient(&stack, "bob");
    let bobs = bob.send("POST", "/checkups", Some(&body), &key).await;
    assert_eq!(bobs.status, 201, "keys are per caller: {:?}", bobs.body);
    assert_ne!(bobs.body["id"], first.body["id"]);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_the_same_key_with_another_body_is_refused_naming_the_key() {
    let stack = start_on(ON).await;
    let alice = patient(&stack, "alice");
    let key = [("Idempotency-Key", "retry-me-7f3a")];
    let first = alice
        .send("POST", "/checkups", Some(&booking(&future_date(30), "basic", "tok_ok")), &key)
        .await;
    assert_eq!(first.status, 201, "{:?}", first.body);

    let other = alice
        .send("POST", "/checkups", Some(&booking(&future_date(30), "premium", "tok_ok")), &key)
        .await;

    assert_problem(&other, 422);
    assert_eq!(error_fields(&other), ["Idempotency-Key"], "{:?}", other.body);
    assert_eq!(stack.sandbox.entries().len(), 1, "no second payment");
    // The first booking reaches the view through a stream; once it is there and the stack
    // has settled, a second one would be too.
    let first_id = first.body["id"].as_str().expect("an id").to_owned();
    wait_for_status(&alice, &first_id, "status", "booked").await;
    settled(&stack).await;
    assert_eq!(ids(&alice.get("/checkups").await.body).len(), 1, "no second booking");
    stack.shutdown().await;
}
