//! What every consumer shares: its error (retryable or not), the dispatch of an event to
//! the consumer the catalog names, and the commit that makes a consumer idempotent on the
//! event id (a dedup mark written in the same transaction as its effect).

use std::future::Future;
use std::pin::Pin;

use tracing::Instrument;

use super::faults::Injected;
use super::{AppError, Platform, relay};
use crate::domain::DomainError;
use crate::events::EventEnvelope;
use crate::ports::{ProcessedMark, StoreError, Transaction};

/// A consumer's handler, as a slice registers it in the catalog: the platform, the name it
/// is registered under (its dedup marks and failure points), and the event.
pub type ConsumerFn = for<'a> fn(&'a Platform, &'a str, &'a EventEnvelope) -> ConsumerFuture<'a>;

/// What a consumer's handler returns.
pub type ConsumerFuture<'a> = Pin<Box<dyn Future<Output = Result<Handled, ConsumerError>> + Send + 'a>>;

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

/// How a [`ConsumerError`] from a lost version race begins.
const LOST_RACE: &str = "lost a race";

/// Times [`dispatch`] runs a consumer that lost a version race, deciding again on what the
/// winner left, before the delivery is failed and redelivered.
pub const CONSUMER_RACE_RETRIES: usize = 8;

impl ConsumerError {
    /// The consumer's transaction lost a version race (another write changed an aggregate it
    /// read): nothing was written, and deciding again at once may succeed.
    pub fn lost_race(&self) -> bool {
        matches!(self, Self::Retryable(why) if why.starts_with(LOST_RACE))
    }
}

impl From<StoreError> for ConsumerError {
    fn from(e: StoreError) -> Self {
        if matches!(e, StoreError::VersionConflict(_)) {
            Self::Retryable(format!("{LOST_RACE}: {e}"))
        } else if e.is_retryable() {
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

/// Runs the consumer `target` of the catalog on one event. An armed failure point named
/// after the consumer makes it fail on entry with a retryable error.
pub async fn dispatch(p: &Platform, target: &str, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let Some(handle) = p.catalog.consumer(target) else {
        return Err(ConsumerError::Permanent(format!("no consumer named {target}")));
    };
    p.faults.check(target).await?;
    let span = tracing::info_span!("consume", consumer = target, event_id = %event.id, event_type = %event.event_type, correlation_id = %event.correlation_id);
    async {
        // A lost version race (consumers of one aggregate racing, e.g. a rush of
        // cancellations giving doses back to one slot) is decided again here rather than
        // spending the delivery's attempts: a handler is idempotent, and the race wrote nothing.
        let mut result = handle(p, target, event).await;
        for _ in 1..CONSUMER_RACE_RETRIES {
            if !result.as_ref().is_err_and(ConsumerError::lost_race) {
                break;
            }
            result = handle(p, target, event).await;
        }
        match &result {
            Ok(h) => tracing::debug!(?h, "event handled"),
            Err(e) => tracing::warn!(error = %e, "event failed"),
        }
        result
    }
    .instrument(span)
    .await
}

/// The dedup mark of `consumer` for `event`, for its transaction.
pub fn mark(consumer: &str, event: &EventEnvelope) -> Option<ProcessedMark> {
    Some(ProcessedMark {
        consumer: consumer.to_owned(),
        event_id: event.id.clone(),
    })
}

/// Commits a consumer's transaction; a dedup-mark collision means a concurrent or earlier
/// delivery already did the work. `after_write` is the consumer's failure point between
/// its commit and its publish.
pub async fn commit_once(p: &Platform, after_write: &str, tx: Transaction) -> Result<Handled, ConsumerError> {
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
