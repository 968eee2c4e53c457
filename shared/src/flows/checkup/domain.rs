//! Check-up booking (seed 001): a patient books a date and a package, paid for before the
//! booking exists; the centre confirms or rejects it; the patient may cancel it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, Contact, DomainError, FieldError, Won, parse_wire};

/// The bounded context's name, used for its table and event source.
pub const CONTEXT: &str = "checkup";

/// The check-up packages a centre offers.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
#[derive(utoipa::ToSchema)]
pub enum Package {
    /// Basic check-up.
    Basic,
    /// Standard check-up.
    Standard,
    /// Premium check-up.
    Premium,
}

impl Package {
    /// Every package, in price order.
    pub const ALL: [Package; 3] = [Package::Basic, Package::Standard, Package::Premium];

    /// Parses `basic`, `standard` or `premium`.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_wire("package", raw)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Package prices, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceList {
    /// Price of `basic`.
    pub basic: Won,
    /// Price of `standard`.
    pub standard: Won,
    /// Price of `premium`.
    pub premium: Won,
}

impl Default for PriceList {
    fn default() -> Self {
        Self {
            basic: Won(100_000),
            standard: Won(250_000),
            premium: Won(500_000),
        }
    }
}

impl PriceList {
    /// The price of `package`.
    pub fn price(&self, package: Package) -> Won {
        match package {
            Package::Basic => self.basic,
            Package::Standard => self.standard,
            Package::Premium => self.premium,
        }
    }
}

/// The status a patient sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::EnumString, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
#[derive(utoipa::ToSchema)]
pub enum BookingStatus {
    /// Paid, waiting for the centre.
    Booked,
    /// Confirmed by the centre.
    Confirmed,
    /// Rejected by the centre; the payment is refunded.
    Rejected,
    /// Cancelled by the patient; the payment is refunded.
    Cancelled,
}

impl BookingStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_wire("status", raw)
    }
}

/// The booking aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// Booking id (also the case's correlation id).
    pub id: String,
    /// The patient's subject.
    pub patient_sub: String,
    /// Check-up date.
    pub date: NaiveDate,
    /// Package.
    pub package: Package,
    /// Price paid.
    pub price: Won,
    /// The payment that paid for it.
    pub payment_id: String,
    /// Current status.
    pub status: BookingStatus,
    /// Reason given by the centre on rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A validated request to book, built after payment was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookCheckup {
    /// New booking id.
    pub id: String,
    /// Patient subject.
    pub patient_sub: String,
    /// Date.
    pub date: NaiveDate,
    /// Package.
    pub package: Package,
    /// Price.
    pub price: Won,
    /// Payment id.
    pub payment_id: String,
    /// Contact for SMS.
    pub contact: Contact,
}

/// The commands on a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Create the booking (payment already taken).
    Book(BookCheckup),
    /// The centre confirms.
    Confirm,
    /// The centre rejects, with a reason.
    Reject {
        /// Why.
        reason: String,
    },
    /// The patient cancels.
    Cancel,
}

/// What happened to a booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// A paid booking exists and waits for the centre. Published by checkup-book in the
    /// same transaction as PaymentCaptured and the place taken on the date.
    CheckupBooked {
        /// The patient's subject (`sub` claim); the owner of the case.
        #[schemars(length(min = 1))]
        patient_sub: String,
        /// The check-up date (the clinics' calendar, Korea Standard Time).
        date: NaiveDate,
        /// The check-up package.
        package: Package,
        /// The price paid, in won.
        price: Won,
        /// The payment aggregate that paid for the booking.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        payment_id: String,
        /// Whom to tell about the case; kept by the SMS notifier in its own table.
        contact: Contact,
    },
    /// The centre confirmed the booking.
    CheckupConfirmed {},
    /// The centre rejected the booking; its payment is refunded and its place given back.
    CheckupRejected {
        /// Why, as the centre gave it (trimmed).
        #[schemars(length(min = 1, max = 500))]
        reason: String,
    },
    /// The patient cancelled the booking; its payment is refunded and its place given back.
    CheckupCancelled {},
}

/// Longest rejection reason accepted.
pub const MAX_REASON_CHARS: usize = 500;

/// Validates a rejection reason.
pub fn parse_reason(raw: &str) -> Result<String, FieldError> {
    let reason = raw.trim();
    if reason.is_empty() {
        return Err(FieldError::new("reason", "must not be empty"));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(FieldError::new("reason", format!("must be at most {MAX_REASON_CHARS} characters")));
    }
    if reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new("reason", "must not contain control characters"));
    }
    Ok(reason.to_owned())
}

impl Aggregate for Booking {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    /// Decides what a command does to a booking. Repeating a command whose effect already
    /// holds (confirm a confirmed booking, cancel a cancelled one) decides nothing.
    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use BookingStatus::*;
        match (state, command) {
            (None, Command::Book(b)) => Ok(vec![Event::CheckupBooked {
                patient_sub: b.patient_sub,
                date: b.date,
                package: b.package,
                price: b.price,
                payment_id: b.payment_id,
                contact: b.contact,
            }]),
            (Some(_), Command::Book(_)) => Err(DomainError::IllegalTransition("the booking already exists".into())),
            (None, _) => Err(DomainError::NotFound),
            (Some(b), Command::Confirm) => match b.status {
                Booked => Ok(vec![Event::CheckupConfirmed {}]),
                Confirmed => Ok(vec![]),
                other => Err(DomainError::IllegalTransition(format!(
                    "a {} booking cannot be confirmed",
                    other.as_str()
                ))),
            },
            (Some(b), Command::Reject { reason }) => match b.status {
                Booked => Ok(vec![Event::CheckupRejected { reason }]),
                Rejected => Ok(vec![]),
                other => Err(DomainError::IllegalTransition(format!(
                    "a {} booking cannot be rejected",
                    other.as_str()
                ))),
            },
            (Some(b), Command::Cancel) => match b.status {
                Booked | Confirmed => Ok(vec![Event::CheckupCancelled {}]),
                Cancelled => Ok(vec![]),
                Rejected => Err(DomainError::IllegalTransition(
                    "a rejected booking cannot be cancelled; its payment is refunded".into(),
                )),
            },
        }
    }

    /// Applies an event to a booking. `id` is the aggregate id the event belongs to.
    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (
                None,
                Event::CheckupBooked {
                    patient_sub,
                    date,
                    package,
                    price,
                    payment_id,
                    ..
                },
            ) => Some(Booking {
                id: id.to_owned(),
                patient_sub: patient_sub.clone(),
                date: *date,
                package: *package,
                price: *price,
                payment_id: payment_id.clone(),
                status: BookingStatus::Booked,
                reason: None,
            }),
            (Some(mut b), Event::CheckupConfirmed {}) => {
                b.status = BookingStatus::Confirmed;
                Some(b)
            }
            (Some(mut b), Event::CheckupRejected { reason }) => {
                b.status = BookingStatus::Rejected;
                b.reason = Some(reason.clone());
                Some(b)
            }
            (Some(mut b), Event::CheckupCancelled {}) => {
                b.status = BookingStatus::Cancelled;
                Some(b)
            }
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::given;
    use crate::domain::{Locale, PersonName, PhoneNumber};

    fn book() -> BookCheckup {
        BookCheckup {
            id: "b1".into(),
            patient_sub: "p1".into(),
            date: NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"),
            package: Package::Basic,
            price: Won(100_000),
            payment_id: "pay1".into(),
            contact: Contact {
                name: PersonName::parse("홍길동").expect("name"),
                phone: PhoneNumber::parse("010-1234-5678").expect("phone"),
                locale: Locale::Ko,
            },
        }
    }

    fn booked() -> Event {
        Booking::decide(None, Command::Book(book())).expect("booked").remove(0)
    }

    #[test]
    fn booking_a_new_checkup_records_it_as_booked() {
        let state = given::<Booking>("b1", [])
            .when(Command::Book(book()))
            .then([booked()])
            .expect("exists");
        assert_eq!(state.status, BookingStatus::Booked);
        assert_eq!(state.price, Won(100_000));
    }

    #[test]
    fn a_booked_checkup_can_be_confirmed_once() {
        given::<Booking>("b1", [booked()])
            .when(Command::Confirm)
            .then([Event::CheckupConfirmed {}]);
        given::<Booking>("b1", [booked(), Event::CheckupConfirmed {}])
            .when(Command::Confirm)
            .then_nothing();
    }

    #[test]
    fn a_cancelled_checkup_cannot_be_confirmed_or_rejected() {
        let cancelled = || given::<Booking>("b1", [booked(), Event::CheckupCancelled {}]);
        let illegal = |e: &DomainError| matches!(e, DomainError::IllegalTransition(_));
        cancelled().when(Command::Confirm).then_refused(illegal);
        cancelled().when(Command::Reject { reason: "x".into() }).then_refused(illegal);
    }

    #[test]
    fn cancelling_twice_is_harmless() {
        given::<Booking>("b1", [booked(), Event::CheckupCancelled {}])
            .when(Command::Cancel)
            .then_nothing();
    }

    #[test]
    fn a_confirmed_checkup_can_still_be_cancelled_but_not_rejected() {
        let confirmed = || given::<Booking>("b1", [booked(), Event::CheckupConfirmed {}]);
        confirmed().when(Command::Cancel).then([Event::CheckupCancelled {}]);
        confirmed()
            .when(Command::Reject { reason: "full".into() })
            .then_refused(|e| matches!(e, DomainError::IllegalTransition(_)));
    }

    #[test]
    fn a_rejected_checkup_cannot_be_cancelled() {
        given::<Booking>("b1", [booked(), Event::CheckupRejected { reason: "r".into() }])
            .when(Command::Cancel)
            .then_refused(|e| matches!(e, DomainError::IllegalTransition(_)));
    }

    #[test]
    fn commands_on_a_missing_booking_are_not_found() {
        given::<Booking>("b1", [])
            .when(Command::Cancel)
            .then_refused(|e| *e == DomainError::NotFound);
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert!(parse_reason(" ").is_err());
        assert!(parse_reason(&"x".repeat(501)).is_err());
        assert_eq!(parse_reason(" no doctor ").expect("ok"), "no doctor");
    }
}
