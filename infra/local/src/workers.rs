//! The local stack's background loops: the bus's delivery worker (retries with backoff,
//! dead letters), the change feed into the projector, the outbox sweeper, and the slices'
//! scheduled jobs.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clinicflow::app::consumers::{self, ConsumerError};
use clinicflow::app::{AppError, Platform, projector, relay};
use clinicflow::events::EventEnvelope;
use clinicflow::wiring::EmbeddedParts;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The projector's position in the change feed.
pub const PROJECTOR_CHECKPOINT: &str = "status-projector";

/// How the bus delivers.
#[derive(Debug, Clone)]
pub struct BusOptions {
    /// Attempts before a delivery goes to the dead-letter queue.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt.
    pub first_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Deliver every event twice, to prove consumers are idempotent.
    pub duplicate_every_delivery: bool,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            duplicate_every_delivery: false,
        }
    }
}

/// Starts the loops; each stops when `stop` turns true.
pub fn spawn(
    p: Arc<Platform>,
    parts: EmbeddedParts,
    bus: BusOptions,
    sweep_every: Duration,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(deliver(p.clone(), parts.clone(), bus, stop.clone())),
        tokio::spawn(project(p.clone(), parts, stop.clone())),
        tokio::spawn(sweep(p.clone(), sweep_every, stop.clone())),
        tokio::spawn(jobs(p, stop)),
    ]
}

/// Runs every scheduled job of the catalog when its schedule fires (in UTC, as on AWS),
/// each at the time it fired.
pub async fn jobs(p: Arc<Platform>, mut stop: watch::Receiver<bool>) {
    let mut next: Vec<(clinicflow::topology::Job, clinicflow::schedule::Schedule, chrono::DateTime<Utc>)> = Vec::new();
    for job in &p.catalog.jobs {
        let expression = match p.catalog.function(job.function).map(|f| f.trigger) {
            Some(clinicflow::topology::Trigger::Schedule(e)) => e,
            _ => continue,
        };
        match clinicflow::schedule::Schedule::parse(expression) {
            Ok(schedule) => next.push((*job, schedule, schedule.next_after(Utc::now()))),
            Err(e) => tracing::error!(job = job.function, error = %e, "job not scheduled"),
        }
    }
    loop {
        let Some(soonest) = next.iter().map(|(_, _, at)| *at).min() else {
            let _ = stop.wait_for(|s| *s).await;
            return;
        };
        let until = (soonest - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if !wait(&mut stop, std::future::pending(), until).await {
            return;
        }
        let now = Utc::now();
        for (job, schedule, at) in &mut next {
            if *at <= now {
                match (job.run)(&p, *at).await {
                    Ok(moved) => tracing::info!(job = job.function, moved, "scheduled run done"),
                    Err(e) => tracing::warn!(job = job.function, error = %e, "scheduled run failed"),
                }
                *at = schedule.next_after(now);
            }
        }
    }
}

async fn wait(stop: &mut watch::Receiver<bool>, notified: impl std::future::Future<Output = ()>, at_most: Duration) -> bool {
    tokio::select! {
        _ = stop.wait_for(|s| *s) => false,
        _ = notified => true,
        _ = tokio::time::sleep(at_most) => true,
    }
}

fn backoff(options: &BusOptions, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.min(16));
    options.first_backoff.saturating_mul(factor).min(options.max_backoff)
}

async fn deliver(p: Arc<Platform>, parts: EmbeddedParts, options: BusOptions, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let due = match parts.bus.due(Utc::now(), 32).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "bus queue unreadable");
                vec![]
            }
        };
        if due.is_empty() {
            let until_next = match parts.bus.next_due().await {
                Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(Duration::from_secs(1)),
                _ => Duration::from_secs(1),
            };
            if !wait(&mut stop, parts.db.deliveries.notified(), until_next.max(Duration::from_millis(5))).await {
                return;
            }
            continue;
        }
        let runs = due.into_iter().map(|d| {
            let p = p.clone();
            let parts = parts.clone();
            let options = options.clone();
            async move {
                let mut result = run_target(&p, &d.target, &d.event).await;
                if options.duplicate_every_delivery && result.is_ok() {
                    result = run_target(&p, &d.target, &d.event).await;
                }
                let outcome = match result {
                    Ok(_) => return Some(d.id),
                    Err(ConsumerError::Retryable(why)) if d.attempts + 1 < options.max_attempts => {
                        let at = Utc::now()
                            + chrono::Duration::from_std(backoff(&options, d.attempts)).unwrap_or_else(|_| chrono::Duration::seconds(1));
                        parts.bus.fail(d.id, &why, Some(at)).await
                    }
                    Err(e) => {
                        tracing::error!(target = %d.target, event_id = %d.event.id, error = %e, "delivery dead-lettered");
                        parts.bus.fail(d.id, &e.to_string(), None).await
                    }
                };
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, "could not record a delivery's outcome; it will be delivered again");
                }
                None
            }
        });
        // The batch's successes leave the queue in one transaction; a crash before it only
        // delivers them again, which every consumer absorbs.
        let done: Vec<i64> = futures::future::join_all(runs).await.into_iter().flatten().collect();
        if let Err(e) = parts.bus.complete_all(done).await {
            tracing::warn!(error = %e, "could not record a batch's deliveries; they will be delivered again");
        }
    }
}

/// A queued delivery's target: a consumer, or the projector for a redriven parked record.
async fn run_target(p: &Platform, target: &str, event: &EventEnvelope) -> Result<(), ConsumerError> {
    if target == PROJECTOR_CHECKPOINT {
        return projector::project(p, event).await.map(|_| ()).map_err(ConsumerError::from);
    }
    consumers::dispatch(p, target, event).await.map(|_| ())
}

async fn project(p: Arc<Platform>, parts: EmbeddedParts, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let step = async {
            let start = parts.db.checkpoint(PROJECTOR_CHECKPOINT).await?;
            let batch = parts.db.changes_after(start, 100).await?;
            let n = batch.len();
            // Lanes by case, like a stream's shards by partition key: a case's records stay in
            // order in its lane, and the lanes run side by side.
            let mut lanes: Vec<Vec<(i64, EventEnvelope)>> = vec![Vec::new(); PROJECTOR_LANES];
            let order: Vec<i64> = batch.iter().map(|(seq, _)| *seq).collect();
            for (seq, event) in batch {
                lanes[lane_of(&event.correlation_id)].push((seq, event));
            }
            let runs = lanes.into_iter().map(|lane| project_lane(&p, &parts, lane));
            let failures: Vec<(i64, anyhow::Error)> = futures::future::join_all(runs).await.into_iter().flatten().collect();
            // The position moves once per batch, like a stream's checkpoint, up to the record
            // before the first one that failed: the failed lane resumes there, and what the
            // other lanes did after it is projected again, which the projector ignores (it
            // skips what its view has seen). A record skipped would be lost; one repeated is not.
            let first_failed = failures.iter().map(|(seq, _)| *seq).min();
            let done = match first_failed {
                Some(failed) => order.iter().copied().take_while(|seq| *seq < failed).last().unwrap_or(start),
                None => order.last().copied().unwrap_or(start),
            };
            if done != start {
                parts.db.set_checkpoint(PROJECTOR_CHECKPOINT, done).await?;
            }
            match failures.into_iter().min_by_key(|(seq, _)| *seq) {
                Some((_, e)) => Err(e),
                None => Ok::<usize, anyhow::Error>(n),
            }
        };
        let pause = match step.await {
            Ok(0) => {
                failures = 0;
                Duration::from_secs(1)
            }
            Ok(_) => {
                failures = 0;
                continue;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "projector failed; the record will be retried");
                Duration::from_millis(50u64.saturating_mul(u64::from(failures.min(20))))
            }
        };
        let woken = if failures == 0 {
            wait(&mut stop, parts.db.changes.notified(), pause).await
        } else {
            wait(&mut stop, std::future::pending(), pause).await
        };
        if !woken {
            return;
        }
    }
}

/// How many lanes the projector runs side by side.
const PROJECTOR_LANES: usize = 4;

/// The lane of a case.
fn lane_of(correlation_id: &str) -> usize {
    let hash = correlation_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % PROJECTOR_LANES as u64) as usize
}

/// Projects one lane's records in order; stops at the first that fails for a passing
/// reason and returns its position. A record that can never project is parked in the
/// dead-letter queue and the lane moves on (a stream's bisect-on-error and failure
/// destination do the same in AWS).
async fn project_lane(p: &Platform, parts: &EmbeddedParts, lane: Vec<(i64, EventEnvelope)>) -> Option<(i64, anyhow::Error)> {
    for (seq, event) in lane {
        match projector::project(p, &event).await {
            Ok(_) => {}
            Err(e @ AppError::Unavailable { .. }) => return Some((seq, anyhow::anyhow!(e))),
            Err(e) => {
                tracing::error!(event_id = %event.id, error = %e, "poison change record parked in the dead-letter queue");
                if let Err(park) = parts.bus.park(PROJECTOR_CHECKPOINT, &event, &e.to_string()).await {
                    return Some((seq, anyhow::anyhow!(park)));
                }
            }
        }
    }
    None
}

/// The outbox sweeper: every `every`, republishes what was left unpublished.
pub async fn sweep(p: Arc<Platform>, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        if !wait(&mut stop, std::future::pending(), every).await {
            return;
        }
        if let Err(e) = relay::sweep(&p, p.config.outbox_grace).await {
            tracing::warn!(error = %e, "sweep failed");
        }
    }
}
