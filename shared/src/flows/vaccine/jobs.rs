//! The vaccine flow's scheduled jobs: holds that ended pass their dose on, and the
//! day-before reminders. Both are idempotent: a run that repeats, or comes late, does
//! nothing twice.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveTime, Utc};

use super::commands::{follow_slot, hold_until};
use super::reservation::{self, Reservation};
use super::slot::{self, Slot};
use super::view::{HELD, ReservationView};
use super::{faults, queries};
use crate::app::command::{self, Accepted, Decided, Work};
use crate::app::{AppError, Platform};
use crate::domain::kst;
use crate::ports::ViewQuery;
use crate::topology::JobFuture;

/// `vaccine-offer-expiry`'s run.
pub fn offer_expiry(p: &Platform, at: DateTime<Utc>) -> JobFuture<'_> {
    Box::pin(lapse_holds(p, at))
}

/// `vaccine-reminder`'s run.
pub fn reminder(p: &Platform, at: DateTime<Utc>) -> JobFuture<'_> {
    Box::pin(remind(p, at))
}

/// A job's step answers how many cases it moved.
fn moved(n: usize) -> Accepted {
    Accepted {
        status: 200,
        body: serde_json::json!(n),
        location: None,
    }
}

fn count(a: &Accepted) -> usize {
    a.body.as_u64().unwrap_or(0) as usize
}

/// Ends every hold that ended by `at`: on each slot that holds such a dose, the hold lapses
/// and the dose goes to the next in line or back to the pool, in one transaction per slot.
/// Returns the holds ended.
async fn lapse_holds(p: &Platform, at: DateTime<Utc>) -> Result<usize, AppError> {
    let held = queries::all::<ReservationView>(
        p,
        ViewQuery {
            queue: Some(HELD.to_owned()),
            ..Default::default()
        },
    )
    .await?;
    let slots: BTreeSet<String> = held
        .into_iter()
        .filter(|v| v.offer_expires_at.is_some_and(|e| e <= at))
        .filter_map(|v| v.slot_id)
        .collect();
    let mut ended = 0;
    for slot_id in slots {
        let request = format!("{}@{}", faults::OFFER_EXPIRY, at.timestamp());
        let done = command::run(p, faults::OFFER_EXPIRY, None, || async {
            let loaded = command::load::<Slot>(p, &slot_id).await?;
            let Some(state) = loaded.state.as_ref() else {
                return Err(AppError::NotFound);
            };
            let events = <Slot as crate::domain::Aggregate>::decide(
                Some(state),
                slot::Command::Lapse {
                    now: at,
                    expires_at: hold_until(p, at),
                },
            )?;
            let lapsed = events.iter().filter(|e| matches!(e, slot::Event::SlotHoldLapsed { .. })).count();
            let mut work = Work::for_request(p, &slot_id, &request);
            work.stage(loaded, &events)?;
            follow_slot(p, &mut work, &slot_id, &events).await?;
            Ok(Decided {
                work,
                accepted: moved(lapsed),
            })
        })
        .await?;
        ended += count(&done);
    }
    Ok(ended)
}

/// The reminders due at `at`: from 09:00 in Korea, the day before each booked vaccination,
/// one per reservation not reminded yet (a cancelled one is not booked). Returns the
/// reminders sent.
async fn remind(p: &Platform, at: DateTime<Utc>) -> Result<usize, AppError> {
    let local = at.with_timezone(&kst());
    let nine = NaiveTime::from_hms_opt(9, 0, 0).ok_or_else(|| AppError::Internal("09:00 is a time".into()))?;
    if local.time() < nine {
        return Ok(0);
    }
    let tomorrow = local.date_naive() + Duration::days(1);
    let due = queries::all::<ReservationView>(
        p,
        ViewQuery {
            date: Some(tomorrow.to_string()),
            status: Some(reservation::ReservationStatus::Booked.as_str().to_owned()),
            ..Default::default()
        },
    )
    .await?;
    let mut sent = 0;
    let request = format!("{}@{tomorrow}", faults::REMINDER);
    for v in due {
        let id = v.id.clone();
        let done = command::run(p, faults::REMINDER, None, || async {
            let loaded = command::load::<Reservation>(p, &id).await?;
            let mut work = Work::for_request(p, &id, &request);
            let before = work.events().len();
            work.decide(loaded, reservation::Command::Remind)?;
            let reminded = work.events().len() > before;
            Ok(Decided {
                work,
                accepted: moved(usize::from(reminded)),
            })
        })
        .await?;
        sent += count(&done);
    }
    Ok(sent)
}
