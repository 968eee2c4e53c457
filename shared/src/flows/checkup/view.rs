//! The check-up status view (the patient's my-page): folds the booking's, its payment's
//! and the centre's events into one view per case.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::centre;
use super::domain::{self as checkup, Package};
use crate::app::projector::{Indexed, Versions, View, context_of};
use crate::contexts::payment;
use crate::domain::Won;
use crate::events::EventEnvelope;

/// The view's name.
pub const FLOW: &str = "checkup";

/// The view row of booking `id`.
pub fn view_key(id: &str) -> String {
    crate::app::projector::view_id(FLOW, id)
}

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
    /// Last version applied, per aggregate.
    pub versions: Versions,
}

impl View for CheckupView {
    const NAME: &'static str = FLOW;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        self.fold_in(e)
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        Indexed {
            owner: self.patient_sub.clone(),
            date: self.date.map(|d| d.to_string()),
            status: self.status.clone(),
            // A check-up waits in no one's queue: the centre lists by date and status.
            queue: None,
            created_at: self.created_at,
        }
    }
}

impl CheckupView {
    /// Folds one event of the booking, its payment or its reservation in.
    fn fold_in(&mut self, e: &EventEnvelope) -> bool {
        match context_of(&e.source) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::projector::{Fold, fold};
    use crate::flows::checkup::test_support;

    fn event(event_type: &str, version: u64) -> EventEnvelope {
        test_support::event(&format!("e{version}"), event_type, version, serde_json::json!({}))
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
        let mut view = CheckupView::new("b1");
        assert_eq!(fold(&mut view, &booked()), Fold::Applied);
        assert_eq!(fold(&mut view, &booked()), Fold::Stale);
        assert_eq!(fold(&mut view, &event("CheckupConfirmed", 2)), Fold::Applied);
        assert_eq!(view.status.as_deref(), Some("confirmed"));
    }

    #[test]
    fn an_event_that_overtakes_an_earlier_one_is_early_and_changes_nothing() {
        let mut view = CheckupView::new("b1");
        assert_eq!(fold(&mut view, &event("CheckupConfirmed", 2)), Fold::Early { expected: 1 });
        assert_eq!(view, CheckupView::new("b1"));
        assert_eq!(fold(&mut view, &booked()), Fold::Applied);
        assert_eq!(fold(&mut view, &event("CheckupCancelled", 3)), Fold::Early { expected: 2 });
        assert_eq!(view.status.as_deref(), Some("booked"));
    }
}
