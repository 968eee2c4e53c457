//! Slot management's consumers: the dose a cancellation gives back (to the first in line, or
//! to the pool), and the fan-out of a new slot to its subscribers. Each is idempotent on the
//! event id: its effect and its dedup mark are one transaction.

use super::alert;
use super::commands::{ANNOUNCE_BATCH, follow_slot, hold_until};
use super::config::VaccineConfig;
use super::reservation;
use super::slot::{self, Slot};
use super::view::AlertView;
use super::{faults, queries};
use crate::app::Platform;
use crate::app::command::{self, Work};
use crate::app::consumers::{ConsumerError, ConsumerFuture, Handled, commit_once, mark};
use crate::domain::Aggregate;
use crate::events::EventEnvelope;
use crate::ports::ViewQuery;

/// `vaccine-dose-return`'s handler.
pub fn dose_return<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(give_back(p, event))
}

/// `vaccine-slot-notice`'s handler.
pub fn slot_notice<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(announce(p, event))
}

/// A cancelled reservation's dose goes to the first in line (held for them) or back to its
/// shard's counter; a waiting entry that left is taken off the line. Once per event.
async fn give_back(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    const NAME: &str = faults::DOSE_RETURN;
    let reservation::Event::ReservationCancelled { slot_id, shard } = event.decode::<reservation::Event>()? else {
        return Ok(Handled::Skipped);
    };
    if p.store.is_processed(NAME, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let loaded = command::load::<Slot>(p, &slot_id).await?;
    let Some(state) = loaded.state.as_ref() else {
        return Err(ConsumerError::Permanent(format!(
            "slot {slot_id} of a cancelled reservation does not exist"
        )));
    };
    let expires_at = hold_until(p, p.clock.now());
    let entry = event.aggregate_id.clone();
    let waits = state.waiting.iter().any(|w| w.entry_id == entry) || state.held.iter().any(|h| h.entry_id == entry);
    let command = match (waits, shard) {
        // A waiting entry (with the dose held for it, if any) leaves the line.
        (true, _) => slot::Command::Leave {
            entry_id: entry,
            expires_at,
        },
        (false, Some(shard)) => slot::Command::GiveBack { shard, expires_at },
        (false, None) => {
            let tx = crate::ports::Transaction {
                processed: mark(NAME, event),
                ..Default::default()
            };
            return commit_once(p, &crate::app::faults::after_write(NAME), tx).await;
        }
    };
    let events = Slot::decide(Some(state), command)?;
    let mut work = Work::new(p, event.caused());
    work.on_case(&slot_id);
    work.stage(loaded, &events)?;
    follow_slot(p, &mut work, &slot_id, &events).await?;
    let mut tx = work.into_transaction();
    tx.processed = mark(NAME, event);
    p.faults.check(&crate::app::faults::before_write(NAME)).await?;
    commit_once(p, &crate::app::faults::after_write(NAME), tx).await
}

/// Tells a new slot's subscribers: those whose hospital and vaccine match (or who left
/// either open), read from the subscriptions' view, in batches of [`ANNOUNCE_BATCH`] per
/// `SlotAnnounced` event, each of which the SMS notifier sends one SMS per subscriber.
async fn announce(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    const NAME: &str = faults::SLOT_NOTICE;
    let slot::Event::SlotOpened { hospital, vaccine, .. } = event.decode::<slot::Event>()? else {
        return Ok(Handled::Skipped);
    };
    if p.store.is_processed(NAME, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let mut subscribers: Vec<String> = Vec::new();
    for queue in [
        alert::match_key(Some(&hospital), Some(&vaccine)),
        alert::match_key(Some(&hospital), None),
        alert::match_key(None, Some(&vaccine)),
        alert::match_key(None, None),
    ] {
        let query = ViewQuery {
            queue: Some(queue),
            status: Some("active".into()),
            ..Default::default()
        };
        for s in queries::all::<AlertView>(p, query).await? {
            if s.active && !subscribers.contains(&s.id) {
                subscribers.push(s.id);
            }
        }
    }
    let loaded = command::load::<Slot>(p, &event.aggregate_id).await?;
    let batches: Vec<Vec<String>> = subscribers.chunks(ANNOUNCE_BATCH).map(<[String]>::to_vec).collect();
    let hospital_name = p.config.slice::<VaccineConfig>().hospital_name(&hospital);
    let events = Slot::decide(loaded.state.as_ref(), slot::Command::Announce { batches, hospital_name })?;
    let mut work = Work::new(p, event.caused());
    work.stage(loaded, &events)?;
    let mut tx = work.into_transaction();
    tx.processed = mark(NAME, event);
    p.faults.check(&crate::app::faults::before_write(NAME)).await?;
    let handled = commit_once(p, &crate::app::faults::after_write(NAME), tx).await?;
    tracing::info!(slot_id = %event.aggregate_id, subscribers = subscribers.len(), "slot announced");
    Ok(handled)
}
