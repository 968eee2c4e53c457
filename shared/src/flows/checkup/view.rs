//! The check-up status view (the patient's my-page): folds the booking's, its payment's
//! and the centre's events into one view per case.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::centre;
use super::domain::{self as checkup, BookingStatus, Package};
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// Status reached.
    #[schema(value_type = BookingStatus)]
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
            category: None,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Checkup, description = "A case's status view: booking, payment and reservation status with the timeline.")]
pub struct CheckupResponse {
    /// Booking id.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// Booking status.
    #[schema(value_type = BookingStatus)]
    pub status: String,
    /// Date.
    #[schema(required = true)]
    pub date: Option<NaiveDate>,
    /// Package.
    #[schema(required = true)]
    pub package: Option<Package>,
    /// Price in won (KRW).
    #[schema(required = true)]
    pub price: Option<Won>,
    // The payment's status (described by its type: a field's description would wrap the
    // inlined schema in a `oneOf`).
    #[schema(inline)]
    pub payment: PaymentStatus,
    // The centre's reservation (likewise).
    #[schema(inline)]
    pub reservation: ReservationStatus,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// When booked.
    #[schema(required = true)]
    pub created_at: Option<DateTime<Utc>>,
}

/// The payment part of a [`CheckupResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "The payment's status.")]
pub struct PaymentStatus {
    /// `paid`, `refund_pending` (cancelled or rejected, the refund under way) or `refunded`.
    #[schema(schema_with = payment_statuses)]
    pub status: String,
}

/// The reservation part of a [`CheckupResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "The centre's reservation.")]
pub struct ReservationStatus {
    /// `pending` (not on the centre's list yet), `received`, `confirmed`, `rejected` or `withdrawn` (cancelled).
    #[schema(schema_with = reservation_statuses)]
    pub status: String,
    /// Why the centre rejected it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// What [`PaymentStatus::status`] can say: the payment's own statuses, and `refund_pending`
/// while a cancelled or rejected booking's refund is under way.
const PAYMENT_STATUSES: [&str; 3] = ["paid", "refund_pending", "refunded"];

/// What [`ReservationStatus::status`] can say: `pending` until the centre's list has the
/// booking, then the reservation's own statuses.
const RESERVATION_STATUSES: [&str; 5] = ["pending", "received", "confirmed", "rejected", "withdrawn"];

fn payment_statuses() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(PAYMENT_STATUSES))
        .build()
}

fn reservation_statuses() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(RESERVATION_STATUSES))
        .build()
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
    fn every_status_the_view_shows_is_one_its_schema_lists() {
        let from = |source: &str, event_type: &str, data: serde_json::Value| {
            let mut e = event(event_type, 1);
            e.source = source.into();
            e.data = data;
            e
        };
        let mut view = CheckupView::new("b1");
        let mut shown = Vec::new();
        for e in [
            booked(),
            from(
                "clinicflow.payment",
                "PaymentCaptured",
                serde_json::json!({"case_id": "b1", "amount": 100000, "provider_ref": "r"}),
            ),
            from("clinicflow.centre", "ReservationReceived", serde_json::json!({})),
            from("clinicflow.centre", "ReservationConfirmed", serde_json::json!({})),
            from("clinicflow.centre", "ReservationRejected", serde_json::json!({"reason": "closed"})),
            from("clinicflow.centre", "ReservationWithdrawn", serde_json::json!({})),
            event("CheckupCancelled", 2),
            from("clinicflow.payment", "PaymentRefunded", serde_json::json!({"amount": 100000})),
        ] {
            assert!(view.fold_in(&e), "{} folds in", e.event_type);
            let r = view.clone().into_response().expect("rendered once booked");
            shown.push((r.payment.status, r.reservation.status));
        }
        for (payment, reservation) in &shown {
            assert!(PAYMENT_STATUSES.contains(&payment.as_str()), "{payment}");
            assert!(RESERVATION_STATUSES.contains(&reservation.as_str()), "{reservation}");
        }
        let payments: std::collections::BTreeSet<&str> = shown.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            payments.len(),
            PAYMENT_STATUSES.len(),
            "each payment status is reached: {payments:?}"
        );
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
