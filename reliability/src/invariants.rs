//! The invariants every area checks once a local stack has settled, read from its store,
//! its SMS outbox, its dead letters and the sandbox provider's ledger:
//! - each case reached exactly one terminal state, the expected one;
//! - capacity is conserved: places taken per slot equal the active bookings of that slot;
//! - a refund happened, exactly once, iff a payment was taken and the booking did not
//!   complete; no money is kept for a booking that does not exist;
//! - exactly one SMS per status change that notifies (per `clinicflow::catalog().rules`);
//! - every view equals a rebuild, by the projector, from the change feed, and agrees with
//!   the aggregates;
//! - nothing is stuck: no unpublished event, no dead letter.
//!
//! One exception is counted, not reported: an SMS whose delivery crashed between its claim
//! and the record of its outcome is in doubt (sent or not, nobody knows); the notifier never
//! sends it twice, so it dead-letters it for an operator ([`Checked::sms_in_doubt`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::adapters::memory::{Memory, MemoryPublisher, MemorySms};
use clinicflow::adapters::sandbox::{LedgerStatus, SandboxGateway};
use clinicflow::app::notifier::{SmsRecord, sms_record_key};
use clinicflow::app::{Faults, Platform, projector};
use clinicflow::contexts::payment::{self, Payment, PaymentStatus};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::checkup::availability;
use clinicflow::flows::checkup::centre::{self, Reservation};
use clinicflow::flows::checkup::domain::{self as checkup, Booking, BookingStatus};
use clinicflow::ports::Stored;
use clinicflow_local::LocalStack;
use serde::de::DeserializeOwned;

/// How a case should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Booked and left so.
    Booked,
    /// Confirmed by the centre.
    Confirmed,
    /// Cancelled by the patient.
    Cancelled,
    /// Rejected by the centre.
    Rejected,
    /// No booking at all (payment declined, provider down).
    NotBooked,
}

impl Outcome {
    fn status(self) -> Option<BookingStatus> {
        match self {
            Self::Booked => Some(BookingStatus::Booked),
            Self::Confirmed => Some(BookingStatus::Confirmed),
            Self::Cancelled => Some(BookingStatus::Cancelled),
            Self::Rejected => Some(BookingStatus::Rejected),
            Self::NotBooked => None,
        }
    }
}

/// A case the harness expects, as it knows it from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The booking id, when the API answered with one.
    pub id: Option<String>,
    /// The patient's subject (a test pseudonym).
    pub patient: String,
    /// How it should end.
    pub outcome: Outcome,
    /// Whether a payment was taken for it.
    pub paid: bool,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// One line per broken invariant: the invariant, then what broke (ids only).
    pub violations: Vec<String>,
    /// SMS left in doubt by a crash between claim and record, dead-lettered for an operator.
    pub sms_in_doubt: u64,
}

/// Every aggregate of `context` in `db`, decoded, by id.
pub async fn aggregates<T: DeserializeOwned>(db: &Embedded, context: &'static str) -> anyhow::Result<BTreeMap<String, T>> {
    decode(context, db.all_aggregates(context).await?)
}

/// The aggregates among a context table's rows: their ids are ULIDs, while a context's own
/// records are `kind#…` (the payment context's `case#<id>`, the SMS records).
fn decode<T: DeserializeOwned>(context: &str, rows: Vec<(String, Stored)>) -> anyhow::Result<BTreeMap<String, T>> {
    rows.into_iter()
        .filter(|(id, _)| !id.contains('#'))
        .map(|(id, s)| {
            Ok((
                id,
                serde_json::from_value(s.state).with_context(|| format!("a {context} aggregate"))?,
            ))
        })
        .collect()
}

/// Checks every invariant on a settled SQLite stack. `sms_sends`, when known, is how many
/// SMS were handed to the channel over the whole run (the local outbox keeps one per key,
/// so only this count shows a second send).
pub async fn check(stack: &LocalStack, cases: &[Case], sms_sends: Option<u64>) -> anyhow::Result<Checked> {
    let db = &stack.embedded().context("the invariants are read from the SQLite backend")?.db;
    let mut violations = Vec::new();
    let mut broken = |invariant: &str, what: String| violations.push(format!("{invariant}: {what}"));

    let events: Vec<EventEnvelope> = db.changes_after(0, 1_000_000).await?.into_iter().map(|(_, e)| e).collect();
    let bookings: BTreeMap<String, Booking> = aggregates(db, checkup::CONTEXT).await?;
    let payments: BTreeMap<String, Payment> = aggregates(db, payment::CONTEXT).await?;
    let reservations: BTreeMap<String, Reservation> = aggregates(db, centre::CONTEXT).await?;
    let ledger = stack.sandbox.entries();
    let sms = stack.sms_sent().await?;
    let dead = stack.dead_letters().await?;
    let mut by_case: HashMap<&str, Vec<&EventEnvelope>> = HashMap::new();
    for e in &events {
        by_case.entry(e.correlation_id.as_str()).or_default().push(e);
    }

    // Each case reached exactly one terminal state, the expected one.
    for case in cases {
        let Some(id) = &case.id else {
            if let Some((id, _)) = bookings.iter().find(|(_, b)| b.patient_sub == case.patient) {
                broken("terminal state", format!("booking {id} exists, none was expected"));
            }
            continue;
        };
        let Some(booking) = bookings.get(id) else {
            broken("terminal state", format!("booking {id} does not exist"));
            continue;
        };
        if Some(booking.status) != case.outcome.status() {
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
        if case.paid != payments.contains_key(&booking.payment_id) {
            broken("terminal state", format!("booking {id}: payment taken is {}", !case.paid));
        }
    }

    // Capacity: places taken per slot equal the slot's active bookings.
    let mut active: BTreeMap<String, i64> = BTreeMap::new();
    for b in bookings.values() {
        let slot = availability::slot_key(b.date, b.package);
        let n = active.entry(slot).or_default();
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

    // A refund iff a payment was taken and the booking did not complete; exactly once.
    for (id, b) in &bookings {
        let ended = matches!(b.status, BookingStatus::Cancelled | BookingStatus::Rejected);
        let Some(pay) = payments.get(&b.payment_id) else {
            broken("refund", format!("booking {id} has no payment"));
            continue;
        };
        let refunded_events = by_case
            .get(id.as_str())
            .map_or(0, |es| es.iter().filter(|e| e.event_type == "PaymentRefunded").count());
        let entry = ledger.iter().find(|e| e.provider_ref == pay.provider_ref);
        let (status, refunds) = entry.map_or((None, 0), |e| (Some(e.status), e.refunds));
        let expected = if ended { PaymentStatus::Refunded } else { PaymentStatus::Paid };
        let provider = if ended { LedgerStatus::Refunded } else { LedgerStatus::Captured };
        if pay.status != expected || status != Some(provider) || refunds != u32::from(ended) || refunded_events != usize::from(ended) {
            broken(
                "refund",
                format!(
                    "booking {id} is {}: payment {:?}, provider {status:?} with {refunds} refund(s), {refunded_events} PaymentRefunded event(s)",
                    b.status.as_str(),
                    pay.status
                ),
            );
        }
    }
    let recorded: HashSet<&str> = payments.values().map(|p| p.provider_ref.as_str()).collect();
    for e in &ledger {
        if e.status != LedgerStatus::Voided && !recorded.contains(e.provider_ref.as_str()) {
            broken(
                "refund",
                format!(
                    "provider payment {} is {:?} for a booking that does not exist",
                    e.provider_ref, e.status
                ),
            );
        }
        if e.refunds > 1 {
            broken(
                "refund",
                format!("provider payment {} refunded {} times", e.provider_ref, e.refunds),
            );
        }
    }

    // Exactly one SMS per status change that notifies.
    let notifies = |e: &EventEnvelope| {
        clinicflow::catalog()
            .rules
            .iter()
            .any(|r| r.target == "sms-notifier" && r.matches(&e.source, &e.event_type))
    };
    let sent_keys: HashMap<&str, usize> = sms.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.key.as_str()).or_default() += 1;
        m
    });
    let mut in_doubt: HashSet<&str> = HashSet::new();
    for d in dead.iter().filter(|d| d.target == "sms-notifier") {
        let record = stack.platform.store.load(&sms_record_key(&d.event.id)).await?;
        if record
            .and_then(|r| serde_json::from_value::<SmsRecord>(r.state).ok())
            .is_some_and(|r| matches!(r, SmsRecord::Sending { .. }))
        {
            in_doubt.insert(d.event.id.as_str());
        }
    }
    let sms_in_doubt = in_doubt.len() as u64;
    let mut notifying = HashSet::new();
    for e in events.iter().filter(|e| notifies(e)) {
        notifying.insert(e.id.as_str());
        match sent_keys.get(e.id.as_str()).copied().unwrap_or(0) {
            1 => {}
            0 if in_doubt.contains(e.id.as_str()) => {}
            0 => broken(
                "one sms per status change",
                format!("no SMS for {} of case {}", e.event_type, e.correlation_id),
            ),
            n => broken(
                "one sms per status change",
                format!("{n} SMS for {} of case {}", e.event_type, e.correlation_id),
            ),
        }
    }
    for s in &sms {
        if !notifying.contains(s.key.as_str()) {
            broken("one sms per status change", format!("an SMS (seq {}) for no status change", s.seq));
        }
    }
    if let Some(sends) = sms_sends
        && sends > sms.len() as u64
    {
        broken(
            "one sms per status change",
            format!("{sends} SMS handed to the channel for {} distinct messages", sms.len()),
        );
    }

    // Views equal a rebuild by the projector from the change feed, and agree with the aggregates.
    let rebuilt = rebuild(&events).await?;
    for id in bookings.keys() {
        let stored = stack.platform.views.get(&clinicflow::flows::checkup::view::view_key(id)).await?;
        let again = rebuilt.views.get(&clinicflow::flows::checkup::view::view_key(id)).await?;
        match (&stored, &again) {
            (Some(s), Some(a)) if s.body == a.body => {}
            (None, None) => {}
            _ => {
                broken("view equals rebuild", format!("view {id} differs from its rebuild"));
                continue;
            }
        }
        let Some(view) = stored.and_then(|v| serde_json::from_value::<clinicflow::flows::checkup::view::CheckupView>(v.body).ok()) else {
            broken("view equals rebuild", format!("view {id} is missing or unreadable"));
            continue;
        };
        let b = &bookings[id];
        let pay = payments.get(&b.payment_id).map(|p| match p.status {
            PaymentStatus::Paid => "paid",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Refunded => "refunded",
        });
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

    // Nothing stuck.
    let unpublished = stack
        .platform
        .outbox
        .unpublished(chrono::Utc::now() + chrono::Duration::days(1), 100)
        .await?;
    if !unpublished.is_empty() {
        broken("nothing stuck", format!("{} event(s) never published", unpublished.len()));
    }
    for d in &dead {
        if !(d.target == "sms-notifier" && in_doubt.contains(d.event.id.as_str())) {
            broken(
                "nothing stuck",
                format!(
                    "{} of case {} dead-lettered at {}",
                    d.event.event_type, d.event.correlation_id, d.target
                ),
            );
        }
    }
    Ok(Checked { violations, sms_in_doubt })
}

/// An empty platform on the in-memory adapters, to rebuild views into.
pub fn scratch() -> Platform {
    clinicflow::wiring::platform(
        clinicflow::catalog(),
        Memory::new(),
        Arc::new(MemoryPublisher::new()),
        Arc::new(MemorySms::new()),
        Arc::new(SandboxGateway::default()),
        clinicflow::config::Config::default(),
        Faults::none(),
    )
}

/// The projector run again over `events`, in their order, into an in-memory store.
pub async fn rebuild(events: &[EventEnvelope]) -> anyhow::Result<Platform> {
    let platform = scratch();
    for e in events {
        projector::project(&platform, e).await.context("rebuilding the views")?;
    }
    Ok(platform)
}
