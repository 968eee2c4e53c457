//! The local runtime on the AWS path (`--aws-endpoint URL`): every adapter on the AWS SDK
//! against that endpoint (a moto server, or real AWS), with the tables, bus, rules and
//! queues created when absent. Rule targets are delivered from SQS queues to the same
//! consumers the Lambdas run, and the projector is fed from DynamoDB Streams.

pub mod bus;
pub mod signing;
pub mod streams;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use aws_sdk_sqs::types::QueueAttributeName;
use clinicflow::adapters::aws::{AwsTarget, sdk_config};
use clinicflow::adapters::resilient::ResilientGateway;
use clinicflow::app::consumers::{self, ConsumerError};
use clinicflow::app::{Faults, Platform};
use clinicflow::config::Config;
use clinicflow::events::EventEnvelope;
use clinicflow::ports::{SmsError, SmsMessage, SmsSender};
use clinicflow::wiring::{self, AwsParts, AwsSettings};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::workers::BusOptions;
use crate::{DeadLetter, SentSms};

/// The AWS side of a local stack: its adapters, queues, and what it sent.
#[derive(Clone)]
pub struct AwsRuntime {
    /// The adapters.
    pub parts: AwsParts,
    /// The rule targets' queues.
    pub queues: bus::BusQueues,
    sqs: aws_sdk_sqs::Client,
    progress: Arc<streams::Progress>,
    sent: Arc<Mutex<Vec<SentSms>>>,
}

impl std::fmt::Debug for AwsRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsRuntime").field("queues", &self.queues).finish_non_exhaustive()
    }
}

/// Records what the SNS sender accepted, so the stack can list the SMS it sent.
struct RecordingSms {
    inner: Arc<dyn SmsSender>,
    sent: Arc<Mutex<Vec<SentSms>>>,
}

#[async_trait::async_trait]
impl SmsSender for RecordingSms {
    async fn send(&self, message: &SmsMessage) -> Result<String, SmsError> {
        let id = self.inner.send(message).await?;
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = sent.len() as i64 + 1;
        sent.push(SentSms {
            seq,
            key: message.key.clone(),
            to: message.to.e164().to_owned(),
            body: message.body.clone(),
            sent_at: chrono::Utc::now().to_rfc3339(),
            message_id: Some(id.clone()),
        });
        Ok(id)
    }
}

impl AwsRuntime {
    /// Connects to `endpoint`, creates what is missing (tables with streams, bus, rules,
    /// queues) under `prefix`, and returns the platform on those resources.
    pub async fn provision(endpoint: &str, prefix: &str, config: Config, bus_options: &BusOptions) -> anyhow::Result<(Platform, Self)> {
        let sdk = sdk_config(&AwsTarget {
            endpoint: Some(endpoint.to_owned()),
        })
        .await;
        let settings = AwsSettings::prefixed(clinicflow::catalog(), prefix);
        let config_payment = config.payment;
        let (mut platform, parts) = wiring::aws(clinicflow::catalog(), &sdk, settings.clone(), config, Faults::none());
        parts
            .store
            .create_tables(&platform.catalog.tables)
            .await
            .context("creating the DynamoDB tables")?;
        let queues = bus::provision(&sdk, &settings.bus, prefix, &clinicflow::catalog().rules, bus_options.max_attempts)
            .await
            .context("creating the event bus, rules and queues")?;
        // The local runtime stands in for the payment provider itself, in its own memory
        // (as in the embedded mode), so that tests read its ledger as they read a real
        // provider's dashboard; the deployed functions keep it in the payment table.
        platform.payments = Arc::new(ResilientGateway::new(Arc::new(parts.sandbox.clone()), config_payment));
        // Sealed documents are signed by a KMS key at the endpoint, as in the deployed
        // stacks (the key file of the embedded mode is not used on this path).
        if let Some(signer) = signing::provision(&sdk, prefix).await.context("provisioning the signing key")? {
            platform = platform.with_signer(signer);
        }
        let sent = Arc::new(Mutex::new(Vec::new()));
        platform.sms = Arc::new(RecordingSms {
            inner: platform.sms.clone(),
            sent: sent.clone(),
        });
        let runtime = Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            parts,
            queues,
            progress: Arc::new(streams::Progress::default()),
            sent,
        };
        Ok((platform, runtime))
    }

    /// Starts a delivery loop per rule target and a reader per stream shard.
    pub async fn spawn(&self, p: Arc<Platform>, options: BusOptions, stop: watch::Receiver<bool>) -> anyhow::Result<Vec<JoinHandle<()>>> {
        let mut tasks = Vec::new();
        for q in &self.queues.queues {
            tasks.push(tokio::spawn(deliver(
                p.clone(),
                self.sqs.clone(),
                q.clone(),
                options.clone(),
                stop.clone(),
            )));
        }
        let arns = self.parts.store.stream_arns().await.context("reading the tables' streams")?;
        let streams_client = aws_sdk_dynamodbstreams::Client::new(&self.parts.sdk);
        tasks.extend(streams::spawn(p, streams_client, arns, self.progress.clone(), stop).await?);
        Ok(tasks)
    }

    /// The SMS this stack sent, as the endpoint recorded them when it is a moto server
    /// (`/moto-api/data.json`), else as SNS accepted them.
    pub async fn sms_sent(&self) -> Vec<SentSms> {
        let ours = self.sent.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let Some(endpoint) = self.parts.sdk.endpoint_url() else {
            return ours;
        };
        let Ok(recorded) = moto_sms(endpoint).await else {
            return ours;
        };
        let by_id: HashSet<&str> = recorded.iter().map(|(id, _, _)| id.as_str()).collect();
        ours.into_iter()
            .filter(|s| s.message_id.as_deref().is_some_and(|id| by_id.contains(id)))
            .map(|mut s| {
                if let Some((_, to, body)) = recorded.iter().find(|(id, _, _)| Some(id.as_str()) == s.message_id.as_deref()) {
                    s.to = to.clone();
                    s.body = body.clone();
                }
                s
            })
            .collect()
    }

    /// Dead letters: the DLQs of every target, and change records the projector parked.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        let mut out: Vec<DeadLetter> = bus::dead_letters(&self.sqs, &self.queues)
            .await?
            .into_iter()
            .map(|(target, event)| DeadLetter {
                target,
                event,
                error: "dead-lettered".into(),
            })
            .collect();
        out.extend(self.progress.parked().into_iter().map(|(event, error)| DeadLetter {
            target: crate::workers::PROJECTOR_CHECKPOINT.into(),
            event,
            error,
        }));
        Ok(out)
    }

    /// True when no queue holds a message and every stream shard was read empty after
    /// this call began.
    pub async fn is_idle(&self) -> anyhow::Result<bool> {
        for q in &self.queues.queues {
            let attrs = self
                .sqs
                .get_queue_attributes()
                .queue_url(&q.queue_url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await?;
            let count = |name: QueueAttributeName| {
                attrs
                    .attributes()
                    .and_then(|a| a.get(&name))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if count(QueueAttributeName::ApproximateNumberOfMessages) + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible) > 0
            {
                return Ok(false);
            }
        }
        let before = self.progress.snapshot();
        for _ in 0..50 {
            let now = self.progress.snapshot();
            if !before.is_empty() && before.iter().all(|(reader, n)| now.get(reader).is_some_and(|m| m > n)) {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(false)
    }
}

async fn moto_sms(endpoint: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let url = format!("{}/moto-api/data.json", endpoint.trim_end_matches('/'));
    let data: serde_json::Value = reqwest::get(url).await?.error_for_status()?.json().await?;
    Ok(data["sns"]["SMS"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|m| {
                    let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                    (s("message_id"), s("phone_number"), s("message"))
                })
                .collect()
        })
        .unwrap_or_default())
}

fn backoff(options: &BusOptions, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.min(16));
    options.first_backoff.saturating_mul(factor).min(options.max_backoff)
}

/// Delivers one target's queue to its consumer: acknowledged on success, made visible
/// again after a backoff on a retryable failure (the queue's redrive policy moves it to
/// the DLQ after `max_attempts` receives), sent to the DLQ at once on a permanent one.
async fn deliver(p: Arc<Platform>, sqs: aws_sdk_sqs::Client, queue: bus::TargetQueue, options: BusOptions, stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        // A long poll is never abandoned half-way: a receive dropped by the client still
        // takes messages out of sight on the server, until their visibility timeout.
        let received = bus::receive(&sqs, &queue.target, &queue.queue_url, 10, Duration::from_secs(1)).await;
        let messages = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(target = %queue.target, error = %e, "queue unreadable");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if *stop.borrow() {
            // Stopping: hand what was just received back to the queue at once.
            for m in &messages {
                if let Err(e) = bus::retry_later(&sqs, &queue.queue_url, &m.receipt, Duration::ZERO).await {
                    tracing::warn!(error = %e, "could not release a message; it returns after its visibility timeout");
                }
            }
            return;
        }
        let runs = messages.into_iter().map(|m| {
            let (p, sqs, queue, options) = (p.clone(), sqs.clone(), queue.clone(), options.clone());
            async move {
                let mut result = consumers::dispatch(&p, &queue.target, &m.event).await.map(|_| ());
                if options.duplicate_every_delivery && result.is_ok() {
                    result = consumers::dispatch(&p, &queue.target, &m.event).await.map(|_| ());
                }
                let outcome = match result {
                    Ok(()) => bus::ack(&sqs, &queue.queue_url, &m.receipt).await,
                    Err(ConsumerError::Retryable(_)) if m.receive_count < options.max_attempts => {
                        bus::retry_later(&sqs, &queue.queue_url, &m.receipt, backoff(&options, m.receive_count)).await
                    }
                    Err(e) => {
                        tracing::error!(target = %queue.target, event_id = %m.event.id, error = %e, "delivery dead-lettered");
                        dead_letter(&sqs, &queue, &m.event)
                            .await
                            .and(bus::ack(&sqs, &queue.queue_url, &m.receipt).await)
                    }
                };
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, "could not record a delivery's outcome; it will be delivered again");
                }
            }
        });
        futures::future::join_all(runs).await;
    }
}

async fn dead_letter(sqs: &aws_sdk_sqs::Client, queue: &bus::TargetQueue, event: &EventEnvelope) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "version": "0",
        "id": event.id,
        "detail-type": event.event_type,
        "source": event.source,
        "account": "000000000000",
        "time": event.occurred_at,
        "region": "local",
        "resources": [],
        "detail": event,
    });
    sqs.send_message()
        .queue_url(&queue.dlq_url)
        .message_body(body.to_string())
        .send()
        .await?;
    Ok(())
}
