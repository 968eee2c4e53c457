//! The check-up slice's fixture (`shared/src/flows/checkup/`): what every area of the
//! harness needs to know about the check-up booking and cannot read from the catalog.
//!
//! - Opening a case: `POST /checkups` with a date (one per `day`), the basic package (the
//!   other variant: premium), the person's name, phone and locale, and a card token.
//! - Journeys: book then confirm, cancel, centre reject, confirm then cancel, left booked;
//!   payment declined (`402`), the payment provider down (`503`). A booking is ready for
//!   its steps once it is on the centre's work list (its view's reservation is `received`).
//! - The authorization matrix's call of each of the slice's seven routes.
//! - Its invariants: one terminal state per booking, the expected one, with at most one of
//!   each check-up event; places taken per slot equal the slot's active bookings; each view
//!   agrees with the booking, its payment and its reservation. What each booking owes in
//!   money goes to the shared refund invariant.
//! - The `concurrency` area's contest: confirm, reject (centre staff) and cancel (the
//!   patient) on one booking; confirm and reject exclude each other, reject and cancel
//!   exclude each other, a confirmed booking may still be cancelled.
//! - The use cases themselves (`commands::book`, `commands::cancel`) for the staged
//!   held-charge race.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::NaiveDate;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::adapters::sandbox::LedgerStatus;
use clinicflow::app::command::IdempotencyKey;
use clinicflow::app::{Platform, faults as platform};
use clinicflow::config::Config;
use clinicflow::contexts::payment::{self, Payment};
use clinicflow::domain::{Actor, Won, short_ref};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::checkup::availability::slot_key;
use clinicflow::flows::checkup::centre::{self, Reservation};
use clinicflow::flows::checkup::commands::{self as usecase, BookInput};
use clinicflow::flows::checkup::config::CheckupConfig;
use clinicflow::flows::checkup::domain::{self as checkup, Booking, BookingStatus, Package};
use clinicflow::flows::checkup::faults::*;
use clinicflow::flows::checkup::view::{self, CheckupView};
use clinicflow::flows::checkup::{CENTRE, SLICE};
use clinicflow::topology::{Method, Route};
use clinicflow_tests::{LocalOptions, LocalStack};
use serde_json::{Value, json};

use super::{Body, Contest, Due, Fixture, Journey, Opened, Opens, Personal, RouteCall, Step, Who};
use crate::areas::api::{Api, CONTENDER, Person, wait_for};
use crate::invariants::{Case, aggregates};

/// The check-up slice's fixture.
#[derive(Debug, Clone, Copy)]
pub struct Checkup;

/// The one instance, listed in [`super::all`].
pub static CHECKUP: Checkup = Checkup;

const OPENING: &str = "/checkups";

fn reason() -> Value {
    json!({"reason": "the doctor is unavailable that day"})
}

/// Centre staff confirm.
const CONFIRM: Step = Step {
    name: "confirm",
    who: Who::Staff(CENTRE),
    method: Method::Post,
    path: "/centre/checkups/{id}/confirm",
    body: None,
    success: 200,
};

/// Centre staff reject, with a reason.
const REJECT: Step = Step {
    name: "reject",
    who: Who::Staff(CENTRE),
    method: Method::Post,
    path: "/centre/checkups/{id}/reject",
    body: Some(reason),
    success: 200,
};

/// The patient cancels.
const CANCEL: Step = Step {
    name: "cancel",
    who: Who::Owner,
    method: Method::Post,
    path: "/checkups/{id}/cancel",
    body: None,
    success: 202,
};

/// The points every paid booking passes through.
fn booked(point: &str) -> bool {
    [
        platform::PAYMENT_CHARGE,
        platform::AFTER_COMMIT,
        BOOK_AFTER_COMMIT,
        CENTRE_WORKLIST,
        CENTRE_WORKLIST_BEFORE_WRITE,
        CENTRE_WORKLIST_AFTER_WRITE,
        SMS_NOTIFIER,
        SMS_NOTIFIER_BEFORE_WRITE,
        platform::SMS_BEFORE_SEND,
        platform::SMS_AFTER_SEND,
        SMS_NOTIFIER_AFTER_WRITE,
        platform::PROJECTOR,
        platform::PROJECTOR_AFTER_WRITE,
    ]
    .contains(&point)
}

/// The points a booking that ends (cancelled or rejected) passes through besides.
fn ended(point: &str) -> bool {
    [
        AVAILABILITY_RELEASE,
        AVAILABILITY_RELEASE_BEFORE_WRITE,
        AVAILABILITY_RELEASE_AFTER_WRITE,
        PAYMENT_REFUND,
        PAYMENT_REFUND_BEFORE_WRITE,
        platform::PAYMENT_REFUND_CALL,
        PAYMENT_REFUND_AFTER_WRITE,
    ]
    .contains(&point)
}

fn confirmed_points(point: &str) -> bool {
    booked(point) || point == CONFIRM_AFTER_COMMIT
}

fn cancelled_points(point: &str) -> bool {
    booked(point) || ended(point) || point == CANCEL_AFTER_COMMIT
}

fn rejected_points(point: &str) -> bool {
    booked(point) || ended(point) || point == REJECT_AFTER_COMMIT
}

fn charge_only(point: &str) -> bool {
    point == platform::PAYMENT_CHARGE
}

/// Covered by the journeys above.
fn nowhere(_: &str) -> bool {
    false
}

const JOURNEYS: &[Journey] = &[
    Journey {
        name: "book→confirm",
        card: "tok_ok",
        opens: Opens::Case("confirmed"),
        opening: None,
        steps: &[CONFIRM],
        armed_at: confirmed_points,
    },
    Journey {
        name: "book→cancel",
        card: "tok_ok",
        opens: Opens::Case("cancelled"),
        opening: None,
        steps: &[CANCEL],
        armed_at: cancelled_points,
    },
    Journey {
        name: "book→centre reject",
        card: "tok_ok",
        opens: Opens::Case("rejected"),
        opening: None,
        steps: &[REJECT],
        armed_at: rejected_points,
    },
    Journey {
        name: "book→confirm→cancel",
        card: "tok_ok",
        opens: Opens::Case("cancelled"),
        opening: None,
        steps: &[CONFIRM, CANCEL],
        armed_at: nowhere,
    },
    Journey {
        name: "book, left booked",
        card: "tok_ok",
        opens: Opens::Case("booked"),
        opening: None,
        steps: &[],
        armed_at: nowhere,
    },
    Journey {
        name: "book, payment declined",
        card: "tok_declined",
        opens: Opens::Refused(402),
        opening: None,
        steps: &[],
        armed_at: charge_only,
    },
    Journey {
        name: "book, payment provider down",
        card: "tok_down",
        opens: Opens::Unavailable(503),
        opening: None,
        steps: &[],
        armed_at: charge_only,
    },
];

fn date_of(day: i64) -> String {
    clinicflow_tests::future_date(day)
}

/// The slot (date, package) a booking request names.
fn slot_of(body: &Value) -> anyhow::Result<(NaiveDate, Package)> {
    let date = body["date"].as_str().context("a booking request has a date")?;
    let package = body["package"].as_str().context("a booking request has a package")?;
    Ok((
        NaiveDate::parse_from_str(date, "%Y-%m-%d")?,
        Package::parse(package).map_err(|e| anyhow::anyhow!(e.detail))?,
    ))
}

fn variant_package(variant: usize) -> Package {
    if variant == 0 { Package::Basic } else { Package::Premium }
}

#[async_trait]
impl Fixture for Checkup {
    fn slice(&self) -> &'static str {
        SLICE.name
    }

    fn context(&self) -> &'static str {
        checkup::CONTEXT
    }

    fn opening(&self) -> &'static str {
        OPENING
    }

    fn open_body(&self, day: i64, person: &Person<'_>, card: &str) -> Value {
        json!({
            "date": date_of(day),
            "package": Package::Basic.as_str(),
            "name": person.name,
            "phone": person.phone,
            "card_token": card,
            "locale": person.locale,
        })
    }

    fn other_body(&self, body: &Value) -> Value {
        let mut other = body.clone();
        other["package"] = json!(Package::Premium.as_str());
        other
    }

    fn variants(&self) -> [&'static str; 2] {
        [variant_package(0).as_str(), variant_package(1).as_str()]
    }

    fn personal(&self) -> Personal {
        Personal {
            name: "name",
            phone: "phone",
            card: Some("card_token"),
        }
    }

    fn invalid_openings(&self, valid: &Value) -> Vec<(&'static str, Value)> {
        let mut past = valid.clone();
        past["date"] = json!("2020-01-01");
        vec![("past date", past)]
    }

    fn view_key(&self, id: &str) -> String {
        view::view_key(id)
    }

    async fn ready(&self, stack: &LocalStack, id: &str) -> bool {
        stack
            .platform
            .views
            .get(&view::view_key(id))
            .await
            .ok()
            .flatten()
            .and_then(|v| v.body.get("reservation_status").and_then(|s| s.as_str()).map(|s| s == "received"))
            .unwrap_or(false)
    }

    fn journeys(&self) -> &'static [Journey] {
        JOURNEYS
    }

    fn route(&self, route: &Route) -> Option<RouteCall> {
        match (route.method, route.path) {
            (Method::Post, "/checkups") => Some(RouteCall::new(false, true, 201, Body::Opening)),
            (Method::Get, "/checkups") => Some(RouteCall::new(false, false, 200, Body::Empty)),
            (Method::Get, "/checkups/{id}") => Some(RouteCall::new(true, false, 200, Body::Empty)),
            (Method::Post, "/checkups/{id}/cancel") => Some(RouteCall::new(true, true, 202, Body::Empty)),
            (Method::Get, "/centre/checkups") => Some(RouteCall {
                filters: &["date"],
                ..RouteCall::new(false, false, 200, Body::Empty)
            }),
            (Method::Post, "/centre/checkups/{id}/confirm") => Some(RouteCall::new(true, true, 200, Body::Empty)),
            (Method::Post, "/centre/checkups/{id}/reject") => Some(RouteCall {
                text: Some("reason"),
                ..RouteCall::new(true, true, 200, Body::Json(reason))
            }),
            _ => None,
        }
    }

    async fn check(&self, stack: &LocalStack, cases: &[&Case], events: &[EventEnvelope]) -> anyhow::Result<Vec<String>> {
        let db = &stack.embedded().context("the invariants are read from the SQLite backend")?.db;
        let mut violations = Vec::new();
        let mut broken = |invariant: &str, what: String| violations.push(format!("{invariant}: {what}"));
        let bookings: BTreeMap<String, Booking> = aggregates(db, checkup::CONTEXT).await?;
        let payments: BTreeMap<String, Payment> = aggregates(db, payment::CONTEXT).await?;
        let reservations: BTreeMap<String, Reservation> = aggregates(db, centre::CONTEXT).await?;
        let mut by_case: HashMap<&str, Vec<&EventEnvelope>> = HashMap::new();
        for e in events {
            by_case.entry(e.correlation_id.as_str()).or_default().push(e);
        }

        // Each case reached exactly one terminal state, the expected one.
        for case in cases {
            let Some(id) = &case.id else {
                if let Some((id, _)) = bookings.iter().find(|(_, b)| b.patient_sub == case.owner) {
                    broken("terminal state", format!("booking {id} exists, none was expected"));
                }
                continue;
            };
            let Some(booking) = bookings.get(id) else {
                broken("terminal state", format!("booking {id} does not exist"));
                continue;
            };
            if Some(booking.status.as_str()) != case.outcome {
                broken(
                    "terminal state",
                    format!("booking {id} is {}, expected {:?}", booking.status.as_str(), case.outcome),
                );
            }
            let of_type = |t: &str| {
                by_case.get(id.as_str()).map_or(0, |es| {
                    es.iter().filter(|e| e.source == "clinicflow.checkup" && e.event_type == t).count()
                })
            };
            for t in ["CheckupBooked", "CheckupConfirmed", "CheckupCancelled", "CheckupRejected"] {
                if of_type(t) > 1 {
                    broken("terminal state", format!("booking {id} has {} {t} events", of_type(t)));
                }
            }
            if of_type("CheckupCancelled") + of_type("CheckupRejected") > 1 {
                broken("terminal state", format!("booking {id} ended twice"));
            }
            // Every booking was paid for: `book` charges before the booking exists.
            if !payments.contains_key(&booking.payment_id) {
                broken("terminal state", format!("booking {id}: payment taken is false"));
            }
        }

        // Capacity: places taken per slot equal the slot's active bookings.
        let mut active: BTreeMap<String, i64> = BTreeMap::new();
        for b in bookings.values() {
            let n = active.entry(slot_key(b.date, b.package)).or_default();
            if matches!(b.status, BookingStatus::Booked | BookingStatus::Confirmed) {
                *n += 1;
            }
        }
        for (slot, n) in &active {
            let taken = stack.platform.store.counter(slot).await?;
            if taken != *n {
                broken("capacity", format!("slot {slot}: {taken} places taken for {n} active bookings"));
            }
        }

        // Each view agrees with the booking, its payment and its reservation.
        for (id, b) in &bookings {
            let stored = stack.platform.views.get(&view::view_key(id)).await?;
            let Some(view) = stored.and_then(|v| serde_json::from_value::<CheckupView>(v.body).ok()) else {
                broken("view equals rebuild", format!("view {id} is missing or unreadable"));
                continue;
            };
            let pay = payments.get(&b.payment_id).map(|p| p.status.as_str());
            let reservation = reservations.get(id).map(|r| r.status.as_str());
            if view.status.as_deref() != Some(b.status.as_str())
                || view.payment_status.as_deref() != pay
                || view.reservation_status.as_deref() != reservation
            {
                broken(
                    "view equals aggregates",
                    format!(
                        "view {id} says {:?}/{:?}/{:?}, the aggregates {}/{pay:?}/{reservation:?}",
                        view.status,
                        view.payment_status,
                        view.reservation_status,
                        b.status.as_str()
                    ),
                );
            }
        }
        Ok(violations)
    }

    async fn dues(&self, db: &Embedded) -> anyhow::Result<Vec<Due>> {
        let bookings: BTreeMap<String, Booking> = aggregates(db, checkup::CONTEXT).await?;
        Ok(bookings
            .into_values()
            .map(|b| Due {
                refunded: matches!(b.status, BookingStatus::Cancelled | BookingStatus::Rejected),
                state: b.status.as_str(),
                case: b.id,
                payment_id: b.payment_id,
            })
            .collect())
    }

    async fn counters(&self, stack: &LocalStack) -> anyhow::Result<Vec<(String, i64)>> {
        let db = &stack.embedded().context("on SQLite")?.db;
        let bookings: BTreeMap<String, Booking> = aggregates(db, checkup::CONTEXT).await?;
        let slots: std::collections::BTreeSet<String> = bookings.values().map(|b| slot_key(b.date, b.package)).collect();
        let mut counters = Vec::new();
        for slot in slots {
            counters.push((slot.clone(), stack.platform.store.counter(&slot).await?));
        }
        Ok(counters)
    }

    fn set_capacity(&self, options: &mut LocalOptions, places: i64) {
        options.config.slice_mut::<CheckupConfig>().daily_capacity = places;
    }

    fn price(&self, config: &Config, variant: usize) -> Won {
        config.slice::<CheckupConfig>().prices.price(variant_package(variant))
    }

    async fn places_taken(&self, stack: &LocalStack, body: &Value) -> anyhow::Result<i64> {
        let (date, package) = slot_of(body)?;
        Ok(stack.platform.store.counter(&slot_key(date, package)).await?)
    }

    async fn cases_like(&self, db: &Embedded, body: &Value) -> anyhow::Result<HashSet<String>> {
        let (date, package) = slot_of(body)?;
        let bookings: BTreeMap<String, Booking> = aggregates(db, checkup::CONTEXT).await?;
        Ok(bookings
            .into_values()
            .filter(|b| b.date == date && b.package == package)
            .map(|b| b.id)
            .collect())
    }

    async fn opened(&self, db: &Embedded) -> anyhow::Result<Vec<Opened>> {
        let bookings: BTreeMap<String, Booking> = aggregates(db, checkup::CONTEXT).await?;
        Ok(bookings
            .into_values()
            .map(|b| Opened {
                id: b.id,
                owner: b.patient_sub,
                payment_id: b.payment_id,
                price: b.price,
                variant: b.package.as_str(),
            })
            .collect())
    }

    fn contest(&self) -> Contest {
        Contest {
            decisions: &[CONFIRM, REJECT, CANCEL],
            // Half the bookings see all three decisions; the others one pair each, so that
            // every outcome (confirmed too) gets contested.
            mixes: &[&[0, 1, 2], &[0, 1, 2], &[0, 1], &[1, 2]],
        }
    }

    fn implied_outcome(&self, won: &[bool]) -> Result<&'static str, String> {
        let [confirmed, rejected, cancelled] = won else {
            return Err(format!("{} decisions, expected confirm, reject and cancel", won.len()));
        };
        implied_outcome(*confirmed, *rejected, *cancelled)
    }

    async fn judge_contest(
        &self,
        stack: &LocalStack,
        api: &Api,
        id: &str,
        owner: &str,
        body: &Value,
        won: &[bool],
        outcome: &str,
    ) -> anyhow::Result<Vec<String>> {
        let won_one = |i: usize| won.get(i).copied().unwrap_or(false);
        let (confirmed, rejected, cancelled) = (won_one(0), won_one(1), won_one(2));
        let ended = outcome != "confirmed";
        let mut wrong = Vec::new();

        let (payment, reservation) = match outcome {
            "confirmed" => ("paid", "confirmed"),
            "rejected" => ("refunded", "rejected"),
            _ => ("refunded", "withdrawn"),
        };
        let path = format!("/checkups/{id}");
        let view = wait_for(api, owner, &path, Duration::from_secs(5), |v| {
            v["status"] == outcome && v["payment"]["status"] == payment && v["reservation"]["status"] == reservation
        })
        .await;
        if view.is_none() {
            let seen = api.send("GET", &path, Some(owner), None).await?;
            wrong.push(format!(
                "view shows status {}, payment {}, reservation {} (expected {outcome}, {payment}, {reservation})",
                seen.body["status"], seen.body["payment"]["status"], seen.body["reservation"]["status"]
            ));
        }

        let taken = self.places_taken(stack, body).await?;
        if taken != i64::from(!ended) {
            wrong.push(format!("{taken} place(s) taken on its date"));
        }

        let ledger = stack.sandbox.entries();
        let entries: Vec<_> = ledger.iter().filter(|e| e.reference == id).collect();
        let money_right = match entries.as_slice() {
            [e] if ended => e.status == LedgerStatus::Refunded && e.refunds == 1,
            [e] => e.status == LedgerStatus::Captured && e.refunds == 0,
            _ => false,
        };
        if !money_right {
            let seen: Vec<_> = entries.iter().map(|e| (e.status, e.refunds)).collect();
            wrong.push(format!("payment ledger {seen:?}"));
        }

        let sms = stack.sms_sent().await?;
        let texts: Vec<&str> = sms
            .iter()
            .filter(|s| s.body.contains(short_ref(id)))
            .map(|s| s.body.as_str())
            .collect();
        let count = |needle: &str| texts.iter().filter(|t| t.contains(needle)).count();
        let expected = [
            ("booked", "is booked", 1),
            ("confirmed", "is confirmed", usize::from(confirmed)),
            ("rejected", "could not accept", usize::from(rejected)),
            ("cancelled", "is cancelled", usize::from(cancelled)),
            ("refunded", "has been refunded", usize::from(ended)),
        ];
        let total: usize = expected.iter().map(|(_, _, n)| n).sum();
        for (what, needle, n) in expected {
            if count(needle) != n {
                wrong.push(format!("{} '{what}' SMS (expected {n})", count(needle)));
            }
        }
        if texts.len() != total {
            wrong.push(format!("{} SMS in all (expected {total})", texts.len()));
        }
        Ok(wrong)
    }

    fn ending(&self) -> &'static Step {
        &CANCEL
    }

    async fn open_direct(&self, p: &Platform, owner: &str, day: i64, variant: usize, key: &str, request_id: &str) -> Result<u16, String> {
        let package = variant_package(variant).as_str();
        let input = BookInput {
            date: Some(date_of(day)),
            package: Some(package.to_owned()),
            name: Some(CONTENDER.name.to_owned()),
            phone: Some(CONTENDER.phone.to_owned()),
            card_token: Some("tok_ok".to_owned()),
            locale: Some(CONTENDER.locale.to_owned()),
        };
        let key = IdempotencyKey::parse(key, package.as_bytes()).map_err(|e| e.detail)?;
        let actor = Actor { sub: owner.to_owned() };
        usecase::book(p, &actor, input, Some(key), request_id)
            .await
            .map(|a| a.status)
            .map_err(|e| e.to_string())
    }

    async fn end_direct(&self, p: &Platform, owner: &str, id: &str, request_id: &str) -> anyhow::Result<()> {
        usecase::cancel(p, &Actor { sub: owner.to_owned() }, id, request_id).await?;
        Ok(())
    }
}

/// The booking's final state, as the decisions that won imply.
fn implied_outcome(confirmed: bool, rejected: bool, cancelled: bool) -> Result<&'static str, String> {
    match (confirmed, rejected, cancelled) {
        (true, true, _) => Err("both a confirm and a reject succeeded".into()),
        (_, true, true) => Err("both a reject and a cancel succeeded".into()),
        (false, false, false) => Err("no decision succeeded".into()),
        (_, true, false) => Ok("rejected"),
        (_, false, true) => Ok("cancelled"),
        (true, false, false) => Ok("confirmed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_serial_order_of_decisions_implies_one_outcome() {
        assert_eq!(implied_outcome(true, false, false), Ok("confirmed"));
        assert_eq!(implied_outcome(true, false, true), Ok("cancelled"));
        assert_eq!(implied_outcome(false, false, true), Ok("cancelled"));
        assert_eq!(implied_outcome(false, true, false), Ok("rejected"));
        assert!(implied_outcome(true, true, false).is_err());
        assert!(implied_outcome(false, true, true).is_err());
        assert!(implied_outcome(false, false, false).is_err());
        assert_eq!(CHECKUP.implied_outcome(&[true, false, true]), Ok("cancelled"));
    }

    #[test]
    fn outcomes_are_the_booking_statuses() {
        for j in JOURNEYS {
            if let Some(outcome) = j.outcome() {
                assert!(BookingStatus::parse(outcome).is_ok(), "{}: {outcome}", j.name);
            }
        }
    }

    #[test]
    fn the_opening_body_is_a_valid_booking_request_in_its_slot() {
        let body = CHECKUP.open_body(30, &CONTENDER, "tok_ok");
        let input: BookInput = serde_json::from_value(body.clone()).expect("a booking request");
        assert_eq!(input.package.as_deref(), Some("basic"));
        let (date, package) = slot_of(&CHECKUP.other_body(&body)).expect("a slot");
        assert_eq!((date.to_string(), package), (date_of(30), Package::Premium));
    }
}
