//! The one command runner: load → decide → stage → commit (aggregates, counters, the outbox
//! and the idempotent response in one transaction) → publish, with a reload and a new
//! decision when a concurrent command wins the version race, and `Idempotency-Key` replay.
//! A slice's command is an `attempt` that loads, decides on a [`Work`] and says what to
//! answer; everything else is here.

use std::future::Future;

use sha2::{Digest, Sha256};

use super::{AppError, Platform, faults, relay};
use crate::domain::{Aggregate, FieldError};
use crate::events::{Causality, EventEnvelope};
use crate::ports::{AggregateKey, AggregateWrite, CounterMove, IdempotencyRecord, StoreError, Transaction};

/// How many times a command reloads and decides again after losing a race on one aggregate.
pub const RACE_RETRIES: usize = 3;

/// A command's result: the HTTP status, body and `Location`, also what an idempotent
/// replay returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: serde_json::Value,
    /// `Location`.
    pub location: Option<String>,
}

/// An aggregate as loaded: its state (`None` when absent) and version (0 when absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// Its id.
    pub id: String,
    /// State.
    pub state: Option<A>,
    /// Version.
    pub version: u64,
}

impl<A> Loaded<A> {
    /// Aggregate `id`, known not to exist yet (a new id).
    pub fn absent(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            state: None,
            version: 0,
        }
    }
}

/// Loads aggregate `id` of `A`'s context.
pub async fn load<A: Aggregate>(p: &Platform, id: &str) -> Result<Loaded<A>, AppError> {
    let (state, version) = super::load::<A>(p, &AggregateKey::new(A::CONTEXT, id)).await?;
    Ok(Loaded {
        id: id.to_owned(),
        state,
        version,
    })
}

/// What one command or consumer step will commit: the aggregates it decided on, with their
/// events in the outbox, counters, and the idempotent response.
#[derive(Debug)]
pub struct Work<'p> {
    p: &'p Platform,
    causality: Causality,
    tx: Transaction,
    /// What to answer when a counter is at its limit, by counter key.
    refusals: Vec<(String, String)>,
}

impl<'p> Work<'p> {
    /// Work on case `causality.correlation_id`, caused by `causality.causation_id`.
    pub fn new(p: &'p Platform, causality: Causality) -> Self {
        Self {
            p,
            causality,
            tx: Transaction::default(),
            refusals: Vec::new(),
        }
    }

    /// Work for a command of case `case` caused by request `request_id`.
    pub fn for_request(p: &'p Platform, case: &str, request_id: &str) -> Self {
        Self::new(
            p,
            Causality {
                correlation_id: case.to_owned(),
                causation_id: request_id.to_owned(),
            },
        )
    }

    /// Decides `command` on `loaded` and stages its events and new state; returns the
    /// state after them. A command that decides nothing stages nothing.
    pub fn decide<A: Aggregate>(&mut self, loaded: Loaded<A>, command: A::Command) -> Result<Option<A>, AppError> {
        let events = A::decide(loaded.state.as_ref(), command).map_err(|e| AppError::from(e.into()))?;
        self.stage(loaded, &events)
    }

    /// Stages events already decided on `loaded`; returns the state after them.
    pub fn stage<A: Aggregate>(&mut self, loaded: Loaded<A>, events: &[A::Event]) -> Result<Option<A>, AppError> {
        if events.is_empty() {
            return Ok(loaded.state);
        }
        let now = self.p.clock.now();
        let mut state = loaded.state;
        for (i, e) in events.iter().enumerate() {
            state = A::apply(state, &loaded.id, e);
            self.tx.outbox.push(EventEnvelope::wrap(
                self.p.ids.new_id(),
                A::CONTEXT,
                &loaded.id,
                loaded.version + 1 + i as u64,
                &self.causality,
                now,
                e,
            )?);
        }
        self.tx.writes.push(AggregateWrite {
            key: AggregateKey::new(A::CONTEXT, &loaded.id),
            expected_version: loaded.version,
            new_version: loaded.version + events.len() as u64,
            state: serde_json::to_value(&state)?,
        });
        Ok(state)
    }

    /// Stages what follows on case `case` (its events' correlation), caused by the same
    /// request or event: one transaction that changes several cases (a dose passed from one
    /// citizen's hold to the next in line) keeps each case's events on its own case.
    pub fn on_case(&mut self, case: &str) -> &mut Self {
        case.clone_into(&mut self.causality.correlation_id);
        self
    }

    /// Moves a bounded counter in the same transaction.
    pub fn counter(&mut self, counter: CounterMove) {
        self.tx.counters.push(counter);
    }

    /// Moves a bounded counter in the same transaction, which [`run`] refuses with `409`
    /// and `refusal` if the counter is at its limit when it commits: the one place a
    /// command takes, in the flow's words (a patient a doctor already took).
    pub fn counter_or_refuse(&mut self, counter: CounterMove, refusal: impl Into<String>) {
        self.refusals.push((counter.key.clone(), refusal.into()));
        self.tx.counters.push(counter);
    }

    /// Writes a non-aggregate record (a consumer's own bookkeeping) in the same transaction.
    pub fn write(&mut self, write: AggregateWrite) {
        self.tx.writes.push(write);
    }

    /// The events staged so far.
    pub fn events(&self) -> &[EventEnvelope] {
        &self.tx.outbox
    }

    /// The transaction, for a step that commits it itself.
    pub fn into_transaction(self) -> Transaction {
        self.tx
    }
}

/// What an attempt of a command decided: the work to commit and the answer to give.
#[derive(Debug)]
pub struct Decided<'p> {
    /// What to commit (nothing: the command's effect already holds).
    pub work: Work<'p>,
    /// The answer.
    pub accepted: Accepted,
}

/// Runs a command: `attempt` loads and decides; its work is committed and published. When
/// a concurrent command changed an aggregate since it was loaded, the attempt runs again
/// on what that command left, [`RACE_RETRIES`] times at most. With an `Idempotency-Key`, a
/// retried request is answered as the first one was, and the first answer is stored in the
/// command's own transaction. `function` names the after-commit failure point.
pub async fn run<'p, F, Fut>(
    p: &'p Platform,
    function: &str,
    idempotency: Option<&Idempotency>,
    mut attempt: F,
) -> Result<Accepted, AppError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Decided<'p>, AppError>>,
{
    if let Some(key) = idempotency
        && let Some(first) = p.store.idempotency(&key.scope, &key.key.key).await?
    {
        return replay(first, &key.key);
    }
    let outcome = attempts(p, function, idempotency, &mut attempt).await;
    refusal_rechecked(p, idempotency, outcome).await
}

/// A `409` to a request with an `Idempotency-Key`, checked against the key once more: a
/// client retries a request that timed out, and the first one may have committed after the
/// retry looked for its key, its effect then refusing the retry (the slot it took now full,
/// the case it opened now open). Its commit stored the key with its effect, atomically, so
/// the key is there now: the retry is answered as the first request was. Any other outcome
/// is returned as it is.
pub async fn refusal_rechecked(
    p: &Platform,
    idempotency: Option<&Idempotency>,
    outcome: Result<Accepted, AppError>,
) -> Result<Accepted, AppError> {
    if let (Err(AppError::Conflict(_)), Some(key)) = (&outcome, idempotency)
        && let Some(first) = p.store.idempotency(&key.scope, &key.key.key).await?
    {
        return replay(first, &key.key);
    }
    outcome
}

/// The attempts of [`run`], each on what the previous one's race left.
async fn attempts<'p, F, Fut>(
    p: &'p Platform,
    function: &str,
    idempotency: Option<&Idempotency>,
    attempt: &mut F,
) -> Result<Accepted, AppError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Decided<'p>, AppError>>,
{
    for _ in 0..RACE_RETRIES {
        let Decided { mut work, accepted } = attempt().await?;
        let refusals = std::mem::take(&mut work.refusals);
        let mut tx = work.into_transaction();
        if tx.is_empty() {
            return Ok(accepted);
        }
        tx.idempotency = idempotency.map(|k| k.record(&accepted));
        match commit_and_publish(p, function, tx).await {
            Ok(()) => return Ok(accepted),
            Err(Commit::Race) => continue,
            Err(Commit::CounterExhausted(key)) => return Err(refusal(&refusals, &key)),
            Err(Commit::IdempotencyKeyTaken) => {
                let key = idempotency.ok_or_else(|| AppError::Internal("idempotency race without a key".into()))?;
                return replay(first_answer(p, key).await?, &key.key);
            }
            Err(Commit::Failed(e)) => return Err(e),
        }
    }
    Err(AppError::Conflict("the case is changing concurrently; retry".into()))
}

/// What [`run`] answers when counter `key` is at its limit: the refusal its move was staged
/// with, or the platform's own words.
fn refusal(refusals: &[(String, String)], key: &str) -> AppError {
    let said = refusals.iter().find(|(k, _)| k == key).map(|(_, why)| why.clone());
    AppError::Conflict(said.unwrap_or_else(|| "no places left".into()))
}

/// Why a commit did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Commit {
    /// An aggregate's version moved since it was loaded: load and decide again.
    Race,
    /// Another request with the same `Idempotency-Key` committed first.
    IdempotencyKeyTaken,
    /// A counter (named) is at its limit.
    CounterExhausted(String),
    /// Anything else.
    Failed(AppError),
}

/// Commits `tx`, then publishes its events. `function` names its after-commit failure
/// point: armed, it stops there as a crash would (committed, not published; the sweeper
/// publishes later).
pub async fn commit_and_publish(p: &Platform, function: &str, tx: Transaction) -> Result<(), Commit> {
    let events = tx.outbox.clone();
    match p.store.commit(tx).await {
        Ok(()) => {}
        Err(StoreError::VersionConflict(_)) => return Err(Commit::Race),
        Err(StoreError::IdempotencyKeyTaken) => return Err(Commit::IdempotencyKeyTaken),
        Err(StoreError::CounterExhausted(key)) => return Err(Commit::CounterExhausted(key)),
        Err(e) => return Err(Commit::Failed(e.into())),
    }
    publish_after_commit(p, function, &events).await.map_err(Commit::Failed)
}

/// Publishes what a command committed, through its failure points: [`faults::AFTER_COMMIT`]
/// (any command) and the command's own.
pub async fn publish_after_commit(p: &Platform, function: &str, events: &[EventEnvelope]) -> Result<(), AppError> {
    p.faults.check(faults::AFTER_COMMIT).await?;
    p.faults.check(&faults::after_commit(function)).await?;
    relay::publish(p, events).await;
    Ok(())
}

/// A client's `Idempotency-Key` with the hash of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key.
    pub key: String,
    /// SHA-256 of the request body.
    pub request_hash: String,
}

impl IdempotencyKey {
    /// Validates a header value: 1 to 255 visible ASCII characters.
    pub fn parse(raw: &str, body: &[u8]) -> Result<Self, FieldError> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldError::new("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
        }
        Ok(Self {
            key: raw.to_owned(),
            request_hash: hex(&Sha256::digest(body)),
        })
    }
}

/// An `Idempotency-Key` in the scope it belongs to (the caller and the route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// `<subject>:<METHOD> <path>`.
    pub scope: String,
    /// The key.
    pub key: IdempotencyKey,
}

impl Idempotency {
    /// The record that answers the key's retries with `accepted`.
    pub fn record(&self, accepted: &Accepted) -> IdempotencyRecord {
        IdempotencyRecord {
            scope: self.scope.clone(),
            key: self.key.key.clone(),
            request_hash: self.key.request_hash.clone(),
            status: accepted.status,
            body: accepted.body.clone(),
            location: accepted.location.clone(),
        }
    }

    /// A key derived from this one for a provider call (a charge): the scope, the key and
    /// the request's hash, so a different request under the same key never shares it.
    pub fn provider_key(&self) -> String {
        hex(&Sha256::digest(
            format!("{}:{}:{}", self.scope, self.key.key, self.key.request_hash).as_bytes(),
        ))
    }
}

/// The answer stored by the request that won a race on `key`; a `Conflict` to retry while
/// that request has not stored it yet.
pub async fn first_answer(p: &Platform, key: &Idempotency) -> Result<IdempotencyRecord, AppError> {
    p.store
        .idempotency(&key.scope, &key.key.key)
        .await?
        .ok_or_else(|| AppError::Conflict("a request with this Idempotency-Key is being processed; retry".into()))
}

/// The first answer to a key, if the request is the same; a different request under the
/// same key is refused (422).
pub fn replay(first: IdempotencyRecord, key: &IdempotencyKey) -> Result<Accepted, AppError> {
    if first.request_hash != key.request_hash {
        return Err(AppError::Invalid(vec![FieldError::new(
            "Idempotency-Key",
            "was already used with a different request body; use a new key for a new request",
        )]));
    }
    Ok(Accepted {
        status: first.status,
        body: first.body,
        location: first.location,
    })
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
