//! The vaccine slice's saga: two subscriptions (one withdrawn) and a slot of one dose for
//! tomorrow; a reservation that empties it, a refusal, two citizens on the waiting list; a
//! cancellation whose dose is held for the first in line, a hold that ends (the expiry job)
//! and passes to the second, who accepts; doses added, a dose given, a no-show, the
//! day-before reminder (the reminder job), the slot closed; every query. The first publish
//! of `vaccine-subscription`, `vaccine-slot-close` and `vaccine-noshow` fails: the sweeper
//! publishes and marks those events, in each of the slice's three tables.

use chrono::{Duration, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Deployment, Saga};

pub const SAGA: Saga = Saga {
    slice: "vaccine",
    unpublished: &["vaccine-subscription", "vaccine-slot-close", "vaccine-noshow"],
    run,
    swept,
};

const ADMIN: &str = "vaccine-admin-1";
const GROUP: &str = "vaccine-admin";
/// The citizens: the first reserves and cancels, the second and third wait, the fourth and
/// fifth reserve the doses added; the subscriber.
const CITIZENS: [&str; 6] = ["vax-1", "vax-2", "vax-3", "vax-4", "vax-5", "vax-subscriber"];

fn person(n: usize) -> Value {
    json!({"name": format!("시민{n}"), "phone": "010-1234-5678", "locale": "ko"})
}

fn reserve(slot: &str, n: usize) -> Value {
    let mut body = person(n);
    body["slot_id"] = json!(slot);
    body
}

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap_or_else(|| panic!("an id in {body:#}")).to_owned()
}

fn run(d: &Deployment) -> BoxFuture<'_, Vec<String>> {
    async move {
        // 09:00 in Korea today, the day before the slot's date.
        let today = (Utc::now() + Duration::hours(9)).date_naive();
        let tomorrow = (today + Duration::days(1)).to_string();
        let reminder_at = today.and_hms_opt(0, 0, 0).expect("midnight").and_utc();

        // The first subscription's publish fails: the slot's notice goes to the second.
        let subscriber = CITIZENS[5];
        for (sub, body) in [
            (subscriber, json!({"hospital": "seoul-central", "phone": "010-9876-5432"})),
            (CITIZENS[0], json!({"vaccine": "pfizer", "phone": "010-1234-5678"})),
        ] {
            let (status, body) = d.http("POST", "/vaccine/subscriptions", sub, "patient", body).await;
            assert_eq!(status, 201, "{body:#}");
        }
        let (status, gone) = d
            .http(
                "POST",
                "/vaccine/subscriptions",
                subscriber,
                "patient",
                json!({"hospital": "busan-city", "phone": "010-9876-5432"}),
            )
            .await;
        assert_eq!(status, 201, "{gone:#}");
        let (status, body) = d
            .http(
                "DELETE",
                &format!("/vaccine/subscriptions/{}", id(&gone)),
                subscriber,
                "patient",
                Value::Null,
            )
            .await;
        assert_eq!(status, 204, "{body:#}");
        d.settle().await;

        let (status, slot) = d
            .http(
                "POST",
                "/vaccine/slots",
                ADMIN,
                GROUP,
                json!({"date": tomorrow, "hospital": "seoul-central", "vaccine": "pfizer", "quantity": 1, "shards": 1}),
            )
            .await;
        assert_eq!(status, 201, "{slot:#}");
        let slot = id(&slot);
        d.settle().await;

        let (status, first) = d
            .http("POST", "/vaccine/reservations", CITIZENS[0], "patient", reserve(&slot, 0))
            .await;
        assert_eq!(status, 201, "{first:#}");
        let first = id(&first);
        let (status, body) = d
            .http("POST", "/vaccine/reservations", CITIZENS[1], "patient", reserve(&slot, 1))
            .await;
        assert_eq!(status, 409, "the slot is empty: {body:#}");
        let mut waiting = Vec::new();
        for n in [1, 2] {
            let (status, body) = d
                .http(
                    "POST",
                    &format!("/vaccine/slots/{slot}/waitlist"),
                    CITIZENS[n],
                    "patient",
                    person(n),
                )
                .await;
            assert_eq!(status, 201, "{body:#}");
            waiting.push(id(&body));
        }
        d.settle().await;

        let (status, body) = d
            .http(
                "POST",
                &format!("/vaccine/reservations/{first}/cancel"),
                CITIZENS[0],
                "patient",
                Value::Null,
            )
            .await;
        assert_eq!(status, 202, "{body:#}");
        d.settle().await;
        let (_, offers) = d.http("GET", "/vaccine/offers", CITIZENS[1], "patient", Value::Null).await;
        assert_eq!(
            offers["items"].as_array().map(Vec::len),
            Some(1),
            "the dose is held for the first in line: {offers:#}"
        );

        // The hold ends unanswered: the dose passes to the second in line, who takes it.
        let lapsed = d.job("vaccine-offer-expiry", Utc::now() + Duration::hours(2)).await;
        assert_eq!(lapsed, 1);
        d.settle().await;
        let (status, taken) = d
            .http(
                "POST",
                &format!("/vaccine/offers/{}/accept", waiting[1]),
                CITIZENS[2],
                "patient",
                Value::Null,
            )
            .await;
        assert_eq!(status, 201, "{taken:#}");

        let (status, body) = d
            .http("POST", &format!("/vaccine/slots/{slot}/doses"), ADMIN, GROUP, json!({"add": 2}))
            .await;
        assert_eq!(status, 200, "{body:#}");
        let mut booked = Vec::new();
        for n in [3, 4] {
            let (status, body) = d
                .http("POST", "/vaccine/reservations", CITIZENS[n], "patient", reserve(&slot, n))
                .await;
            assert_eq!(status, 201, "{body:#}");
            booked.push(id(&body));
        }
        d.settle().await;
        let (status, body) = d
            .http(
                "POST",
                &format!("/vaccine/reservations/{}/fulfil", waiting[1]),
                ADMIN,
                GROUP,
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{body:#}");
        let (status, body) = d
            .http(
                "POST",
                &format!("/vaccine/reservations/{}/noshow", booked[0]),
                ADMIN,
                GROUP,
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{body:#}");
        d.settle().await;

        // The one still booked for tomorrow is reminded (the no-show's view may not say so
        // yet: its event waits for the sweeper).
        let reminded = d.job("vaccine-reminder", reminder_at).await;
        assert!(reminded >= 1, "the booked reservation is reminded: {reminded}");
        // The first close's publish fails; a second slot's close publishes.
        let (status, other) = d
            .http(
                "POST",
                "/vaccine/slots",
                ADMIN,
                GROUP,
                json!({"date": tomorrow, "hospital": "busan-city", "vaccine": "moderna", "quantity": 10}),
            )
            .await;
        assert_eq!(status, 201, "{other:#}");
        for s in [slot.clone(), id(&other)] {
            let (status, body) = d
                .http("POST", &format!("/vaccine/slots/{s}/close"), ADMIN, GROUP, Value::Null)
                .await;
            assert_eq!(status, 200, "{body:#}");
        }
        d.settle().await;
        vec![
            slot,
            first,
            waiting[0].clone(),
            waiting[1].clone(),
            booked[0].clone(),
            booked[1].clone(),
        ]
    }
    .boxed()
}

fn swept<'a>(d: &'a Deployment, ids: &'a [String]) -> BoxFuture<'a, ()> {
    async move {
        let (slot, noshow) = (&ids[0], &ids[4]);
        for (path, sub, group) in [
            ("/vaccine/slots?hospital=seoul-central".to_owned(), CITIZENS[0], "patient"),
            (format!("/vaccine/slots/{slot}"), ADMIN, GROUP),
            (format!("/vaccine/slots/{slot}/reservations"), ADMIN, GROUP),
            ("/vaccine/reservations".to_owned(), CITIZENS[2], "patient"),
            (format!("/vaccine/reservations/{}", ids[3]), CITIZENS[2], "patient"),
            ("/vaccine/subscriptions".to_owned(), CITIZENS[5], "patient"),
        ] {
            let (status, body) = d.http("GET", &path, sub, group, Value::Null).await;
            assert_eq!(status, 200, "{path}: {body:#}");
        }
        let (_, view) = d
            .http("GET", &format!("/vaccine/reservations/{noshow}"), ADMIN, GROUP, Value::Null)
            .await;
        assert_eq!(view["status"], "noshow", "swept, the no-show reached the view: {view:#}");
        let (_, view) = d.http("GET", &format!("/vaccine/slots/{slot}"), ADMIN, GROUP, Value::Null).await;
        assert_eq!(view["remaining"], 0, "three doses, three taken: {view:#}");
        assert_eq!(view["status"], "closed", "{view:#}");
    }
    .boxed()
}
