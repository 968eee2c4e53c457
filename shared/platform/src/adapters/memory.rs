//! In-memory adapters: the aggregate store with its outbox and the status views, with
//! exactly the semantics of the embedded SQLite store (conditional version writes, bounded
//! counters, dedup marks, idempotent responses, all-or-nothing transactions, the outbox in
//! commit order, views with a revision check, listed newest first), plus a publisher and an
//! SMS channel that only record. Plain Rust behind a mutex, no I/O: for benchmarks and for
//! tests that want the use cases without a database.
//!
//! Timestamps that the SQLite store keeps as text (an event's place in the outbox, a view's
//! `created_at`) are kept to the microsecond, as it keeps them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use crate::events::EventEnvelope;
use crate::ports::{
    AggregateKey, AggregateStore, IdempotencyRecord, Outbox, PublishOutcome, Publisher, SmsError, SmsMessage, SmsSender, StoreError,
    Stored, Transaction, ViewQuery, ViewRecord, ViewStore,
};

/// Time as the SQLite store keeps it: to the microsecond, truncated.
fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change is decided before anything is written, so a panic cannot leave a
    // half-applied transaction behind: a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One event of the outbox.
#[derive(Debug, Clone)]
struct OutboxRow {
    /// `occurred_at` to the microsecond: what `unpublished` compares.
    at: DateTime<Utc>,
    envelope: EventEnvelope,
}

#[derive(Debug, Default)]
struct State {
    aggregates: HashMap<AggregateKey, Stored>,
    counters: HashMap<String, i64>,
    processed: HashSet<(String, String)>,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
    /// Every event committed, in commit order (the index is the sequence).
    outbox: Vec<OutboxRow>,
    /// Event id → index in `outbox`; event ids are unique.
    outbox_ids: HashMap<String, usize>,
    /// Indexes of the unpublished events.
    pending: BTreeSet<usize>,
    views: HashMap<String, ViewRecord>,
}

/// The aggregate store, its outbox and the status views, in memory. Clones share the data.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    state: Arc<Mutex<State>>,
}

impl Memory {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event committed, published or not, in commit order.
    pub fn events(&self) -> Vec<EventEnvelope> {
        lock(&self.state).outbox.iter().map(|r| r.envelope.clone()).collect()
    }

    /// Every aggregate of a context, by id, for invariant checks.
    pub fn all_aggregates(&self, context: &str) -> Vec<(String, Stored)> {
        let state = lock(&self.state);
        let mut out: Vec<(String, Stored)> = state
            .aggregates
            .iter()
            .filter(|(k, _)| k.context == context)
            .map(|(k, v)| (k.id.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl State {
    /// Checks every item of `tx` in the order the SQLite store writes them, then applies
    /// them all, or none.
    fn commit(&mut self, tx: Transaction) -> Result<(), StoreError> {
        let mut versions: HashMap<&AggregateKey, u64> = HashMap::new();
        for w in &tx.writes {
            let current = match versions.get(&w.key) {
                Some(v) => Some(*v),
                None => self.aggregates.get(&w.key).map(|s| s.version),
            };
            let ok = match (w.expected_version, current) {
                (0, None) => true,
                (0, Some(_)) => false,
                (expected, Some(v)) => v == expected,
                (_, None) => false,
            };
            if !ok {
                return Err(StoreError::VersionConflict(format!("{}/{}", w.key.context, w.key.id)));
            }
            versions.insert(&w.key, w.new_version);
        }
        let mut counters: HashMap<&str, i64> = HashMap::new();
        for m in &tx.counters {
            let value = counters
                .get(m.key.as_str())
                .copied()
                .unwrap_or_else(|| self.counters.get(&m.key).copied().unwrap_or(0));
            let moved = value
                .checked_add(m.delta)
                .filter(|v| *v >= 0 && (m.delta <= 0 || *v <= m.limit))
                .ok_or_else(|| StoreError::CounterExhausted(m.key.clone()))?;
            counters.insert(&m.key, moved);
        }
        if let Some(p) = &tx.processed
            && self.processed.contains(&(p.consumer.clone(), p.event_id.clone()))
        {
            return Err(StoreError::AlreadyProcessed);
        }
        if let Some(i) = &tx.idempotency
            && self.idempotency.contains_key(&(i.scope.clone(), i.key.clone()))
        {
            return Err(StoreError::IdempotencyKeyTaken);
        }
        let mut new_ids: HashSet<&str> = HashSet::new();
        for e in &tx.outbox {
            if self.outbox_ids.contains_key(&e.id) || !new_ids.insert(&e.id) {
                // As SQLite reports the broken unique constraint on the outbox.
                return Err(StoreError::Unavailable("UNIQUE constraint failed: outbox.event_id".into()));
            }
        }

        let counters: Vec<(String, i64)> = counters.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        for w in tx.writes {
            self.aggregates.insert(
                w.key,
                Stored {
                    version: w.new_version,
                    state: w.state,
                },
            );
        }
        self.counters.extend(counters);
        if let Some(p) = tx.processed {
            self.processed.insert((p.consumer, p.event_id));
        }
        if let Some(i) = tx.idempotency {
            self.idempotency.insert((i.scope.clone(), i.key.clone()), i);
        }
        for e in tx.outbox {
            let seq = self.outbox.len();
            self.outbox_ids.insert(e.id.clone(), seq);
            self.pending.insert(seq);
            self.outbox.push(OutboxRow {
                at: micros(e.occurred_at),
                envelope: e,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl AggregateStore for Memory {
    async fn load(&self, key: &AggregateKey) -> Result<Option<Stored>, StoreError> {
        Ok(lock(&self.state).aggregates.get(key).cloned())
    }

    async fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        if tx.is_empty() {
            return Ok(());
        }
        lock(&self.state).commit(tx)
    }

    async fn counter(&self, key: &str) -> Result<i64, StoreError> {
        Ok(lock(&self.state).counters.get(key).copied().unwrap_or(0))
    }

    async fn is_processed(&self, consumer: &str, event_id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.state).processed.contains(&(consumer.to_owned(), event_id.to_owned())))
    }

    async fn idempotency(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(lock(&self.state).idempotency.get(&(scope.to_owned(), key.to_owned())).cloned())
    }
}

#[async_trait]
impl Outbox for Memory {
    async fn unpublished(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<EventEnvelope>, StoreError> {
        let before = micros(before);
        let state = lock(&self.state);
        Ok(state
            .pending
            .iter()
            .map(|seq| &state.outbox[*seq])
            .filter(|row| row.at < before)
            .take(limit)
            .map(|row| row.envelope.clone())
            .collect())
    }

    async fn mark_published(&self, events: &[EventEnvelope]) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        for e in events {
            if let Some(seq) = state.outbox_ids.get(&e.id).copied() {
                state.pending.remove(&seq);
            }
        }
        Ok(())
    }
}

/// Newest first: by `created_at`, then id, both descending.
fn newest_first(a: &ViewRecord, b: &ViewRecord) -> std::cmp::Ordering {
    (b.created_at, &b.id).cmp(&(a.created_at, &a.id))
}

#[async_trait]
impl ViewStore for Memory {
    async fn get(&self, id: &str) -> Result<Option<ViewRecord>, StoreError> {
        Ok(lock(&self.state).views.get(id).cloned())
    }

    async fn put(&self, view: ViewRecord, expected_revision: u64) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let ok = match (expected_revision, state.views.get(&view.id)) {
            (0, None) => true,
            (0, Some(_)) | (_, None) => false,
            (expected, Some(stored)) => stored.revision == expected,
        };
        if !ok {
            return Err(StoreError::VersionConflict(format!("view/{}", view.id)));
        }
        let view = ViewRecord {
            created_at: micros(view.created_at),
            ..view
        };
        state.views.insert(view.id.clone(), view);
        Ok(())
    }

    async fn list(&self, query: &ViewQuery) -> Result<Vec<ViewRecord>, StoreError> {
        let after = query.after.as_ref().map(|(at, id)| (micros(*at), id.as_str()));
        let state = lock(&self.state);
        let mut rows: Vec<&ViewRecord> = state
            .views
            .values()
            .filter(|v| v.flow == query.flow)
            .filter(|v| query.owner.as_ref().is_none_or(|o| *o == v.owner))
            .filter(|v| query.queue.is_none() || query.queue == v.queue)
            .filter(|v| query.date.is_none() || query.date == v.date)
            .filter(|v| query.status.is_none() || query.status == v.status)
            .filter(|v| query.category.is_none() || query.category == v.category)
            .filter(|v| {
                after.is_none_or(|(at, id)| {
                    let key = (v.created_at, v.id.as_str());
                    if query.oldest_first { key > (at, id) } else { key < (at, id) }
                })
            })
            .collect();
        rows.sort_by(|a, b| newest_first(a, b));
        if query.oldest_first {
            rows.reverse();
        }
        Ok(rows.into_iter().take(query.limit).cloned().collect())
    }
}

/// A publisher that only records: every event handed to it is accepted and kept, in order
/// (an event published twice is kept twice). Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct MemoryPublisher {
    published: Arc<Mutex<Vec<EventEnvelope>>>,
}

impl MemoryPublisher {
    /// A publisher with nothing recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything published so far, in order.
    pub fn published(&self) -> Vec<EventEnvelope> {
        lock(&self.published).clone()
    }

    /// Everything published so far, in order, forgetting it.
    pub fn take(&self) -> Vec<EventEnvelope> {
        std::mem::take(&mut *lock(&self.published))
    }
}

#[async_trait]
impl Publisher for MemoryPublisher {
    async fn publish(&self, events: &[EventEnvelope]) -> PublishOutcome {
        lock(&self.published).extend_from_slice(events);
        PublishOutcome {
            published: events.iter().map(|e| e.id.clone()).collect(),
            failed: vec![],
        }
    }
}

/// One SMS kept by [`MemorySms`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSms {
    /// Order sent, from 1.
    pub seq: u64,
    /// The message.
    pub message: SmsMessage,
}

#[derive(Debug, Default)]
struct SmsState {
    kept: Vec<KeptSms>,
    by_key: HashMap<String, u64>,
}

/// An SMS channel that only records, once per key as the local SMS outbox does: sending a
/// key again sends nothing and answers the first message's id. Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct MemorySms {
    state: Arc<Mutex<SmsState>>,
}

impl MemorySms {
    /// A channel with nothing sent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every SMS kept, oldest first.
    pub fn sent(&self) -> Vec<KeptSms> {
        lock(&self.state).kept.clone()
    }

    /// Every SMS kept, oldest first, forgetting them (their keys stay sent).
    pub fn take(&self) -> Vec<KeptSms> {
        std::mem::take(&mut lock(&self.state).kept)
    }
}

#[async_trait]
impl SmsSender for MemorySms {
    async fn send(&self, message: &SmsMessage) -> Result<String, SmsError> {
        let mut state = lock(&self.state);
        let seq = match state.by_key.get(&message.key) {
            Some(seq) => *seq,
            None => {
                let seq = state.by_key.len() as u64 + 1;
                state.by_key.insert(message.key.clone(), seq);
                state.kept.push(KeptSms {
                    seq,
                    message: message.clone(),
                });
                seq
            }
        };
        Ok(format!("memory-{seq}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PhoneNumber;

    fn event(id: &str, occurred_at: DateTime<Utc>) -> EventEnvelope {
        EventEnvelope {
            id: id.into(),
            event_type: "SampleBooked".into(),
            source: "clinicflow.sample".into(),
            aggregate_id: "b1".into(),
            version: 1,
            correlation_id: "b1".into(),
            causation_id: "r1".into(),
            occurred_at,
            data: serde_json::json!({}),
        }
    }

    #[tokio::test]
    async fn a_duplicate_event_id_fails_the_whole_transaction() {
        let m = Memory::new();
        let now = Utc::now();
        let tx = |id: &str| Transaction {
            outbox: vec![event(id, now)],
            ..Transaction::default()
        };
        m.commit(tx("e1")).await.expect("first");
        assert!(matches!(m.commit(tx("e1")).await, Err(StoreError::Unavailable(_))));
        let twice = Transaction {
            outbox: vec![event("e2", now), event("e2", now)],
            ..Transaction::default()
        };
        assert!(matches!(m.commit(twice).await, Err(StoreError::Unavailable(_))));
        assert_eq!(m.events().len(), 1);
    }

    #[tokio::test]
    async fn unpublished_compares_to_the_microsecond() {
        let m = Memory::new();
        let at = DateTime::parse_from_rfc3339("2026-11-21T09:30:00.123456789Z")
            .expect("ts")
            .with_timezone(&Utc);
        m.commit(Transaction {
            outbox: vec![event("e1", at)],
            ..Transaction::default()
        })
        .await
        .expect("committed");
        let same_micro = at.trunc_subsecs(6) + chrono::Duration::nanoseconds(999);
        assert!(m.unpublished(same_micro, 10).await.expect("outbox").is_empty());
        let next_micro = at.trunc_subsecs(6) + chrono::Duration::microseconds(1);
        assert_eq!(m.unpublished(next_micro, 10).await.expect("outbox"), vec![event("e1", at)]);
    }

    #[tokio::test]
    async fn the_sms_channel_sends_a_key_once() {
        let sms = MemorySms::new();
        let message = SmsMessage {
            key: "e1".into(),
            to: PhoneNumber::parse("010-1234-5678").expect("phone"),
            body: "hi".into(),
        };
        let first = sms.send(&message).await.expect("sent");
        assert_eq!(sms.send(&message).await.expect("sent"), first);
        assert_eq!(sms.sent().len(), 1);
    }
}
