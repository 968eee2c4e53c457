//! The local stack's background loops: the bus's delivery worker (retries with backoff,
//! dead letters), the change feed into the projector, and the outbox sweeper.

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
        tokio::spawn(sweep(p, sweep_every, stop)),
    ]
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
            // The position moves once per batch, like a stream's checkpoint, and as far as the
            // last record done when the batch stops early: a record projected twice is
            // harmless (the projector ignores what the view has seen), one skipped is not.
            let mut done = start;
            let mut failed = None;
            for (next, event) in batch {
                match projector::project(&p, &event).await {
                    Ok(_) => {}
                    // Passing trouble: keep the position and try the same record again.
                    Err(e @ AppError::Unavailable { .. }) => {
                        failed = Some(anyhow::anyhow!(e));
                        break;
                    }
                    // A record that can never project must not stop the feed behind it (a
                    // stream's bisect-on-error and failure destination do the same in AWS).
                    Err(e) => {
                        tracing::error!(event_id = %event.id, error = %e, "poison change record parked in the dead-letter queue");
                        if let Err(park) = parts.bus.park(PROJECTOR_CHECKPOINT, &event, &e.to_string()).await {
                            failed = Some(anyhow::anyhow!(park));
                            break;
                        }
                    }
                }
                done = next;
            }
            if done != start {
                parts.db.set_checkpoint(PROJECTOR_CHECKPOINT, done).await?;
            }
            match failed {
                Some(e) => Err(e),
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
