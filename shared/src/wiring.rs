//! Builds a `Platform` from its adapters, once per process, and adapts the use cases to
//! the Lambda event shapes. Function `main`s call only this.

use std::path::Path;
use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;

use crate::adapters::embedded::{Embedded, SqliteBus, SqliteSmsOutbox};
use crate::adapters::resilient::ResilientGateway;
use crate::adapters::sandbox::SandboxGateway;
use crate::app::consumers::{self, ConsumerError, Handled};
use crate::app::{Faults, Platform};
use crate::config::{Config, ConfigError};
use crate::events::EventEnvelope;
use crate::ports::{StoreError, SystemClock, UlidIds};
use crate::topology;

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A required variable is missing.
    #[error("configuration variable {0} is required")]
    Missing(&'static str),
}

/// The embedded adapters behind a platform, for the loops that drive them.
#[derive(Debug, Clone)]
pub struct EmbeddedParts {
    /// The database.
    pub db: Embedded,
    /// The local bus.
    pub bus: SqliteBus,
    /// The SMS outbox.
    pub sms: SqliteSmsOutbox,
    /// The sandbox payment provider.
    pub sandbox: SandboxGateway,
}

/// A platform on the embedded (SQLite) adapters and the sandbox payment provider.
pub fn embedded(db: Embedded, config: Config, faults: Faults) -> (Platform, EmbeddedParts) {
    let bus = SqliteBus::new(db.clone(), topology::RULES.to_vec());
    let sms = SqliteSmsOutbox::new(db.clone());
    let sandbox = SandboxGateway::new(config.sandbox_slow);
    let platform = Platform {
        store: Arc::new(db.clone()),
        outbox: Arc::new(db.clone()),
        views: Arc::new(db.clone()),
        publisher: Arc::new(bus.clone()),
        sms: Arc::new(sms.clone()),
        payments: Arc::new(ResilientGateway::new(Arc::new(sandbox.clone()), config.payment)),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidIds),
        config,
        faults,
    };
    (platform, EmbeddedParts { db, bus, sms, sandbox })
}

/// The platform a Lambda function runs on, from its environment: the embedded store at
/// `CLINICFLOW_SQLITE_PATH` (for `cargo lambda watch` and single-host deployments).
pub fn from_env() -> Result<Platform, InitError> {
    let config = Config::from_env()?;
    let path = std::env::var("CLINICFLOW_SQLITE_PATH").map_err(|_| InitError::Missing("CLINICFLOW_SQLITE_PATH"))?;
    let db = Embedded::open(Path::new(&path))?;
    Ok(embedded(db, config, Faults::none()).0)
}

/// Handles one EventBridge delivery for consumer `target`. Any failure is returned as an
/// error: a retryable one so that Lambda retries it, a permanent one so that it reaches the
/// target's dead-letter queue instead of vanishing (as the local bus dead-letters it).
pub async fn handle_eventbridge(
    platform: &Platform,
    target: &str,
    event: LambdaEvent<EventBridgeEvent<EventEnvelope>>,
) -> Result<(), lambda_runtime::Error> {
    let envelope = event.payload.detail;
    match consumers::dispatch(platform, target, &envelope).await {
        Ok(Handled::Applied | Handled::Skipped) => Ok(()),
        Err(e @ ConsumerError::Permanent(_)) => {
            tracing::error!(event_id = %envelope.id, error = %e, "permanent failure: bound for the dead-letter queue");
            Err(e.into())
        }
        Err(e @ ConsumerError::Retryable(_)) => Err(e.into()),
    }
}
