//! The vaccine slice's fixture (`shared/src/flows/vaccine/`): what every area of the harness
//! needs to know about vaccine reservation and cannot read from the catalog.
//!
//! - A case is a reservation: `POST /vaccine/reservations` with a slot, the person's name,
//!   phone and locale. Vaccination takes no payment: the card of a journey is not sent.
//! - The slots are the fixture's own: per `day`, one of pfizer (variant 0) and one of
//!   moderna (variant 1) at seoul-central, [`SHARDS`] shard counters, [`SeedDoses`] doses,
//!   and a full one (novavax, one dose that a filler citizen takes), each with an id derived
//!   from the day and the variant, so that an opening body is known before its slot exists.
//!   [`Fixture::prepare`] registers the slot an opening body names, as an administrator's
//!   registration does (idempotent), before every opening.
//! - Journeys: reserve then cancel (the dose goes back through `vaccine-dose-return`),
//!   fulfil, no-show, cancel twice, left booked, left booked while an administrator adds
//!   doses to its slot and closes it, left booked while an administrator registers another
//!   slot (its notice fan-out) and the citizen subscribes to another hospital's notices, and
//!   a waiting-list entry on a full slot that is held the dose the filler gives back
//!   ([`Fixture::after_opening`]) and accepts it. A reservation is ready for its steps once
//!   its view shows it; a waiting-list entry once its view shows the held dose.
//! - The authorization matrix's call of each of the slice's eighteen routes. The routes
//!   whose `{id}` names a slot or a subscription, not a reservation, can only be called with
//!   an id that names nothing: every allowed caller gets `404` (authorization is decided
//!   before the lookup).
//! - Its invariants: one terminal state per reservation, the expected one, with at most one
//!   of each of its events; per shard, the doses taken equal the slot's active
//!   reservations (booked, fulfilled, no-show) holding a dose of it plus the doses it holds
//!   for the first in line, within the shard's share; a slot's remaining doses (as the API
//!   computes them) equal its quantity less those; no active reservation without a dose; the
//!   waiting list and the held offers agree with the entries; one holder count per citizen
//!   and vaccine, equal to their booked reservations (at most one); one dose given back per
//!   cancellation of a reservation that held one; each view agrees with its aggregate.
//!   Vaccination owes no money: no dues.
//! - The `concurrency` area's contest: fulfil and no-show (administrators) and cancel (the
//!   citizen) on one reservation; each excludes the other two.
//! - The use cases themselves (`commands::reserve`, `commands::cancel`) for the openings
//!   and endings the areas make without HTTP.
//!
//! Vaccination takes no payment ([`Fixture::pays`] is false): the areas skip the money
//! checks, and the staged held-charge race, for this slice. Under a rush the reservation
//! sheds load (`503` + `Retry-After`); the `concurrency` area's contenders send again after
//! the delay, as a well-behaved client does, and count the sheds.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::NaiveDate;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::command::{self, Accepted, Decided, IdempotencyKey, Work};
use clinicflow::app::{Platform, faults as platform, projector};
use clinicflow::config::{Config, SliceConfig};
use clinicflow::domain::{Actor, Won, short_ref};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::vaccine::commands::{self as usecase, MAX_QUANTITY, ReserveInput};
use clinicflow::flows::vaccine::queries;
use clinicflow::flows::vaccine::reservation::{self, Reservation, ReservationStatus, holder_key};
use clinicflow::flows::vaccine::slot::{self, NewSlot, Slot, shard_key};
use clinicflow::flows::vaccine::view::{self, ReservationView, SlotView};
use clinicflow::flows::vaccine::{SLICE, VACCINE_ADMIN, faults};
use clinicflow::topology::{Method, Route, SMS_NOTIFIER};
use clinicflow_tests::{LocalOptions, LocalStack};
use serde_json::{Value, json};

use super::{Body, Contest, Due, Fixture, Journey, Opened, Opening, Opens, Personal, RouteCall, Step, Who};
use crate::areas::api::{Api, CONTENDER, Person, SOMEONE, wait_for};
use crate::invariants::{Case, aggregates};

/// The vaccine slice's fixture.
#[derive(Debug, Clone, Copy)]
pub struct Vaccine;

/// The one instance, listed in [`super::all`].
pub static VACCINE: Vaccine = Vaccine;

const OPENING: &str = "/vaccine/reservations";

/// The hospital of the fixture's slots.
const HOSPITAL: &str = "seoul-central";
/// The vaccines of the two variants of the opening request (a slot has one vaccine, so the
/// other variant is another slot of the same day).
const VACCINES: [&str; 2] = ["pfizer", "moderna"];
/// The fixture's third slot of a day: one dose of this vaccine, taken by [`FILLER`] when it
/// is prepared, so that a citizen can only join its waiting list.
const FULL: usize = 2;
const FULL_VACCINE: &str = "novavax";
/// The citizen who takes the one dose of a full slot, and gives it back once someone waits.
const FILLER: &str = "vaccine-fixture-filler";
/// The shard counters of each of the fixture's slots: a rush on one slot spreads over them.
pub const SHARDS: u8 = 4;
/// The doses of each of the fixture's slots, unless [`Fixture::set_capacity`] says otherwise.
pub const DEFAULT_DOSES: u32 = 20;

/// The id prefix of the fixture's slots: a valid ULID prefix (Crockford's alphabet), then the
/// variant (one digit) and the day (14 digits), 26 characters in all.
const SLOT_PREFIX: &str = "01JVACCSEED";
/// The causation of the fixture's slot registrations.
const SEED_REQUEST: &str = "reliability-vaccine-slot";
/// A well-formed id of no slot.
const NO_SLOT: &str = "01JD3M7Q0000000000000000AB";

/// What the SMS of a reservation say when it is made (`en`, `ko`), and when it is cancelled.
const RESERVED_TEXTS: &[&str] = &["is reserved", "예약되었습니다"];
const CANCELLED_TEXTS: &[&str] = &["is cancelled", "취소되었습니다"];

/// The event sources of reservations and slots.
const RESERVATIONS_SOURCE: &str = "clinicflow.vaccination";
const SLOTS_SOURCE: &str = "clinicflow.vaccine";

/// The doses the fixture registers each of its slots with. A slot's doses are an
/// administrator's choice, not configuration, so [`Fixture::set_capacity`] keeps them in the
/// stack's configuration under this harness-only type, where [`Fixture::prepare`] reads them;
/// no function of the platform reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedDoses(pub u32);

impl Default for SeedDoses {
    fn default() -> Self {
        Self(DEFAULT_DOSES)
    }
}

impl SliceConfig for SeedDoses {}

fn date_of(day: i64) -> String {
    clinicflow_tests::future_date(day)
}

/// The id of the fixture's slot of `day` and variant `variant`.
pub fn slot_id(day: i64, variant: usize) -> String {
    format!("{SLOT_PREFIX}{}{:014}", variant.min(FULL), day.unsigned_abs())
}

/// The (day, variant) of a fixture slot id, if it is one.
fn seed_of(slot_id: &str) -> Option<(i64, usize)> {
    let rest = slot_id.strip_prefix(SLOT_PREFIX)?;
    if rest.len() != 15 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let variant = usize::from(rest.as_bytes().first().copied()? - b'0');
    let day = rest.get(1..)?.parse().ok()?;
    (variant <= FULL).then_some((day, variant))
}

/// The vaccine of the fixture's slots of variant `variant`.
fn vaccine_of(variant: usize) -> &'static str {
    VACCINES.get(variant).copied().unwrap_or(FULL_VACCINE)
}

/// The slot an opening body names.
fn slot_of(body: &Value) -> anyhow::Result<String> {
    body["slot_id"]
        .as_str()
        .map(str::to_owned)
        .context("a reservation request names a slot")
}

fn variant_of(vaccine: &str) -> &'static str {
    if vaccine == VACCINES[1] { VACCINES[1] } else { VACCINES[0] }
}

/// Do reservations in this status hold a dose of their slot?
fn holds_dose(status: ReservationStatus) -> bool {
    matches!(
        status,
        ReservationStatus::Booked | ReservationStatus::Fulfilled | ReservationStatus::Noshow
    )
}

/// A slot an administrator registers in a journey: another hospital and vaccine than the
/// fixture's slots and the subscriptions' (so that no notice fans out to a subscriber: the
/// shared SMS invariant does not know the fan-out's per-recipient keys yet).
fn other_slot() -> Value {
    json!({"date": date_of(90), "hospital": "busan-city", "vaccine": "moderna", "quantity": 5, "shards": 2})
}

/// A subscription to notices of slots the fixture never registers.
fn subscription() -> Value {
    json!({"hospital": "busan-city", "vaccine": "novavax", "phone": SOMEONE.phone, "locale": SOMEONE.locale})
}

fn waitlist() -> Value {
    json!({"name": SOMEONE.name, "phone": SOMEONE.phone, "locale": SOMEONE.locale})
}

fn doses() -> Value {
    json!({"add": 5})
}

/// The citizen cancels.
const CANCEL: Step = Step {
    name: "cancel",
    who: Who::Owner,
    method: Method::Post,
    path: "/vaccine/reservations/{id}/cancel",
    body: None,
    success: 202,
};

/// The hospital (an administrator) marks the dose given.
const FULFIL: Step = Step {
    name: "fulfil",
    who: Who::Staff(VACCINE_ADMIN),
    method: Method::Post,
    path: "/vaccine/reservations/{id}/fulfil",
    body: None,
    success: 200,
};

/// The hospital (an administrator) marks a no-show.
const NOSHOW: Step = Step {
    name: "no-show",
    who: Who::Staff(VACCINE_ADMIN),
    method: Method::Post,
    path: "/vaccine/reservations/{id}/noshow",
    body: None,
    success: 200,
};

/// An administrator adds doses to the case's slot.
const ADD_DOSES: Step = Step {
    name: "doses added",
    who: Who::Staff(VACCINE_ADMIN),
    method: Method::Post,
    path: "/vaccine/slots/{slot}/doses",
    body: Some(doses),
    success: 200,
};

/// An administrator closes the case's slot: the reservation stays.
const CLOSE_SLOT: Step = Step {
    name: "slot closed",
    who: Who::Staff(VACCINE_ADMIN),
    method: Method::Post,
    path: "/vaccine/slots/{slot}/close",
    body: None,
    success: 200,
};

/// The citizen takes the dose held for their waiting-list entry.
const ACCEPT: Step = Step {
    name: "accept the held dose",
    who: Who::Owner,
    method: Method::Post,
    path: "/vaccine/offers/{id}/accept",
    body: None,
    success: 201,
};

/// The opening of a waiting-list journey: the citizen joins the waiting list of the day's
/// full slot, with the contact of the fixture's opening body.
fn join_full_slot(body: &Value) -> (Value, Value) {
    let mut on = body.clone();
    if let Some((day, _)) = body["slot_id"].as_str().and_then(seed_of) {
        on["slot_id"] = json!(slot_id(day, FULL));
    }
    let request = json!({"name": body["name"], "phone": body["phone"], "locale": body["locale"]});
    (on, request)
}

/// An administrator registers another slot (not the case's).
const OPEN_SLOT: Step = Step {
    name: "another slot opens",
    who: Who::Staff(VACCINE_ADMIN),
    method: Method::Post,
    path: "/vaccine/slots",
    body: Some(other_slot),
    success: 201,
};

/// The citizen subscribes to another hospital's notices.
const SUBSCRIBE: Step = Step {
    name: "subscribe",
    who: Who::Owner,
    method: Method::Post,
    path: "/vaccine/subscriptions",
    body: Some(subscription),
    success: 201,
};

fn after_commit(point: &str, function: &str) -> bool {
    point == platform::after_commit(function)
}

fn consumed(point: &str, consumer: &str) -> bool {
    platform::consumer_points(consumer).iter().any(|p| p == point)
}

/// The points every reservation passes through: its commit, its SMS and its view.
fn reserved(point: &str) -> bool {
    [
        platform::AFTER_COMMIT,
        platform::SMS_BEFORE_SEND,
        platform::SMS_AFTER_SEND,
        platform::PROJECTOR,
        platform::PROJECTOR_AFTER_WRITE,
    ]
    .contains(&point)
        || after_commit(point, faults::RESERVE)
        || consumed(point, SMS_NOTIFIER)
}

/// The points of a reservation that is cancelled: besides, the cancel's commit and the
/// dose given back.
fn cancelled_points(point: &str) -> bool {
    reserved(point) || after_commit(point, faults::CANCEL) || consumed(point, faults::DOSE_RETURN)
}

fn fulfilled_points(point: &str) -> bool {
    after_commit(point, faults::FULFIL)
}

fn noshow_points(point: &str) -> bool {
    after_commit(point, faults::NOSHOW)
}

/// An administrator managing the case's slot.
fn slot_managed_points(point: &str) -> bool {
    after_commit(point, faults::SLOT_DOSES) || after_commit(point, faults::SLOT_CLOSE)
}

/// A waiting-list entry, the dose given back to it, and its acceptance.
fn waitlist_points(point: &str) -> bool {
    after_commit(point, faults::WAITLIST) || after_commit(point, faults::ACCEPT)
}

/// A slot's registration and its notice fan-out, and a subscription.
fn slot_and_subscription_points(point: &str) -> bool {
    after_commit(point, faults::SLOT_OPEN) || consumed(point, faults::SLOT_NOTICE) || after_commit(point, faults::SUBSCRIBE)
}

/// Covered by the journeys above.
fn nowhere(_: &str) -> bool {
    false
}

/// Vaccination takes no payment; the opening body carries no card.
const NO_CARD: &str = "tok_ok";

const JOURNEYS: &[Journey] = &[
    Journey {
        name: "reserve→cancel",
        card: NO_CARD,
        opens: Opens::Case("cancelled"),
        opening: None,
        steps: &[CANCEL],
        armed_at: cancelled_points,
    },
    Journey {
        name: "reserve→fulfil",
        card: NO_CARD,
        opens: Opens::Case("fulfilled"),
        opening: None,
        steps: &[FULFIL],
        armed_at: fulfilled_points,
    },
    Journey {
        name: "reserve→no-show",
        card: NO_CARD,
        opens: Opens::Case("noshow"),
        opening: None,
        steps: &[NOSHOW],
        armed_at: noshow_points,
    },
    Journey {
        name: "reserve→cancel→cancel again",
        card: NO_CARD,
        opens: Opens::Case("cancelled"),
        opening: None,
        steps: &[CANCEL, CANCEL],
        armed_at: nowhere,
    },
    Journey {
        name: "reserve, another slot opens, subscribe to another hospital's notices",
        card: NO_CARD,
        opens: Opens::Case("booked"),
        opening: None,
        steps: &[OPEN_SLOT, SUBSCRIBE],
        armed_at: slot_and_subscription_points,
    },
    Journey {
        name: "reserve, doses added, slot closed",
        card: NO_CARD,
        opens: Opens::Case("booked"),
        opening: None,
        steps: &[ADD_DOSES, CLOSE_SLOT],
        armed_at: slot_managed_points,
    },
    Journey {
        name: "wait on a full slot→a dose given back is held→accept",
        card: NO_CARD,
        opens: Opens::Case("booked"),
        opening: Some(Opening {
            path: "/vaccine/slots/{slot}/waitlist",
            bodies: join_full_slot,
        }),
        steps: &[ACCEPT],
        armed_at: waitlist_points,
    },
    Journey {
        name: "reserve, left booked",
        card: NO_CARD,
        opens: Opens::Case("booked"),
        opening: None,
        steps: &[],
        armed_at: nowhere,
    },
];

/// The opening body of variant `variant` in slot `day`.
fn body_for(day: i64, variant: usize, person: &Person<'_>) -> Value {
    json!({
        "slot_id": slot_id(day, variant),
        "name": person.name,
        "phone": person.phone,
        "locale": person.locale,
    })
}

impl Vaccine {
    /// Registers the fixture's slot that opening body `body` names, as an administrator
    /// would (`vaccine-slot-open`'s command, so its after-commit point and the notice
    /// fan-out are reached), with [`SeedDoses`] doses over [`SHARDS`] shards; nothing if it
    /// is registered already, or if `body` names no slot of the fixture (an invalid opening).
    /// A failure after the registration committed (an armed point) counts as registered: the
    /// sweeper publishes what was committed.
    ///
    /// A full slot ([`FULL`]) gets one dose, which [`FILLER`] takes at once.
    async fn register(&self, p: &Platform, body: &Value) -> anyhow::Result<()> {
        let Some((day, variant)) = body["slot_id"].as_str().and_then(seed_of) else {
            return Ok(());
        };
        let id = slot_id(day, variant);
        let date = NaiveDate::parse_from_str(&date_of(day), "%Y-%m-%d").context("the fixture's slot date")?;
        let full = variant == FULL;
        let new = NewSlot {
            date,
            hospital: HOSPITAL.to_owned(),
            vaccine: vaccine_of(variant).to_owned(),
            quantity: if full { 1 } else { p.config.slice::<SeedDoses>().0 },
            shards: if full { 1 } else { SHARDS },
        };
        let mut last = None;
        for _ in 0..5 {
            let registered = command::run(p, faults::SLOT_OPEN, None, || async {
                let loaded = command::load::<Slot>(p, &id).await?;
                let mut work = Work::for_request(p, &id, SEED_REQUEST);
                if loaded.state.is_none() {
                    work.decide(loaded, slot::Command::Open(new.clone()))?;
                }
                Ok(Decided {
                    work,
                    accepted: Accepted {
                        status: 201,
                        body: Value::Null,
                        location: None,
                    },
                })
            })
            .await;
            let exists = registered.is_ok() || command::load::<Slot>(p, &id).await.is_ok_and(|l| l.state.is_some());
            if exists {
                return if full { self.fill(p, &id).await.map(|_| ()) } else { Ok(()) };
            }
            last = registered.err();
        }
        Err(anyhow::anyhow!(
            "the fixture's slot {id} could not be registered: {}",
            last.map_or_else(|| "no attempt".to_owned(), |e| e.to_string())
        ))
    }
}

impl Vaccine {
    /// [`FILLER`] takes the one dose of full slot `slot_id` (idempotently: the same key
    /// answers the same reservation); answers its id.
    async fn fill(&self, p: &Platform, slot_id: &str) -> anyhow::Result<String> {
        let input = ReserveInput {
            slot_id: Some(slot_id.to_owned()),
            name: Some(CONTENDER.name.to_owned()),
            phone: Some(CONTENDER.phone.to_owned()),
            locale: Some(CONTENDER.locale.to_owned()),
        };
        let actor = Actor {
            sub: format!("{FILLER}-{slot_id}"),
        };
        let mut last = String::new();
        for _ in 0..5 {
            let key = IdempotencyKey::parse(&format!("fill-{slot_id}"), slot_id.as_bytes()).map_err(|e| anyhow::anyhow!(e.detail))?;
            match usecase::reserve(p, &actor, input.clone(), Some(key), SEED_REQUEST).await {
                Ok(a) => {
                    return a.body["id"].as_str().map(str::to_owned).context("a reservation answers its id");
                }
                Err(e) => last = e.to_string(),
            }
        }
        anyhow::bail!("the filler could not take full slot {slot_id}'s dose: {last}")
    }
}

#[async_trait]
impl Fixture for Vaccine {
    async fn prepare(&self, p: &Platform, body: &Value) -> anyhow::Result<()> {
        self.register(p, body).await
    }

    /// An entry on a full slot's waiting list: the filler gives its dose back (the
    /// cancellation's dose return holds it for the entry, first in line).
    async fn after_opening(&self, p: &Platform, _journey: &Journey, _id: &str, body: &Value) -> anyhow::Result<()> {
        let Some((day, FULL)) = body["slot_id"].as_str().and_then(seed_of) else {
            return Ok(());
        };
        let slot = slot_id(day, FULL);
        let filler = self.fill(p, &slot).await?;
        let actor = Actor {
            sub: format!("{FILLER}-{slot}"),
        };
        let mut last = String::new();
        for _ in 0..5 {
            match usecase::cancel(p, &actor, &filler, SEED_REQUEST).await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
        anyhow::bail!("the filler of {slot} could not cancel: {last}")
    }

    /// `{slot}` is the slot the case is opened on.
    fn resolve(&self, path: &str, id: &str, body: &Value) -> String {
        path.replace("{id}", id)
            .replace("{slot}", body["slot_id"].as_str().unwrap_or(NO_SLOT))
    }

    fn slice(&self) -> &'static str {
        SLICE.name
    }

    fn context(&self) -> &'static str {
        reservation::CONTEXT
    }

    fn opening(&self) -> &'static str {
        OPENING
    }

    /// The card is not sent: vaccination takes no payment (and the request refuses unknown
    /// fields).
    fn open_body(&self, day: i64, person: &Person<'_>, _card: &str) -> Value {
        body_for(day, 0, person)
    }

    /// The other vaccine's slot of the same day (there is no other price).
    fn other_body(&self, body: &Value) -> Value {
        let mut other = body.clone();
        if let Some((day, _)) = body["slot_id"].as_str().and_then(seed_of) {
            other["slot_id"] = json!(slot_id(day, 1));
        }
        other
    }

    fn variants(&self) -> [&'static str; 2] {
        VACCINES
    }

    fn personal(&self) -> Personal {
        Personal {
            name: "name",
            phone: "phone",
            card: None,
        }
    }

    fn invalid_openings(&self, valid: &Value) -> Vec<(&'static str, Value)> {
        let with = |field: &str, value: Value| {
            let mut b = valid.clone();
            b[field] = value;
            b
        };
        let mut no_slot = valid.clone();
        if let Some(fields) = no_slot.as_object_mut() {
            fields.remove("slot_id");
        }
        vec![
            ("no slot", no_slot),
            ("a slot id that is no id", with("slot_id", json!("slot-1"))),
            ("a slot that was never registered", with("slot_id", json!(NO_SLOT))),
            ("an unknown locale", with("locale", json!("fr"))),
        ]
    }

    fn view_key(&self, id: &str) -> String {
        projector::view_id(view::RESERVATIONS, id)
    }

    /// A reservation is ready once its view shows it (the read routes answer from the
    /// view); a waiting-list entry once its view shows the dose held for it.
    async fn ready(&self, stack: &LocalStack, id: &str) -> bool {
        stack
            .platform
            .views
            .get(&self.view_key(id))
            .await
            .ok()
            .flatten()
            .is_some_and(|v| match v.body["status"].as_str() {
                // An entry's step is to accept the dose held for it.
                Some("waitlist") => v.body["offer_expires_at"].is_string(),
                Some(_) => true,
                None => false,
            })
    }

    fn journeys(&self) -> &'static [Journey] {
        JOURNEYS
    }

    fn route(&self, route: &Route) -> Option<RouteCall> {
        let call = RouteCall::new;
        match (route.method, route.path) {
            // Slots: `{id}` names a slot, never a case, so these are called with an id that
            // names nothing: every allowed caller gets 404, the others 401/403.
            (Method::Post, "/vaccine/slots") => Some(call(false, true, 201, Body::Json(other_slot))),
            (Method::Get, "/vaccine/slots") => Some(RouteCall {
                filters: &["date", "hospital", "vaccine", "status"],
                ..call(false, false, 200, Body::Empty)
            }),
            (Method::Get, "/vaccine/slots/{id}") => Some(call(false, false, 404, Body::Empty)),
            (Method::Post, "/vaccine/slots/{id}/doses") => Some(call(false, true, 404, Body::Json(doses))),
            (Method::Post, "/vaccine/slots/{id}/close") => Some(call(false, true, 404, Body::Empty)),
            (Method::Get, "/vaccine/slots/{id}/reservations") => Some(RouteCall {
                filters: &["status"],
                ..call(false, false, 404, Body::Empty)
            }),
            (Method::Post, "/vaccine/slots/{id}/waitlist") => Some(call(false, true, 404, Body::Json(waitlist))),
            // Subscriptions: `{id}` names a subscription, never a case.
            (Method::Post, "/vaccine/subscriptions") => Some(call(false, true, 201, Body::Json(subscription))),
            (Method::Get, "/vaccine/subscriptions") => Some(call(false, false, 200, Body::Empty)),
            (Method::Delete, "/vaccine/subscriptions/{id}") => Some(call(false, true, 404, Body::Empty)),
            // Reservations: the cases.
            (Method::Post, "/vaccine/reservations") => Some(call(false, true, 201, Body::Opening)),
            (Method::Get, "/vaccine/reservations") => Some(RouteCall {
                filters: &["status"],
                ..call(false, false, 200, Body::Empty)
            }),
            (Method::Get, "/vaccine/reservations/{id}") => Some(call(true, false, 200, Body::Empty)),
            (Method::Post, "/vaccine/reservations/{id}/cancel") => Some(call(true, true, 202, Body::Empty)),
            (Method::Post, "/vaccine/reservations/{id}/fulfil") => Some(call(true, true, 200, Body::Empty)),
            (Method::Post, "/vaccine/reservations/{id}/noshow") => Some(call(true, true, 200, Body::Empty)),
            (Method::Get, "/vaccine/offers") => Some(call(false, false, 200, Body::Empty)),
            // Accepting on a booked reservation finds it already there: 201, nothing changes.
            (Method::Post, "/vaccine/offers/{id}/accept") => Some(call(true, true, 201, Body::Empty)),
            _ => None,
        }
    }

    async fn check(&self, stack: &LocalStack, cases: &[&Case], events: &[EventEnvelope]) -> anyhow::Result<Vec<String>> {
        let db = &stack.embedded().context("the invariants are read from the SQLite backend")?.db;
        let p: &Platform = &stack.platform;
        let mut violations = Vec::new();
        let mut broken = |invariant: &str, what: String| violations.push(format!("{invariant}: {what}"));
        let reservations: BTreeMap<String, Reservation> = aggregates(db, reservation::CONTEXT).await?;
        let slots: BTreeMap<String, Slot> = aggregates(db, slot::CONTEXT).await?;
        let mut by_case: HashMap<&str, Vec<&EventEnvelope>> = HashMap::new();
        for e in events {
            by_case.entry(e.correlation_id.as_str()).or_default().push(e);
        }

        // Each case reached exactly one terminal state, the expected one.
        for case in cases {
            let Some(id) = &case.id else {
                if let Some((id, _)) = reservations.iter().find(|(_, r)| r.patient_sub == case.owner) {
                    broken("terminal state", format!("reservation {id} exists, none was expected"));
                }
                continue;
            };
            let Some(r) = reservations.get(id) else {
                broken("terminal state", format!("reservation {id} does not exist"));
                continue;
            };
            if Some(r.status.as_str()) != case.outcome {
                broken(
                    "terminal state",
                    format!("reservation {id} is {}, expected {:?}", r.status.as_str(), case.outcome),
                );
            }
            let of_type = |t: &str| {
                by_case.get(id.as_str()).map_or(0, |es| {
                    es.iter()
                        .filter(|e| e.source == RESERVATIONS_SOURCE && e.aggregate_id == *id && e.event_type == t)
                        .count()
                })
            };
            for t in [
                "ReservationBooked",
                "ReservationCancelled",
                "ReservationFulfilled",
                "ReservationNoShow",
            ] {
                if of_type(t) > 1 {
                    broken("terminal state", format!("reservation {id} has {} {t} events", of_type(t)));
                }
            }
            if of_type("ReservationCancelled") + of_type("ReservationFulfilled") + of_type("ReservationNoShow") > 1 {
                broken("terminal state", format!("reservation {id} ended twice"));
            }
        }

        // Doses: per shard, those taken are those the slot's active reservations hold plus
        // those it holds for the first in line, within the shard's share; the remaining
        // doses the API shows are the quantity less those.
        for (slot_id, s) in &slots {
            let mut active_in_slot = 0i64;
            for shard in 0..s.shards.max(1) {
                let taken = p.store.counter(&shard_key(slot_id, shard)).await?;
                let limit = s.shard_limit(shard);
                let active = reservations
                    .values()
                    .filter(|r| r.slot_id == *slot_id && holds_dose(r.status) && r.shard == Some(shard))
                    .count() as i64;
                let held = s.held.iter().filter(|h| h.shard == shard).count() as i64;
                if taken != active + held {
                    broken(
                        "doses",
                        format!("slot {slot_id} shard {shard}: {taken} taken for {active} active reservation(s), {held} held offer(s)"),
                    );
                }
                if !(0..=limit).contains(&taken) {
                    broken("doses", format!("slot {slot_id} shard {shard}: {taken} dose(s) taken of {limit}"));
                }
                active_in_slot += active;
            }
            let remaining = queries::remaining(p, s).await?;
            let expected = i64::from(s.quantity) - active_in_slot - s.held.len() as i64;
            if remaining != expected {
                broken(
                    "remaining doses",
                    format!(
                        "slot {slot_id} shows {remaining} left; {} less {active_in_slot} active and {} held is {expected}",
                        s.quantity,
                        s.held.len()
                    ),
                );
            }
            // Whoever waits on it or is held a dose is a waiting entry of it.
            let entries = s.waiting.iter().map(|w| &w.entry_id).chain(s.held.iter().map(|h| &h.entry_id));
            for entry in entries {
                match reservations.get(entry) {
                    Some(r) if r.status == ReservationStatus::Waitlist && r.slot_id == *slot_id => {}
                    Some(r) => broken(
                        "waiting list",
                        format!(
                            "slot {slot_id} lists entry {entry}, which is {} on slot {}",
                            r.status.as_str(),
                            r.slot_id
                        ),
                    ),
                    None => broken("waiting list", format!("slot {slot_id} lists entry {entry}, which does not exist")),
                }
            }
        }

        // No reservation without a dose; the offers are the slot's held doses.
        for (id, r) in &reservations {
            let Some(s) = slots.get(&r.slot_id) else {
                broken(
                    "no reservation without a dose",
                    format!("reservation {id} names slot {}, which does not exist", r.slot_id),
                );
                continue;
            };
            if holds_dose(r.status) {
                if r.shard.is_none_or(|shard| shard >= s.shards.max(1)) {
                    broken(
                        "no reservation without a dose",
                        format!(
                            "reservation {id} is {} without a dose of its slot (shard {:?})",
                            r.status.as_str(),
                            r.shard
                        ),
                    );
                }
                continue;
            }
            let held = s.held.iter().find(|h| h.entry_id == *id);
            let waits = s.waiting.iter().any(|w| w.entry_id == *id);
            match (r.status, &r.offer, held) {
                (ReservationStatus::Waitlist, Some(o), Some(h)) if o.shard == h.shard && o.expires_at == h.expires_at && !waits => {}
                (ReservationStatus::Waitlist, None, None) if waits => {}
                (ReservationStatus::Waitlist, offer, held) => broken(
                    "waiting list",
                    format!(
                        "entry {id}: offered {:?}, the slot holds {:?} for it, on its list: {waits}",
                        offer.as_ref().map(|o| o.shard),
                        held.map(|h| h.shard)
                    ),
                ),
                (_, _, held) if held.is_some() || waits => {
                    broken(
                        "waiting list",
                        format!("{} entry {id} is still on slot {}'s list", r.status.as_str(), r.slot_id),
                    );
                }
                _ => {}
            }
        }

        // One active reservation per citizen and vaccine: the holder counter is the booked count.
        let mut holders: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for r in reservations.values() {
            *holders.entry((r.patient_sub.as_str(), r.vaccine.as_str())).or_default() += i64::from(r.status == ReservationStatus::Booked);
        }
        for ((sub, vaccine), booked) in &holders {
            let counted = p.store.counter(&holder_key(sub, vaccine)).await?;
            if counted != *booked || *booked > 1 {
                broken(
                    "one active reservation per vaccine",
                    format!("a citizen holds {booked} booked {vaccine} reservation(s); their holder counter is {counted}"),
                );
            }
        }

        // A cancellation gives back the dose it held, once (to the first in line or to the pool).
        let mut given_back: HashMap<&str, usize> = HashMap::new();
        for e in events
            .iter()
            .filter(|e| e.source == SLOTS_SOURCE && matches!(e.event_type.as_str(), "SlotDoseReturned" | "SlotDoseHeld"))
        {
            *given_back.entry(e.causation_id.as_str()).or_default() += 1;
        }
        for e in events
            .iter()
            .filter(|e| e.source == RESERVATIONS_SOURCE && e.event_type == "ReservationCancelled")
        {
            let Ok(reservation::Event::ReservationCancelled { shard, .. }) = e.decode::<reservation::Event>() else {
                broken(
                    "dose returned once",
                    format!("cancellation {} of reservation {} is unreadable", e.id, e.aggregate_id),
                );
                continue;
            };
            let expected = usize::from(shard.is_some());
            let n = given_back.get(e.id.as_str()).copied().unwrap_or(0);
            if n != expected {
                broken(
                    "dose returned once",
                    format!(
                        "cancellation {} of reservation {} gave {n} dose(s) back, expected {expected}",
                        e.id, e.aggregate_id
                    ),
                );
            }
        }

        // Each view agrees with its aggregate.
        for (id, r) in &reservations {
            let stored = p.views.get(&self.view_key(id)).await?;
            let Some(v) = stored.and_then(|v| serde_json::from_value::<ReservationView>(v.body).ok()) else {
                broken(
                    "view equals aggregates",
                    format!("view of reservation {id} is missing or unreadable"),
                );
                continue;
            };
            let offer = r.offer.as_ref().map(|o| o.expires_at);
            if v.status != Some(r.status) || v.slot_id.as_deref() != Some(r.slot_id.as_str()) || v.offer_expires_at != offer {
                broken(
                    "view equals aggregates",
                    format!(
                        "view of reservation {id} says {:?} on {:?} offered until {:?}, the aggregate {} on {} until {offer:?}",
                        v.status.map(ReservationStatus::as_str),
                        v.slot_id,
                        v.offer_expires_at,
                        r.status.as_str(),
                        r.slot_id
                    ),
                );
            }
        }
        for (id, s) in &slots {
            let stored = p.views.get(&projector::view_id(view::SLOTS, id)).await?;
            let Some(v) = stored.and_then(|v| serde_json::from_value::<SlotView>(v.body).ok()) else {
                broken("view equals aggregates", format!("view of slot {id} is missing or unreadable"));
                continue;
            };
            if v.quantity != s.quantity
                || v.shards != s.shards
                || v.status != Some(s.status)
                || v.waiting as usize != s.waiting.len()
                || v.held as usize != s.held.len()
            {
                broken(
                    "view equals aggregates",
                    format!(
                        "view of slot {id}: {} doses, {} shards, {:?}, {} waiting, {} held; the aggregate {}, {}, {}, {}, {}",
                        v.quantity,
                        v.shards,
                        v.status.map(slot::SlotStatus::as_str),
                        v.waiting,
                        v.held,
                        s.quantity,
                        s.shards,
                        s.status.as_str(),
                        s.waiting.len(),
                        s.held.len()
                    ),
                );
            }
        }
        Ok(violations)
    }

    /// Vaccination owes no money.
    async fn dues(&self, _db: &Embedded) -> anyhow::Result<Vec<Due>> {
        Ok(Vec::new())
    }

    /// Every shard counter of every slot, and every citizen's holder counter of a vaccine
    /// they reserved or waited for.
    async fn counters(&self, stack: &LocalStack) -> anyhow::Result<Vec<(String, i64)>> {
        let db = &stack.embedded().context("on SQLite")?.db;
        let slots: BTreeMap<String, Slot> = aggregates(db, slot::CONTEXT).await?;
        let reservations: BTreeMap<String, Reservation> = aggregates(db, reservation::CONTEXT).await?;
        let mut keys = BTreeSet::new();
        for s in slots.values() {
            for shard in 0..s.shards.max(1) {
                keys.insert(shard_key(&s.id, shard));
            }
        }
        for r in reservations.values() {
            keys.insert(holder_key(&r.patient_sub, &r.vaccine));
        }
        let mut counters = Vec::new();
        for key in keys {
            let value = stack.platform.store.counter(&key).await?;
            counters.push((key, value));
        }
        Ok(counters)
    }

    /// The doses of the slots the fixture registers from now on ([`Fixture::prepare`]).
    fn set_capacity(&self, options: &mut LocalOptions, places: i64) {
        let doses = u32::try_from(places.clamp(1, i64::from(MAX_QUANTITY))).unwrap_or(DEFAULT_DOSES);
        options.config.slice_mut::<SeedDoses>().0 = doses;
    }

    /// Vaccination is free.
    fn price(&self, _config: &Config, _variant: usize) -> Won {
        Won(0)
    }

    /// The doses taken from the slot's shards (none if it is not registered).
    async fn places_taken(&self, stack: &LocalStack, body: &Value) -> anyhow::Result<i64> {
        let slot_id = slot_of(body)?;
        let Some(s) = command::load::<Slot>(&stack.platform, &slot_id).await?.state else {
            return Ok(0);
        };
        let mut taken = 0;
        for shard in 0..s.shards.max(1) {
            taken += stack.platform.store.counter(&shard_key(&slot_id, shard)).await?;
        }
        Ok(taken)
    }

    async fn cases_like(&self, db: &Embedded, body: &Value) -> anyhow::Result<HashSet<String>> {
        let slot_id = slot_of(body)?;
        let reservations: BTreeMap<String, Reservation> = aggregates(db, reservation::CONTEXT).await?;
        Ok(reservations.into_values().filter(|r| r.slot_id == slot_id).map(|r| r.id).collect())
    }

    /// Every stored reservation; none has a payment (`payment_id` is empty, the price 0).
    async fn opened(&self, db: &Embedded) -> anyhow::Result<Vec<Opened>> {
        let reservations: BTreeMap<String, Reservation> = aggregates(db, reservation::CONTEXT).await?;
        Ok(reservations
            .into_values()
            .map(|r| Opened {
                variant: variant_of(&r.vaccine),
                id: r.id,
                owner: r.patient_sub,
                payment_id: String::new(),
                price: Won(0),
            })
            .collect())
    }

    fn contest(&self) -> Contest {
        Contest {
            decisions: &[FULFIL, NOSHOW, CANCEL],
            // Each outcome contested by all three, and by each pair.
            mixes: &[&[0, 1, 2], &[0, 1, 2], &[0, 1], &[0, 2], &[1, 2]],
        }
    }

    fn implied_outcome(&self, won: &[bool]) -> Result<&'static str, String> {
        let [fulfilled, noshow, cancelled] = won else {
            return Err(format!("{} decisions, expected fulfil, no-show and cancel", won.len()));
        };
        implied_outcome(*fulfilled, *noshow, *cancelled)
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
        let cancelled = won.get(2).copied().unwrap_or(false);
        let holds = outcome != "cancelled";
        let mut wrong = Vec::new();

        let path = format!("/vaccine/reservations/{id}");
        let view = wait_for(api, owner, &path, Duration::from_secs(5), |v| v["status"] == outcome).await;
        if view.is_none() {
            let seen = api.send("GET", &path, Some(owner), None).await?;
            wrong.push(format!("view shows status {} (expected {outcome})", seen.body["status"]));
        }

        // Its dose: still taken unless cancelled (then given back, once settled).
        let taken = self.places_taken(stack, body).await?;
        if taken != i64::from(holds) {
            wrong.push(format!("{taken} dose(s) taken from its slot (expected {})", i64::from(holds)));
        }
        let slot_path = format!("/vaccine/slots/{}", slot_of(body)?);
        let slot = api.send("GET", &slot_path, Some(owner), None).await?;
        let (quantity, remaining) = (slot.body["quantity"].as_i64(), slot.body["remaining"].as_i64());
        if quantity.zip(remaining).is_none_or(|(q, r)| q - r != i64::from(holds)) {
            wrong.push(format!(
                "its slot shows {} of {} dose(s) left (expected {} taken)",
                slot.body["remaining"],
                slot.body["quantity"],
                i64::from(holds)
            ));
        }

        // Every outcome ends the citizen's hold on the vaccine.
        match command::load::<Reservation>(&stack.platform, id).await?.state {
            Some(r) => {
                let held = stack.platform.store.counter(&holder_key(&r.patient_sub, &r.vaccine)).await?;
                if held != 0 {
                    wrong.push(format!("the citizen's holder counter of {} is {held} once it ended", r.vaccine));
                }
            }
            None => wrong.push("the reservation is not stored".into()),
        }

        // SMS: reserved, then cancelled if the cancel won; a fulfilment or a no-show sends none.
        let sms = stack.sms_sent().await?;
        let texts: Vec<&str> = sms
            .iter()
            .filter(|s| s.body.contains(short_ref(id)))
            .map(|s| s.body.as_str())
            .collect();
        let count = |needles: &[&str]| texts.iter().filter(|t| needles.iter().any(|n| t.contains(*n))).count();
        let expected = [
            ("reserved", RESERVED_TEXTS, 1),
            ("cancelled", CANCELLED_TEXTS, usize::from(cancelled)),
        ];
        let total: usize = expected.iter().map(|(_, _, n)| n).sum();
        for (what, needles, n) in expected {
            if count(needles) != n {
                wrong.push(format!("{} '{what}' SMS (expected {n})", count(needles)));
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

    /// Registers the slot first ([`Fixture::prepare`]), then reserves on the use case. The
    /// `Idempotency-Key` is hashed with the request's body, as the route does.
    async fn open_direct(&self, p: &Platform, owner: &str, day: i64, variant: usize, key: &str, request_id: &str) -> Result<u16, String> {
        let body = body_for(day, variant, &CONTENDER);
        self.register(p, &body).await.map_err(|e| format!("{e:#}"))?;
        let input = ReserveInput {
            slot_id: Some(slot_id(day, variant)),
            name: Some(CONTENDER.name.to_owned()),
            phone: Some(CONTENDER.phone.to_owned()),
            locale: Some(CONTENDER.locale.to_owned()),
        };
        let key = IdempotencyKey::parse(key, body.to_string().as_bytes()).map_err(|e| e.detail)?;
        let actor = Actor { sub: owner.to_owned() };
        usecase::reserve(p, &actor, input, Some(key), request_id)
            .await
            .map(|a| a.status)
            .map_err(|e| e.to_string())
    }

    async fn end_direct(&self, p: &Platform, owner: &str, id: &str, request_id: &str) -> anyhow::Result<()> {
        usecase::cancel(p, &Actor { sub: owner.to_owned() }, id, request_id).await?;
        Ok(())
    }
}

/// The reservation's final state, as the decisions that won imply: each excludes the others.
fn implied_outcome(fulfilled: bool, noshow: bool, cancelled: bool) -> Result<&'static str, String> {
    match (fulfilled, noshow, cancelled) {
        (true, false, false) => Ok("fulfilled"),
        (false, true, false) => Ok("noshow"),
        (false, false, true) => Ok("cancelled"),
        (false, false, false) => Err("no decision succeeded".into()),
        _ => Err(format!(
            "more than one of fulfil ({fulfilled}), no-show ({noshow}) and cancel ({cancelled}) succeeded"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_serial_order_of_decisions_implies_one_outcome() {
        assert_eq!(implied_outcome(true, false, false), Ok("fulfilled"));
        assert_eq!(implied_outcome(false, true, false), Ok("noshow"));
        assert_eq!(implied_outcome(false, false, true), Ok("cancelled"));
        assert!(implied_outcome(true, true, false).is_err());
        assert!(implied_outcome(true, false, true).is_err());
        assert!(implied_outcome(false, true, true).is_err());
        assert!(implied_outcome(false, false, false).is_err());
        assert_eq!(VACCINE.implied_outcome(&[false, false, true]), Ok("cancelled"));
    }

    #[test]
    fn outcomes_are_the_reservation_statuses() {
        for j in JOURNEYS {
            if let Some(outcome) = j.outcome() {
                assert!(ReservationStatus::parse(outcome).is_ok(), "{}: {outcome}", j.name);
            }
        }
    }

    #[test]
    fn the_fixture_slots_have_ulid_ids_that_name_their_day_and_vaccine() {
        let pattern = regex::Regex::new(clinicflow::events::schema::ULID_PATTERN).expect("the ULID pattern");
        for (day, variant) in [(0, 0), (30, 0), (45, 1), (365, 1)] {
            let id = slot_id(day, variant);
            assert_eq!(id.len(), 26, "{id}");
            assert!(pattern.is_match(&id), "{id}");
            assert_eq!(seed_of(&id), Some((day, variant)));
        }
        assert_eq!(seed_of(NO_SLOT), None);
    }

    #[test]
    fn the_opening_body_is_a_valid_reservation_request_and_the_other_variant_another_vaccine() {
        let body = VACCINE.open_body(30, &CONTENDER, "tok_ok");
        let input: ReserveInput = serde_json::from_value(body.clone()).expect("a reservation request");
        assert_eq!(input.slot_id, Some(slot_id(30, 0)));
        let other = VACCINE.other_body(&body);
        assert_eq!(other["slot_id"], json!(slot_id(30, 1)));
        assert_eq!(other["name"], body["name"]);
        for (what, invalid) in VACCINE.invalid_openings(&body) {
            assert_ne!(invalid, body, "{what}");
        }
    }

    #[test]
    fn every_route_of_the_slice_has_a_call() {
        for route in SLICE.routes {
            assert!(VACCINE.route(route).is_some(), "{} {}", route.method.as_str(), route.path);
        }
    }
}
