//! Contract tests of the bus and SMS adapters: each test is written once over [`Backend`] and
//! runs against the embedded adapters (`SqliteBus`, `SqliteSmsOutbox`) and against the AWS
//! ones (`EventBridgePublisher` with the local runtime's rules-to-SQS plumbing, and
//! `SnsSmsSender`) on a shared moto server.
//!
//! Where the two differ by nature the test runs on one side only: the local bus accepts an
//! event with an empty type (it matches no rule, so nothing is delivered) while EventBridge
//! refuses that entry, so the partial-failure test is AWS-only; SNS has no dedup key, so
//! "the same key sends once" is SQLite-only; the opt-out list is SNS's, so that test is AWS-only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_eventbridge::config::timeout::TimeoutConfig;
use clinicflow::adapters::embedded::{Embedded, SqliteBus, SqliteSmsOutbox};
use clinicflow::adapters::eventbridge::EventBridgePublisher;
use clinicflow::adapters::sns::{SmsSettings, SnsSmsSender};
use clinicflow::domain::PhoneNumber;
use clinicflow::events::EventEnvelope;
use clinicflow::ports::{PublishOutcome, Publisher, SmsError, SmsMessage, SmsSender};
use clinicflow_local::aws::bus::{self, BusQueues};
use clinicflow_tests::moto::{moto, unique};
use serde_json::json;

/// Event ids per rule target.
type Deliveries = BTreeMap<String, BTreeSet<String>>;

/// How long a delivery may take to show up on the AWS side.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(15);

/// One side of the contract: a bus that applies `clinicflow::catalog().rules`, and an SMS channel.
enum Backend {
    Sqlite {
        bus: SqliteBus,
        sms: SqliteSmsOutbox,
    },
    Aws {
        publisher: EventBridgePublisher,
        sqs: aws_sdk_sqs::Client,
        queues: BusQueues,
        sms: SnsSmsSender,
    },
}

impl Backend {
    async fn sqlite() -> Self {
        let db = Embedded::in_memory().expect("in-memory database");
        Self::Sqlite {
            bus: SqliteBus::new(db.clone(), clinicflow::catalog().rules.clone()),
            sms: SqliteSmsOutbox::new(db),
        }
    }

    async fn aws() -> Self {
        let sdk = moto().await.sdk().await;
        let name = unique("cb");
        let queues = bus::provision(&sdk, &name, &name, &clinicflow::catalog().rules, 3)
            .await
            .expect("bus provisioned");
        Self::Aws {
            publisher: EventBridgePublisher::new(events_client(&sdk), &name).with_retry(3, Duration::from_millis(10)),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            queues,
            sms: SnsSmsSender::new(aws_sdk_sns::Client::new(&sdk), SmsSettings::default()),
        }
    }

    fn publisher(&self) -> &dyn Publisher {
        match self {
            Self::Sqlite { bus, .. } => bus,
            Self::Aws { publisher, .. } => publisher,
        }
    }

    fn sms(&self) -> &dyn SmsSender {
        match self {
            Self::Sqlite { sms, .. } => sms,
            Self::Aws { sms, .. } => sms,
        }
    }

    /// What each target received, once every target has at least what `expected` gives it
    /// (or the deadline passed), including anything unexpected.
    async fn delivered(&self, expected: &Deliveries) -> Deliveries {
        let mut got = no_deliveries();
        match self {
            Self::Sqlite { bus, .. } => {
                let due = bus
                    .due(chrono::Utc::now() + chrono::Duration::seconds(1), 10_000)
                    .await
                    .expect("deliveries");
                for d in due {
                    got.entry(d.target).or_default().insert(d.event.id);
                }
            }
            Self::Aws { sqs, queues, .. } => {
                let deadline = tokio::time::Instant::now() + DELIVERY_DEADLINE;
                let short = |t: &str, got: &Deliveries| got.get(t).map_or(0, BTreeSet::len) < expected.get(t).map_or(0, BTreeSet::len);
                while queues.queues.iter().any(|q| short(&q.target, &got)) && tokio::time::Instant::now() < deadline {
                    let behind: Vec<_> = queues.queues.iter().filter(|q| short(&q.target, &got)).collect();
                    for q in behind {
                        drain(sqs, &q.target, &q.queue_url, Duration::from_secs(1), &mut got).await;
                    }
                }
                for q in &queues.queues {
                    drain(sqs, &q.target, &q.queue_url, Duration::ZERO, &mut got).await;
                }
            }
        }
        got
    }

    /// The SMS the channel recorded whose text contains `tag`, as `(phone, text)`.
    async fn sent_sms(&self, tag: &str) -> Vec<(String, String)> {
        let all = match self {
            Self::Sqlite { sms, .. } => sms.list().await.expect("sms list").into_iter().map(|s| (s.to, s.body)).collect(),
            Self::Aws { .. } => moto().await.sms().await,
        };
        all.into_iter().filter(|(_, text)| text.contains(tag)).collect()
    }
}

/// An EventBridge client for moto, whose `PutEvents` is slow: it compiles JSONPath
/// expressions for every (event, matching rule) pair, about 85 ms each, all under one GIL
/// shared by the tests running in parallel. The SDK's 5 s attempt timeout would otherwise
/// cut a 10-entry call short and make the publisher retry what moto already delivered.
fn events_client(sdk: &aws_config::SdkConfig) -> aws_sdk_eventbridge::Client {
    let timeouts = TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_secs(60))
        .operation_timeout(Duration::from_secs(120))
        .build();
    aws_sdk_eventbridge::Client::from_conf(aws_sdk_eventbridge::config::Builder::from(sdk).timeout_config(timeouts).build())
}

/// Receives (and acknowledges) what `target`'s queue holds into `got`.
async fn drain(sqs: &aws_sdk_sqs::Client, target: &str, queue_url: &str, wait: Duration, got: &mut Deliveries) {
    for m in bus::receive(sqs, target, queue_url, 10, wait).await.expect("receive") {
        assert_eq!(m.target, target);
        got.entry(target.to_owned()).or_default().insert(m.event.id.clone());
        bus::ack(sqs, queue_url, &m.receipt).await.expect("ack");
    }
}

/// Every rule target, with nothing delivered.
fn no_deliveries() -> Deliveries {
    clinicflow::catalog()
        .rules
        .iter()
        .map(|r| (r.target.to_owned(), BTreeSet::new()))
        .collect()
}

/// What the rules deliver of `events`.
fn expected(events: &[EventEnvelope]) -> Deliveries {
    let mut out = no_deliveries();
    for e in events {
        for rule in clinicflow::catalog().rules.iter().filter(|r| r.matches(&e.source, &e.event_type)) {
            out.entry(rule.target.to_owned()).or_default().insert(e.id.clone());
        }
    }
    out
}

fn envelope(context: &str, event_type: &str) -> EventEnvelope {
    let id = ulid::Ulid::new().to_string();
    EventEnvelope {
        id: id.clone(),
        event_type: event_type.to_owned(),
        source: format!("clinicflow.{context}"),
        aggregate_id: format!("agg-{id}"),
        version: 1,
        correlation_id: format!("case-{id}"),
        causation_id: format!("req-{id}"),
        occurred_at: chrono::Utc::now(),
        data: json!({ "note": "contract", "amount": 1000 }),
    }
}

fn ids(events: &[EventEnvelope]) -> BTreeSet<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

fn published(outcome: &PublishOutcome) -> BTreeSet<String> {
    outcome.published.iter().cloned().collect()
}

fn sms(key: &str, to: &str, body: &str) -> SmsMessage {
    SmsMessage {
        key: key.to_owned(),
        to: PhoneNumber::parse(to).expect("valid number"),
        body: body.to_owned(),
    }
}

/// Events of every routed type, one unrouted type and one unknown type: each target gets
/// exactly the events its rules match.
async fn each_target_receives_exactly_its_events(backend: Backend) {
    let events = vec![
        envelope("checkup", "CheckupBooked"),
        envelope("checkup", "CheckupConfirmed"),
        envelope("checkup", "CheckupCancelled"),
        envelope("checkup", "CheckupRejected"),
        envelope("payment", "PaymentRefunded"),
        envelope("payment", "PaymentCaptured"),
        envelope("checkup", "PaymentRefunded"),
        envelope("centre", "SomethingElse"),
    ];
    let outcome = backend.publisher().publish(&events).await;
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(published(&outcome), ids(&events));
    let want = expected(&events);
    assert_eq!(want["sms-notifier"].len(), 5, "the routing under test is not trivial");
    assert_eq!(backend.delivered(&want).await, want);
}

/// 23 events (more than one `PutEvents` call takes) are all published and delivered.
async fn a_batch_larger_than_ten_all_arrives(backend: Backend) {
    let types = ["CheckupBooked", "CheckupConfirmed", "CheckupConfirmed", "CheckupConfirmed"];
    let events: Vec<_> = (0..23).map(|i| envelope("checkup", types[i % types.len()])).collect();
    let outcome = backend.publisher().publish(&events).await;
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert_eq!(published(&outcome), ids(&events));
    let want = expected(&events);
    assert_eq!(want["sms-notifier"].len(), 23);
    assert_eq!(backend.delivered(&want).await, want);
}

/// One entry the bus refuses (an empty type) fails alone; the rest are published and delivered.
async fn a_refused_entry_fails_alone(backend: Backend) {
    let mut events: Vec<_> = (0..5).map(|_| envelope("checkup", "CheckupCancelled")).collect();
    events[2].event_type = String::new();
    let refused = events[2].id.clone();
    let outcome = backend.publisher().publish(&events).await;
    assert_eq!(outcome.failed.len(), 1, "{:?}", outcome.failed);
    assert_eq!(outcome.failed[0].0, refused);
    assert!(outcome.failed[0].1.starts_with("InvalidArgument"), "{}", outcome.failed[0].1);
    let accepted: Vec<_> = events.iter().filter(|e| e.id != refused).cloned().collect();
    assert_eq!(published(&outcome), ids(&accepted));
    let want = expected(&accepted);
    assert_eq!(backend.delivered(&want).await, want);
}

/// Two SMS are both recorded with their number and text.
async fn two_sms_are_both_sent(backend: Backend) {
    let tag = unique("sms");
    let first = sms(&unique("k"), "+821012345678", &format!("{tag} booked"));
    let second = sms(&unique("k"), "010-9876-5432", &format!("{tag} confirmed"));
    let a = backend.sms().send(&first).await.expect("first sent");
    let b = backend.sms().send(&second).await.expect("second sent");
    assert_ne!(a, b, "each SMS has its own message id");
    let mut sent = backend.sent_sms(&tag).await;
    sent.sort();
    assert_eq!(
        sent,
        [
            ("+821012345678".to_owned(), format!("{tag} booked")),
            ("+821098765432".to_owned(), format!("{tag} confirmed")),
        ]
    );
}

/// The same key twice is sent once (the local outbox dedups; SNS has no key to dedup on).
async fn the_same_key_is_sent_once(backend: Backend) {
    let tag = unique("sms");
    let message = sms(&unique("k"), "+821012345678", &format!("{tag} once"));
    let a = backend.sms().send(&message).await.expect("sent");
    let b = backend.sms().send(&message).await.expect("sent again");
    assert_eq!(a, b);
    assert_eq!(backend.sent_sms(&tag).await.len(), 1);
}

/// An opted-out number is refused and nothing is sent. moto's `CheckIfPhoneNumberIsOptedOut`
/// answers yes for numbers ending in 99 (not from its opted-out list).
async fn an_opted_out_number_is_refused(backend: Backend) {
    let tag = unique("sms");
    let result = backend
        .sms()
        .send(&sms(&unique("k"), "+821012345699", &format!("{tag} refused")))
        .await;
    assert_eq!(result, Err(SmsError::Refused("opted out".into())));
    assert!(backend.sent_sms(&tag).await.is_empty());
}

/// Generates one `#[tokio::test]` per backend named for each test function.
macro_rules! contract {
    ($($test:ident: $($backend:ident => $name:ident),+;)+) => {
        $($(
            #[tokio::test]
            async fn $name() {
                $test(Backend::$backend().await).await;
            }
        )+)+
    };
}

contract! {
    each_target_receives_exactly_its_events:
        sqlite => sqlite_each_target_receives_exactly_its_events,
        aws => aws_each_target_receives_exactly_its_events;
    a_batch_larger_than_ten_all_arrives:
        sqlite => sqlite_a_batch_larger_than_ten_all_arrives,
        aws => aws_a_batch_larger_than_ten_all_arrives;
    a_refused_entry_fails_alone:
        aws => aws_a_refused_entry_fails_alone;
    two_sms_are_both_sent:
        sqlite => sqlite_two_sms_are_both_sent,
        aws => aws_two_sms_are_both_sent;
    the_same_key_is_sent_once:
        sqlite => sqlite_the_same_key_is_sent_once;
    an_opted_out_number_is_refused:
        aws => aws_an_opted_out_number_is_refused;
}

/// The local runtime's plumbing on moto: provisioning twice is harmless; a message received
/// `max_receive` times moves to the dead-letter queue, where it can be read (and read again);
/// an unreadable message is deleted rather than returned.
#[tokio::test]
async fn aws_bus_plumbing_redrives_exhausted_messages_and_drops_unreadable_ones() {
    let sdk = moto().await.sdk().await;
    let name = unique("cb");
    let first = bus::provision(&sdk, &name, &name, &clinicflow::catalog().rules, 2)
        .await
        .expect("provisioned");
    let queues = bus::provision(&sdk, &name, &name, &clinicflow::catalog().rules, 2)
        .await
        .expect("provisioned again");
    assert_eq!(first, queues);
    let targets: BTreeSet<_> = clinicflow::catalog().rules.iter().map(|r| r.target).collect();
    assert_eq!(queues.queues.len(), targets.len());

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let publisher = EventBridgePublisher::new(events_client(&sdk), &name);
    let event = envelope("payment", "PaymentRefunded");
    assert_eq!(
        publisher.publish(std::slice::from_ref(&event)).await.published,
        std::slice::from_ref(&event.id)
    );

    let url = queues.queue_of("sms-notifier").expect("the notifier's queue");
    let wait = Duration::from_secs(1);
    let mut counts = Vec::new();
    let deadline = tokio::time::Instant::now() + DELIVERY_DEADLINE;
    while counts.len() < 2 && tokio::time::Instant::now() < deadline {
        for m in bus::receive(&sqs, "sms-notifier", url, 10, wait).await.expect("receive") {
            assert_eq!(m.event, event);
            counts.push(m.receive_count);
            bus::retry_later(&sqs, url, &m.receipt, Duration::ZERO).await.expect("retry later");
        }
    }
    assert_eq!(counts, [1, 2]);
    assert!(
        bus::receive(&sqs, "sms-notifier", url, 10, Duration::ZERO)
            .await
            .expect("receive")
            .is_empty()
    );

    let dead = bus::dead_letters(&sqs, &queues).await.expect("dead letters");
    assert_eq!(dead, [("sms-notifier".to_owned(), event.clone())]);
    assert_eq!(
        bus::dead_letters(&sqs, &queues).await.expect("dead letters again"),
        dead,
        "a peek removes nothing"
    );

    let worklist = queues.queue_of("centre-worklist").expect("the worklist's queue");
    sqs.send_message()
        .queue_url(worklist)
        .message_body("not an event")
        .send()
        .await
        .expect("sent");
    assert!(
        bus::receive(&sqs, "centre-worklist", worklist, 10, wait)
            .await
            .expect("receive")
            .is_empty()
    );
    let left = sqs
        .get_queue_attributes()
        .queue_url(worklist)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("attributes");
    let count = |n| left.attributes().and_then(|a| a.get(&n)).cloned().unwrap_or_default();
    assert_eq!(count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages), "0");
    assert_eq!(
        count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        "0"
    );
}
