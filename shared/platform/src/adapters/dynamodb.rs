//! The DynamoDB store: aggregates, bounded counters and the transactional outbox in one
//! table per bounded context, consumer dedup marks and idempotent responses in the
//! `processed` table, status views in the `views` table. It honours the same contract as
//! the embedded (SQLite) store; `tests/tests/contract_store.rs` runs the same tests on both.
//!
//! # Item layout
//!
//! Every table's partition key is `pk` (S); no base table has a sort key. Timestamps are
//! RFC 3339 text with microseconds and `Z`, fixed width so that text order is time order.
//!
//! Context tables (`checkup`, `payment`, `centre` with a `NEW_IMAGE` stream; `notification`
//! without one; TTL on `expires_at`):
//! - aggregate: `pk = "aggregate#<id>"`, `version` (N), `state` (M, the JSON state);
//! - counter: `pk = "counter#<key>"`, `value` (N); the key `checkup#2026-12-01#basic`
//!   lives in the table of the context before its first `#`;
//! - outbox event: `pk = "event#<event id>"`, `envelope` (M, the [`EventEnvelope`]),
//!   `occurred_at` (S); while unpublished also `pending = "pending"` and
//!   `pending_at = "<occurred_at>#<event id>"`, the keys of the sparse GSI `pending`
//!   (projection ALL) that the sweeper queries. Publishing removes both and sets
//!   `published_at` (S) and `expires_at` (N, epoch seconds, 7 days later). An event lives
//!   in the table of the context of its `source` (`clinicflow.<context>`).
//!
//! Processed table (TTL on `expires_at`):
//! - consumer mark: `pk = "processed#<consumer>#<event id>"`, `at` (S), `expires_at` (+30 days);
//! - idempotent response: `pk = "idempotency#<scope>#<key>"`, `record` (M, the
//!   [`IdempotencyRecord`]), `expires_at` (+24 hours).
//!
//! Views table: `pk` = view id, `flow`, `owner`, `date`, `status` and `queue` (each absent
//! when `None`), `created_at` (S), `revision` (N), `body` (M), and the GSI keys
//! `owner_key = "<flow>#<owner>"`, `date_key = "<flow>#<date>"` (only with a date),
//! `queue_key = "<flow>#<queue>"` (only with a queue), `flow_key = "<flow>"`,
//! `order_key = "<created_at>#<id>"`. GSIs `by_owner`, `by_queue`, `by_date` and `by_flow`
//! (hash the matching key, range `order_key`, projection ALL; the first that the query
//! names, its other keys filtered) list a flow's views newest first.
//!
//! A commit is one `TransactWriteItems`: every item is conditional (aggregate version,
//! counter bounds, absent dedup mark and idempotency key), and a cancellation is mapped
//! back to the [`StoreError`] of the item that refused.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem, Update,
};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::events::EventEnvelope;
use crate::ports::{
    AggregateKey, AggregateStore, IdempotencyRecord, Outbox, StoreError, Stored, Transaction, ViewQuery, ViewRecord, ViewStore,
};
use crate::topology::{self, PENDING_INDEX, TABLE_KEY as PK, TTL_ATTRIBUTE, VIEWS};

type Attrs = HashMap<String, AttributeValue>;

const PENDING: &str = "pending";
const PENDING_AT: &str = "pending_at";
const SOURCE_PREFIX: &str = "clinicflow.";
const MAX_TRANSACTION_ITEMS: usize = 100;
const PUBLISHED_TTL: chrono::Duration = chrono::Duration::days(7);
const PROCESSED_TTL: chrono::Duration = chrono::Duration::days(30);
const IDEMPOTENCY_TTL: chrono::Duration = chrono::Duration::hours(24);
const TABLE_ACTIVE_WAIT: Duration = Duration::from_secs(300);
const CONCURRENT_MARKS: usize = 8;
const FILTERED_PAGE: usize = 50;

const PROCESSED: &str = topology::PROCESSED;
const ORDER_KEY: &str = "order_key";

/// The tables of one deployment that a function knows: those of its environment. An
/// empty name is a table the function was not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamoTables {
    /// Bounded-context tables: (context, table name).
    pub contexts: Vec<(&'static str, String)>,
    /// The status views.
    pub views: String,
    /// Processed marks and idempotent responses (TTL).
    pub processed: String,
}

impl DynamoTables {
    /// The physical name of a logical table of the catalog, if the function was given it.
    pub fn name_of(&self, table: &str) -> Option<&str> {
        match table {
            VIEWS => Some(self.views.as_str()),
            PROCESSED => Some(self.processed.as_str()),
            context => self.contexts.iter().find(|(c, _)| *c == context).map(|(_, name)| name.as_str()),
        }
        .filter(|name| !name.is_empty())
    }

    /// Names logical table `table` (`views`, `processed`, or a context's).
    pub fn name(&mut self, table: &'static str, name: String) {
        match table {
            VIEWS => self.views = name,
            PROCESSED => self.processed = name,
            context => match self.contexts.iter_mut().find(|(c, _)| *c == context) {
                Some((_, existing)) => *existing = name,
                None => self.contexts.push((context, name)),
            },
        }
    }

    /// The physical name of `table`, or an error naming the variable the function lacks.
    fn require(&self, table: &str) -> Result<&str, StoreError> {
        self.name_of(table).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "no table {table}: {} is not in this function's environment",
                topology::table_variable(table)
            ))
        })
    }
}

/// The DynamoDB store: [`AggregateStore`], [`Outbox`] and [`ViewStore`] on the tables of
/// [`DynamoTables`], sharing one client.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: DynamoTables,
}

/// True for the context tables that have a stream (and so feed the projector and sweeper):
/// every one but the notifier's own.
fn has_stream(context: &str) -> bool {
    context != topology::NOTIFICATION
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("{what}: bad timestamp")))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn expiry(now: DateTime<Utc>, ttl: chrono::Duration) -> i64 {
    (now + ttl).timestamp()
}

/// Encodes one item through serde_dynamo.
fn to_item<T: Serialize>(value: &T, what: &str) -> Result<Attrs, StoreError> {
    serde_dynamo::to_item(value).map_err(|_| StoreError::Corrupt(format!("{what}: cannot be encoded")))
}

/// Decodes one item through serde_dynamo, without echoing serde's message, which may
/// quote stored (personal) data.
fn from_item<T: DeserializeOwned>(item: impl Into<serde_dynamo::Item>, what: &str) -> Result<T, StoreError> {
    serde_dynamo::from_item(item.into()).map_err(|_| StoreError::Corrupt(format!("{what}: cannot be decoded")))
}

/// The items of the layout above, one type each, encoded and decoded by serde_dynamo.
/// Field names are the attribute names (`pk` is [`PK`], `expires_at` is [`TTL_ATTRIBUTE`],
/// held together by a test).
/// Written from borrowed values (`Cow::Borrowed`: a commit copies no state or envelope),
/// read into owned ones.
mod item {
    use std::borrow::Cow;

    use serde::{Deserialize, Serialize};

    use crate::events::EventEnvelope;
    use crate::ports::IdempotencyRecord;

    /// An aggregate's state and version.
    #[derive(Debug, Serialize, Deserialize)]
    pub(super) struct Aggregate<'a> {
        pub pk: String,
        pub version: u64,
        pub state: Cow<'a, serde_json::Value>,
    }

    /// A bounded counter (written by `ADD`, only read as an item).
    #[derive(Debug, Deserialize)]
    pub(super) struct Counter {
        pub value: i64,
    }

    /// An outbox event; `pending` and `pending_at` only until it is published.
    #[derive(Debug, Serialize, Deserialize)]
    pub(super) struct Event<'a> {
        pub pk: String,
        pub envelope: Cow<'a, EventEnvelope>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub pending: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub pending_at: Option<String>,
        pub occurred_at: String,
    }

    /// A consumer's dedup mark.
    #[derive(Debug, Serialize)]
    pub(super) struct Processed {
        pub pk: String,
        pub at: String,
        pub expires_at: i64,
    }

    /// An idempotent response.
    #[derive(Debug, Serialize, Deserialize)]
    pub(super) struct Idempotency<'a> {
        pub pk: String,
        pub record: Cow<'a, IdempotencyRecord>,
        pub expires_at: i64,
    }

    /// A status view with the keys of its indexes.
    #[derive(Debug, Serialize, Deserialize)]
    pub(super) struct View<'a> {
        pub pk: String,
        pub flow: String,
        pub owner: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub date: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub queue: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub category: Option<String>,
        pub created_at: String,
        pub revision: u64,
        pub body: Cow<'a, serde_json::Value>,
        pub owner_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub date_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub queue_key: Option<String>,
        pub flow_key: String,
        pub order_key: String,
    }
}

fn names<const N: usize>(pairs: [(&str, &str); N]) -> HashMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn build_err(e: BuildError) -> StoreError {
    StoreError::Corrupt(format!("invalid request: {e}"))
}

fn page_size(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Any failed SDK call, as a retryable [`StoreError::Unavailable`] naming the operation and
/// the error code only (a message could quote item contents; a validation message cannot).
fn sdk_error<E: ProvideErrorMetadata, R>(operation: &str, err: &SdkError<E, R>) -> StoreError {
    let cause = match err {
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => "could not reach DynamoDB".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "could not build the request".to_owned(),
        SdkError::ServiceError(_) => match (err.code(), err.message()) {
            (Some(code @ "ValidationException"), Some(message)) => format!("{code}: {}", message.chars().take(200).collect::<String>()),
            (Some(code), _) => code.to_owned(),
            (None, _) => "service error".to_owned(),
        },
        _ => "failed".to_owned(),
    };
    StoreError::Unavailable(format!("{operation}: {cause}"))
}

fn aggregate_pk(id: &str) -> String {
    format!("aggregate#{id}")
}

fn counter_pk(key: &str) -> String {
    format!("counter#{key}")
}

fn event_pk(id: &str) -> String {
    format!("event#{id}")
}

fn processed_pk(consumer: &str, event_id: &str) -> String {
    format!("processed#{consumer}#{event_id}")
}

fn idempotency_pk(scope: &str, key: &str) -> String {
    format!("idempotency#{scope}#{key}")
}

fn order_key(created_at: DateTime<Utc>, id: &str) -> String {
    format!("{}#{id}", ts(created_at))
}

/// What one item of a transaction is, to name the refusal when its condition fails.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// An aggregate write, named `<context>/<id>`.
    Aggregate(String),
    /// A counter move, by key.
    Counter(String),
    /// An outbox event, by id.
    Event(String),
    /// The consumer's dedup mark.
    Processed,
    /// The idempotent response.
    Idempotency,
}

impl Slot {
    fn refused(&self) -> StoreError {
        match self {
            Self::Aggregate(name) => StoreError::VersionConflict(name.clone()),
            Self::Counter(key) => StoreError::CounterExhausted(key.clone()),
            Self::Event(id) => StoreError::VersionConflict(format!("event/{id}")),
            Self::Processed => StoreError::AlreadyProcessed,
            Self::Idempotency => StoreError::IdempotencyKeyTaken,
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Aggregate(name) | Self::Counter(name) => name.clone(),
            Self::Event(id) => format!("event/{id}"),
            Self::Processed => "processed mark".to_owned(),
            Self::Idempotency => "idempotency record".to_owned(),
        }
    }
}

/// Maps the cancellation reasons of a `TransactWriteItems` (by item index, `None` or
/// `"None"` for the items that passed) to the error of the item that refused. A failed
/// condition wins over a conflict, a conflict over throttling.
fn cancellation_error(slots: &[Slot], reasons: &[Option<&str>]) -> StoreError {
    let first = |code: &str| slots.iter().zip(reasons).find(|(_, r)| **r == Some(code)).map(|(slot, _)| slot);
    if let Some(slot) = first("ConditionalCheckFailed") {
        return slot.refused();
    }
    if let Some(slot) = first("TransactionConflict") {
        return StoreError::VersionConflict(slot.name());
    }
    let codes: Vec<&str> = reasons.iter().flatten().copied().filter(|c| *c != "None").collect();
    if codes
        .iter()
        .any(|c| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded"))
    {
        return StoreError::Unavailable("transaction throttled".to_owned());
    }
    if let Some(code) = codes.first() {
        return StoreError::Unavailable(format!("transaction cancelled: {code}"));
    }
    match slots.iter().find(|s| matches!(s, Slot::Aggregate(_))) {
        Some(slot) => StoreError::VersionConflict(slot.name()),
        None => StoreError::Unavailable("transaction cancelled without reasons".to_owned()),
    }
}

/// The envelope of a context table's stream image (`NewImage`): `Some` for an outbox
/// item, `None` for any other item (aggregate, counter), [`StoreError::Corrupt`] for an
/// outbox item that cannot be decoded.
pub fn outbox_envelope(image: serde_dynamo::Item) -> Result<Option<EventEnvelope>, StoreError> {
    let is_event = matches!(image.get(PK), Some(serde_dynamo::AttributeValue::S(pk)) if pk.starts_with("event#"));
    if !is_event {
        return Ok(None);
    }
    envelope_from_item(image).map(Some)
}

fn view_item(view: &ViewRecord) -> Result<Attrs, StoreError> {
    let created_at = ts(view.created_at);
    let item = item::View {
        pk: view.id.clone(),
        flow: view.flow.clone(),
        owner: view.owner.clone(),
        date: view.date.clone(),
        status: view.status.clone(),
        queue: view.queue.clone(),
        category: view.category.clone(),
        revision: view.revision,
        body: Cow::Borrowed(&view.body),
        owner_key: format!("{}#{}", view.flow, view.owner),
        date_key: view.date.as_ref().map(|date| format!("{}#{date}", view.flow)),
        queue_key: view.queue.as_ref().map(|queue| format!("{}#{queue}", view.flow)),
        flow_key: view.flow.clone(),
        order_key: order_key(view.created_at, &view.id),
        created_at,
    };
    to_item(&item, &format!("view {}", view.id))
}

fn view_from_item(item: Attrs) -> Result<ViewRecord, StoreError> {
    let item: item::View<'static> = from_item(item, "view")?;
    let what = format!("view {}", item.pk);
    Ok(ViewRecord {
        created_at: parse_ts(&item.created_at, &what)?,
        id: item.pk,
        flow: item.flow,
        owner: item.owner,
        date: item.date,
        status: item.status,
        queue: item.queue,
        category: item.category,
        revision: item.revision,
        body: item.body.into_owned(),
    })
}

fn envelope_from_item(item: impl Into<serde_dynamo::Item>) -> Result<EventEnvelope, StoreError> {
    from_item::<item::Event<'static>>(item, "outbox item").map(|e| e.envelope.into_owned())
}

fn key_element(name: &str, key_type: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(build_err)
}

fn string_attribute(name: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_err)
}

fn index(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key_element(hash, KeyType::Hash)?)
        .key_schema(key_element(range, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build_err)
}

impl DynamoStore {
    /// A store on these tables.
    pub fn new(client: Client, tables: DynamoTables) -> Self {
        Self { client, tables }
    }

    /// The tables.
    pub fn tables(&self) -> &DynamoTables {
        &self.tables
    }

    /// The DynamoDB client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens the connection during init with one cheap read of `table` (a logical name
    /// the function may read, so that the call is allowed) whose result is ignored.
    pub async fn prime(&self, table: &str) {
        let Some(name) = self.tables.name_of(table) else {
            return;
        };
        let result = self.client.get_item().table_name(name).key(PK, s("prime#")).send().await;
        match result {
            Ok(_) => tracing::debug!("dynamodb connection primed"),
            Err(e) => tracing::debug!(error = %sdk_error("GetItem", &e), "dynamodb prime call failed"),
        }
    }

    /// Creates every table of `tables` (the catalog's) that does not exist yet (on demand
    /// capacity, the streams, the GSIs, TTL on `expires_at`) and waits until they are
    /// active. Calling it again is harmless.
    pub async fn create_tables(&self, tables: &[topology::Table]) -> Result<(), StoreError> {
        let mut specs = Vec::new();
        for table in tables {
            let name = self
                .tables
                .name_of(table.name)
                .ok_or_else(|| StoreError::Corrupt(format!("no table name for {}", table.name)))?;
            specs.push((name, table));
        }
        futures::future::try_join_all(specs.into_iter().map(|(name, spec)| self.create_table(name, spec))).await?;
        Ok(())
    }

    async fn create_table(&self, name: &str, spec: &topology::Table) -> Result<(), StoreError> {
        let mut attributes = vec![PK];
        for index in spec.indexes {
            for attribute in [index.hash, index.range] {
                if !attributes.contains(&attribute) {
                    attributes.push(attribute);
                }
            }
        }
        let mut request = self
            .client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key_element(PK, KeyType::Hash)?);
        for attribute in attributes {
            request = request.attribute_definitions(string_attribute(attribute)?);
        }
        for i in spec.indexes {
            request = request.global_secondary_indexes(index(i.name, i.hash, i.range)?);
        }
        if spec.stream {
            let stream = StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .map_err(build_err)?;
            request = request.stream_specification(stream);
        }
        match request.send().await {
            Ok(_) => tracing::info!(table = name, "table created"),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(e) => return Err(sdk_error("CreateTable", &e)),
        }
        self.client
            .wait_until_table_exists()
            .table_name(name)
            .wait(TABLE_ACTIVE_WAIT)
            .await
            .map_err(|_| StoreError::Unavailable(format!("table {name} did not become active")))?;
        if spec.ttl {
            self.enable_ttl(name).await?;
        }
        Ok(())
    }

    async fn enable_ttl(&self, table: &str) -> Result<(), StoreError> {
        let current = self
            .client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTimeToLive", &e))?;
        let enabled = current.time_to_live_description.as_ref().is_some_and(|d| {
            d.attribute_name() == Some(TTL_ATTRIBUTE)
                && matches!(
                    d.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                )
        });
        if enabled {
            return Ok(());
        }
        let spec = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .map_err(build_err)?;
        match self
            .client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.code() == Some("ValidationException") && e.message().is_some_and(|m| m.to_lowercase().contains("already enabled")) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("UpdateTimeToLive", &e)),
        }
    }

    /// The latest stream ARN of every context table that has a stream, by context.
    pub async fn stream_arns(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        let mut arns = Vec::new();
        for (context, table) in self.tables.contexts.iter().filter(|(c, _)| has_stream(c)) {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", &e))?;
            let arn = described
                .table
                .and_then(|t| t.latest_stream_arn)
                .ok_or_else(|| StoreError::Unavailable(format!("table {table} has no stream")))?;
            arns.push((*context, arn));
        }
        Ok(arns)
    }

    fn context_table(&self, context: &str) -> Result<&str, StoreError> {
        self.tables.require(context)
    }

    /// The same client on other context tables (views and processed marks unchanged): the
    /// sweeper's store for the tables one schedule names.
    pub fn with_contexts(&self, contexts: Vec<(&'static str, String)>) -> Self {
        Self {
            client: self.client.clone(),
            tables: DynamoTables {
                contexts,
                ..self.tables.clone()
            },
        }
    }

    fn counter_table(&self, key: &str) -> Result<&str, StoreError> {
        let context = key.split_once('#').map_or(key, |(context, _)| context);
        self.context_table(context)
    }

    fn event_table(&self, event: &EventEnvelope) -> Result<&str, StoreError> {
        let context = event
            .source
            .strip_prefix(SOURCE_PREFIX)
            .ok_or_else(|| StoreError::Corrupt(format!("event {}: source is not clinicflow.<context>", event.id)))?;
        self.context_table(context)
    }

    async fn get(&self, table: &str, pk: String, operation: &str) -> Result<Option<Attrs>, StoreError> {
        self.client
            .get_item()
            .table_name(table)
            .key(PK, s(pk))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| sdk_error(operation, &e))
    }

    fn transaction_items(&self, tx: &Transaction, now: DateTime<Utc>) -> Result<(Vec<TransactWriteItem>, Vec<Slot>), StoreError> {
        let count = tx.writes.len()
            + tx.counters.len()
            + tx.outbox.len()
            + usize::from(tx.processed.is_some())
            + usize::from(tx.idempotency.is_some());
        if count > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Corrupt(format!(
                "transaction too large: {count} items, at most {MAX_TRANSACTION_ITEMS}"
            )));
        }
        let mut items = Vec::with_capacity(count);
        let mut slots = Vec::with_capacity(count);
        for w in &tx.writes {
            let name = format!("{}/{}", w.key.context, w.key.id);
            let item = to_item(
                &item::Aggregate {
                    pk: aggregate_pk(&w.key.id),
                    version: w.new_version,
                    state: Cow::Borrowed(&w.state),
                },
                &format!("aggregate {name}"),
            )?;
            let mut put = Put::builder().table_name(self.context_table(w.key.context)?).set_item(Some(item));
            put = if w.expected_version == 0 {
                put.condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", PK)
            } else {
                put.condition_expression("#version = :expected")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":expected", n(w.expected_version))
            };
            items.push(TransactWriteItem::builder().put(put.build().map_err(build_err)?).build());
            slots.push(Slot::Aggregate(name));
        }
        for m in &tx.counters {
            let update = Update::builder()
                .table_name(self.counter_table(&m.key)?)
                .key(PK, s(counter_pk(&m.key)))
                .update_expression("ADD #v :delta")
                .expression_attribute_names("#v", "value")
                .expression_attribute_values(":delta", n(m.delta));
            let update = if m.delta >= 0 {
                if m.delta > m.limit {
                    return Err(StoreError::CounterExhausted(m.key.clone()));
                }
                update
                    .condition_expression("attribute_not_exists(#v) OR #v <= :max")
                    .expression_attribute_values(":max", n(m.limit - m.delta))
            } else {
                update
                    .condition_expression("#v >= :min")
                    .expression_attribute_values(":min", n(-m.delta))
            };
            items.push(TransactWriteItem::builder().update(update.build().map_err(build_err)?).build());
            slots.push(Slot::Counter(m.key.clone()));
        }
        if let Some(p) = &tx.processed {
            let item = to_item(
                &item::Processed {
                    pk: processed_pk(&p.consumer, &p.event_id),
                    at: ts(now),
                    expires_at: expiry(now, PROCESSED_TTL),
                },
                "processed mark",
            )?;
            items.push(self.put_new(self.tables.require(PROCESSED)?, item)?);
            slots.push(Slot::Processed);
        }
        if let Some(record) = &tx.idempotency {
            let item = to_item(
                &item::Idempotency {
                    pk: idempotency_pk(&record.scope, &record.key),
                    record: Cow::Borrowed(record),
                    expires_at: expiry(now, IDEMPOTENCY_TTL),
                },
                "idempotency record",
            )?;
            items.push(self.put_new(self.tables.require(PROCESSED)?, item)?);
            slots.push(Slot::Idempotency);
        }
        for e in &tx.outbox {
            let occurred_at = ts(e.occurred_at);
            let item = to_item(
                &item::Event {
                    pk: event_pk(&e.id),
                    envelope: Cow::Borrowed(e),
                    pending: Some(PENDING.to_owned()),
                    pending_at: Some(format!("{occurred_at}#{}", e.id)),
                    occurred_at,
                },
                &format!("event {}", e.id),
            )?;
            items.push(self.put_new(self.event_table(e)?, item)?);
            slots.push(Slot::Event(e.id.clone()));
        }
        Ok((items, slots))
    }

    fn put_new(&self, table: &str, item: Attrs) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(build_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    async fn pending_events(&self, table: &str, before: &str, limit: usize) -> Result<Vec<EventEnvelope>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("#p = :p AND #at < :before")
                .set_expression_attribute_names(Some(names([("#p", PENDING), ("#at", PENDING_AT)])))
                .expression_attribute_values(":p", s(PENDING))
                .expression_attribute_values(":before", s(before))
                .scan_index_forward(true)
                .limit(page_size(limit - out.len()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Query", &e))?;
            for item in page.items.unwrap_or_default() {
                out.push(envelope_from_item(item)?);
            }
            start = page.last_evaluated_key;
            if out.len() >= limit || start.is_none() {
                out.truncate(limit);
                return Ok(out);
            }
        }
    }

    async fn mark_one(&self, table: &str, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(PK, s(event_pk(id)))
            .update_expression("REMOVE #p, #at SET #published = :now, #expires = :ttl")
            .condition_expression("attribute_exists(#pk)")
            .set_expression_attribute_names(Some(names([
                ("#p", PENDING),
                ("#at", PENDING_AT),
                ("#published", "published_at"),
                ("#expires", TTL_ATTRIBUTE),
                ("#pk", PK),
            ])))
            .expression_attribute_values(":now", s(ts(now)))
            .expression_attribute_values(":ttl", n(expiry(now, PUBLISHED_TTL)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(sdk_error("UpdateItem", &e)),
        }
    }
}

#[async_trait]
impl AggregateStore for DynamoStore {
    async fn load(&self, key: &AggregateKey) -> Result<Option<Stored>, StoreError> {
        let table = self.context_table(key.context)?;
        let Some(item) = self.get(table, aggregate_pk(&key.id), "GetItem").await? else {
            return Ok(None);
        };
        let item: item::Aggregate<'static> = from_item(item, &format!("aggregate {}/{}", key.context, key.id))?;
        Ok(Some(Stored {
            version: item.version,
            state: item.state.into_owned(),
        }))
    }

    async fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        if tx.is_empty() {
            return Ok(());
        }
        let (items, slots) = self.transaction_items(&tx, Utc::now())?;
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    let reasons: Vec<Option<&str>> = cancelled.cancellation_reasons().iter().map(|r| r.code()).collect();
                    cancellation_error(&slots, &reasons)
                }
                _ => sdk_error("TransactWriteItems", &e),
            }),
        }
    }

    async fn counter(&self, key: &str) -> Result<i64, StoreError> {
        let table = self.counter_table(key)?;
        match self.get(table, counter_pk(key), "GetItem").await? {
            Some(item) => from_item::<item::Counter>(item, &format!("counter {key}")).map(|c| c.value),
            None => Ok(0),
        }
    }

    async fn is_processed(&self, consumer: &str, event_id: &str) -> Result<bool, StoreError> {
        let item = self
            .get(self.tables.require(PROCESSED)?, processed_pk(consumer, event_id), "GetItem")
            .await?;
        Ok(item.is_some())
    }

    async fn idempotency(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let Some(item) = self
            .get(self.tables.require(PROCESSED)?, idempotency_pk(scope, key), "GetItem")
            .await?
        else {
            return Ok(None);
        };
        from_item::<item::Idempotency<'static>>(item, "idempotency record").map(|i| Some(i.record.into_owned()))
    }
}

#[async_trait]
impl Outbox for DynamoStore {
    async fn unpublished(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<EventEnvelope>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let before = ts(before);
        let tables = self.tables.contexts.iter().filter(|(c, _)| has_stream(c));
        let pages = futures::future::try_join_all(tables.map(|(_, table)| self.pending_events(table, &before, limit))).await?;
        let mut events: Vec<EventEnvelope> = pages.into_iter().flatten().collect();
        events.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
        events.truncate(limit);
        Ok(events)
    }

    async fn mark_published(&self, events: &[EventEnvelope]) -> Result<(), StoreError> {
        let targets = events
            .iter()
            .map(|e| self.event_table(e).map(|table| (table, e.id.as_str())))
            .collect::<Result<Vec<_>, _>>()?;
        let now = Utc::now();
        let marks: Vec<_> = targets.into_iter().map(|(table, id)| self.mark_one(table, id, now)).collect();
        let results: Vec<Result<(), StoreError>> = futures::stream::iter(marks).buffer_unordered(CONCURRENT_MARKS).collect().await;
        results.into_iter().collect()
    }
}

#[async_trait]
impl ViewStore for DynamoStore {
    async fn get(&self, id: &str) -> Result<Option<ViewRecord>, StoreError> {
        DynamoStore::get(self, self.tables.require(VIEWS)?, id.to_owned(), "GetItem")
            .await?
            .map(view_from_item)
            .transpose()
    }

    async fn put(&self, view: ViewRecord, expected_revision: u64) -> Result<(), StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(self.tables.require(VIEWS)?)
            .set_item(Some(view_item(&view)?));
        let request = if expected_revision == 0 {
            request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
        } else {
            request
                .condition_expression("#revision = :expected")
                .expression_attribute_names("#revision", "revision")
                .expression_attribute_values(":expected", n(expected_revision))
        };
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(StoreError::VersionConflict(format!("view/{}", view.id)))
            }
            Err(e) => Err(sdk_error("PutItem", &e)),
        }
    }

    async fn list(&self, query: &ViewQuery) -> Result<Vec<ViewRecord>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let (index, key_attribute, key) = match (&query.owner, &query.queue, &query.date) {
            (Some(owner), _, _) => ("by_owner", "owner_key", format!("{}#{owner}", query.flow)),
            (None, Some(queue), _) => ("by_queue", "queue_key", format!("{}#{queue}", query.flow)),
            (None, None, Some(date)) => ("by_date", "date_key", format!("{}#{date}", query.flow)),
            (None, None, None) => ("by_flow", "flow_key", query.flow.clone()),
        };
        let mut attribute_names = names([("#key", key_attribute)]);
        let mut values = Attrs::from([(":key".to_owned(), s(key))]);
        let mut key_condition = "#key = :key".to_owned();
        if let Some((at, id)) = &query.after {
            key_condition.push_str(if query.oldest_first {
                " AND #order > :cursor"
            } else {
                " AND #order < :cursor"
            });
            attribute_names.insert("#order".to_owned(), ORDER_KEY.to_owned());
            values.insert(":cursor".to_owned(), s(order_key(*at, id)));
        }
        let mut filters = Vec::new();
        if query.owner.is_some()
            && let Some(queue) = &query.queue
        {
            filters.push("#queue = :queue");
            attribute_names.insert("#queue".to_owned(), "queue".to_owned());
            values.insert(":queue".to_owned(), s(queue));
        }
        if (query.owner.is_some() || query.queue.is_some())
            && let Some(date) = &query.date
        {
            filters.push("#date = :date");
            attribute_names.insert("#date".to_owned(), "date".to_owned());
            values.insert(":date".to_owned(), s(date));
        }
        if let Some(status) = &query.status {
            filters.push("#status = :status");
            attribute_names.insert("#status".to_owned(), "status".to_owned());
            values.insert(":status".to_owned(), s(status));
        }
        if let Some(category) = &query.category {
            filters.push("#category = :category");
            attribute_names.insert("#category".to_owned(), "category".to_owned());
            values.insert(":category".to_owned(), s(category));
        }
        let filter = (!filters.is_empty()).then(|| filters.join(" AND "));
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let remaining = query.limit - out.len();
            let page_limit = if filter.is_some() {
                remaining.max(FILTERED_PAGE)
            } else {
                remaining
            };
            let page = self
                .client
                .query()
                .table_name(self.tables.require(VIEWS)?)
                .index_name(index)
                .key_condition_expression(&key_condition)
                .set_filter_expression(filter.clone())
                .set_expression_attribute_names(Some(attribute_names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(query.oldest_first)
                .limit(page_size(page_limit))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Query", &e))?;
            for item in page.items.unwrap_or_default() {
                if out.len() == query.limit {
                    break;
                }
                out.push(view_from_item(item)?);
            }
            start = page.last_evaluated_key;
            if out.len() >= query.limit || start.is_none() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> Vec<Slot> {
        vec![
            Slot::Aggregate("sample/b1".into()),
            Slot::Counter("sample#2026-12-01#basic".into()),
            Slot::Processed,
            Slot::Idempotency,
            Slot::Event("e1".into()),
        ]
    }

    fn reasons_with(index: usize, code: &'static str) -> Vec<Option<&'static str>> {
        (0..5).map(|i| Some(if i == index { code } else { "None" })).collect()
    }

    #[test]
    fn a_failed_condition_names_the_item_that_refused() {
        let slots = slots();
        assert_eq!(
            cancellation_error(&slots, &reasons_with(0, "ConditionalCheckFailed")),
            StoreError::VersionConflict("sample/b1".into())
        );
        assert_eq!(
            cancellation_error(&slots, &reasons_with(1, "ConditionalCheckFailed")),
            StoreError::CounterExhausted("sample#2026-12-01#basic".into())
        );
        assert_eq!(
            cancellation_error(&slots, &reasons_with(2, "ConditionalCheckFailed")),
            StoreError::AlreadyProcessed
        );
        assert_eq!(
            cancellation_error(&slots, &reasons_with(3, "ConditionalCheckFailed")),
            StoreError::IdempotencyKeyTaken
        );
        assert_eq!(
            cancellation_error(&slots, &reasons_with(4, "ConditionalCheckFailed")),
            StoreError::VersionConflict("event/e1".into())
        );
    }

    #[test]
    fn a_failed_condition_wins_over_a_conflict_elsewhere() {
        let reasons = [Some("TransactionConflict"), Some("ConditionalCheckFailed"), None, None, None];
        assert_eq!(
            cancellation_error(&slots(), &reasons),
            StoreError::CounterExhausted("sample#2026-12-01#basic".into())
        );
    }

    #[test]
    fn a_transaction_conflict_is_a_version_conflict() {
        let error = cancellation_error(&slots(), &reasons_with(1, "TransactionConflict"));
        assert_eq!(error, StoreError::VersionConflict("sample#2026-12-01#basic".into()));
        assert!(error.is_retryable());
    }

    #[test]
    fn throttling_is_unavailable() {
        for code in ["ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"] {
            let error = cancellation_error(&slots(), &reasons_with(2, code));
            assert!(matches!(error, StoreError::Unavailable(_)), "{code}: {error:?}");
        }
    }

    #[test]
    fn another_reason_is_unavailable_with_its_code() {
        assert_eq!(
            cancellation_error(&slots(), &reasons_with(0, "ValidationError")),
            StoreError::Unavailable("transaction cancelled: ValidationError".into())
        );
    }

    #[test]
    fn missing_reasons_are_a_conflict_when_aggregates_were_written() {
        assert_eq!(cancellation_error(&slots(), &[]), StoreError::VersionConflict("sample/b1".into()));
        assert_eq!(
            cancellation_error(&slots(), &[None, Some("None")]),
            StoreError::VersionConflict("sample/b1".into())
        );
        let without_writes = [Slot::Processed, Slot::Event("e1".into())];
        assert!(matches!(cancellation_error(&without_writes, &[]), StoreError::Unavailable(_)));
    }

    fn envelope() -> EventEnvelope {
        EventEnvelope {
            id: "01J0000000000000000000000E".into(),
            event_type: "SampleBooked".into(),
            source: "clinicflow.sample".into(),
            aggregate_id: "b1".into(),
            version: 1,
            correlation_id: "b1".into(),
            causation_id: "r1".into(),
            occurred_at: Utc::now(),
            data: serde_json::json!({"date": "2026-12-01", "price": 120000, "tags": [], "note": null}),
        }
    }

    fn encode<T: Serialize>(value: &T) -> AttributeValue {
        serde_dynamo::to_attribute_value(value).expect("encode")
    }

    fn image(pk: &str, extra: Vec<(&str, AttributeValue)>) -> serde_dynamo::Item {
        let mut item = Attrs::from([(PK.to_owned(), s(pk))]);
        item.extend(extra.into_iter().map(|(k, v)| (k.to_owned(), v)));
        serde_dynamo::Item::from(item)
    }

    #[test]
    fn an_outbox_image_yields_its_envelope() {
        let env = envelope();
        let item = image(
            &event_pk(&env.id),
            vec![("envelope", encode(&env)), ("occurred_at", s(ts(env.occurred_at)))],
        );
        assert_eq!(outbox_envelope(item).expect("decoded"), Some(env));
    }

    #[test]
    fn other_images_are_not_events() {
        let aggregate = image(
            "aggregate#b1",
            vec![("version", n(1)), ("state", encode(&serde_json::json!({"a": 1})))],
        );
        assert_eq!(outbox_envelope(aggregate).expect("not an event"), None);
        assert_eq!(
            outbox_envelope(image("counter#sample#d#basic", vec![("value", n(3))])).expect("not an event"),
            None
        );
    }

    #[test]
    fn an_undecodable_outbox_image_is_corrupt() {
        let broken = image("event#e1", vec![("envelope", s("not a map"))]);
        assert!(matches!(outbox_envelope(broken), Err(StoreError::Corrupt(_))));
        assert!(matches!(outbox_envelope(image("event#e1", vec![])), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_view_round_trips_through_its_item() {
        let view = ViewRecord {
            id: "b1".into(),
            flow: "sample".into(),
            owner: "patient-1".into(),
            date: Some("2026-12-01".into()),
            status: None,
            queue: Some("doctor-7".into()),
            category: Some("internal".into()),
            created_at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
                .expect("time")
                .with_timezone(&Utc),
            revision: 3,
            body: serde_json::json!({"status": "booked", "n": 1.5}),
        };
        let item = view_item(&view).expect("item");
        assert_eq!(item.get("date_key"), Some(&s("sample#2026-12-01")));
        assert_eq!(item.get("order_key"), Some(&s("2026-01-02T03:04:05.123456Z#b1")));
        assert_eq!(item.get("queue_key"), Some(&s("sample#doctor-7")));
        assert_eq!(item.get("category"), Some(&s("internal")));
        assert!(!item.contains_key("status"));
        assert_eq!(view_from_item(item).expect("view"), view);
        let unqueued = ViewRecord { queue: None, ..view };
        let item = view_item(&unqueued).expect("item");
        assert!(!item.contains_key("queue") && !item.contains_key("queue_key"), "a sparse index");
        assert_eq!(view_from_item(item).expect("view"), unqueued);
    }

    #[test]
    fn items_name_the_table_key_and_the_ttl_attribute_of_the_topology() {
        let now = Utc::now();
        let processed = to_item(
            &item::Processed {
                pk: processed_pk("c", "e1"),
                at: ts(now),
                expires_at: expiry(now, PROCESSED_TTL),
            },
            "test",
        )
        .expect("item");
        assert_eq!(processed.get(PK), Some(&s("processed#c#e1")));
        assert_eq!(processed.get(TTL_ATTRIBUTE), Some(&n((now + PROCESSED_TTL).timestamp())));
        let env = envelope();
        let event = to_item(
            &item::Event {
                pk: event_pk(&env.id),
                envelope: Cow::Borrowed(&env),
                pending: Some(PENDING.to_owned()),
                pending_at: Some(format!("x#{}", env.id)),
                occurred_at: ts(env.occurred_at),
            },
            "test",
        )
        .expect("item");
        assert_eq!(event.get(PENDING), Some(&s(PENDING)));
        assert_eq!(event.get(PENDING_AT), Some(&s(format!("x#{}", env.id))));
        assert_eq!(envelope_from_item(event).expect("decoded"), env);
    }

    #[test]
    fn a_published_event_still_decodes() {
        let env = envelope();
        let item = image(
            &event_pk(&env.id),
            vec![
                ("envelope", encode(&env)),
                ("occurred_at", s(ts(env.occurred_at))),
                ("published_at", s(ts(Utc::now()))),
                (TTL_ATTRIBUTE, n(1)),
            ],
        );
        assert_eq!(envelope_from_item(item).expect("decoded"), env);
    }
}
