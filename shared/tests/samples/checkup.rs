//! The check-up slice's samples: the booking the others act on, what each sample gets, every
//! domain event of the slice (check-up, payment, centre) and what its schemas must refuse.

use chrono::{DateTime, NaiveDate, Utc};
use clinicflow::contexts::payment;
use clinicflow::domain::{Contact, Locale, PersonName, PhoneNumber, Won};
use clinicflow::events::{Causality, EventEnvelope};
use clinicflow::flows::checkup::centre;
use clinicflow::flows::checkup::domain::{self as checkup, Package};
use serde_json::{Value, json};

use super::{Edit, Fixture, Schemas, remove};

/// The check-up slice's samples.
pub const FIXTURE: Fixture = Fixture {
    slice: "checkup",
    // The time the samples were taken at (see `events/`), so that their check-up date is valid.
    now: "2026-11-21T00:30:00Z",
    // The booking and payment ids the samples refer to, in the order the booking takes them.
    ids: &[SAMPLE_BOOKING, "01JD3M7Q0000000000000000PY"],
    // The booking every sample but the booking ones starts from.
    seeds: &["checkup-book/book-basic.json"],
    case: SAMPLE_BOOKING,
    view_id: clinicflow::flows::checkup::view::view_key,
    // What each sample gets from its function: the HTTP status.
    expected: &[
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
    ],
    jobs: &[],
    envelopes,
    refusals,
    stream_view,
};

const SAMPLE_BOOKING: &str = "01JD3M7Q0000000000000000AB";

/// What a stream sample leaves in the booking's view.
fn stream_view(rel: &str, view: &Value) {
    assert_eq!(view["status"], "booked", "{rel}");
    assert_eq!(view["payment_status"], "paid", "{rel}");
    for (sample, reservation) in [
        ("worklist-confirmed", "confirmed"),
        ("worklist-rejected", "rejected"),
        ("worklist-withdrawn", "withdrawn"),
    ] {
        if rel.contains(sample) {
            assert_eq!(view["reservation_status"], reservation, "{rel}");
        }
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

/// Envelopes of every domain event of the slice, as the use cases build them: request ids
/// and event ids as causes, whole and fractional timestamps.
fn envelopes() -> Vec<Value> {
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

/// Envelopes edited into what the Rust types would not produce: each must be refused.
fn refusals(schemas: &Schemas, envelopes: &[Value]) {
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
