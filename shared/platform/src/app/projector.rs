//! The status-view projector: folds change records (events) of the context tables into the
//! views the slices declare. Each event is applied only if it is the next one the view
//! expects of its aggregate (versions are tracked per aggregate, so a case with several
//! aggregates of one kind folds each in order), so replays and redeliveries change nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AppError, Platform, faults};
use crate::events::EventEnvelope;
use crate::ports::{StoreError, ViewRecord};

/// The last version a view applied, per aggregate (`<context>/<aggregate id>`).
pub type Versions = BTreeMap<String, u64>;

/// What a view is indexed by, for its queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexed {
    /// The subject who owns the case (the `Own` scope's key).
    pub owner: String,
    /// A date the staff list by.
    pub date: Option<String>,
    /// The status the staff filter by.
    pub status: Option<String>,
    /// The queue the case waits in (a doctor's, a test site's), for the staff's own list:
    /// `ViewQuery::queue`, served by the `by_queue` index.
    pub queue: Option<String>,
    /// A category the staff filter by (a department, a test site): `ViewQuery::category`.
    pub category: Option<String>,
    /// Creation time, the lists' order.
    pub created_at: Option<DateTime<Utc>>,
}

/// A status view of a slice: its state, how events fold into it, how it is indexed.
pub trait View: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The view's name (its flow): namespaces its ids and its lists.
    const NAME: &'static str;

    /// A view with nothing folded yet, for case `id`.
    fn new(id: &str) -> Self;

    /// The case an event belongs to: its correlation id unless the view says otherwise.
    fn key(event: &EventEnvelope) -> String {
        event.correlation_id.clone()
    }

    /// Does the view fold `event`'s aggregate at all? Every event of its contexts unless
    /// the view says otherwise: a view of one kind of aggregate in a context that holds
    /// several (a certificate beside the application it certifies) leaves the others out
    /// before their versions are tracked, so that they never hold it waiting.
    fn folds(_event: &EventEnvelope) -> bool {
        true
    }

    /// Folds one event in; returns whether the view took it. `false` only for an event the
    /// view does not fold at all (another kind of aggregate): its version is then not
    /// tracked. An event of an aggregate the view folds must return `true` even when it
    /// shows nothing of it, or the aggregate's next event waits for its version forever.
    fn apply(&mut self, event: &EventEnvelope) -> bool;

    /// The versions applied so far, per aggregate.
    fn versions(&mut self) -> &mut Versions;

    /// Its index keys.
    fn index(&self) -> Indexed;
}

/// A projection as the catalog holds it: the view, the contexts it folds, its runner.
#[derive(Clone, Copy)]
pub struct Projection {
    /// The view's name.
    pub view: &'static str,
    /// The bounded contexts whose events it folds.
    pub contexts: &'static [&'static str],
    /// Projects one event into the view.
    pub project: ProjectFn,
}

impl std::fmt::Debug for Projection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projection")
            .field("view", &self.view)
            .field("contexts", &self.contexts)
            .finish_non_exhaustive()
    }
}

/// Projects one event into one view; `Ok(true)` when the view changed.
pub type ProjectFn = for<'a> fn(&'a Platform, &'a EventEnvelope) -> ProjectFuture<'a>;

/// What a [`ProjectFn`] returns.
pub type ProjectFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, AppError>> + Send + 'a>>;

/// The projection of view `V` over `contexts`, for a slice's declaration.
pub const fn projection<V: View>(contexts: &'static [&'static str]) -> Projection {
    Projection {
        view: V::NAME,
        contexts,
        project: run::<V>,
    }
}

fn run<'a, V: View>(p: &'a Platform, e: &'a EventEnvelope) -> ProjectFuture<'a> {
    Box::pin(project_into::<V>(p, e))
}

/// The bounded context of an event source (`clinicflow.checkup` → `checkup`).
pub fn context_of(source: &str) -> &str {
    source.strip_prefix("clinicflow.").unwrap_or(source)
}

/// The id of a view row: the view's name and the case (`checkup#01J…`), so two views of
/// one case never share a row.
pub fn view_id(view: &str, case: &str) -> String {
    format!("{view}#{case}")
}

/// The key of an event's aggregate in [`Versions`].
fn aggregate_of(e: &EventEnvelope) -> String {
    format!("{}/{}", context_of(&e.source), e.aggregate_id)
}

/// What folding one event into a view did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// The view changed.
    Applied,
    /// The view already had it (a replay or redelivery), or it does not concern the view.
    Stale,
    /// An earlier event of the same aggregate has not been seen yet: the stream delivered
    /// out of order (records of different items can sit on different shards). Retry later.
    Early {
        /// The version the view waits for.
        expected: u64,
    },
}

/// Applies one event if it is the next one the view expects of its aggregate.
pub fn fold<V: View>(view: &mut V, e: &EventEnvelope) -> Fold {
    if !V::folds(e) {
        return Fold::Stale;
    }
    let aggregate = aggregate_of(e);
    let seen = view.versions().get(&aggregate).copied().unwrap_or(0);
    if e.version <= seen {
        return Fold::Stale;
    }
    if e.version > seen + 1 {
        return Fold::Early { expected: seen + 1 };
    }
    if view.apply(e) {
        view.versions().insert(aggregate, e.version);
        Fold::Applied
    } else {
        Fold::Stale
    }
}

/// Applies one event if it is newer than what the view saw of its aggregate, accepting
/// gaps (a command's own answer, built from the events it just staged).
pub fn apply_newer<V: View>(view: &mut V, e: &EventEnvelope) -> bool {
    if !V::folds(e) {
        return false;
    }
    let aggregate = aggregate_of(e);
    if view.versions().get(&aggregate).is_some_and(|seen| *seen >= e.version) {
        return false;
    }
    let changed = view.apply(e);
    if changed {
        view.versions().insert(aggregate, e.version);
    }
    changed
}

/// The view of a case from its first events, for a command's own response.
pub fn view_of<V: View>(events: &[EventEnvelope]) -> Option<V> {
    let first = events.iter().find(|e| V::folds(e))?;
    let mut view = V::new(&V::key(first));
    for e in events {
        apply_newer(&mut view, e);
    }
    Some(view)
}

/// Reads the view `V` of case `case`, with its row.
pub async fn read<V: View>(p: &Platform, case: &str) -> Result<Option<(ViewRecord, V)>, AppError> {
    let Some(record) = p.views.get(&view_id(V::NAME, case)).await? else {
        return Ok(None);
    };
    if record.flow != V::NAME {
        return Ok(None);
    }
    let view = V::deserialize(&record.body)?;
    Ok(Some((record, view)))
}

/// Projects one change record into every view that folds its context. Optimistic on each
/// view's revision: a lost race is retried, so concurrent projector invocations never lose
/// an update. An event that arrives before an earlier one of its aggregate is refused with
/// a `Conflict`, to be retried once the earlier one is in (a stream's batch item failure
/// does exactly that).
pub async fn project(p: &Platform, e: &EventEnvelope) -> Result<bool, AppError> {
    p.faults.check(faults::PROJECTOR).await.map_err(retried)?;
    let context = context_of(&e.source);
    let mut changed = false;
    for projection in p.catalog.projections.iter().filter(|v| v.contexts.contains(&context)) {
        changed |= (projection.project)(p, e).await?;
    }
    Ok(changed)
}

async fn project_into<V: View>(p: &Platform, e: &EventEnvelope) -> Result<bool, AppError> {
    let case = V::key(e);
    let id = view_id(V::NAME, &case);
    for _ in 0..5 {
        let existing = p.views.get(&id).await?;
        let (mut view, revision) = match &existing {
            Some(r) => (V::deserialize(&r.body)?, r.revision),
            None => (V::new(&case), 0),
        };
        match fold(&mut view, e) {
            Fold::Applied => {}
            Fold::Stale => return Ok(false),
            Fold::Early { expected } => {
                return Err(AppError::Conflict(format!(
                    "event {} is version {} of its {} aggregate; the view waits for version {expected}",
                    e.id,
                    e.version,
                    context_of(&e.source)
                )));
            }
        }
        let index = view.index();
        let record = ViewRecord {
            id: id.clone(),
            flow: V::NAME.into(),
            owner: index.owner,
            date: index.date,
            status: index.status,
            queue: index.queue,
            category: index.category,
            created_at: index.created_at.unwrap_or(e.occurred_at),
            revision: revision + 1,
            body: serde_json::to_value(&view)?,
        };
        match p.views.put(record, revision).await {
            Ok(()) => {
                p.faults.check(faults::PROJECTOR_AFTER_WRITE).await.map_err(retried)?;
                return Ok(true);
            }
            Err(StoreError::VersionConflict(_)) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(AppError::Unavailable {
        reason: "view contention".into(),
        retry_after: std::time::Duration::from_millis(100),
    })
}

/// An injected failure or crash of the projector: the change record is delivered again.
fn retried(e: faults::Injected) -> AppError {
    AppError::Unavailable {
        reason: e.to_string(),
        retry_after: std::time::Duration::from_millis(100),
    }
}
