//! The check-up slice's saga: four paid bookings, one confirmed, two rejected, one
//! cancelled; the queries of patient and centre; the refunds, taken by `payment-refund` on
//! its own platform. The first publish of `centre-reject` and of `payment-refund` fails: the
//! sweeper publishes and marks those events (in the check-up, centre and payment tables),
//! the functions their later ones.

use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Deployment, Saga};

pub const SAGA: Saga = Saga {
    slice: "checkup",
    unpublished: &["centre-reject", "payment-refund"],
    run,
    swept,
};

const PATIENT: &str = "patient-1";
const STAFF: &str = "centre-1";

fn booking(date: &str) -> Value {
    json!({"date": date, "package": "basic", "name": "홍길동", "phone": "010-1234-5678", "card_token": "tok_ok", "locale": "ko"})
}

fn run(d: &Deployment) -> BoxFuture<'_, Vec<String>> {
    async move {
        let date = (Utc::now().date_naive() + chrono::Duration::days(30)).to_string();
        let mut ids = Vec::new();
        for _ in 0..4 {
            let (status, body) = d.http("POST", "/checkups", PATIENT, "patient", booking(&date)).await;
            assert_eq!(status, 201, "{body:#}");
            ids.push(body["id"].as_str().expect("an id").to_owned());
        }
        d.settle().await;
        let (confirmed, cancelled) = (&ids[0], &ids[2]);
        let (status, body) = d
            .http(
                "POST",
                &format!("/centre/checkups/{confirmed}/confirm"),
                STAFF,
                "centre",
                Value::Null,
            )
            .await;
        assert_eq!(status, 200, "{body:#}");
        for rejected in [&ids[1], &ids[3]] {
            let (status, body) = d
                .http(
                    "POST",
                    &format!("/centre/checkups/{rejected}/reject"),
                    STAFF,
                    "centre",
                    json!({"reason": "No doctor available on that date"}),
                )
                .await;
            assert_eq!(status, 200, "{body:#}");
        }
        let (status, body) = d
            .http("POST", &format!("/checkups/{cancelled}/cancel"), PATIENT, "patient", Value::Null)
            .await;
        assert!(status == 200 || status == 202, "{status} {body:#}");
        d.settle().await;
        ids
    }
    .boxed()
}

fn swept<'a>(d: &'a Deployment, ids: &'a [String]) -> BoxFuture<'a, ()> {
    async move {
        let (confirmed, cancelled) = (&ids[0], &ids[2]);
        for (path, group) in [
            ("/checkups".to_owned(), "patient"),
            (format!("/checkups/{confirmed}"), "patient"),
            ("/centre/checkups".to_owned(), "centre"),
        ] {
            let sub = if group == "patient" { PATIENT } else { STAFF };
            let (status, body) = d.http("GET", &path, sub, group, Value::Null).await;
            assert_eq!(status, 200, "{path}: {body:#}");
        }
        for rejected in [&ids[1], &ids[3]] {
            let (_, mine) = d
                .http("GET", &format!("/checkups/{rejected}"), PATIENT, "patient", Value::Null)
                .await;
            assert_eq!(
                mine["status"], "rejected",
                "swept or published, the events reached the view: {mine:#}"
            );
        }
        // checkup-book took the charges, payment-refund refunded them on its own platform: the
        // provider's ledger is in the store, not in the booking function's memory.
        for id in [&ids[1], &ids[3], cancelled] {
            let (_, view) = d.http("GET", &format!("/checkups/{id}"), PATIENT, "patient", Value::Null).await;
            assert_eq!(view["payment"]["status"], "refunded", "{view:#}");
        }
    }
    .boxed()
}
