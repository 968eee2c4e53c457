//! The event bus of the local runtime on the AWS path: the rules of `topology.rs` provisioned
//! as EventBridge rules on one bus, each delivering to its target's SQS queue (with a
//! dead-letter queue behind it), as a deployment's Lambda event source mappings would read
//! them; and the calls that poll, acknowledge, delay and inspect those queues.
//!
//! Names derive from a prefix: queue `<prefix>-<target>`, its DLQ `<prefix>-<target>-dlq`,
//! rule `<prefix>-<rule>`; a name over its AWS limit is cut and suffixed with a stable hash.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use aws_sdk_eventbridge::types::{RuleState, Target};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use clinicflow::events::EventEnvelope;
use clinicflow::topology::Rule;
use serde::Deserialize;
use serde_json::json;

/// The longest rule name and target id EventBridge accepts.
const MAX_RULE_NAME: usize = 64;
/// The longest queue name SQS accepts.
const MAX_QUEUE_NAME: usize = 80;
/// The longest long poll SQS allows, in seconds.
const MAX_WAIT_SECONDS: u64 = 20;
/// How many `ReceiveMessage` rounds a dead-letter peek makes at most, per queue.
const PEEK_ROUNDS: usize = 10;

/// The queues of one rule target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetQueue {
    /// The target function.
    pub target: String,
    /// The queue its rules deliver to.
    pub queue_url: String,
    /// The dead-letter queue behind it.
    pub dlq_url: String,
}

/// The queues of every rule target of a provisioned bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusQueues {
    /// One per distinct target, in the order of the rules.
    pub queues: Vec<TargetQueue>,
}

impl BusQueues {
    /// The queue URL of `target`.
    pub fn queue_of(&self, target: &str) -> Option<&str> {
        self.queues.iter().find(|q| q.target == target).map(|q| q.queue_url.as_str())
    }
}

/// One event received from a target's queue, to be acknowledged or retried later.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The target whose queue it came from.
    pub target: String,
    /// The receipt handle, for [`ack`] and [`retry_later`].
    pub receipt: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// The event.
    pub event: EventEnvelope,
}

/// The part of an EventBridge event (the body of a message its SQS target receives) that
/// carries the envelope.
#[derive(Deserialize)]
struct BusMessage {
    detail: EventEnvelope,
}

/// 64-bit FNV-1a: a hash that stays the same across runs and builds.
fn fnv1a(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// `name` if it is at most `max` bytes long; otherwise its start and a hash of all of it.
fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let hash = format!("{:016x}", fnv1a(name));
    let keep = max.saturating_sub(hash.len() + 1);
    let start: String = name.chars().take(keep).collect();
    format!("{start}-{hash}")
}

/// The EventBridge rule name of `rule`.
pub fn rule_name(prefix: &str, rule: &Rule) -> String {
    fit(&format!("{prefix}-{}", rule.name), MAX_RULE_NAME)
}

/// The queue name of `target`, and of its dead-letter queue.
pub fn queue_names(prefix: &str, target: &str) -> (String, String) {
    (
        fit(&format!("{prefix}-{target}"), MAX_QUEUE_NAME),
        fit(&format!("{prefix}-{target}-dlq"), MAX_QUEUE_NAME),
    )
}

/// The event pattern of `rule`.
fn event_pattern(rule: &Rule) -> String {
    json!({ "source": rule.sources, "detail-type": rule.detail_types }).to_string()
}

/// Creates queue `name` if absent; returns its URL and ARN.
async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<(String, String)> {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("creating queue {name}"))?
        .queue_url
        .with_context(|| format!("queue {name} has no URL"))?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("reading the ARN of queue {name}"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .with_context(|| format!("queue {name} has no ARN"))?;
    Ok((url, arn))
}

/// Creates the bus if absent.
async fn event_bus(events: &aws_sdk_eventbridge::Client, bus: &str) -> anyhow::Result<()> {
    match events.create_event_bus().name(bus).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("ResourceAlreadyExistsException") => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating event bus {bus}")),
    }
}

/// Provisions, idempotently, the bus `bus` with one rule per entry of `rules`, each
/// delivering to its target's queue `<prefix>-<target>`, which moves a message received
/// `max_receive` times to its dead-letter queue `<prefix>-<target>-dlq`. Each target
/// queue's policy lets EventBridge (those rules only) send to it.
pub async fn provision(
    sdk: &aws_config::SdkConfig,
    bus: &str,
    prefix: &str,
    rules: &[Rule],
    max_receive: u32,
) -> anyhow::Result<BusQueues> {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    event_bus(&events, bus).await?;

    let mut queues = BusQueues::default();
    let mut arns = BTreeMap::new();
    for rule in rules {
        if queues.queue_of(rule.target).is_some() {
            continue;
        }
        let (queue_name, dlq_name) = queue_names(prefix, rule.target);
        let (dlq_url, dlq_arn) = queue(&sqs, &dlq_name).await?;
        let (queue_url, queue_arn) = queue(&sqs, &queue_name).await?;
        let redrive = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive.max(1) });
        sqs.set_queue_attributes()
            .queue_url(&queue_url)
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .with_context(|| format!("setting the redrive policy of {queue_name}"))?;
        arns.insert(rule.target, queue_arn);
        queues.queues.push(TargetQueue {
            target: rule.target.to_owned(),
            queue_url,
            dlq_url,
        });
    }

    let mut senders: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for rule in rules {
        let name = rule_name(prefix, rule);
        let rule_arn = events
            .put_rule()
            .name(&name)
            .event_bus_name(bus)
            .event_pattern(event_pattern(rule))
            .state(RuleState::Enabled)
            .send()
            .await
            .with_context(|| format!("putting rule {name}"))?
            .rule_arn
            .with_context(|| format!("rule {name} has no ARN"))?;
        let queue_arn = arns.get(rule.target).with_context(|| format!("no queue for {}", rule.target))?;
        let target = Target::builder()
            .id(fit(rule.target, MAX_RULE_NAME))
            .arn(queue_arn)
            .build()
            .with_context(|| format!("target of rule {name}"))?;
        let out = events
            .put_targets()
            .rule(&name)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .with_context(|| format!("putting the target of rule {name}"))?;
        if out.failed_entry_count() > 0 {
            let codes: Vec<&str> = out.failed_entries().iter().filter_map(|f| f.error_code()).collect();
            bail!("rule {name}: target {} refused: {codes:?}", rule.target);
        }
        senders.entry(rule.target).or_default().push(rule_arn);
    }

    for q in &queues.queues {
        let (Some(queue_arn), Some(rule_arns)) = (arns.get(q.target.as_str()), senders.get(q.target.as_str())) else {
            continue;
        };
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "events-send",
                "Effect": "Allow",
                "Principal": { "Service": "events.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": rule_arns } },
            }],
        });
        sqs.set_queue_attributes()
            .queue_url(&q.queue_url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .with_context(|| format!("setting the policy of the queue of {}", q.target))?;
    }
    tracing::debug!(bus, rules = rules.len(), queues = queues.queues.len(), "event bus provisioned");
    Ok(queues)
}

/// The envelope an SQS message carries, if its body is an EventBridge event of one.
fn envelope_of(body: Option<&str>) -> Result<EventEnvelope, String> {
    let body = body.ok_or("the message has no body")?;
    serde_json::from_str::<BusMessage>(body)
        .map(|m| m.detail)
        .map_err(|e| e.to_string())
}

/// Receives up to `max` (1 to 10) events from `target`'s queue, waiting up to `wait` (at
/// most 20 s) for the first. A message whose body is not an EventBridge event carrying an
/// envelope can never be handled: it is logged and deleted, not returned.
pub async fn receive(sqs: &aws_sdk_sqs::Client, target: &str, queue_url: &str, max: i32, wait: Duration) -> anyhow::Result<Vec<Received>> {
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(max.clamp(1, 10))
        .wait_time_seconds(wait.as_secs().min(MAX_WAIT_SECONDS) as i32)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .with_context(|| format!("receiving from the queue of {target}"))?;
    let mut received = Vec::new();
    for message in out.messages() {
        let Some(receipt) = message.receipt_handle() else {
            continue;
        };
        match envelope_of(message.body()) {
            Ok(event) => {
                let receive_count = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                received.push(Received {
                    target: target.to_owned(),
                    receipt: receipt.to_owned(),
                    receive_count,
                    event,
                });
            }
            Err(error) => {
                tracing::warn!(target, message_id = message.message_id().unwrap_or_default(), error = %error, "unreadable message deleted");
                ack(sqs, queue_url, receipt).await?;
            }
        }
    }
    Ok(received)
}

/// Deletes a handled message.
pub async fn ack(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: &str) -> anyhow::Result<()> {
    sqs.delete_message()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .send()
        .await
        .context("deleting a message")?;
    Ok(())
}

/// Makes a message visible again after `delay` (at most 12 hours), for a later retry.
pub async fn retry_later(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: &str, delay: Duration) -> anyhow::Result<()> {
    sqs.change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(delay.as_secs().min(12 * 3600) as i32)
        .send()
        .await
        .context("delaying a message")?;
    Ok(())
}

/// The events in every target's dead-letter queue, as `(target, event)`, read without
/// removing them (received with a zero visibility timeout).
pub async fn dead_letters(sqs: &aws_sdk_sqs::Client, queues: &BusQueues) -> anyhow::Result<Vec<(String, EventEnvelope)>> {
    let mut out = Vec::new();
    for q in &queues.queues {
        let mut seen = HashSet::new();
        for _ in 0..PEEK_ROUNDS {
            let batch = sqs
                .receive_message()
                .queue_url(&q.dlq_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .wait_time_seconds(0)
                .send()
                .await
                .with_context(|| format!("peeking at the dead-letter queue of {}", q.target))?;
            let mut new = 0;
            for message in batch.messages() {
                if !seen.insert(message.message_id().unwrap_or_default().to_owned()) {
                    continue;
                }
                new += 1;
                match envelope_of(message.body()) {
                    Ok(event) => out.push((q.target.clone(), event)),
                    Err(error) => tracing::warn!(target = %q.target, error = %error, "unreadable dead letter"),
                }
            }
            if new == 0 {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_to_the_limit_with_a_stable_hash() {
        let rule = Rule {
            name: "availability-release-on-checkup-end",
            sources: vec!["clinicflow.checkup"],
            detail_types: vec!["CheckupCancelled"],
            target: "availability-release",
        };
        let prefix = "cb-01jabcdefghjkmnpqrstvwxyz0";
        let name = rule_name(prefix, &rule);
        assert_eq!(name.len(), MAX_RULE_NAME);
        assert_eq!(name, rule_name(prefix, &rule));
        assert_ne!(name, rule_name("cb-01jabcdefghjkmnpqrstvwxyz1", &rule));
        assert_eq!(rule_name("p", &rule), "p-availability-release-on-checkup-end");
    }

    #[test]
    fn the_pattern_matches_the_rules_source_and_types() {
        let rule = Rule {
            name: "r",
            sources: vec!["clinicflow.payment"],
            detail_types: vec!["PaymentRefunded", "PaymentCaptured"],
            target: "t",
        };
        let pattern: serde_json::Value = serde_json::from_str(&event_pattern(&rule)).expect("json");
        assert_eq!(
            pattern,
            json!({"source": ["clinicflow.payment"], "detail-type": ["PaymentRefunded", "PaymentCaptured"]})
        );
    }

    #[test]
    fn a_message_body_yields_its_envelope() {
        let body = json!({
            "version": "0", "id": "x", "detail-type": "CheckupBooked", "source": "clinicflow.checkup",
            "account": "123456789012", "time": "2025-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {
                "id": "e1", "type": "CheckupBooked", "source": "clinicflow.checkup", "aggregate_id": "b1", "version": 1,
                "correlation_id": "c", "causation_id": "r", "occurred_at": "2025-01-01T00:00:00Z", "data": {}
            }
        });
        let envelope = envelope_of(Some(&body.to_string())).expect("envelope");
        assert_eq!((envelope.id.as_str(), envelope.event_type.as_str()), ("e1", "CheckupBooked"));
        assert!(envelope_of(Some("not json")).is_err());
        assert!(envelope_of(None).is_err());
    }
}
