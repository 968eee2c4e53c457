//! The vaccine flow's status views: a citizen's reservation (or waiting-list entry) with
//! its timeline, and the doses held for waiting citizens (what the expiry job and
//! `GET /vaccine/offers` read); a slot as staff and citizens list it; a subscription.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::alert;
use super::reservation::{self, ReservationStatus};
use super::slot::{self, SlotStatus};
use crate::app::projector::{Indexed, Versions, View};
use crate::events::EventEnvelope;

/// The reservations' view.
pub const RESERVATIONS: &str = "vaccine";
/// The slots' view.
pub const SLOTS: &str = "vaccineslot";
/// The subscriptions' view.
pub const ALERTS: &str = "vaccinealert";
/// The queue of the reservations view that lists the entries a dose is held for right
/// now, which the expiry job reads (an entry leaves its slot's queue while a dose is held
/// for it, and comes back to it booked or cancelled).
pub const HELD: &str = "held";

/// One step of a reservation's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = VaccineTimelineEntry)]
pub struct TimelineEntry {
    /// Status reached, or what happened (`offered`, `reminded`).
    pub status: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A reservation or waiting-list entry, as its view keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationView {
    /// Reservation number.
    pub id: String,
    /// Owner.
    #[serde(default)]
    pub patient_sub: String,
    /// Status (absent until the case's first event).
    pub status: Option<ReservationStatus>,
    /// The slot.
    pub slot_id: Option<String>,
    /// Vaccination date.
    pub date: Option<NaiveDate>,
    /// Hospital id.
    pub hospital: Option<String>,
    /// Vaccine id.
    pub vaccine: Option<String>,
    /// Until when a dose is held for it, while it waits with an offer.
    pub offer_expires_at: Option<DateTime<Utc>>,
    /// Why it was cancelled without the citizen asking (`offer-lapsed`).
    pub reason: Option<String>,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// When it was made.
    pub created_at: Option<DateTime<Utc>>,
    /// Versions applied.
    pub versions: Versions,
}

impl ReservationView {
    fn step(&mut self, status: &str, at: DateTime<Utc>) {
        self.timeline.push(TimelineEntry {
            status: status.to_owned(),
            at,
        });
    }

    fn set(&mut self, status: ReservationStatus, at: DateTime<Utc>) {
        self.status = Some(status);
        self.step(status.as_str(), at);
    }

    /// The API's view, once the case's first event is in.
    pub fn into_response(self) -> Option<ReservationResponse> {
        Some(ReservationResponse {
            status: self.status?,
            slot_id: self.slot_id?,
            date: self.date?,
            hospital: self.hospital?,
            vaccine: self.vaccine?,
            offer: self.offer_expires_at.map(|expires_at| HeldOffer { expires_at }),
            reason: self.reason,
            timeline: self.timeline,
            created_at: self.created_at,
            id: self.id,
        })
    }
}

impl View for ReservationView {
    const NAME: &'static str = RESERVATIONS;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        use reservation::Event::*;
        let Ok(event) = e.decode::<reservation::Event>() else {
            return false;
        };
        let at = e.occurred_at;
        match event {
            ReservationBooked {
                patient_sub,
                slot_id,
                date,
                hospital,
                vaccine,
                ..
            }
            | WaitlistJoined {
                patient_sub,
                slot_id,
                date,
                hospital,
                vaccine,
                ..
            } => {
                let status = if e.event_type == "ReservationBooked" {
                    ReservationStatus::Booked
                } else {
                    ReservationStatus::Waitlist
                };
                self.patient_sub = patient_sub;
                self.slot_id = Some(slot_id);
                self.date = Some(date);
                self.hospital = Some(hospital);
                self.vaccine = Some(vaccine);
                self.created_at = Some(at);
                self.set(status, at);
            }
            DoseOffered { expires_at, .. } => {
                self.offer_expires_at = Some(expires_at);
                self.step("offered", at);
            }
            OfferAccepted { .. } => {
                self.offer_expires_at = None;
                self.set(ReservationStatus::Booked, at);
            }
            OfferLapsed {} => {
                self.offer_expires_at = None;
                self.reason = Some("offer-lapsed".into());
                self.set(ReservationStatus::Cancelled, at);
            }
            ReservationCancelled { .. } => {
                self.offer_expires_at = None;
                self.set(ReservationStatus::Cancelled, at);
            }
            ReservationReminded { .. } => self.step("reminded", at),
            ReservationFulfilled {} => self.set(ReservationStatus::Fulfilled, at),
            ReservationNoShow {} => self.set(ReservationStatus::Noshow, at),
        }
        true
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        Indexed {
            owner: self.patient_sub.clone(),
            date: self.date.map(|d| d.to_string()),
            status: self.status.map(|s| s.as_str().to_owned()),
            // Staff list a slot's reservations; the expiry job, the doses held now.
            queue: if self.offer_expires_at.is_some() {
                Some(HELD.to_owned())
            } else {
                self.slot_id.clone()
            },
            category: None,
            created_at: self.created_at,
        }
    }
}

/// A dose held for a waiting citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HeldOffer {
    /// Accept before this time (`POST /vaccine/offers/{id}/accept`).
    pub expires_at: DateTime<Utc>,
}

/// A reservation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    as = VaccineReservation,
    description = "A reservation, or a place on a slot's waiting list: its number, FHIR Appointment status, date, hospital, \
                   vaccine, the dose held for it while it waits, and its timeline."
)]
pub struct ReservationResponse {
    /// Reservation number (also the waiting-list entry and its offer's id).
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// Status.
    pub status: ReservationStatus,
    /// The slot.
    #[schema(pattern = "^[0-9A-Za-z]{26}$")]
    pub slot_id: String,
    /// Vaccination date.
    pub date: NaiveDate,
    /// Hospital id.
    pub hospital: String,
    /// Vaccine id.
    pub vaccine: String,
    /// The dose held for the citizen while they wait; null otherwise.
    #[schema(required = true)]
    pub offer: Option<HeldOffer>,
    /// Why it ended without the citizen asking: `offer-lapsed`; null otherwise.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// When it was made.
    #[schema(required = true)]
    pub created_at: Option<DateTime<Utc>>,
}

/// A slot, as its view keeps it (the remaining doses are read from its counters).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotView {
    /// Slot id.
    pub id: String,
    /// Date.
    pub date: Option<NaiveDate>,
    /// Hospital id.
    pub hospital: Option<String>,
    /// Vaccine id.
    pub vaccine: Option<String>,
    /// Doses in all.
    pub quantity: u32,
    /// Shards.
    pub shards: u8,
    /// Open or closed.
    pub status: Option<SlotStatus>,
    /// Citizens waiting.
    pub waiting: u32,
    /// Doses held for the first in line.
    pub held: u32,
    /// When registered.
    pub created_at: Option<DateTime<Utc>>,
    /// Versions applied.
    pub versions: Versions,
}

impl View for SlotView {
    const NAME: &'static str = SLOTS;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        use slot::Event::*;
        let Ok(event) = e.decode::<slot::Event>() else {
            return false;
        };
        match event {
            SlotOpened {
                date,
                hospital,
                vaccine,
                quantity,
                shards,
            } => {
                self.date = Some(date);
                self.hospital = Some(hospital);
                self.vaccine = Some(vaccine);
                self.quantity = quantity;
                self.shards = shards;
                self.status = Some(SlotStatus::Open);
                self.created_at = Some(e.occurred_at);
            }
            DosesAdded { quantity, .. } => self.quantity = quantity,
            SlotClosed {} => self.status = Some(SlotStatus::Closed),
            SlotWaitlisted { .. } => self.waiting += 1,
            SlotDoseHeld { .. } => {
                self.waiting = self.waiting.saturating_sub(1);
                self.held += 1;
            }
            SlotWaiterLeft { .. } => {
                // Off the list, or its held dose passed on (the next event says where).
                if self.waiting > 0 {
                    self.waiting -= 1;
                } else {
                    self.held = self.held.saturating_sub(1);
                }
            }
            SlotHeldTaken { .. } | SlotHoldLapsed { .. } => self.held = self.held.saturating_sub(1),
            SlotAnnounced { .. } | SlotDoseReturned { .. } => {}
        }
        true
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        Indexed {
            // A slot belongs to its hospital: lists filter by hospital (the owner), vaccine
            // (the queue), date and status.
            owner: self.hospital.clone().unwrap_or_default(),
            date: self.date.map(|d| d.to_string()),
            status: self.status.map(|s| s.as_str().to_owned()),
            queue: self.vaccine.clone(),
            category: None,
            created_at: self.created_at,
        }
    }
}

/// A subscription, as its view keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    /// Subscription id.
    pub id: String,
    /// Owner.
    #[serde(default)]
    pub patient_sub: String,
    /// Hospital filter.
    pub hospital: Option<String>,
    /// Vaccine filter.
    pub vaccine: Option<String>,
    /// Active.
    pub active: bool,
    /// Subscribed (absent until then).
    pub created_at: Option<DateTime<Utc>>,
    /// Versions applied.
    pub versions: Versions,
}

impl View for AlertView {
    const NAME: &'static str = ALERTS;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        match e.decode::<alert::Event>() {
            Ok(alert::Event::AlertSubscribed {
                patient_sub,
                hospital,
                vaccine,
                ..
            }) => {
                self.patient_sub = patient_sub;
                self.hospital = hospital;
                self.vaccine = vaccine;
                self.active = true;
                self.created_at = Some(e.occurred_at);
            }
            Ok(alert::Event::AlertUnsubscribed {}) => self.active = false,
            Err(_) => return false,
        }
        true
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        Indexed {
            owner: self.patient_sub.clone(),
            date: None,
            status: Some(if self.active { "active" } else { "cancelled" }.to_owned()),
            // A new slot's fan-out reads the active subscriptions that match it.
            queue: self
                .active
                .then(|| alert::match_key(self.hospital.as_deref(), self.vaccine.as_deref())),
            category: None,
            created_at: self.created_at,
        }
    }
}

impl AlertView {
    /// The API's view, once subscribed.
    pub fn into_response(self) -> Option<AlertResponse> {
        self.created_at?;
        Some(AlertResponse {
            id: self.id,
            hospital: self.hospital,
            vaccine: self.vaccine,
            status: if self.active { "active" } else { "cancelled" }.to_owned(),
        })
    }
}

/// A subscription as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = VaccineSubscription, description = "A subscription to new-slot notices by SMS.")]
pub struct AlertResponse {
    /// Subscription id.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// Only this hospital's slots; null: every hospital.
    #[schema(required = true)]
    pub hospital: Option<String>,
    /// Only this vaccine's slots; null: every vaccine.
    #[schema(required = true)]
    pub vaccine: Option<String>,
    /// `active` or `cancelled`.
    #[schema(pattern = "^(active|cancelled)$")]
    pub status: String,
}
