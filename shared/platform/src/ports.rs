//! The collaborators the use cases need, one trait each. Adapters live in `adapters/` and
//! are named after their technology; they translate their errors into these.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{PhoneNumber, Won};
use crate::events::EventEnvelope;

/// Identifies one aggregate: its bounded context (table) and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateKey {
    /// Bounded context, e.g. `checkup`.
    pub context: &'static str,
    /// Aggregate id.
    pub id: String,
}

impl AggregateKey {
    /// The aggregate `id` of `context`.
    pub fn new(context: &'static str, id: impl Into<String>) -> Self {
        Self { context, id: id.into() }
    }
}

/// A stored aggregate: its state (as JSON) and version.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Version: the number of events applied.
    pub version: u64,
    /// State.
    pub state: serde_json::Value,
}

/// Write an aggregate if its stored version is still `expected_version` (0 = absent).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateWrite {
    /// Which aggregate.
    pub key: AggregateKey,
    /// The version read before deciding.
    pub expected_version: u64,
    /// The version after the new events.
    pub new_version: u64,
    /// New state.
    pub state: serde_json::Value,
}

/// Move a bounded counter (a capacity) by `delta`: taking (`delta > 0`) only while it stays at
/// or under `limit`, giving back (`delta < 0`) only while it stays at or above 0 (a lowered
/// limit never blocks giving a place back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterMove {
    /// Counter key.
    pub key: String,
    /// +1 to take a place, -1 to give one back.
    pub delta: i64,
    /// The largest value allowed.
    pub limit: i64,
}

/// Marks an event as processed by a consumer; the transaction fails if it already was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedMark {
    /// Consumer name.
    pub consumer: String,
    /// Event id.
    pub event_id: String,
}

/// The first response to a request with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Whose key it is (the caller's subject and route).
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// Hash of the request body, to refuse the same key with another body.
    pub request_hash: String,
    /// HTTP status of the first response.
    pub status: u16,
    /// Its body.
    pub body: serde_json::Value,
    /// Its `Location` header.
    pub location: Option<String>,
}

/// Everything one command or consumer step writes, all or nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transaction {
    /// Aggregates, each conditional on its version.
    pub writes: Vec<AggregateWrite>,
    /// Bounded counters.
    pub counters: Vec<CounterMove>,
    /// Events to publish (the outbox).
    pub outbox: Vec<EventEnvelope>,
    /// The consumer's dedup mark.
    pub processed: Option<ProcessedMark>,
    /// The idempotent response to remember.
    pub idempotency: Option<IdempotencyRecord>,
}

impl Transaction {
    /// True when the transaction writes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.counters.is_empty()
            && self.outbox.is_empty()
            && self.processed.is_none()
            && self.idempotency.is_none()
    }
}

/// Why a store refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// An aggregate's version changed since it was read (a concurrent command).
    #[error("concurrent update of {0}")]
    VersionConflict(String),
    /// A counter would leave its bounds (no place left, or nothing to give back).
    #[error("counter {0} is at its limit")]
    CounterExhausted(String),
    /// The consumer already processed this event.
    #[error("event already processed")]
    AlreadyProcessed,
    /// Another request with the same idempotency key committed first.
    #[error("idempotency key already used")]
    IdempotencyKeyTaken,
    /// The store is unavailable or throttling; retrying may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back.
    #[error("corrupt item: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::VersionConflict(_))
    }
}

/// Aggregates, counters, dedup marks and idempotent responses, written transactionally.
#[async_trait]
pub trait AggregateStore: Send + Sync {
    /// Loads an aggregate.
    async fn load(&self, key: &AggregateKey) -> Result<Option<Stored>, StoreError>;
    /// Commits a transaction, all or nothing.
    async fn commit(&self, tx: Transaction) -> Result<(), StoreError>;
    /// Reads a counter (0 if never moved).
    async fn counter(&self, key: &str) -> Result<i64, StoreError>;
    /// True if `consumer` already processed `event_id`.
    async fn is_processed(&self, consumer: &str, event_id: &str) -> Result<bool, StoreError>;
    /// The remembered response for an idempotency key.
    async fn idempotency(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
}

/// The transactional outbox's read side: events not yet marked published.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Unpublished events that occurred before `before`, oldest first.
    async fn unpublished(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<EventEnvelope>, StoreError>;
    /// Marks events as published (they leave the unpublished list).
    async fn mark_published(&self, events: &[EventEnvelope]) -> Result<(), StoreError>;
}

/// One status view (the read side of a case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewRecord {
    /// The case id.
    pub id: String,
    /// Which flow (`checkup`).
    pub flow: String,
    /// The subject who owns the case.
    pub owner: String,
    /// Indexed date, if the flow has one.
    pub date: Option<String>,
    /// Indexed status.
    pub status: Option<String>,
    /// The queue the case waits in, if the flow has one (a doctor's, a test site's): the
    /// key of the staff's own list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// A category the staff filter lists by (a department, a test site, a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Creation time, the list order.
    pub created_at: DateTime<Utc>,
    /// Optimistic revision of the view row.
    pub revision: u64,
    /// The view itself.
    pub body: serde_json::Value,
}

/// A filter over views of one flow, newest first (or oldest first: a queue's order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewQuery {
    /// Flow.
    pub flow: String,
    /// Only this owner's.
    pub owner: Option<String>,
    /// Only this date.
    pub date: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only the cases in this queue.
    pub queue: Option<String>,
    /// Only the cases of this category.
    pub category: Option<String>,
    /// Oldest first, as a queue is worked through, instead of newest first.
    pub oldest_first: bool,
    /// Continue after this (created_at, id), in the list's order.
    pub after: Option<(DateTime<Utc>, String)>,
    /// Page size.
    pub limit: usize,
}

/// The status views, written by the projector and read by queries.
#[async_trait]
pub trait ViewStore: Send + Sync {
    /// One view.
    async fn get(&self, id: &str) -> Result<Option<ViewRecord>, StoreError>;
    /// Writes a view if its stored revision is still `expected_revision` (0 = absent).
    async fn put(&self, view: ViewRecord, expected_revision: u64) -> Result<(), StoreError>;
    /// Lists views, newest first.
    async fn list(&self, query: &ViewQuery) -> Result<Vec<ViewRecord>, StoreError>;
}

/// What a publish did, entry by entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Ids accepted by the bus.
    pub published: Vec<String>,
    /// Ids refused, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Puts events on the bus.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes events; entries can fail one by one.
    async fn publish(&self, events: &[EventEnvelope]) -> PublishOutcome;
}

/// One SMS to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMessage {
    /// Dedup key: the event id that caused it.
    pub key: String,
    /// Recipient.
    pub to: PhoneNumber,
    /// Text.
    pub body: String,
}

/// Why an SMS was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmsError {
    /// The number opted out or is invalid: retrying will not help.
    #[error("sms refused: {0}")]
    Refused(String),
    /// A passing failure: retry.
    #[error("sms failed: {0}")]
    Transient(String),
}

/// Sends SMS.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Sends one SMS; the same key sends at most once where the channel allows it.
    async fn send(&self, message: &SmsMessage) -> Result<String, SmsError>;
}

/// A card token from the payment provider's widget (never a card number).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CardToken(pub String);

impl std::fmt::Debug for CardToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardToken(***)")
    }
}

/// A request to take a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Provider-side idempotency key.
    pub idempotency_key: String,
    /// Card token.
    pub card_token: CardToken,
    /// Amount.
    pub amount: Won,
    /// Our reference (the case id).
    pub reference: String,
}

/// Why a payment call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The provider declined the card.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The provider did not answer in time.
    #[error("payment provider timed out")]
    Timeout,
    /// The provider is down or failing.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The circuit breaker is open; retry after the given time.
    #[error("payment provider circuit open")]
    CircuitOpen {
        /// When to retry.
        retry_after: Duration,
    },
}

/// The payment provider.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Takes a payment; returns the provider's reference. The same idempotency key returns
    /// the same live charge (a retry after a crash never charges twice); once that charge is
    /// voided, the key starts a new one.
    async fn charge(&self, request: &ChargeRequest) -> Result<String, PaymentError>;
    /// Releases a payment taken for a case that could not be stored.
    async fn void(&self, provider_ref: &str, idempotency_key: &str) -> Result<(), PaymentError>;
    /// Refunds a payment; the same key refunds once.
    async fn refund(&self, provider_ref: &str, amount: Won, idempotency_key: &str) -> Result<(), PaymentError>;
}

/// The time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// New ids.
pub trait Ids: Send + Sync {
    /// A new ULID.
    fn new_id(&self) -> String;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// ULIDs from the system clock and randomness.
#[derive(Debug, Default, Clone, Copy)]
pub struct UlidIds;

impl Ids for UlidIds {
    fn new_id(&self) -> String {
        ulid::Ulid::new().to_string()
    }
}
