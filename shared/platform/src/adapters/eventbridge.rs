//! The EventBridge publisher: each envelope becomes one `PutEvents` entry (`Source` =
//! `clinicflow.<context>`, `DetailType` = the event type, `Detail` = the whole envelope),
//! sent in batches that respect both of `PutEvents`' limits (10 entries, 256 KB). Entries
//! that fail one by one, and calls that fail as a whole, are retried with a doubling backoff;
//! what still fails is reported per event so that it stays in the outbox for the sweeper.
//! Nothing of an event but its id and the bus's error code is ever logged.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_eventbridge::config::http::HttpResponse;
use aws_sdk_eventbridge::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::events::EventEnvelope;
use crate::ports::{PublishOutcome, Publisher};

/// The most entries one `PutEvents` call takes.
const MAX_ENTRIES: usize = 10;
/// The largest total entry size of one `PutEvents` call, in bytes.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// What a `Time` field counts for in an entry's size.
const TIME_BYTES: usize = 14;

/// Entry error codes that retrying cannot fix (the rest, `InternalFailure` and
/// `ThrottlingException` among them, are retried).
const PERMANENT_ENTRY_ERRORS: &[&str] = &[
    "AccessDeniedException",
    "InvalidAccountIdException",
    "InvalidArgument",
    "MalformedDetail",
    "NotAuthorizedForSourceException",
    "NotAuthorizedForDetailTypeException",
    "RedactionFailure",
];

/// Call error codes worth retrying.
const RETRYABLE_CALL_ERRORS: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalException",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Publishes envelopes to one EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    attempts: u32,
    first_backoff: Duration,
}

impl EventBridgePublisher {
    /// A publisher to `bus` (a name or an ARN): 3 attempts, backoff from 50 ms, doubling.
    /// The publisher is the retry authority: give it a client with SDK retries disabled.
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
            attempts: 3,
            first_backoff: Duration::from_millis(50),
        }
    }

    /// Tries each entry at most `attempts` times (at least once), waiting `first_backoff`
    /// before the first retry and twice as long before each next one.
    pub fn with_retry(self, attempts: u32, first_backoff: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            first_backoff,
            ..self
        }
    }

    /// Opens the connection (during Lambda init) with one cheap call; its result is ignored.
    pub async fn prime(&self) {
        match self.client.describe_event_bus().name(&self.bus).send().await {
            Ok(_) => tracing::debug!("event bus connection primed"),
            Err(e) => tracing::debug!(error = %call_failure(&e).0, "event bus priming call failed"),
        }
    }

    async fn send_batch(&self, batch: Vec<Entry>, outcome: &mut PublishOutcome) {
        let mut pending = batch;
        let mut backoff = self.first_backoff;
        for attempt in 1..=self.attempts {
            let last = attempt == self.attempts;
            let entries = pending.iter().map(|p| p.entry.clone()).collect();
            let mut retry = Vec::new();
            match self.client.put_events().set_entries(Some(entries)).send().await {
                Ok(out) if out.failed_entry_count() == 0 => {
                    outcome.published.extend(pending.into_iter().map(|p| p.id));
                }
                Ok(out) => {
                    let results = out.entries();
                    for (i, p) in pending.into_iter().enumerate() {
                        let (code, message) = match results.get(i) {
                            Some(r) if r.error_code().is_none() => {
                                outcome.published.push(p.id);
                                continue;
                            }
                            Some(r) => (r.error_code().unwrap_or_default(), r.error_message().unwrap_or_default()),
                            None => ("MissingResult", "the bus returned no result for this entry"),
                        };
                        let reason = format!("{code}: {message}");
                        if !last && !PERMANENT_ENTRY_ERRORS.contains(&code) {
                            retry.push(p);
                        } else {
                            tracing::warn!(event_id = %p.id, error_code = code, attempt, "event not published");
                            outcome.failed.push((p.id, reason));
                        }
                    }
                }
                Err(e) => {
                    let (reason, retryable) = call_failure(&e);
                    if !last && retryable {
                        tracing::debug!(error = %reason, entries = pending.len(), attempt, "PutEvents failed; retrying");
                        retry = pending;
                    } else {
                        tracing::warn!(error = %reason, entries = pending.len(), attempt, "PutEvents failed; events not published");
                        outcome.failed.extend(pending.into_iter().map(|p| (p.id, reason.clone())));
                    }
                }
            }
            if retry.is_empty() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            pending = retry;
        }
    }
}

/// One event as a `PutEvents` entry, with its size as EventBridge counts it.
struct Entry {
    id: String,
    size: usize,
    entry: PutEventsRequestEntry,
}

/// An entry's size as AWS computes it: `Source`, `DetailType`, `Detail` and `Resources`
/// in UTF-8 bytes, plus 14 bytes for `Time`.
fn entry_size(entry: &PutEventsRequestEntry) -> usize {
    let text = |s: Option<&str>| s.map_or(0, str::len);
    let time = if entry.time().is_some() { TIME_BYTES } else { 0 };
    time + text(entry.source())
        + text(entry.detail_type())
        + text(entry.detail())
        + entry.resources().iter().map(String::len).sum::<usize>()
}

/// Groups entries into `PutEvents` calls of at most 10 entries and 256 KB, in order.
fn batches(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut out: Vec<Vec<Entry>> = Vec::new();
    let mut bytes = 0;
    for e in entries {
        match out.last_mut() {
            Some(batch) if batch.len() < MAX_ENTRIES && bytes + e.size <= MAX_BATCH_BYTES => {
                bytes += e.size;
                batch.push(e);
            }
            _ => {
                bytes = e.size;
                out.push(vec![e]);
            }
        }
    }
    out
}

/// A whole-call failure as `<code>: <message>`, and whether retrying may help.
fn call_failure<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> (String, bool) {
    match e {
        SdkError::ServiceError(_) => {
            let code = e.code().unwrap_or("Unknown");
            let status = e.raw_response().map_or(0, |r| r.status().as_u16());
            let retryable = RETRYABLE_CALL_ERRORS.contains(&code) || status == 429 || status >= 500;
            (format!("{code}: {}", e.message().unwrap_or_default()), retryable)
        }
        SdkError::ConstructionFailure(_) => (format!("ConstructionFailure: {e}"), false),
        SdkError::TimeoutError(_) => ("Timeout: the call timed out".to_owned(), true),
        _ => (format!("{e}"), true),
    }
}

#[async_trait]
impl Publisher for EventBridgePublisher {
    async fn publish(&self, events: &[EventEnvelope]) -> PublishOutcome {
        let mut outcome = PublishOutcome::default();
        let mut entries = Vec::with_capacity(events.len());
        for e in events {
            let detail = match serde_json::to_string(e) {
                Ok(d) => d,
                Err(err) => {
                    outcome.failed.push((e.id.clone(), format!("Serialization: {err}")));
                    continue;
                }
            };
            let entry = PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus)
                .source(&e.source)
                .detail_type(&e.event_type)
                .detail(detail)
                .time(DateTime::from_millis(e.occurred_at.timestamp_millis()))
                .build();
            let size = entry_size(&entry);
            if size > MAX_BATCH_BYTES {
                tracing::warn!(event_id = %e.id, size, "event too large for EventBridge; not sent");
                outcome.failed.push((
                    e.id.clone(),
                    format!("EntryTooLarge: the entry is {size} bytes, over EventBridge's {MAX_BATCH_BYTES}-byte limit"),
                ));
                continue;
            }
            entries.push(Entry {
                id: e.id.clone(),
                size,
                entry,
            });
        }
        for batch in batches(entries) {
            self.send_batch(batch, &mut outcome).await;
        }
        tracing::debug!(
            published = outcome.published.len(),
            failed = outcome.failed.len(),
            "published to the event bus"
        );
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_eventbridge::Client;
    use aws_sdk_eventbridge::config::retry::RetryConfig;
    use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_eventbridge::error::ErrorMetadata;
    use aws_sdk_eventbridge::operation::put_events::{PutEventsError, PutEventsInput, PutEventsOutput};
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
    use chrono::Utc;

    use super::*;

    /// A client answering from `rules`, with the SDK's own retries off so that only the
    /// publisher's retries are seen.
    fn client(mode: RuleMode, rules: &[&Rule]) -> Client {
        let interceptor = rules
            .iter()
            .fold(MockResponseInterceptor::new().rule_mode(mode), |i, r| i.with_rule(r));
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build();
        Client::from_conf(config)
    }

    fn publisher(client: Client) -> EventBridgePublisher {
        EventBridgePublisher::new(client, "bus").with_retry(3, Duration::from_millis(1))
    }

    fn event(id: &str, event_type: &str, padding: usize) -> EventEnvelope {
        EventEnvelope {
            id: id.to_owned(),
            event_type: event_type.to_owned(),
            source: "clinicflow.sample".to_owned(),
            aggregate_id: "b1".to_owned(),
            version: 1,
            correlation_id: "c1".to_owned(),
            causation_id: "r1".to_owned(),
            occurred_at: Utc::now(),
            data: serde_json::json!({ "padding": "x".repeat(padding) }),
        }
    }

    fn events(n: usize, padding: usize) -> Vec<EventEnvelope> {
        (0..n).map(|i| event(&format!("e{i}"), "SampleBooked", padding)).collect()
    }

    fn ids(events: &[EventEnvelope]) -> Vec<String> {
        events.iter().map(|e| e.id.clone()).collect()
    }

    /// The ids of a request's entries, read back from their `Detail`.
    fn request_ids(req: &PutEventsInput) -> Vec<String> {
        req.entries()
            .iter()
            .map(|e| {
                let detail: EventEnvelope = serde_json::from_str(e.detail().expect("detail")).expect("envelope");
                detail.id
            })
            .collect()
    }

    /// Accepts every entry, recording each call's entry count and total size.
    fn accept_all(calls: Arc<Mutex<Vec<(usize, usize)>>>) -> Rule {
        mock!(Client::put_events).then_compute_output(move |req| {
            let size = req.entries().iter().map(entry_size).sum();
            calls.lock().expect("lock").push((req.entries().len(), size));
            let results = req.entries().iter().map(|_| PutEventsResultEntry::builder().event_id("x").build());
            PutEventsOutput::builder()
                .failed_entry_count(0)
                .set_entries(Some(results.collect()))
                .build()
        })
    }

    /// Fails the entry of event `failing` with `code`, accepts the others.
    fn fail_one(failing: &'static str, code: &'static str) -> impl Fn(&PutEventsInput) -> PutEventsOutput + Send + Sync + 'static {
        move |req| {
            let ids = request_ids(req);
            let results: Vec<_> = ids
                .iter()
                .map(|id| {
                    if id == failing {
                        PutEventsResultEntry::builder().error_code(code).error_message("no luck").build()
                    } else {
                        PutEventsResultEntry::builder().event_id("x").build()
                    }
                })
                .collect();
            let failed = ids.iter().filter(|id| *id == failing).count() as i32;
            PutEventsOutput::builder()
                .failed_entry_count(failed)
                .set_entries(Some(results))
                .build()
        }
    }

    #[tokio::test]
    async fn twenty_three_events_go_out_in_calls_of_ten_ten_and_three() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rule = accept_all(calls.clone());
        let events = events(23, 10);
        let outcome = publisher(client(RuleMode::MatchAny, &[&rule])).publish(&events).await;
        assert_eq!(outcome.published, ids(&events));
        assert!(outcome.failed.is_empty());
        let counts: Vec<usize> = calls.lock().expect("lock").iter().map(|c| c.0).collect();
        assert_eq!(counts, [10, 10, 3]);
    }

    #[tokio::test]
    async fn large_events_are_split_by_size() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rule = accept_all(calls.clone());
        let events = events(5, 100 * 1024);
        let outcome = publisher(client(RuleMode::MatchAny, &[&rule])).publish(&events).await;
        assert_eq!(outcome.published, ids(&events));
        let calls = calls.lock().expect("lock").clone();
        assert_eq!(calls.iter().map(|c| c.0).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(calls.iter().all(|c| c.1 <= MAX_BATCH_BYTES), "{calls:?}");
    }

    #[tokio::test]
    async fn an_entry_over_the_limit_fails_locally_and_is_never_sent() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let rule = accept_all(calls.clone());
        let mut events = events(2, 10);
        events.insert(1, event("huge", "SampleBooked", MAX_BATCH_BYTES));
        let outcome = publisher(client(RuleMode::MatchAny, &[&rule])).publish(&events).await;
        assert_eq!(outcome.published, ["e0", "e1"]);
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(outcome.failed[0].0, "huge");
        assert!(outcome.failed[0].1.starts_with("EntryTooLarge"), "{}", outcome.failed[0].1);
        assert_eq!(calls.lock().expect("lock").iter().map(|c| c.0).collect::<Vec<_>>(), [2]);
    }

    #[tokio::test]
    async fn an_entry_that_fails_once_is_retried_alone_and_published() {
        let first = mock!(Client::put_events).then_compute_output(fail_one("e1", "InternalFailure"));
        let retry = mock!(Client::put_events)
            .match_requests(|req| request_ids(req) == ["e1"])
            .then_compute_output(fail_one("none", "-"));
        let events = events(3, 10);
        let outcome = publisher(client(RuleMode::Sequential, &[&first, &retry])).publish(&events).await;
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        let mut published = outcome.published;
        published.sort();
        assert_eq!(published, ids(&events));
        assert_eq!((first.num_calls(), retry.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn an_entry_that_always_fails_is_reported_with_its_error_code() {
        let rule = mock!(Client::put_events).then_compute_output(fail_one("e1", "ThrottlingException"));
        let events = events(3, 10);
        let outcome = publisher(client(RuleMode::MatchAny, &[&rule])).publish(&events).await;
        assert_eq!(outcome.published, ["e0", "e2"]);
        assert_eq!(outcome.failed, [("e1".to_owned(), "ThrottlingException: no luck".to_owned())]);
        assert_eq!(rule.num_calls(), 3, "tried as many times as the publisher's attempts");
    }

    #[tokio::test]
    async fn a_permanently_refused_entry_is_not_retried() {
        let rule = mock!(Client::put_events).then_compute_output(fail_one("e0", "InvalidArgument"));
        let events = events(2, 10);
        let outcome = publisher(client(RuleMode::MatchAny, &[&rule])).publish(&events).await;
        assert_eq!(outcome.published, ["e1"]);
        assert_eq!(outcome.failed, [("e0".to_owned(), "InvalidArgument: no luck".to_owned())]);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_throttled_call_is_retried_whole() {
        let throttled = mock!(Client::put_events)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_owned()),
            )
            .build();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let ok = accept_all(calls.clone());
        let events = events(4, 10);
        let outcome = publisher(client(RuleMode::Sequential, &[&throttled, &ok])).publish(&events).await;
        assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
        assert_eq!(outcome.published, ids(&events));
        assert_eq!(calls.lock().expect("lock").iter().map(|c| c.0).collect::<Vec<_>>(), [4]);
    }

    #[tokio::test]
    async fn a_call_failing_every_time_leaves_every_event_failed() {
        let rule = mock!(Client::put_events)
            .then_error(|| PutEventsError::generic(ErrorMetadata::builder().code("InternalException").message("boom").build()));
        let events = events(2, 10);
        let outcome = publisher(client(RuleMode::MatchAny, &[&rule])).publish(&events).await;
        assert!(outcome.published.is_empty());
        assert_eq!(
            outcome.failed,
            [
                ("e0".to_owned(), "InternalException: boom".to_owned()),
                ("e1".to_owned(), "InternalException: boom".to_owned())
            ]
        );
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn entries_carry_source_type_detail_bus_and_time() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let rule = mock!(Client::put_events).then_compute_output(move |req| {
            record.lock().expect("lock").extend(req.entries().iter().cloned());
            PutEventsOutput::builder()
                .failed_entry_count(0)
                .entries(PutEventsResultEntry::builder().event_id("x").build())
                .build()
        });
        let e = event("e0", "SampleBooked", 0);
        publisher(client(RuleMode::MatchAny, &[&rule]))
            .publish(std::slice::from_ref(&e))
            .await;
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].source(), Some("clinicflow.sample"));
        assert_eq!(seen[0].detail_type(), Some("SampleBooked"));
        assert_eq!(seen[0].event_bus_name(), Some("bus"));
        assert_eq!(
            seen[0].time().map(|t| t.to_millis().ok()),
            Some(Some(e.occurred_at.timestamp_millis()))
        );
        let detail: EventEnvelope = serde_json::from_str(seen[0].detail().expect("detail")).expect("envelope");
        assert_eq!(detail, e);
    }
}
