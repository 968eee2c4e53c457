//! A citizen's reservation of a dose (seed 003), and their place on a slot's waiting list:
//! one case and one aggregate, from `waitlist` (an offer held for them, perhaps) to
//! `booked`, then `fulfilled`, `noshow` or `cancelled`. Statuses are FHIR Appointment's.
//! The dose a booked reservation holds was taken from its slot's shard counter in the same
//! transaction that stored it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, Contact, DomainError, FieldError, parse_wire};

/// The bounded context's name: its table and event source (`clinicflow.vaccination`).
pub const CONTEXT: &str = "vaccination";

/// The key of the counter that holds a citizen to one active reservation per vaccine.
pub fn holder_key(patient_sub: &str, vaccine: &str) -> String {
    format!("{CONTEXT}#holder#{vaccine}#{patient_sub}")
}

/// A reservation's status, as FHIR's Appointment names them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ReservationStatus {
    /// On the slot's waiting list (perhaps with a dose held for them).
    Waitlist,
    /// A dose is reserved.
    Booked,
    /// Cancelled by the citizen, or an offer that lapsed.
    Cancelled,
    /// The hospital gave the dose.
    Fulfilled,
    /// The citizen did not come.
    Noshow,
}

impl ReservationStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_wire("status", raw)
    }
}

/// A dose held for a waiting citizen until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Its shard.
    pub shard: u8,
    /// Until when.
    pub expires_at: DateTime<Utc>,
}

/// The reservation aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Reservation number.
    pub id: String,
    /// The citizen.
    pub patient_sub: String,
    /// The slot.
    pub slot_id: String,
    /// Vaccination date.
    pub date: NaiveDate,
    /// Hospital id.
    pub hospital: String,
    /// Vaccine id.
    pub vaccine: String,
    /// Status.
    pub status: ReservationStatus,
    /// The shard its dose came from, while it holds one.
    pub shard: Option<u8>,
    /// The dose held for it while it waits.
    pub offer: Option<Offer>,
    /// Reminded the day before.
    #[serde(default)]
    pub reminded: bool,
}

/// A validated reservation, or a place on the waiting list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReservation {
    /// The citizen.
    pub patient_sub: String,
    /// The slot.
    pub slot_id: String,
    /// Date.
    pub date: NaiveDate,
    /// Hospital.
    pub hospital: String,
    /// Vaccine.
    pub vaccine: String,
    /// Whom to text.
    pub contact: Contact,
}

/// The commands on a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Reserve a dose taken from `shard`.
    Book(NewReservation, u8),
    /// Join the waiting list.
    Wait(NewReservation),
    /// A dose is held for the entry.
    Offer(Offer),
    /// The citizen takes the held dose, at `now`.
    Accept {
        /// Now.
        now: DateTime<Utc>,
    },
    /// The hold ended unanswered.
    Lapse,
    /// The citizen cancels.
    Cancel,
    /// The day-before reminder.
    Remind,
    /// The hospital gave the dose.
    Fulfil,
    /// The citizen did not come.
    NoShow,
}

/// What happened to a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// A dose was reserved: taken from shard `shard` of the slot's counter in the same write.
    ReservationBooked {
        /// The citizen (`sub`); the owner of the case.
        #[schemars(length(min = 1))]
        patient_sub: String,
        /// The slot.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        slot_id: String,
        /// Vaccination date (Korea).
        date: NaiveDate,
        /// Hospital id.
        hospital: String,
        /// Vaccine id.
        vaccine: String,
        /// The shard its dose came from.
        shard: u8,
        /// Whom to tell about the case; kept by the SMS notifier in its own table.
        contact: Contact,
    },
    /// The citizen joined the slot's waiting list.
    WaitlistJoined {
        /// The citizen (`sub`).
        #[schemars(length(min = 1))]
        patient_sub: String,
        /// The slot.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        slot_id: String,
        /// Vaccination date.
        date: NaiveDate,
        /// Hospital id.
        hospital: String,
        /// Vaccine id.
        vaccine: String,
        /// Whom to tell.
        contact: Contact,
    },
    /// A dose given back is held for the citizen until `expires_at`.
    DoseOffered {
        /// Its shard.
        shard: u8,
        /// Until when.
        expires_at: DateTime<Utc>,
    },
    /// The citizen took the held dose: the reservation is booked.
    OfferAccepted {
        /// Its shard.
        shard: u8,
    },
    /// The hold ended unanswered; the dose went to the next in line.
    OfferLapsed {},
    /// The citizen cancelled; `shard` is the dose it held (given back by slot management),
    /// none when it was only waiting.
    ReservationCancelled {
        /// The slot.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        slot_id: String,
        /// The shard of the dose it held or was offered.
        shard: Option<u8>,
    },
    /// The day-before reminder is due.
    ReservationReminded {
        /// Vaccination date.
        date: NaiveDate,
    },
    /// The hospital gave the dose.
    ReservationFulfilled {},
    /// The citizen did not come.
    ReservationNoShow {},
}

fn illegal(status: ReservationStatus, what: &str) -> DomainError {
    DomainError::IllegalTransition(format!("a {} reservation cannot be {what}", status.as_str()))
}

impl Aggregate for Reservation {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use ReservationStatus::*;
        let r = match (state, command) {
            (None, Command::Book(n, shard)) => {
                return Ok(vec![Event::ReservationBooked {
                    patient_sub: n.patient_sub,
                    slot_id: n.slot_id,
                    date: n.date,
                    hospital: n.hospital,
                    vaccine: n.vaccine,
                    shard,
                    contact: n.contact,
                }]);
            }
            (None, Command::Wait(n)) => {
                return Ok(vec![Event::WaitlistJoined {
                    patient_sub: n.patient_sub,
                    slot_id: n.slot_id,
                    date: n.date,
                    hospital: n.hospital,
                    vaccine: n.vaccine,
                    contact: n.contact,
                }]);
            }
            (Some(_), Command::Book(..) | Command::Wait(_)) => {
                return Err(DomainError::IllegalTransition("the reservation already exists".into()));
            }
            (None, _) => return Err(DomainError::NotFound),
            (Some(r), command) => (r, command),
        };
        let (r, command) = r;
        match command {
            Command::Book(..) | Command::Wait(_) => Err(DomainError::IllegalTransition("the reservation already exists".into())),
            Command::Offer(offer) => match (r.status, &r.offer) {
                (Waitlist, None) => Ok(vec![Event::DoseOffered {
                    shard: offer.shard,
                    expires_at: offer.expires_at,
                }]),
                (Waitlist, Some(_)) => Ok(vec![]),
                (other, _) => Err(illegal(other, "offered a dose")),
            },
            Command::Accept { now } => match (r.status, &r.offer) {
                (Waitlist, Some(o)) if now < o.expires_at => Ok(vec![Event::OfferAccepted { shard: o.shard }]),
                (Waitlist, Some(_)) => Err(DomainError::IllegalTransition("the hold on this dose has expired".into())),
                (Waitlist, None) => Err(DomainError::IllegalTransition("no dose is offered to you yet".into())),
                (Booked, _) => Ok(vec![]),
                (other, _) => Err(illegal(other, "accepted")),
            },
            Command::Lapse => match (r.status, &r.offer) {
                (Waitlist, Some(_)) => Ok(vec![Event::OfferLapsed {}]),
                _ => Ok(vec![]),
            },
            Command::Cancel => match r.status {
                Booked => Ok(vec![Event::ReservationCancelled {
                    slot_id: r.slot_id.clone(),
                    shard: r.shard,
                }]),
                Waitlist => Ok(vec![Event::ReservationCancelled {
                    slot_id: r.slot_id.clone(),
                    shard: r.offer.as_ref().map(|o| o.shard),
                }]),
                Cancelled => Ok(vec![]),
                other => Err(illegal(other, "cancelled")),
            },
            Command::Remind => Ok(if r.status == Booked && !r.reminded {
                vec![Event::ReservationReminded { date: r.date }]
            } else {
                vec![]
            }),
            Command::Fulfil => match r.status {
                Booked => Ok(vec![Event::ReservationFulfilled {}]),
                Fulfilled => Ok(vec![]),
                other => Err(illegal(other, "marked fulfilled")),
            },
            Command::NoShow => match r.status {
                Booked => Ok(vec![Event::ReservationNoShow {}]),
                Noshow => Ok(vec![]),
                other => Err(illegal(other, "marked a no-show")),
            },
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        let new =
            |patient_sub: &String, slot_id: &String, date: &NaiveDate, hospital: &String, vaccine: &String, status, shard| Reservation {
                id: id.to_owned(),
                patient_sub: patient_sub.clone(),
                slot_id: slot_id.clone(),
                date: *date,
                hospital: hospital.clone(),
                vaccine: vaccine.clone(),
                status,
                shard,
                offer: None,
                reminded: false,
            };
        match (state, event) {
            (
                None,
                Event::ReservationBooked {
                    patient_sub,
                    slot_id,
                    date,
                    hospital,
                    vaccine,
                    shard,
                    ..
                },
            ) => Some(new(
                patient_sub,
                slot_id,
                date,
                hospital,
                vaccine,
                ReservationStatus::Booked,
                Some(*shard),
            )),
            (
                None,
                Event::WaitlistJoined {
                    patient_sub,
                    slot_id,
                    date,
                    hospital,
                    vaccine,
                    ..
                },
            ) => Some(new(
                patient_sub,
                slot_id,
                date,
                hospital,
                vaccine,
                ReservationStatus::Waitlist,
                None,
            )),
            (Some(mut r), e) => {
                match e {
                    Event::ReservationBooked { .. } | Event::WaitlistJoined { .. } => {}
                    Event::DoseOffered { shard, expires_at } => {
                        r.offer = Some(Offer {
                            shard: *shard,
                            expires_at: *expires_at,
                        });
                    }
                    Event::OfferAccepted { shard } => {
                        r.status = ReservationStatus::Booked;
                        r.shard = Some(*shard);
                        r.offer = None;
                    }
                    Event::OfferLapsed {} => {
                        r.status = ReservationStatus::Cancelled;
                        r.offer = None;
                    }
                    Event::ReservationCancelled { .. } => {
                        r.status = ReservationStatus::Cancelled;
                        r.offer = None;
                        r.shard = None;
                    }
                    Event::ReservationReminded { .. } => r.reminded = true,
                    Event::ReservationFulfilled {} => r.status = ReservationStatus::Fulfilled,
                    Event::ReservationNoShow {} => r.status = ReservationStatus::Noshow,
                }
                Some(r)
            }
            (None, _) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::given;
    use crate::domain::{Locale, PersonName, PhoneNumber};

    fn new() -> NewReservation {
        NewReservation {
            patient_sub: "p1".into(),
            slot_id: "s1".into(),
            date: NaiveDate::from_ymd_opt(2027, 3, 2).expect("date"),
            hospital: "seoul-central".into(),
            vaccine: "pfizer".into(),
            contact: Contact {
                name: PersonName::parse("김민수").expect("name"),
                phone: PhoneNumber::parse("010-2222-3333").expect("phone"),
                locale: Locale::Ko,
            },
        }
    }

    fn at(h: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2027, 3, 1)
            .and_then(|d| d.and_hms_opt(h, 0, 0))
            .expect("time")
            .and_utc()
    }

    fn booked() -> Event {
        Reservation::decide(None, Command::Book(new(), 2)).expect("booked").remove(0)
    }

    fn waiting() -> Event {
        Reservation::decide(None, Command::Wait(new())).expect("waiting").remove(0)
    }

    fn offered() -> Event {
        Event::DoseOffered {
            shard: 1,
            expires_at: at(10),
        }
    }

    #[test]
    fn a_booked_reservation_holds_its_shard_and_gives_it_back_on_cancel() {
        let r = given::<Reservation>("r1", [booked()])
            .when(Command::Cancel)
            .then([Event::ReservationCancelled {
                slot_id: "s1".into(),
                shard: Some(2),
            }]);
        assert_eq!(r.map(|r| r.status), Some(ReservationStatus::Cancelled));
        given::<Reservation>(
            "r1",
            [
                booked(),
                Event::ReservationCancelled {
                    slot_id: "s1".into(),
                    shard: Some(2),
                },
            ],
        )
        .when(Command::Cancel)
        .then_nothing();
    }

    #[test]
    fn an_offer_is_taken_before_its_hold_ends_and_refused_after() {
        given::<Reservation>("r1", [waiting(), offered()])
            .when(Command::Accept { now: at(9) })
            .then([Event::OfferAccepted { shard: 1 }]);
        given::<Reservation>("r1", [waiting(), offered()])
            .when(Command::Accept { now: at(10) })
            .then_refused(|e| matches!(e, DomainError::IllegalTransition(_)));
        given::<Reservation>("r1", [waiting()])
            .when(Command::Accept { now: at(9) })
            .then_refused(|e| matches!(e, DomainError::IllegalTransition(_)));
    }

    #[test]
    fn a_waiting_entry_cancelled_gives_back_only_the_dose_held_for_it() {
        given::<Reservation>("r1", [waiting()])
            .when(Command::Cancel)
            .then([Event::ReservationCancelled {
                slot_id: "s1".into(),
                shard: None,
            }]);
        given::<Reservation>("r1", [waiting(), offered()])
            .when(Command::Cancel)
            .then([Event::ReservationCancelled {
                slot_id: "s1".into(),
                shard: Some(1),
            }]);
    }

    #[test]
    fn one_reminder_per_booked_reservation_and_none_after_a_cancel() {
        let date = NaiveDate::from_ymd_opt(2027, 3, 2).expect("date");
        given::<Reservation>("r1", [booked()])
            .when(Command::Remind)
            .then([Event::ReservationReminded { date }]);
        given::<Reservation>("r1", [booked(), Event::ReservationReminded { date }])
            .when(Command::Remind)
            .then_nothing();
        given::<Reservation>(
            "r1",
            [
                booked(),
                Event::ReservationCancelled {
                    slot_id: "s1".into(),
                    shard: Some(2),
                },
            ],
        )
        .when(Command::Remind)
        .then_nothing();
    }

    #[test]
    fn the_hospital_marks_a_booked_dose_given_or_missed_once() {
        given::<Reservation>("r1", [booked()])
            .when(Command::Fulfil)
            .then([Event::ReservationFulfilled {}]);
        given::<Reservation>("r1", [booked(), Event::ReservationNoShow {}])
            .when(Command::Fulfil)
            .then_refused(|e| matches!(e, DomainError::IllegalTransition(_)));
        given::<Reservation>("r1", [booked(), Event::ReservationFulfilled {}])
            .when(Command::Cancel)
            .then_refused(|e| matches!(e, DomainError::IllegalTransition(_)));
    }
}
