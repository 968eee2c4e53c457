//! The check-up saga's own consumers: the centre's work list, and the place given back when a
//! booking ends (the payment context's `refund` gives the money back). Each is idempotent
//! on the event id.

use super::centre::{self, Reservation};
use super::domain::{self as checkup, Booking};
use super::{availability, faults};
use crate::app::Platform;
use crate::app::command::{self, Work};
use crate::app::consumers::{ConsumerError, ConsumerFuture, Handled, commit_once, mark};
use crate::domain::Aggregate;
use crate::events::EventEnvelope;
use crate::ports::{CounterMove, Transaction};

/// `centre-worklist`'s handler.
pub fn centre_worklist<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(worklist(p, event))
}

/// `availability-release`'s handler.
pub fn availability_release<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(release(p, event))
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
    let booking = command::load::<Booking>(p, &event.aggregate_id).await?.state;
    booking
        .map(Some)
        .ok_or_else(|| ConsumerError::Retryable(format!("booking {} not found yet", event.aggregate_id)))
}

/// Puts a booking on the centre's work list; withdraws a cancelled one.
async fn worklist(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    const NAME: &str = faults::CENTRE_WORKLIST;
    let command = match event.decode::<checkup::Event>()? {
        checkup::Event::CheckupBooked { .. } => centre::Command::Receive,
        checkup::Event::CheckupCancelled {} => centre::Command::Withdraw,
        _ => return Ok(Handled::Skipped),
    };
    if p.store.is_processed(NAME, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let reservation = command::load::<Reservation>(p, &event.aggregate_id).await?;
    // A refusal by the domain is permanent: decided here, not through the runner's errors.
    let events = Reservation::decide(reservation.state.as_ref(), command)?;
    let mut work = Work::new(p, event.caused());
    work.stage(reservation, &events)?;
    let mut tx = work.into_transaction();
    tx.processed = mark(NAME, event);
    p.faults.check(faults::CENTRE_WORKLIST_BEFORE_WRITE).await?;
    commit_once(p, faults::CENTRE_WORKLIST_AFTER_WRITE, tx).await
}

/// Gives the place of a cancelled or rejected booking back, once.
async fn release(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    const NAME: &str = faults::AVAILABILITY_RELEASE;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::checkup::test_support::{event, platform};

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
        assert!(crate::catalog().failure_points.iter().any(|p| p == point));
        assert_eq!(commit_once(&p, point, release()).await, Ok(Handled::Applied));
        assert_eq!(commit_once(&p, point, release()).await, Ok(Handled::Skipped));
        assert_eq!(p.store.counter(&slot).await, Ok(0));
    }
}
