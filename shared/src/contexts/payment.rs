//! The payment context, shared by the flows that take money: a payment is taken
//! synchronously before the case exists (voided if the case could not be stored), recorded
//! with the case in one transaction, and refunded once when the flow says the case ended.
//! It knows cases, not flows: a flow records its payment with [`record`] and subscribes
//! [`refund`] to the events that end its cases.

use serde::{Deserialize, Serialize};

use crate::app::command::{Loaded, Work, load};
use crate::app::consumers::{ConsumerError, ConsumerFuture, Handled, commit_once, mark};
use crate::app::{AppError, Platform, faults};
use crate::domain::{Aggregate, DomainError, Won};
use crate::events::EventEnvelope;
use crate::ports::{AggregateKey, AggregateWrite, PaymentError};

/// The bounded context's name.
pub const CONTEXT: &str = "payment";

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PaymentStatus {
    /// The money was taken.
    Paid,
    /// The authorization was released before any case existed.
    Voided,
    /// The money was given back.
    Refunded,
}

impl PaymentStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The payment aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Payment id.
    pub id: String,
    /// The case it pays for (its correlation id).
    pub case_id: String,
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
        /// The case.
        case_id: String,
        /// Amount.
        amount: Won,
        /// Provider reference.
        provider_ref: String,
    },
    /// Record that the provider refunded it.
    RecordRefund,
}

/// Payment events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The provider approved and took the payment.
    PaymentCaptured {
        /// The case the payment belongs to.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        case_id: String,
        /// The amount taken, in won.
        amount: Won,
        /// The payment provider's reference for the charge.
        #[schemars(length(min = 1))]
        provider_ref: String,
    },
    /// The provider refunded it.
    PaymentRefunded {
        /// The amount refunded, in won.
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
                    case_id,
                    amount,
                    provider_ref,
                },
            ) => Ok(vec![Event::PaymentCaptured {
                case_id,
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
                    case_id,
                    amount,
                    provider_ref,
                },
            ) => Some(Payment {
                id: id.to_owned(),
                case_id: case_id.clone(),
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

/// Which payment a case has: kept beside the payment, written in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CasePayment {
    /// The payment's id.
    pub payment_id: String,
}

fn case_key(case_id: &str) -> AggregateKey {
    AggregateKey::new(CONTEXT, format!("case#{case_id}"))
}

/// Stages payment `payment_id` of case `case_id` (taken by the provider as `provider_ref`)
/// in the command's work, with the record that finds it by case.
pub fn record(work: &mut Work<'_>, case_id: &str, payment_id: &str, amount: Won, provider_ref: &str) -> Result<(), AppError> {
    work.decide(
        Loaded::<Payment>::absent(payment_id),
        Command::Record {
            case_id: case_id.to_owned(),
            amount,
            provider_ref: provider_ref.to_owned(),
        },
    )?;
    work.write(AggregateWrite {
        key: case_key(case_id),
        expected_version: 0,
        new_version: 1,
        state: serde_json::to_value(CasePayment {
            payment_id: payment_id.to_owned(),
        })?,
    });
    Ok(())
}

/// The payment of case `case_id`, if one was recorded.
pub async fn of_case(p: &Platform, case_id: &str) -> Result<Option<Loaded<Payment>>, AppError> {
    let (found, _) = crate::app::load::<CasePayment>(p, &case_key(case_id)).await?;
    match found {
        None => Ok(None),
        Some(c) => Ok(Some(load::<Payment>(p, &c.payment_id).await?)),
    }
}

/// The refund consumer, for a flow to register under its function with the events that end
/// its cases: refunds the payment of the event's case once, whatever redelivers it.
pub fn refund<'a>(p: &'a Platform, consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(refund_case(p, consumer, event))
}

async fn refund_case(p: &Platform, consumer: &str, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    if p.store.is_processed(consumer, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let case = &event.correlation_id;
    let Some(loaded) = of_case(p, case).await? else {
        return Err(ConsumerError::Permanent(format!("case {case} has no payment to refund")));
    };
    let Some(pay) = loaded.state.clone() else {
        return Err(ConsumerError::Permanent(format!("the payment of case {case} is missing")));
    };
    // A refusal by the domain (a voided payment) is permanent: decided here.
    let events = Payment::decide(Some(&pay), Command::RecordRefund)?;
    if !events.is_empty() {
        // The provider's idempotency key is the payment id: any redelivery, of this event or
        // of another ending the same case, refunds at most once.
        p.payments
            .refund_with_faults(&p.faults, &pay.provider_ref, pay.amount, &format!("refund-{}", pay.id))
            .await
            .map_err(|e| match e {
                PaymentError::Declined(why) => ConsumerError::Permanent(format!("refund refused: {why}")),
                other => ConsumerError::Retryable(other.to_string()),
            })?;
    }
    let mut work = Work::new(p, event.caused());
    work.stage(loaded, &events)?;
    let mut tx = work.into_transaction();
    tx.processed = mark(consumer, event);
    p.faults.check(&faults::before_write(consumer)).await?;
    let handled = commit_once(p, &faults::after_write(consumer), tx).await?;
    if handled == Handled::Applied {
        tracing::info!(correlation_id = %case, payment_id = %pay.id, "payment refunded");
    }
    Ok(handled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid() -> Option<Payment> {
        let events = Payment::decide(
            None,
            Command::Record {
                case_id: "b".into(),
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
