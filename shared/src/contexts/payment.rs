//! Payment: taken synchronously before a booking exists, voided if the booking could not
//! be stored, refunded when the booking is cancelled or rejected.

use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, DomainError, Won};

/// The bounded context's name.
pub const CONTEXT: &str = "payment";

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The money was taken.
    Paid,
    /// The authorization was released before any booking existed.
    Voided,
    /// The money was given back.
    Refunded,
}

impl PaymentStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::Voided => "voided",
            Self::Refunded => "refunded",
        }
    }
}

/// The payment aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Payment id.
    pub id: String,
    /// The booking it pays for (the case).
    pub booking_id: String,
    /// Amount.
    pub amount: Won,
    /// The provider's reference.
    pub provider_ref: String,
    /// Status.
    pub status: PaymentStatus,
}

/// Commands on a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Record a payment the provider approved.
    Record {
        /// The booking.
        booking_id: String,
        /// Amount.
        amount: Won,
        /// Provider reference.
        provider_ref: String,
    },
    /// Record that the provider refunded it.
    RecordRefund,
}

/// Payment events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The provider approved and took the payment.
    PaymentCaptured {
        /// The booking.
        booking_id: String,
        /// Amount.
        amount: Won,
        /// Provider reference.
        provider_ref: String,
    },
    /// The provider refunded it.
    PaymentRefunded {
        /// Amount refunded.
        amount: Won,
    },
}

impl Aggregate for Payment {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    /// Decides a payment command. Recording a refund twice decides nothing.
    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        match (state, command) {
            (
                None,
                Command::Record {
                    booking_id,
                    amount,
                    provider_ref,
                },
            ) => Ok(vec![Event::PaymentCaptured {
                booking_id,
                amount,
                provider_ref,
            }]),
            (Some(_), Command::Record { .. }) => Err(DomainError::IllegalTransition("payment already recorded".into())),
            (None, Command::RecordRefund) => Err(DomainError::NotFound),
            (Some(p), Command::RecordRefund) => match p.status {
                PaymentStatus::Paid => Ok(vec![Event::PaymentRefunded { amount: p.amount }]),
                PaymentStatus::Refunded => Ok(vec![]),
                PaymentStatus::Voided => Err(DomainError::IllegalTransition("a voided payment has nothing to refund".into())),
            },
        }
    }

    /// Applies a payment event.
    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (
                None,
                Event::PaymentCaptured {
                    booking_id,
                    amount,
                    provider_ref,
                },
            ) => Some(Payment {
                id: id.to_owned(),
                booking_id: booking_id.clone(),
                amount: *amount,
                provider_ref: provider_ref.clone(),
                status: PaymentStatus::Paid,
            }),
            (Some(mut p), Event::PaymentRefunded { .. }) => {
                p.status = PaymentStatus::Refunded;
                Some(p)
            }
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid() -> Option<Payment> {
        let events = Payment::decide(
            None,
            Command::Record {
                booking_id: "b".into(),
                amount: Won(10),
                provider_ref: "r".into(),
            },
        )
        .expect("ok");
        events.iter().fold(None, |s, e| Payment::apply(s, "p", e))
    }

    #[test]
    fn a_paid_payment_is_refunded_once() {
        let state = paid();
        let events = Payment::decide(state.as_ref(), Command::RecordRefund).expect("refund");
        assert_eq!(events, vec![Event::PaymentRefunded { amount: Won(10) }]);
        let refunded = events.iter().fold(state, |s, e| Payment::apply(s, "p", e));
        assert_eq!(Payment::decide(refunded.as_ref(), Command::RecordRefund).expect("again"), vec![]);
    }
}
