//! The platform's use-case machinery, for every slice: the command runner (load → decide →
//! commit with the outbox → publish), the consumers' dispatch and idempotent commit, the
//! SMS notifier, the status-view projector, list queries, the outbox relay and sweeper.

pub mod command;
pub mod consumers;
pub mod faults;
pub mod notifier;
pub mod projector;
pub mod queries;
pub mod relay;
pub mod resilience;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::resilient::ResilientGateway;
use crate::config::Config;
use crate::domain::{DomainError, FieldError};
use crate::ports::{AggregateKey, AggregateStore, Clock, Ids, Outbox, PaymentError, Publisher, SmsSender, StoreError, ViewStore};
use crate::topology::Catalog;

pub use faults::{Effect, Faults, Injected};

/// The ports a use case needs, built once per process.
#[derive(Clone)]
pub struct Platform {
    /// What the platform runs: every slice's functions, routes, consumers and views.
    pub catalog: &'static Catalog,
    /// Aggregates, counters, dedup marks, idempotent responses.
    pub store: Arc<dyn AggregateStore>,
    /// The outbox's read side.
    pub outbox: Arc<dyn Outbox>,
    /// Status views.
    pub views: Arc<dyn ViewStore>,
    /// The event bus.
    pub publisher: Arc<dyn Publisher>,
    /// SMS channel.
    pub sms: Arc<dyn SmsSender>,
    /// Payment provider behind timeout and circuit breaker.
    pub payments: Arc<ResilientGateway>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn Ids>,
    /// Configuration.
    pub config: Config,
    /// Injected failures (none in production).
    pub faults: Faults,
    /// What slices keep on this instance across requests (a gate on work in flight).
    pub state: state::SliceState,
    /// The key that seals documents (a certificate), for the functions that seal or
    /// verify them: a key file locally, a KMS key on AWS; `None` elsewhere.
    pub signer: Option<Arc<dyn crate::sealing::Signer>>,
}

impl Platform {
    /// The platform with `signer` as its signing key.
    #[must_use]
    pub fn with_signer(self, signer: Arc<dyn crate::sealing::Signer>) -> Self {
        Self {
            signer: Some(signer),
            ..self
        }
    }

    /// The signing key, or an internal error: a function that seals documents without a
    /// key is a deployment fault, reported as such and never as the client's.
    pub fn signer(&self) -> Result<&dyn crate::sealing::Signer, AppError> {
        self.signer
            .as_deref()
            .ok_or_else(|| AppError::Internal("this function has no signing key (SIGNING_KEY_ARN)".into()))
    }
}

impl std::fmt::Debug for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Platform").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Loads a stored state and its version (0 when absent).
pub async fn load<T: serde::de::DeserializeOwned>(p: &Platform, key: &AggregateKey) -> Result<(Option<T>, u64), AppError> {
    match p.store.load(key).await? {
        None => Ok((None, 0)),
        Some(stored) => Ok((Some(serde_json::from_value(stored.state)?), stored.version)),
    }
}

/// Why a use case failed; `http.rs` maps each to one status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppError {
    /// Fields failed validation (422).
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The request could not be read (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// No or bad credentials (401).
    #[error("unauthorized")]
    Unauthorized,
    /// Authenticated, but the role may not do this (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Not found, or not the caller's (404).
    #[error("not found")]
    NotFound,
    /// The state does not allow it, or a concurrent change won (409).
    #[error("{0}")]
    Conflict(String),
    /// What was asked for existed but is over for good (an offer whose hold expired) (410).
    #[error("gone: {0}")]
    Gone(String),
    /// The card was declined (402).
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    /// A dependency is slow, down or shedding load; retry later (503).
    #[error("temporarily unavailable: {reason}")]
    Unavailable {
        /// What is unavailable.
        reason: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// A bug or an injected crash (500); the detail goes to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(fields) => Self::Invalid(fields),
            DomainError::IllegalTransition(why) => Self::Conflict(why),
            DomainError::NotFound => Self::NotFound,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict(_) => Self::Conflict("the case was changed concurrently; reload and retry".into()),
            StoreError::CounterExhausted(_) => Self::Conflict("no places left".into()),
            StoreError::AlreadyProcessed | StoreError::IdempotencyKeyTaken => Self::Conflict(e.to_string()),
            StoreError::Unavailable(reason) => Self::Unavailable {
                reason,
                retry_after: Duration::from_secs(1),
            },
            StoreError::Corrupt(detail) => Self::Internal(detail),
        }
    }
}

impl From<PaymentError> for AppError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::Declined(why) => Self::PaymentDeclined(why),
            PaymentError::Timeout => Self::Unavailable {
                reason: "the payment provider did not answer in time".into(),
                retry_after: Duration::from_secs(5),
            },
            PaymentError::Unavailable(_) => Self::Unavailable {
                reason: "the payment provider is unavailable".into(),
                retry_after: Duration::from_secs(5),
            },
            PaymentError::CircuitOpen { retry_after } => Self::Unavailable {
                reason: "the payment provider is overloaded; please pay again shortly".into(),
                retry_after: retry_after.max(Duration::from_secs(1)),
            },
        }
    }
}

impl From<Injected> for AppError {
    /// A crash is a 500, as a dead process is to API Gateway; a failure is a 503 to retry.
    fn from(e: Injected) -> Self {
        if e.crash {
            Self::Internal(e.to_string())
        } else {
            Self::Unavailable {
                reason: e.to_string(),
                retry_after: Duration::from_millis(100),
            }
        }
    }
}

impl From<serde_json::Error> for AppError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("serialization: {e}"))
    }
}
