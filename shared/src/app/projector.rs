//! The status-view projector: folds change records (events) from the check-up, payment
//! and centre tables into one view per case. Each record is applied only if it is newer
//! than what the view has seen of its aggregate, so replays and redeliveries change nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{AppError, Platform, faults};
use crate::domain::checkup::{self, Package};
use crate::domain::{Won, centre, payment};
use crate::events::EventEnvelope;
use crate::ports::{StoreError, ViewRecord};

/// The flow name of check-up views.
pub const FLOW: &str = "checkup";

/// One step of a booking's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// Status reached.
    pub status: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What the view remembers about a case, including what each aggregate last told it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckupView {
    /// Booking id.
    pub id: String,
    /// Owner subject.
    #[serde(default)]
    pub patient_sub: String,
    /// Booking status (absent until the booking itself is seen).
    pub status: Option<String>,
    /// Date.
    pub date: Option<NaiveDate>,
    /// Package.
    pub package: Option<Package>,
    /// Price.
    pub price: Option<Won>,
    /// Payment status as the payment aggregate last said (`paid`, `refunded`).
    pub payment_status: Option<String>,
    /// Reservation status on the centre's list.
    pub reservation_status: Option<String>,
    /// Rejection reason.
    pub reason: Option<String>,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// When booked.
    pub created_at: Option<DateTime<Utc>>,
    /// Last version applied, per source (`checkup`, `payment`, `centre`).
    pub versions: BTreeMap<String, u64>,
}

fn context_of(source: &str) -> &str {
    source.strip_prefix("clinicflow.").unwrap_or(source)
}

impl CheckupView {
    /// Applies one event if it is the next one the view expects of its aggregate.
    pub fn fold(&mut self, e: &EventEnvelope) -> Fold {
        let context = context_of(&e.source).to_owned();
        let seen = self.versions.get(&context).copied().unwrap_or(0);
        if e.version <= seen {
            return Fold::Stale;
        }
        if e.version > seen + 1 {
            return Fold::Early { expected: seen + 1 };
        }
        if self.apply(e) { Fold::Applied } else { Fold::Stale }
    }

    /// Applies one event if it is newer than what the view saw of its aggregate; returns
    /// whether the view changed. Unlike [`CheckupView::fold`], it accepts gaps.
    pub fn apply(&mut self, e: &EventEnvelope) -> bool {
        let context = context_of(&e.source).to_owned();
        if self.versions.get(&context).is_some_and(|seen| *seen >= e.version) {
            return false;
        }
        match context.as_str() {
            checkup::CONTEXT => match e.decode::<checkup::Event>() {
                Ok(checkup::Event::CheckupBooked {
                    patient_sub,
                    date,
                    package,
                    price,
                    ..
                }) => {
                    self.patient_sub = patient_sub;
                    self.date = Some(date);
                    self.package = Some(package);
                    self.price = Some(price);
                    self.created_at = Some(e.occurred_at);
                    self.set_status("booked", e.occurred_at);
                }
                Ok(checkup::Event::CheckupConfirmed {}) => self.set_status("confirmed", e.occurred_at),
                Ok(checkup::Event::CheckupRejected { reason }) => {
                    self.reason = Some(reason);
                    self.set_status("rejected", e.occurred_at);
                }
                Ok(checkup::Event::CheckupCancelled {}) => self.set_status("cancelled", e.occurred_at),
                Err(_) => return false,
            },
            payment::CONTEXT => match e.decode::<payment::Event>() {
                Ok(payment::Event::PaymentCaptured { .. }) => self.payment_status = Some("paid".into()),
                Ok(payment::Event::PaymentRefunded { .. }) => self.payment_status = Some("refunded".into()),
                Err(_) => return false,
            },
            centre::CONTEXT => match e.decode::<centre::Event>() {
                Ok(centre::Event::ReservationReceived {}) => self.reservation_status = Some("received".into()),
                Ok(centre::Event::ReservationConfirmed {}) => self.reservation_status = Some("confirmed".into()),
                Ok(centre::Event::ReservationRejected { reason }) => {
                    self.reservation_status = Some("rejected".into());
                    self.reason = Some(reason);
                }
                Ok(centre::Event::ReservationWithdrawn {}) => self.reservation_status = Some("withdrawn".into()),
                Err(_) => return false,
            },
            _ => return false,
        }
        self.versions.insert(context, e.version);
        true
    }

    fn set_status(&mut self, status: &str, at: DateTime<Utc>) {
        self.status = Some(status.to_owned());
        self.timeline.push(TimelineEntry {
            status: status.to_owned(),
            at,
        });
    }

    /// The view as the API shows it, once the booking itself is known.
    pub fn render(&self) -> Option<serde_json::Value> {
        self.clone().into_response().and_then(|r| serde_json::to_value(r).ok())
    }

    /// The API view of the case, taking the view apart instead of copying it (the list
    /// queries render many); `None` until the booking itself has been seen.
    pub fn into_response(self) -> Option<CheckupResponse> {
        let status = self.status?;
        let paid = self.payment_status.as_deref().unwrap_or("paid");
        let payment = match (paid, status.as_str()) {
            ("paid", "cancelled" | "rejected") => "refund_pending".to_owned(),
            (s, _) => s.to_owned(),
        };
        Some(CheckupResponse {
            id: self.id,
            status,
            date: self.date,
            package: self.package,
            price: self.price,
            payment: PaymentStatus { status: payment },
            reservation: ReservationStatus {
                status: self.reservation_status.unwrap_or_else(|| "pending".to_owned()),
                reason: self.reason,
            },
            timeline: self.timeline,
            created_at: self.created_at,
        })
    }
}

/// A case as the API shows it (`GET /checkups/{id}`, the lists, command responses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckupResponse {
    /// Booking id.
    pub id: String,
    /// Booking status.
    pub status: String,
    /// Date.
    pub date: Option<NaiveDate>,
    /// Package.
    pub package: Option<Package>,
    /// Price.
    pub price: Option<Won>,
    /// The payment's status.
    pub payment: PaymentStatus,
    /// The centre's reservation.
    pub reservation: ReservationStatus,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// When booked.
    pub created_at: Option<DateTime<Utc>>,
}

/// The payment part of a [`CheckupResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentStatus {
    /// `paid`, `refund_pending`, `refunded`, ….
    pub status: String,
}

/// The reservation part of a [`CheckupResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservationStatus {
    /// `pending`, `confirmed`, `rejected`, ….
    pub status: String,
    /// Why the centre rejected it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What folding one event into a view did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// The view changed.
    Applied,
    /// The view already had it (a replay or redelivery), or it does not concern views.
    Stale,
    /// An earlier event of the same aggregate has not been seen yet: the stream delivered
    /// out of order (records of different items can sit on different shards). Retry later.
    Early {
        /// The version the view waits for.
        expected: u64,
    },
}

/// The API view of a case from its first events, for a command's own response.
pub fn checkup_view_of(events: &[EventEnvelope]) -> serde_json::Value {
    let mut view = CheckupView {
        id: events.first().map(|e| e.correlation_id.clone()).unwrap_or_default(),
        ..Default::default()
    };
    for e in events {
        view.apply(e);
    }
    view.render().unwrap_or(serde_json::Value::Null)
}

/// Projects one change record into its view. Optimistic on the view's revision: a lost race
/// is retried, so concurrent projector invocations never lose an update. An event that
/// arrives before an earlier one of its aggregate is refused with a `Conflict`, to be
/// retried once the earlier one is in (a stream's batch item failure does exactly that).
pub async fn project(p: &Platform, e: &EventEnvelope) -> Result<bool, AppError> {
    p.faults.check(faults::PROJECTOR).await.map_err(retried)?;
    if !matches!(context_of(&e.source), checkup::CONTEXT | payment::CONTEXT | centre::CONTEXT) {
        return Ok(false);
    }
    for _ in 0..5 {
        let existing = p.views.get(&e.correlation_id).await?;
        let (mut view, revision) = match &existing {
            Some(r) => (serde_json::from_value::<CheckupView>(r.body.clone())?, r.revision),
            None => (
                CheckupView {
                    id: e.correlation_id.clone(),
                    ..Default::default()
                },
                0,
            ),
        };
        match view.fold(e) {
            Fold::Applied => {}
            Fold::Stale => return Ok(false),
            Fold::Early { expected } => {
                return Err(AppError::Conflict(format!(
                    "event {} is version {} of its {} aggregate; the view waits for version {expected}",
                    e.id,
                    e.version,
                    context_of(&e.source)
                )));
            }
        }
        let record = ViewRecord {
            id: view.id.clone(),
            flow: FLOW.into(),
            owner: view.patient_sub.clone(),
            date: view.date.map(|d| d.to_string()),
            status: view.status.clone(),
            created_at: view.created_at.unwrap_or(e.occurred_at),
            revision: revision + 1,
            body: serde_json::to_value(&view)?,
        };
        match p.views.put(record, revision).await {
            Ok(()) => {
                p.faults.check(faults::PROJECTOR_AFTER_WRITE).await.map_err(retried)?;
                return Ok(true);
            }
            Err(StoreError::VersionConflict(_)) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(AppError::Unavailable {
        reason: "view contention".into(),
        retry_after: std::time::Duration::from_millis(100),
    })
}

/// An injected failure or crash of the projector: the change record is delivered again.
fn retried(e: faults::Injected) -> AppError {
    AppError::Unavailable {
        reason: e.to_string(),
        retry_after: std::time::Duration::from_millis(100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, version: u64) -> EventEnvelope {
        EventEnvelope {
            id: format!("e{version}"),
            event_type: event_type.into(),
            source: "clinicflow.checkup".into(),
            aggregate_id: "b1".into(),
            version,
            correlation_id: "b1".into(),
            causation_id: "r1".into(),
            occurred_at: Utc::now(),
            data: serde_json::json!({}),
        }
    }

    fn booked() -> EventEnvelope {
        let mut e = event("CheckupBooked", 1);
        e.data = serde_json::json!({
            "patient_sub": "p1", "date": "2027-06-01", "package": "basic", "price": 100000,
            "payment_id": "pay1", "contact": {"name": "홍길동", "phone": "+821012345678", "locale": "ko"}
        });
        e
    }

    #[test]
    fn the_next_version_applies_and_a_replay_of_it_is_stale() {
        let mut view = CheckupView::default();
        assert_eq!(view.fold(&booked()), Fold::Applied);
        assert_eq!(view.fold(&booked()), Fold::Stale);
        assert_eq!(view.fold(&event("CheckupConfirmed", 2)), Fold::Applied);
        assert_eq!(view.status.as_deref(), Some("confirmed"));
    }

    #[test]
    fn an_event_that_overtakes_an_earlier_one_is_early_and_changes_nothing() {
        let mut view = CheckupView::default();
        assert_eq!(view.fold(&event("CheckupConfirmed", 2)), Fold::Early { expected: 1 });
        assert_eq!(view, CheckupView::default());
        assert_eq!(view.fold(&booked()), Fold::Applied);
        assert_eq!(view.fold(&event("CheckupCancelled", 3)), Fold::Early { expected: 2 });
        assert_eq!(view.status.as_deref(), Some("booked"));
    }
}
