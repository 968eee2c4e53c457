//! Builds a `Platform` from its adapters, once per process, and adapts the use cases to
//! the Lambda event shapes. Function `main`s call only this.
//!
//! - [`from_env`] (feature `aws`): the Lambda wiring. Configuration is read and every SDK
//!   client built once, during init; connections are primed so the first request makes no
//!   TLS handshake; a missing or bad variable is an [`InitError`] naming it.
//! - [`embedded`] (feature `embedded`): the SQLite adapters of `clinicflow-local` and tests.

use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::LambdaEvent;

use crate::adapters::resilient::ResilientGateway;
use crate::app::consumers::{self, ConsumerError, Handled};
use crate::app::{Faults, Platform};
use crate::config::{Config, ConfigError};
use crate::events::EventEnvelope;
use crate::ports::{AggregateStore, Outbox, PaymentGateway, Publisher, SmsSender, StoreError, SystemClock, UlidIds, ViewStore};
use crate::topology::Catalog;

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
    Missing(String),
    /// The function needs an adapter its build left out.
    #[error("{0}")]
    Unsupported(String),
}

/// A platform on one store (aggregates, outbox and views), a bus, an SMS channel and a
/// payment provider behind the breaker, on the system clock and ULIDs.
pub fn platform<S>(
    catalog: &'static Catalog,
    store: S,
    publisher: Arc<dyn Publisher>,
    sms: Arc<dyn SmsSender>,
    provider: Arc<dyn PaymentGateway>,
    config: Config,
    faults: Faults,
) -> Platform
where
    S: AggregateStore + Outbox + ViewStore + Clone + 'static,
{
    Platform {
        catalog,
        store: Arc::new(store.clone()),
        outbox: Arc::new(store.clone()),
        views: Arc::new(store),
        publisher,
        sms,
        payments: Arc::new(ResilientGateway::new(provider, config.payment)),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UlidIds),
        config,
        faults,
        state: crate::app::state::SliceState::default(),
        signer: None,
    }
}

#[cfg(feature = "embedded")]
pub use embedded_wiring::{EmbeddedParts, embedded};

#[cfg(feature = "embedded")]
mod embedded_wiring {
    use std::sync::Arc;

    use crate::adapters::embedded::{Embedded, SqliteBus, SqliteSmsOutbox};
    use crate::adapters::sandbox::SandboxGateway;
    use crate::app::{Faults, Platform};
    use crate::config::Config;
    use crate::topology::Catalog;

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
    pub fn embedded(catalog: &'static Catalog, db: Embedded, config: Config, faults: Faults) -> (Platform, EmbeddedParts) {
        let bus = SqliteBus::new(db.clone(), catalog.rules.clone());
        let sms = SqliteSmsOutbox::new(db.clone());
        let sandbox = SandboxGateway::new(config.sandbox_slow);
        let platform = super::platform(
            catalog,
            db.clone(),
            Arc::new(bus.clone()),
            Arc::new(sms.clone()),
            Arc::new(sandbox.clone()),
            config,
            faults,
        );
        (platform, EmbeddedParts { db, bus, sms, sandbox })
    }
}

#[cfg(feature = "aws")]
pub use aws_wiring::{
    AwsParts, AwsSettings, ChangeRecord, SignerFactory, SweepInput, aws, from_env, handle_job, handle_stream, handle_sweep, parts_from_env,
    project_changes,
};

#[cfg(feature = "aws")]
mod aws_wiring {
    use std::sync::Arc;

    use aws_lambda_events::dynamodb::Event as DynamoEvent;
    use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
    use lambda_runtime::LambdaEvent;

    use super::InitError;
    use crate::adapters::aws::{AwsTarget, sdk_config};
    use crate::adapters::dynamodb::{DynamoStore, DynamoTables, outbox_envelope};
    use crate::adapters::eventbridge::EventBridgePublisher;
    use crate::adapters::sandbox::{self, SandboxGateway, StoredSandbox};
    use crate::adapters::sns::{SmsSettings, SnsSmsSender};
    use crate::app::notifier::CONTACTS;
    use crate::app::{Faults, Platform, projector};
    use crate::config::Config;
    use crate::topology::{self, Catalog};

    /// Where a deployment's resources are, from the environment that SAM or CDK sets.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AwsSettings {
        /// The tables.
        pub tables: DynamoTables,
        /// The event bus (`EVENT_BUS_NAME`).
        pub bus: String,
        /// SMS origination (`SMS_SENDER_ID`, `SMS_ORIGINATION_NUMBER`, both optional).
        pub sms: SmsSettings,
        /// The signing key's ARN (`SIGNING_KEY_ARN`), for a function that seals or verifies.
        pub signing_key: Option<String>,
    }

    impl AwsSettings {
        /// The variable holding the table of `context`: `TABLE_CHECKUP`, `TABLE_VIEWS`, ….
        pub fn table_variable(context: &str) -> String {
            topology::table_variable(context)
        }

        /// Reads the settings of `function` through `lookup`: the variables of its
        /// environment ([`Catalog::environment_of`]: the tables it is granted, the bus if it
        /// publishes), each required; a missing one is an error naming it. A table outside
        /// its environment stays unnamed, and a call on it fails naming the variable.
        pub fn from_lookup(catalog: &Catalog, function: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InitError> {
            let required = |name: String| -> Result<String, InitError> {
                lookup(&name).filter(|v| !v.trim().is_empty()).ok_or(InitError::Missing(name))
            };
            let environment = catalog.function(function).map(|f| catalog.environment_of(f)).unwrap_or_default();
            let mut tables = DynamoTables::default();
            let mut bus = String::new();
            let mut signing_key = None;
            for (variable, resource) in environment {
                match resource {
                    topology::Resource::Table(table) => tables.name(table, required(variable)?),
                    topology::Resource::Bus => bus = required(variable)?,
                    topology::Resource::SigningKey(_) => signing_key = Some(required(variable)?),
                    _ => {}
                }
            }
            Ok(Self {
                tables,
                bus,
                signing_key,
                sms: SmsSettings {
                    sender_id: lookup("SMS_SENDER_ID").filter(|v| !v.is_empty()),
                    origination_number: lookup("SMS_ORIGINATION_NUMBER").filter(|v| !v.is_empty()),
                },
            })
        }

        /// Names derived from one prefix (`PREFIX-checkup`, …, `PREFIX-bus`), for the local
        /// runtime and tests against an emulator.
        pub fn prefixed(catalog: &Catalog, prefix: &str) -> Self {
            let contexts = catalog
                .context_tables()
                .chain([CONTACTS])
                .map(|c| (c, format!("{prefix}-{c}")))
                .collect();
            Self {
                tables: DynamoTables {
                    contexts,
                    views: format!("{prefix}-views"),
                    processed: format!("{prefix}-processed"),
                },
                bus: format!("{prefix}-bus"),
                sms: SmsSettings::default(),
                signing_key: None,
            }
        }
    }

    /// The AWS adapters behind a platform, for the runtimes that drive them.
    #[derive(Debug, Clone)]
    pub struct AwsParts {
        /// The SDK configuration every client was built from.
        pub sdk: aws_config::SdkConfig,
        /// The store (aggregates, outbox, views).
        pub store: DynamoStore,
        /// The publisher.
        pub publisher: EventBridgePublisher,
        /// The SMS sender.
        pub sms: SnsSmsSender,
        /// An in-memory sandbox payment provider, for a runtime that stands in for the
        /// provider itself (the local runtime); the platform's own keeps its ledger in the
        /// store.
        pub sandbox: SandboxGateway,
        /// The settings.
        pub settings: AwsSettings,
    }

    /// A platform on DynamoDB, EventBridge and SNS, with clients built once from `sdk`. Its
    /// sandbox payment provider keeps its ledger in the payment context's table, so that a
    /// charge one function takes can be voided or refunded by another.
    pub fn aws(
        catalog: &'static Catalog,
        sdk: &aws_config::SdkConfig,
        settings: AwsSettings,
        config: Config,
        faults: Faults,
    ) -> (Platform, AwsParts) {
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), settings.tables.clone());
        // The publisher retries failed entries and failed calls itself; SDK retries under it
        // would multiply the attempts (and a command's wait after its commit) by three.
        let events = aws_sdk_eventbridge::config::Builder::from(sdk)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::from_conf(events), settings.bus.clone());
        let sms = SnsSmsSender::new(aws_sdk_sns::Client::new(sdk), settings.sms.clone());
        let sandbox = SandboxGateway::new(config.sandbox_slow);
        let ledger = StoredSandbox::new(Arc::new(store.clone()), sandbox::LEDGER_CONTEXT, config.sandbox_slow);
        let platform = super::platform(
            catalog,
            store.clone(),
            Arc::new(publisher.clone()),
            Arc::new(sms.clone()),
            Arc::new(ledger),
            config,
            faults,
        );
        let parts = AwsParts {
            sdk: sdk.clone(),
            store,
            publisher,
            sms,
            sandbox,
            settings,
        };
        (platform, parts)
    }

    /// The platform of Lambda function `function`, from its environment: configuration
    /// and resource names read once, clients built once, and the connections `function`
    /// will use opened now (during init, not on the first request's hot path). A missing
    /// or bad variable is logged and returned, so the runtime reports an init error.
    pub async fn from_env(catalog: &'static Catalog, function: &str) -> Result<Platform, InitError> {
        parts_from_env(catalog, function, None).await.map(|(platform, _)| platform)
    }

    /// How a bootstrap whose functions seal documents makes the signer of its signing key
    /// (`SIGNING_KEY_ARN`), e.g. `adapters::kms::signer`. Handed in by that bootstrap alone,
    /// so that no other binary links the signer's client.
    pub type SignerFactory = fn(&aws_config::SdkConfig, String) -> Arc<dyn crate::sealing::Signer>;

    /// [`from_env`], with the adapters behind the platform (the sweeper scopes its store to
    /// the tables each schedule names).
    ///
    /// A function given a signing key gets `signer`'s signer of it; without one, an init
    /// error, never a signer that signs with something else.
    pub async fn parts_from_env(
        catalog: &'static Catalog,
        function: &str,
        signer: Option<SignerFactory>,
    ) -> Result<(Platform, AwsParts), InitError> {
        let built = build_from_env(catalog, function, signer).await;
        if let Err(e) = &built {
            tracing::error!(function, error = %e, "init failed");
        }
        built
    }

    async fn build_from_env(
        catalog: &'static Catalog,
        function: &str,
        signer: Option<SignerFactory>,
    ) -> Result<(Platform, AwsParts), InitError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let config = Config::for_function(catalog, function, lookup)?;
        let settings = AwsSettings::from_lookup(catalog, function, lookup)?;
        let target = AwsTarget {
            endpoint: lookup("AWS_ENDPOINT_URL").filter(|v| !v.is_empty()),
        };
        let sdk = sdk_config(&target).await;
        let signing_key = settings.signing_key.clone();
        let (platform, parts) = aws(catalog, &sdk, settings, config, Faults::none());
        let platform = match signing_key {
            None => platform,
            Some(arn) => match signer {
                Some(make) => platform.with_signer(make(&sdk, arn)),
                None => {
                    return Err(InitError::Unsupported(
                        "this function seals documents (SIGNING_KEY_ARN) but its bootstrap has no signer \
                         (clinicflow::bootstrap::flow_sealing, feature kms)"
                            .into(),
                    ));
                }
            },
        };
        // `CLINICFLOW_PRIME=off` skips the priming calls (the benchmarks use it to tell their
        // round trips apart from the rest of init).
        if lookup("CLINICFLOW_PRIME").is_some_and(|v| v.eq_ignore_ascii_case("off")) {
            return Ok((platform, parts));
        }
        let uses = catalog.function(function).map(|f| f.uses).unwrap_or_default();
        futures::join!(
            async {
                // Prime on a table the function may read, so the call is allowed.
                let readable = catalog
                    .function(function)
                    .into_iter()
                    .flat_map(|f| catalog.permissions(f))
                    .find_map(|g| match g.resource {
                        topology::Resource::Table(t) if g.actions.contains(&"dynamodb:GetItem") => Some(t),
                        _ => None,
                    });
                if let Some(table) = readable {
                    parts.store.prime(table).await;
                }
            },
            async {
                if uses.bus {
                    parts.publisher.prime().await;
                }
            },
            async {
                if uses.sms {
                    parts.sms.prime().await;
                }
            },
        );
        Ok((platform, parts))
    }

    /// What a schedule of the outbox sweeper names: the context tables to sweep, each
    /// logical name with its physical one (`{"tables": {"checkup": "clinicflow-dev-…"}}`).
    /// Each flow's stack schedules the sweeper with its own tables, so that the sweeper,
    /// deployed before them, needs no lookup.
    #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SweepInput {
        /// Logical table → physical table.
        pub tables: std::collections::BTreeMap<String, String>,
    }

    impl SweepInput {
        /// The tables, each checked to be a context table of `catalog` with a name.
        pub fn contexts(&self, catalog: &Catalog) -> Result<Vec<(&'static str, String)>, String> {
            if self.tables.is_empty() {
                return Err("the schedule's input names no tables".to_owned());
            }
            self.tables
                .iter()
                .map(|(logical, physical)| {
                    let context = catalog
                        .context_tables()
                        .find(|c| c == logical)
                        .ok_or_else(|| format!("table {logical:?} of the schedule's input is not a context table of the catalog"))?;
                    if physical.trim().is_empty() {
                        return Err(format!("table {logical:?} of the schedule's input has no name"));
                    }
                    Ok((context, physical.clone()))
                })
                .collect()
        }
    }

    /// The `outbox-sweeper` handler: sweeps exactly the tables the schedule's input names
    /// (on `store`'s client), publishing through `p`'s publisher. A bad input is an error
    /// the invocation reports (and its alarm sees), never a sweep of something else.
    pub async fn handle_sweep(
        p: &Platform,
        store: &DynamoStore,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, lambda_runtime::Error> {
        let input: SweepInput =
            serde_json::from_value(event.payload).map_err(|e| format!("the schedule's input is not {{\"tables\": {{…}}}}: {e}"))?;
        let contexts = input.contexts(p.catalog)?;
        let swept: Vec<&str> = contexts.iter().map(|(c, _)| *c).collect();
        let scoped = Platform {
            outbox: Arc::new(store.with_contexts(contexts)),
            ..p.clone()
        };
        let report = crate::app::relay::sweep(&scoped, p.config.outbox_grace)
            .await
            .map_err(|e| e.to_string())?;
        Ok(serde_json::json!({"tables": swept, "published": report.published, "failed": report.failed}))
    }

    /// One scheduled run of a slice's job, at the time the schedule fired (the event's
    /// `time`, which EventBridge and its Scheduler both send; now without one).
    pub async fn handle_job(
        p: &Platform,
        job: crate::topology::Job,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, lambda_runtime::Error> {
        let at = event
            .payload
            .get("time")
            .and_then(|t| t.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(|| p.clock.now(), |t| t.with_timezone(&chrono::Utc));
        let moved = (job.run)(p, at).await.map_err(|e| {
            tracing::error!(job = job.function, error = %e, "scheduled run failed");
            e.to_string()
        })?;
        tracing::info!(job = job.function, moved, "scheduled run done");
        Ok(serde_json::json!({"moved": moved}))
    }

    /// One change record of a context table's stream.
    #[derive(Debug, Clone)]
    pub struct ChangeRecord {
        /// The stream's sequence number: the batch item identifier.
        pub sequence_number: String,
        /// `INSERT`, `MODIFY` or `REMOVE`.
        pub event_name: String,
        /// The item after the change.
        pub new_image: serde_dynamo::Item,
    }

    /// Projects a batch of change records in order. Only inserted outbox items are events;
    /// everything else (aggregates, counters, publish marks) is skipped. Stops at the first
    /// record that fails and returns its sequence number: the stream retries from there
    /// (`ReportBatchItemFailures`), so nothing after a failure is lost or applied early.
    pub async fn project_changes(p: &Platform, records: impl IntoIterator<Item = ChangeRecord>) -> Option<String> {
        for record in records {
            if record.event_name != "INSERT" {
                continue;
            }
            let outcome = match outbox_envelope(record.new_image) {
                Ok(None) => Ok(()),
                Ok(Some(event)) => projector::project(p, &event).await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(error) = outcome {
                tracing::warn!(sequence_number = %record.sequence_number, %error, "change record not projected; the stream retries from it");
                return Some(record.sequence_number);
            }
        }
        None
    }

    /// The `status-projector` handler: a DynamoDB stream batch in, the failed item (if any)
    /// out, as `ReportBatchItemFailures` expects.
    pub async fn handle_stream(p: &Platform, event: LambdaEvent<DynamoEvent>) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
        let records = event.payload.records.into_iter().map(|r| ChangeRecord {
            sequence_number: r.change.sequence_number.unwrap_or_default(),
            event_name: r.event_name,
            new_image: r.change.new_image,
        });
        let failed = project_changes(p, records).await;
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = failed
            .into_iter()
            .map(|id| {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(id);
                failure
            })
            .collect();
        Ok(response)
    }
}

/// Handles one EventBridge delivery for consumer `target`. Any failure is returned as an
/// error, so that Lambda retries the asynchronous invocation and then sends it to the
/// function's on-failure destination (its failure queue) instead of dropping it, as the
/// local bus dead-letters it. A rule's own dead-letter queue only catches events the bus
/// could not hand to Lambda at all.
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
