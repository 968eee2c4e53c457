//! The saga's consumers. Each is idempotent on the event id (a dedup mark written in the
//! same transaction as its effect) and says whether a failure is worth retrying.

use tracing::Instrument;

use super::checkup::{load, stage};
use super::faults::{self, Injected};
use super::{AppError, Platform, relay};
use crate::domain::checkup::{self, Booking, Contact};
use crate::domain::notification::{CheckupNotice, checkup_sms};
use crate::domain::{DomainError, availability, centre, payment};
use crate::events::EventEnvelope;
use crate::ports::{AggregateKey, AggregateWrite, CounterMove, PaymentError, ProcessedMark, SmsError, SmsMessage, StoreError, Transaction};

/// The notifier's own table of whom to tell about a case.
pub const CONTACTS: &str = crate::topology::NOTIFICATION;

/// Why a consumer failed, and whether to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerError {
    /// A passing failure: redeliver later.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Retrying cannot help: dead-letter it.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<AppError> for ConsumerError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Unavailable { reason, .. } => Self::Retryable(reason),
            AppError::Conflict(why) => Self::Retryable(why),
            other => Self::Permanent(other.to_string()),
        }
    }
}

impl From<DomainError> for ConsumerError {
    fn from(e: DomainError) -> Self {
        // The event asks for something the aggregate's state refuses: retrying cannot help.
        Self::Permanent(e.to_string())
    }
}

impl From<StoreError> for ConsumerError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            Self::Retryable(e.to_string())
        } else {
            Self::Permanent(e.to_string())
        }
    }
}

impl From<Injected> for ConsumerError {
    /// A failed or crashed invocation is delivered again.
    fn from(e: Injected) -> Self {
        Self::Retryable(e.to_string())
    }
}

impl From<serde_json::Error> for ConsumerError {
    fn from(e: serde_json::Error) -> Self {
        Self::Permanent(format!("malformed event: {e}"))
    }
}

/// What a consumer did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Its effect happened now.
    Applied,
    /// It was seen before (a redelivery), or concerns this consumer not at all.
    Skipped,
}

/// Runs the consumer `target` on one event. An armed failure point named after the
/// consumer makes it fail on entry with a retryable error.
pub async fn dispatch(p: &Platform, target: &str, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    if let Some([entry, ..]) = faults::consumer_points(target) {
        p.faults.check(entry).await?;
    }
    let span = tracing::info_span!("consume", consumer = target, event_id = %event.id, event_type = %event.event_type, correlation_id = %event.correlation_id);
    async {
        let result = match target {
            "centre-worklist" => centre_worklist(p, event).await,
            "availability-release" => availability_release(p, event).await,
            "payment-refund" => payment_refund(p, event).await,
            "sms-notifier" => sms_notifier(p, event).await,
            other => Err(ConsumerError::Permanent(format!("no consumer named {other}"))),
        };
        match &result {
            Ok(h) => tracing::debug!(?h, "event handled"),
            Err(e) => tracing::warn!(error = %e, "event failed"),
        }
        result
    }
    .instrument(span)
    .await
}

fn mark(consumer: &str, event: &EventEnvelope) -> Option<ProcessedMark> {
    Some(ProcessedMark {
        consumer: consumer.to_owned(),
        event_id: event.id.clone(),
    })
}

/// Commits a consumer's transaction; a dedup-mark collision means a concurrent or earlier
/// delivery already did the work. `after_write` is the consumer's failure point between
/// its commit and its publish.
async fn commit_once(p: &Platform, after_write: &'static str, tx: Transaction) -> Result<Handled, ConsumerError> {
    let events = tx.outbox.clone();
    let mark = tx.processed.clone();
    match p.store.commit(tx).await {
        Ok(()) => {
            p.faults.check(after_write).await?;
            relay::publish(p, &events).await;
            Ok(Handled::Applied)
        }
        Err(StoreError::AlreadyProcessed) => Ok(Handled::Skipped),
        Err(e) => {
            // A concurrent duplicate that committed first can fail another item of this
            // transaction (a counter at its limit, a version) before the dedup mark does.
            if let Some(m) = mark
                && p.store.is_processed(&m.consumer, &m.event_id).await.unwrap_or(false)
            {
                return Ok(Handled::Skipped);
            }
            Err(e.into())
        }
    }
}

async fn booking_of(p: &Platform, event: &EventEnvelope) -> Result<Booking, ConsumerError> {
    let (booking, _) = load::<Booking>(p, &AggregateKey::new(checkup::CONTEXT, &event.aggregate_id)).await?;
    booking.ok_or_else(|| ConsumerError::Retryable(format!("booking {} not found yet", event.aggregate_id)))
}

/// The booking a cancel or reject event ends, unless `consumer` already handled the event.
async fn ended_booking(p: &Platform, consumer: &str, event: &EventEnvelope) -> Result<Option<Booking>, ConsumerError> {
    let ends = matches!(
        event.decode::<checkup::Event>()?,
        checkup::Event::CheckupCancelled {} | checkup::Event::CheckupRejected { .. }
    );
    if !ends || p.store.is_processed(consumer, &event.id).await? {
        return Ok(None);
    }
    booking_of(p, event).await.map(Some)
}

/// Puts a booking on the centre's work list; withdraws a cancelled one.
async fn centre_worklist(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    const NAME: &str = "centre-worklist";
    let command = match event.decode::<checkup::Event>()? {
        checkup::Event::CheckupBooked { .. } => centre::Command::Receive,
        checkup::Event::CheckupCancelled {} => centre::Command::Withdraw,
        _ => return Ok(Handled::Skipped),
    };
    if p.store.is_processed(NAME, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let key = AggregateKey::new(centre::CONTEXT, &event.aggregate_id);
    let (state, version) = load::<centre::Reservation>(p, &key).await?;
    let events = centre::decide(state.as_ref(), command)?;
    let (write, outbox) = stage(
        p,
        centre::CONTEXT,
        &event.aggregate_id,
        version,
        state,
        &events,
        centre::apply,
        &event.caused(),
    )?;
    p.faults.check(faults::CENTRE_WORKLIST_BEFORE_WRITE).await?;
    commit_once(
        p,
        faults::CENTRE_WORKLIST_AFTER_WRITE,
        Transaction {
            writes: write.into_iter().collect(),
            outbox,
            processed: mark(NAME, event),
            ..Default::default()
        },
    )
    .await
}

/// Gives the place of a cancelled or rejected booking back, once.
async fn availability_release(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    const NAME: &str = "availability-release";
    let Some(booking) = ended_booking(p, NAME, event).await? else {
        return Ok(Handled::Skipped);
    };
    let slot = availability::slot_key(booking.date, booking.package);
    let tx = Transaction {
        counters: vec![CounterMove {
            key: slot,
            delta: -1,
            limit: i64::MAX,
        }],
        processed: mark(NAME, event),
        ..Default::default()
    };
    p.faults.check(faults::AVAILABILITY_RELEASE_BEFORE_WRITE).await?;
    commit_once(p, faults::AVAILABILITY_RELEASE_AFTER_WRITE, tx).await
}

/// Refunds the payment of a cancelled or rejected booking, once.
async fn payment_refund(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    const NAME: &str = "payment-refund";
    let Some(booking) = ended_booking(p, NAME, event).await? else {
        return Ok(Handled::Skipped);
    };
    let key = AggregateKey::new(payment::CONTEXT, &booking.payment_id);
    let (state, version) = load::<payment::Payment>(p, &key).await?;
    let Some(pay) = state else {
        return Err(ConsumerError::Permanent(format!(
            "payment {} of booking {} is missing",
            booking.payment_id, booking.id
        )));
    };
    let events = payment::decide(Some(&pay), payment::Command::RecordRefund)?;
    if !events.is_empty() {
        // The provider's idempotency key is the payment id: any redelivery, of this event or
        // of another ending the same booking, refunds at most once.
        p.payments
            .refund_with_faults(&p.faults, &pay.provider_ref, pay.amount, &format!("refund-{}", pay.id))
            .await
            .map_err(|e| match e {
                PaymentError::Declined(why) => ConsumerError::Permanent(format!("refund refused: {why}")),
                other => ConsumerError::Retryable(other.to_string()),
            })?;
    }
    let (write, outbox) = stage(
        p,
        payment::CONTEXT,
        &pay.id.clone(),
        version,
        Some(pay),
        &events,
        payment::apply,
        &event.caused(),
    )?;
    let tx = Transaction {
        writes: write.into_iter().collect(),
        outbox,
        processed: mark(NAME, event),
        ..Default::default()
    };
    p.faults.check(faults::PAYMENT_REFUND_BEFORE_WRITE).await?;
    let handled = commit_once(p, faults::PAYMENT_REFUND_AFTER_WRITE, tx).await?;
    if handled == Handled::Applied {
        tracing::info!(booking_id = %booking.id, "payment refunded");
    }
    Ok(handled)
}

/// Sends one SMS per status change. The contact arrives with `CheckupBooked` and is kept in
/// the notifier's own table; a later event that overtakes it is retried until it is known.
async fn sms_notifier(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    const NAME: &str = "sms-notifier";
    if p.store.is_processed(NAME, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let case = event.correlation_id.clone();
    let contact_key = AggregateKey::new(CONTACTS, &case);
    let mut contact_write = None;
    let (notice, contact) = match event.source.as_str() {
        "clinicflow.checkup" => match event.decode::<checkup::Event>()? {
            checkup::Event::CheckupBooked { date, contact, .. } => {
                let (known, version) = load::<Contact>(p, &contact_key).await?;
                if known.is_none() {
                    contact_write = Some(AggregateWrite {
                        key: contact_key.clone(),
                        expected_version: version,
                        new_version: 1,
                        state: serde_json::to_value(&contact)?,
                    });
                }
                (CheckupNotice::Booked { date }, contact)
            }
            checkup::Event::CheckupConfirmed {} => (CheckupNotice::Confirmed, known_contact(p, &contact_key).await?),
            checkup::Event::CheckupRejected { .. } => (CheckupNotice::Rejected, known_contact(p, &contact_key).await?),
            checkup::Event::CheckupCancelled {} => (CheckupNotice::Cancelled, known_contact(p, &contact_key).await?),
        },
        "clinicflow.payment" => match event.decode::<payment::Event>()? {
            payment::Event::PaymentRefunded { amount } => (CheckupNotice::Refunded { amount }, known_contact(p, &contact_key).await?),
            _ => return Ok(Handled::Skipped),
        },
        _ => return Ok(Handled::Skipped),
    };
    let message = SmsMessage {
        key: event.id.clone(),
        to: contact.phone.clone(),
        body: checkup_sms(contact.locale, &case, notice),
    };
    send_once(p, NAME, event, &message, contact_write).await
}

/// Where one SMS stands, kept in the notifier's table under `sms#<event id>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SmsRecord {
    /// Claimed and handed to the channel; the outcome is not recorded yet.
    Sending {
        /// The recipient, masked.
        to: String,
        /// When it was claimed (absent in claims written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The channel accepted it.
    Sent {
        /// The recipient, masked.
        to: String,
        /// The channel's message id.
        message_id: String,
    },
    /// The channel refused it (opted out, invalid number): not retried.
    Refused {
        /// The recipient, masked.
        to: String,
        /// Why.
        reason: String,
    },
    /// A passing failure; the next delivery may claim it again.
    Failed {
        /// The recipient, masked.
        to: String,
        /// Why.
        reason: String,
    },
}

/// The key of the SMS record of an event.
pub fn sms_record_key(event_id: &str) -> AggregateKey {
    AggregateKey::new(CONTACTS, format!("sms#{event_id}"))
}

/// How long a claim may belong to a delivery still running: the notifier's timeout, after
/// which its invocation is dead.
fn claim_lease() -> chrono::Duration {
    let seconds = crate::topology::function("sms-notifier").map_or(30, |f| f.timeout_s);
    chrono::Duration::seconds(i64::from(seconds))
}

/// Sends an event's SMS at most once, even on a channel without deduplication (SNS): the
/// record is claimed (`sending`) before the send and settled (`sent`, `refused`) with the
/// processed mark after it. A redelivery that finds a claim younger than the notifier's
/// timeout retries later: a concurrent duplicate may be sending. One that finds an older
/// claim cannot know whether the channel got the message, so it does not send again: it
/// fails permanently and the event lands in the dead-letter queue, where an alarm shows
/// it. A new contact is stored with the claim, so that a booking SMS left in doubt does not
/// silence the case's later ones.
async fn send_once(
    p: &Platform,
    consumer: &str,
    event: &EventEnvelope,
    message: &SmsMessage,
    contact_write: Option<AggregateWrite>,
) -> Result<Handled, ConsumerError> {
    let key = sms_record_key(&event.id);
    let to = message.to.masked();
    let (record, version) = load::<SmsRecord>(p, &key).await?;
    let write = |version: u64, record: &SmsRecord| -> Result<AggregateWrite, ConsumerError> {
        Ok(AggregateWrite {
            key: key.clone(),
            expected_version: version,
            new_version: version + 1,
            state: serde_json::to_value(record)?,
        })
    };
    let settle = |version: u64, record: SmsRecord| -> Result<Transaction, ConsumerError> {
        Ok(Transaction {
            writes: vec![write(version, &record)?],
            processed: mark(consumer, event),
            ..Default::default()
        })
    };
    match record {
        Some(SmsRecord::Sent { .. } | SmsRecord::Refused { .. }) => {
            // Settled by an earlier delivery whose processed mark was then lost: mark now.
            let tx = Transaction {
                writes: contact_write.into_iter().collect(),
                processed: mark(consumer, event),
                ..Default::default()
            };
            return commit_once(p, faults::SMS_NOTIFIER_AFTER_WRITE, tx).await.map(|_| Handled::Skipped);
        }
        // Another delivery of the same event may be sending it right now (at-least-once
        // delivery runs duplicates concurrently): wait for it while it may still be alive.
        Some(SmsRecord::Sending { since: Some(since), .. }) if p.clock.now() - since < claim_lease() => {
            return Err(ConsumerError::Retryable("another delivery is sending this SMS".into()));
        }
        Some(SmsRecord::Sending { .. }) => {
            return Err(ConsumerError::Permanent(format!(
                "the SMS of event {} was handed to the channel by a delivery that did not finish; not sending it again",
                event.id
            )));
        }
        Some(SmsRecord::Failed { .. }) | None => {}
    }
    let claim = Transaction {
        writes: std::iter::once(write(
            version,
            &SmsRecord::Sending {
                to: to.clone(),
                since: Some(p.clock.now()),
            },
        )?)
        .chain(contact_write)
        .collect(),
        ..Default::default()
    };
    p.faults.check(faults::SMS_NOTIFIER_BEFORE_WRITE).await?;
    match p.store.commit(claim).await {
        Ok(()) => {}
        Err(StoreError::VersionConflict(_)) => return Err(ConsumerError::Retryable("another delivery is sending this SMS".into())),
        Err(e) => return Err(e.into()),
    }
    let claimed = version + 1;
    let sent = match p.faults.check(faults::SMS_BEFORE_SEND).await {
        Ok(()) => p.sms.send(message).await,
        Err(injected) if injected.crash => return Err(injected.into()),
        Err(injected) => Err(SmsError::Transient(injected.to_string())),
    };
    let outcome = match sent {
        Ok(message_id) => {
            tracing::info!(to = %to, message_id = %message_id, "sms sent");
            p.faults.check(faults::SMS_AFTER_SEND).await?;
            SmsRecord::Sent { to, message_id }
        }
        // An opted-out or invalid number will not become valid by retrying: record and move on.
        Err(SmsError::Refused(reason)) => {
            tracing::warn!(to = %to, reason = %reason, "sms refused by the channel");
            SmsRecord::Refused { to, reason }
        }
        Err(SmsError::Transient(reason)) => {
            let failed = Transaction {
                writes: vec![write(
                    claimed,
                    &SmsRecord::Failed {
                        to,
                        reason: reason.clone(),
                    },
                )?],
                ..Default::default()
            };
            if let Err(e) = p.store.commit(failed).await {
                tracing::warn!(error = %e, "could not release the SMS claim");
            }
            return Err(ConsumerError::Retryable(reason));
        }
    };
    commit_once(p, faults::SMS_NOTIFIER_AFTER_WRITE, settle(claimed, outcome)?).await
}

async fn known_contact(p: &Platform, key: &AggregateKey) -> Result<Contact, ConsumerError> {
    let (contact, _) = load::<Contact>(p, key).await?;
    contact.ok_or_else(|| ConsumerError::Retryable(format!("contact for case {} not known yet", key.id)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;

    use super::*;
    use crate::adapters::memory::{Memory, MemoryPublisher, MemorySms};
    use crate::adapters::sandbox::SandboxGateway;
    use crate::app::Faults;
    use crate::config::Config;

    fn platform() -> (Platform, MemorySms) {
        let sms = MemorySms::new();
        let p = crate::wiring::platform(
            Memory::new(),
            Arc::new(MemoryPublisher::new()),
            Arc::new(sms.clone()),
            &SandboxGateway::default(),
            Config::default(),
            Faults::none(),
        );
        (p, sms)
    }

    fn event(id: &str, event_type: &str, version: u64, data: serde_json::Value) -> EventEnvelope {
        EventEnvelope {
            id: id.into(),
            event_type: event_type.into(),
            source: "clinicflow.checkup".into(),
            aggregate_id: "b1".into(),
            version,
            correlation_id: "b1".into(),
            causation_id: "r1".into(),
            occurred_at: Utc::now(),
            data,
        }
    }

    fn booked() -> EventEnvelope {
        event(
            "e1",
            "CheckupBooked",
            1,
            serde_json::json!({
                "patient_sub": "p1", "date": "2027-06-01", "package": "basic", "price": 100000,
                "payment_id": "pay1", "contact": {"name": "홍길동", "phone": "+821012345678", "locale": "ko"}
            }),
        )
    }

    async fn claimed(p: &Platform, event_id: &str, since: Option<chrono::DateTime<Utc>>) {
        let state = serde_json::to_value(SmsRecord::Sending {
            to: "+8210****5678".into(),
            since,
        })
        .expect("json");
        let write = AggregateWrite {
            key: sms_record_key(event_id),
            expected_version: 0,
            new_version: 1,
            state,
        };
        p.store
            .commit(Transaction {
                writes: vec![write],
                ..Default::default()
            })
            .await
            .expect("claimed");
    }

    #[tokio::test]
    async fn a_duplicate_that_finds_a_fresh_claim_waits_and_one_that_finds_an_old_claim_is_dead_lettered() {
        let (p, sms) = platform();
        claimed(&p, "e1", Some(Utc::now())).await;
        assert!(matches!(
            dispatch(&p, "sms-notifier", &booked()).await,
            Err(ConsumerError::Retryable(_))
        ));

        let (p, _) = platform();
        claimed(&p, "e1", Some(Utc::now() - chrono::Duration::hours(1))).await;
        assert!(matches!(
            dispatch(&p, "sms-notifier", &booked()).await,
            Err(ConsumerError::Permanent(_))
        ));

        let (p, _) = platform();
        claimed(&p, "e1", None).await;
        assert!(matches!(
            dispatch(&p, "sms-notifier", &booked()).await,
            Err(ConsumerError::Permanent(_))
        ));
        assert!(sms.sent().is_empty(), "a claim is never sent again");
    }

    #[tokio::test]
    async fn a_duplicate_that_loses_the_race_on_a_counter_is_skipped_not_dead_lettered() {
        let (p, _) = platform();
        let slot = "checkup#2027-06-01#basic".to_owned();
        let take = Transaction {
            counters: vec![CounterMove {
                key: slot.clone(),
                delta: 1,
                limit: 10,
            }],
            ..Default::default()
        };
        p.store.commit(take).await.expect("a place taken");
        let cancelled = event("e9", "CheckupCancelled", 2, serde_json::json!({}));
        let release = || Transaction {
            counters: vec![CounterMove {
                key: slot.clone(),
                delta: -1,
                limit: i64::MAX,
            }],
            processed: mark("availability-release", &cancelled),
            ..Default::default()
        };
        let point = faults::AVAILABILITY_RELEASE_AFTER_WRITE;
        assert_eq!(commit_once(&p, point, release()).await, Ok(Handled::Applied));
        assert_eq!(commit_once(&p, point, release()).await, Ok(Handled::Skipped));
        assert_eq!(p.store.counter(&slot).await, Ok(0));
    }

    #[cfg(feature = "failpoints")]
    #[tokio::test]
    async fn a_booking_sms_left_in_doubt_does_not_silence_the_later_ones() {
        let (p, sms) = platform();
        p.faults.arm(faults::SMS_BEFORE_SEND, crate::app::Effect::Crash, Some(1));
        assert!(dispatch(&p, "sms-notifier", &booked()).await.is_err());
        let confirmed = event("e2", "CheckupConfirmed", 2, serde_json::json!({}));
        assert_eq!(dispatch(&p, "sms-notifier", &confirmed).await, Ok(Handled::Applied));
        assert_eq!(sms.sent().len(), 1);
    }
}
