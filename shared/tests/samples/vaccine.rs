//! The vaccine slice's samples: a subscription, a slot of one dose, its reservation and a
//! second citizen on the waiting list (the seeds, in that order); what each sample gets; every
//! domain event of the slice (slot management, reservations, subscriptions) and what their
//! schemas must refuse.

use chrono::{DateTime, NaiveDate, Utc};
use clinicflow::domain::{Contact, Locale, PersonName, PhoneNumber};
use clinicflow::events::{Causality, EventEnvelope};
use clinicflow::flows::vaccine::{alert, reservation, slot};
use serde_json::{Value, json};

use super::{Edit, Fixture, Schemas, remove};

/// The vaccine slice's samples.
pub const FIXTURE: Fixture = Fixture {
    slice: "vaccine",
    // The slot's date (2026-12-10) is ahead of it.
    now: "2026-12-01T00:30:00Z",
    // The ids the seeds take, in order (cases and event ids): the subscription is the first,
    // the slot the third, the reservation the sixth, the waiting entry the eighth.
    ids: &[
        "01KBVAC0000000000000000000",
        "01KBVAC0000000000000000001",
        "01KBVAC0000000000000000002",
        "01KBVAC0000000000000000003",
        "01KBVAC0000000000000000004",
        "01KBVAC0000000000000000005",
        "01KBVAC0000000000000000006",
        "01KBVAC0000000000000000007",
        "01KBVAC0000000000000000008",
        "01KBVAC0000000000000000009",
        "01KBVAC0000000000000000010",
        "01KBVAC0000000000000000011",
    ],
    seeds: &[
        "vaccine-subscription/subscribe.json",
        "vaccine-slot-open/open.json",
        "vaccine-reserve/reserve.json",
        "vaccine-waitlist/join.json",
    ],
    case: SAMPLE_RESERVATION,
    view_id: |id| clinicflow::app::projector::view_id(clinicflow::flows::vaccine::view::RESERVATIONS, id),
    expected: &[
        ("vaccine-subscription/subscribe.json", 201),
        ("vaccine-subscription/unsubscribe.json", 204),
        ("vaccine-subscription/unknown-vaccine.json", 422),
        ("vaccine-slot-open/open.json", 201),
        ("vaccine-slot-open/unknown-hospital.json", 422),
        ("vaccine-slot-doses/add.json", 200),
        ("vaccine-slot-close/close.json", 200),
        ("vaccine-reserve/reserve.json", 201),
        ("vaccine-reserve/already-holding.json", 409),
        ("vaccine-reserve/missing-phone.json", 422),
        ("vaccine-waitlist/join.json", 201),
        ("vaccine-cancel/cancel.json", 202),
        ("vaccine-accept/nothing-held-yet.json", 409),
        ("vaccine-fulfil/fulfil.json", 200),
        ("vaccine-noshow/noshow.json", 200),
        ("vaccine-query/slots.json", 200),
        ("vaccine-query/slot.json", 200),
        ("vaccine-query/slot-reservations.json", 200),
        ("vaccine-query/reservation.json", 200),
        ("vaccine-query/my-reservations.json", 200),
        ("vaccine-query/my-offers.json", 200),
        ("vaccine-query/my-subscriptions.json", 200),
    ],
    // The reservation is due the next day at 09:00 in Korea; nothing is held yet.
    jobs: &[
        ("vaccine-reminder/day-before.json", 1),
        ("vaccine-offer-expiry/every-minute.json", 0),
    ],
    envelopes,
    refusals,
    stream_view,
};

const SAMPLE_RESERVATION: &str = "01KBVAC0000000000000000005";

/// What a stream sample leaves in the reservation's view.
fn stream_view(rel: &str, view: &Value) {
    let want = [
        ("booked-reminded-fulfilled", "fulfilled"),
        ("booked-cancelled", "cancelled"),
        ("offer-accepted-noshow", "noshow"),
        ("offer-lapsed", "cancelled"),
        ("slot-and-subscription", "booked"),
    ]
    .into_iter()
    .find(|(sample, _)| rel.contains(sample))
    .map(|(_, status)| status)
    .unwrap_or_else(|| panic!("{rel}: say what it leaves in the view"));
    assert_eq!(view["status"], want, "{rel}: {view:#}");
    assert_eq!(view["vaccine"], "pfizer", "{rel}");
    assert!(view["timeline"].as_array().is_some_and(|t| !t.is_empty()), "{rel}: a timeline");
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

fn ulid() -> String {
    ulid::Ulid::new().to_string()
}

/// Every slot event, several shapes of some; the `match` breaks the build when a variant is
/// added without a case here.
fn slot_events() -> Vec<slot::Event> {
    let at = Utc::now();
    let all = vec![
        slot::Event::SlotOpened {
            date: date("2026-12-10"),
            hospital: "seoul-central".into(),
            vaccine: "pfizer".into(),
            quantity: 100,
            shards: 4,
        },
        slot::Event::SlotOpened {
            date: date("2027-01-31"),
            hospital: "h".repeat(40),
            vaccine: "novavax".into(),
            quantity: 100_000,
            shards: 32,
        },
        slot::Event::DosesAdded { add: 50, quantity: 150 },
        slot::Event::SlotClosed {},
        slot::Event::SlotAnnounced {
            subscribers: vec![ulid(), ulid()],
            date: date("2026-12-10"),
            hospital_name: "서울중앙병원".into(),
            vaccine: "pfizer".into(),
        },
        slot::Event::SlotAnnounced {
            subscribers: vec![],
            date: date("2026-12-10"),
            hospital_name: "busan-city".into(),
            vaccine: "moderna".into(),
        },
        slot::Event::SlotWaitlisted {
            entry_id: ulid(),
            patient_sub: "3c5e1f0a-8b7d-4e2a-9f61-0d2c4b6a8e10".into(),
        },
        slot::Event::SlotDoseHeld {
            entry_id: ulid(),
            patient_sub: "p".into(),
            shard: 3,
            expires_at: at,
        },
        slot::Event::SlotDoseReturned { shard: 0 },
        slot::Event::SlotWaiterLeft { entry_id: ulid() },
        slot::Event::SlotHeldTaken { entry_id: ulid() },
        slot::Event::SlotHoldLapsed { entry_id: ulid() },
    ];
    for e in &all {
        match e {
            slot::Event::SlotOpened { .. }
            | slot::Event::DosesAdded { .. }
            | slot::Event::SlotClosed {}
            | slot::Event::SlotAnnounced { .. }
            | slot::Event::SlotWaitlisted { .. }
            | slot::Event::SlotDoseHeld { .. }
            | slot::Event::SlotDoseReturned { .. }
            | slot::Event::SlotWaiterLeft { .. }
            | slot::Event::SlotHeldTaken { .. }
            | slot::Event::SlotHoldLapsed { .. } => {}
        }
    }
    all
}

fn reservation_events() -> Vec<reservation::Event> {
    let all = vec![
        reservation::Event::ReservationBooked {
            patient_sub: "3c5e1f0a-8b7d-4e2a-9f61-0d2c4b6a8e10".into(),
            slot_id: ulid(),
            date: date("2026-12-10"),
            hospital: "seoul-central".into(),
            vaccine: "pfizer".into(),
            shard: 0,
            contact: contact("홍길동", "010-1234-5678", Locale::Ko),
        },
        reservation::Event::WaitlistJoined {
            patient_sub: "p".into(),
            slot_id: ulid(),
            date: date("2027-02-28"),
            hospital: "busan-city".into(),
            vaccine: "moderna".into(),
            contact: contact(&"가".repeat(50), "+14155550123", Locale::En),
        },
        reservation::Event::DoseOffered {
            shard: 7,
            expires_at: Utc::now(),
        },
        reservation::Event::OfferAccepted { shard: 7 },
        reservation::Event::OfferLapsed {},
        reservation::Event::ReservationCancelled {
            slot_id: ulid(),
            shard: Some(1),
        },
        // A waiting entry that leaves holds no dose.
        reservation::Event::ReservationCancelled {
            slot_id: ulid(),
            shard: None,
        },
        reservation::Event::ReservationReminded { date: date("2026-12-10") },
        reservation::Event::ReservationFulfilled {},
        reservation::Event::ReservationNoShow {},
    ];
    for e in &all {
        match e {
            reservation::Event::ReservationBooked { .. }
            | reservation::Event::WaitlistJoined { .. }
            | reservation::Event::DoseOffered { .. }
            | reservation::Event::OfferAccepted { .. }
            | reservation::Event::OfferLapsed {}
            | reservation::Event::ReservationCancelled { .. }
            | reservation::Event::ReservationReminded { .. }
            | reservation::Event::ReservationFulfilled {}
            | reservation::Event::ReservationNoShow {} => {}
        }
    }
    all
}

fn alert_events() -> Vec<alert::Event> {
    let all = vec![
        alert::Event::AlertSubscribed {
            patient_sub: "3c5e1f0a-8b7d-4e2a-9f61-0d2c4b6a8e10".into(),
            hospital: Some("seoul-central".into()),
            vaccine: None,
            contact: contact("홍길동", "010-1234-5678", Locale::Ko),
        },
        alert::Event::AlertSubscribed {
            patient_sub: "p".into(),
            hospital: None,
            vaccine: Some("pfizer".into()),
            contact: contact("Jane", "+14155550123", Locale::En),
        },
        alert::Event::AlertUnsubscribed {},
    ];
    for e in &all {
        match e {
            alert::Event::AlertSubscribed { .. } | alert::Event::AlertUnsubscribed {} => {}
        }
    }
    all
}

fn wrap<E: serde::Serialize>(context: &str, version: u64, causation_id: &str, at: DateTime<Utc>, event: &E) -> Value {
    let case = ulid();
    let causality = Causality {
        correlation_id: case.clone(),
        causation_id: causation_id.to_owned(),
    };
    let envelope = EventEnvelope::wrap(ulid(), context, &case, version, &causality, at, event).expect("wraps");
    serde_json::to_value(&envelope).expect("serializes")
}

/// Envelopes of every domain event of the slice, as the use cases and the jobs build them:
/// request ids, event ids and job runs as causes.
fn envelopes() -> Vec<Value> {
    let whole = DateTime::parse_from_rfc3339("2026-12-01T00:30:00Z")
        .expect("ts")
        .with_timezone(&Utc);
    let mut out = Vec::new();
    for (i, e) in slot_events().iter().enumerate() {
        out.push(wrap(slot::CONTEXT, 1 + i as u64, "Vx7kTgAbIE0EJbA=", whole, e));
    }
    for (i, e) in reservation_events().iter().enumerate() {
        out.push(wrap(reservation::CONTEXT, 1 + i as u64, &ulid(), Utc::now(), e));
    }
    for (i, e) in alert_events().iter().enumerate() {
        out.push(wrap(alert::CONTEXT, 1 + i as u64, "vaccine-reminder@2026-12-10", Utc::now(), e));
    }
    out
}

fn first(envelopes: &[Value], t: &str) -> Value {
    envelopes.iter().find(|e| e["type"] == t).unwrap_or_else(|| panic!("a {t}")).clone()
}

/// Envelopes edited into what the Rust types would not produce: each must be refused.
fn refusals(schemas: &Schemas, envelopes: &[Value]) {
    let cases: &[(&str, &str, Edit)] = &[
        ("SlotOpened", "an unknown data field", |e| e["data"]["extra"] = json!(1)),
        ("SlotOpened", "another source", |e| e["source"] = json!("clinicflow.vaccination")),
        ("SlotOpened", "no doses", |e| e["data"]["quantity"] = json!(0)),
        ("SlotOpened", "a negative quantity", |e| e["data"]["quantity"] = json!(-1)),
        ("SlotOpened", "no shard", |e| e["data"]["shards"] = json!(0)),
        ("SlotOpened", "33 shards", |e| e["data"]["shards"] = json!(33)),
        ("SlotOpened", "an empty hospital", |e| e["data"]["hospital"] = json!("")),
        ("SlotOpened", "an impossible date", |e| e["data"]["date"] = json!("2026-02-30")),
        ("SlotOpened", "no vaccine", |e| remove(&mut e["data"], "vaccine")),
        ("DosesAdded", "nothing added", |e| e["data"]["add"] = json!(0)),
        ("SlotDoseHeld", "a shard over 255", |e| e["data"]["shard"] = json!(256)),
        ("SlotDoseHeld", "an expiry that is not a date-time", |e| {
            e["data"]["expires_at"] = json!("soon")
        }),
        ("SlotClosed", "a field", |e| e["data"]["reason"] = json!("none expected")),
        ("SlotAnnounced", "subscribers that are not a list", |e| {
            e["data"]["subscribers"] = json!("all")
        }),
        ("ReservationBooked", "a slot id that is not a ULID", |e| {
            e["data"]["slot_id"] = json!("slot-1")
        }),
        ("ReservationBooked", "a national phone number", |e| {
            e["data"]["contact"]["phone"] = json!("010-1234-5678")
        }),
        ("ReservationBooked", "an unknown locale", |e| {
            e["data"]["contact"]["locale"] = json!("ja")
        }),
        ("ReservationBooked", "an empty patient", |e| e["data"]["patient_sub"] = json!("")),
        ("ReservationBooked", "no shard", |e| remove(&mut e["data"], "shard")),
        ("ReservationBooked", "another type", |e| e["type"] = json!("WaitlistJoined")),
        ("ReservationBooked", "version 0", |e| e["version"] = json!(0)),
        ("WaitlistJoined", "a name over 50 characters", |e| {
            e["data"]["contact"]["name"] = json!("가".repeat(51))
        }),
        ("ReservationCancelled", "no slot", |e| remove(&mut e["data"], "slot_id")),
        ("ReservationCancelled", "a negative shard", |e| e["data"]["shard"] = json!(-1)),
        ("ReservationReminded", "a date with a time", |e| {
            e["data"]["date"] = json!("2026-12-10T00:00:00Z")
        }),
        ("ReservationFulfilled", "a field", |e| e["data"]["by"] = json!("someone")),
        ("AlertSubscribed", "no contact", |e| remove(&mut e["data"], "contact")),
        ("AlertSubscribed", "a hospital that is not a string", |e| {
            e["data"]["hospital"] = json!(7)
        }),
        ("AlertUnsubscribed", "an unknown envelope field", |e| e["extra"] = json!(1)),
    ];
    for (t, what, edit) in cases {
        let mut e = first(envelopes, t);
        edit(&mut e);
        schemas.assert_invalid(&format!("{t} with {what}"), &e);
    }
}
