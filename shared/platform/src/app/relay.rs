//! The outbox relay: publish a command's events right after its commit, and sweep for
//! events whose publish was interrupted (a crash, a bus outage, a partial failure).

use super::Platform;
use crate::events::EventEnvelope;

/// What a publish or sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Events published and marked.
    pub published: usize,
    /// Events left in the outbox for the next sweep.
    pub failed: usize,
}

/// Publishes events and marks the accepted ones; failures stay in the outbox.
pub async fn publish(p: &Platform, events: &[EventEnvelope]) -> RelayReport {
    if events.is_empty() {
        return RelayReport::default();
    }
    let outcome = p.publisher.publish(events).await;
    for (id, reason) in &outcome.failed {
        tracing::warn!(event_id = %id, reason = %reason, "publish failed; the sweeper will retry");
    }
    let published: Vec<EventEnvelope> = events.iter().filter(|e| outcome.published.contains(&e.id)).cloned().collect();
    if !published.is_empty()
        && let Err(e) = p.outbox.mark_published(&published).await
    {
        // Unmarked events are published again by the sweeper; consumers dedup on id.
        tracing::warn!(error = %e, "could not mark events published");
    }
    RelayReport {
        published: outcome.published.len(),
        failed: outcome.failed.len(),
    }
}

/// Republishes outbox events older than `grace` that were never marked published.
pub async fn sweep(p: &Platform, grace: std::time::Duration) -> Result<RelayReport, super::AppError> {
    let before = p.clock.now() - chrono::Duration::from_std(grace).unwrap_or_else(|_| chrono::Duration::zero());
    let mut report = RelayReport::default();
    loop {
        let batch = p.outbox.unpublished(before, 100).await?;
        if batch.is_empty() {
            break;
        }
        let r = publish(p, &batch).await;
        report.published += r.published;
        report.failed += r.failed;
        if r.published == 0 || batch.len() < 100 {
            break;
        }
    }
    if report.published + report.failed > 0 {
        tracing::info!(published = report.published, failed = report.failed, "outbox swept");
    }
    Ok(report)
}
