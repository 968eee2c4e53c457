//! Embedded adapters on one SQLite database: the aggregate store with its outbox (whose
//! rows are also the change feed the projector reads, as a DynamoDB stream would be), the
//! status views, the local event bus's durable delivery queue, and the SMS outbox.
//! Used by `clinicflow-local` and, on an in-memory database, as the tests' fast fake.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::Notify;

use crate::domain::PhoneNumber;
use crate::events::EventEnvelope;
use crate::ports::{
    AggregateKey, AggregateStore, IdempotencyRecord, Outbox, PublishOutcome, Publisher, SmsError, SmsMessage, SmsSender, StoreError,
    Stored, Transaction, ViewQuery, ViewRecord, ViewStore,
};
use crate::topology::Rule;

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS aggregates (
    context TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (context, id));
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, occurred_at TEXT NOT NULL,
    envelope TEXT NOT NULL, published_at TEXT);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (occurred_at) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS processed (
    consumer TEXT NOT NULL, event_id TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (consumer, event_id));
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL, key TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS views (
    id TEXT PRIMARY KEY, flow TEXT NOT NULL, owner TEXT NOT NULL, date TEXT, status TEXT,
    created_at TEXT NOT NULL, revision INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS views_by_owner ON views (flow, owner, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS views_by_date ON views (flow, date, created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, target TEXT NOT NULL,
    envelope TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at TEXT NOT NULL,
    last_error TEXT, dead INTEGER NOT NULL DEFAULT 0, UNIQUE (event_id, target));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (dead, next_at);
CREATE TABLE IF NOT EXISTS sms (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, recipient TEXT NOT NULL,
    body TEXT NOT NULL, sent_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sms_opted_out (recipient TEXT PRIMARY KEY);
"#;

/// Timestamps as fixed-width RFC 3339 text, so that text order is time order.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn db_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            StoreError::Unavailable(f.to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Executes `sql` through the connection's statement cache.
fn exec(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// Reads one row with `sql` through the connection's statement cache.
fn row<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Read-only connections to a database file, so that reads run beside the one writer
/// (WAL lets readers see every committed transaction without waiting for the writer).
const READERS: usize = 2;

/// Room for every statement the adapters prepare, so that none is compiled twice.
const STATEMENT_CACHE: usize = 64;

/// One SQLite database shared by every embedded adapter, with wake-ups for the loops
/// that tail it. A file database has one writer connection and [`READERS`] read-only
/// ones; an in-memory database has only the writer, which then also reads.
#[derive(Clone)]
pub struct Embedded {
    conn: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    /// Notified when new outbox rows (change records) are committed.
    pub changes: Arc<Notify>,
    /// Notified when new bus deliveries are queued.
    pub deliveries: Arc<Notify>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Embedded")
    }
}

impl Embedded {
    /// Opens (and creates) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let writer = Self::prepare(Connection::open(path).map_err(db_err)?)?;
        let readers = (0..READERS)
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
                let reader = Connection::open_with_flags(path, flags).map_err(db_err)?;
                reader.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_err)?;
                reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self::with(writer, readers))
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Self::with(Self::prepare(Connection::open_in_memory().map_err(db_err)?)?, vec![]))
    }

    fn prepare(conn: Connection) -> Result<Connection, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        Self::migrate(&conn)?;
        Ok(conn)
    }

    /// Brings a database made by an earlier version up to [`SCHEMA`]: columns added since
    /// are added to it (nullable, so existing rows stay valid).
    fn migrate(conn: &Connection) -> Result<(), StoreError> {
        for column in ["queue", "category"] {
            let has = conn
                .prepare("SELECT 1 FROM pragma_table_info('views') WHERE name = ?1")
                .and_then(|mut s| s.exists([column]))
                .map_err(db_err)?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE views ADD COLUMN {column} TEXT;"))
                    .map_err(db_err)?;
            }
        }
        conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS views_by_queue ON views (flow, queue, created_at DESC, id DESC) WHERE queue IS NOT NULL;",
        )
        .map_err(db_err)?;
        Ok(())
    }

    fn with(writer: Connection, readers: Vec<Mutex<Connection>>) -> Self {
        Self {
            conn: Arc::new(Mutex::new(writer)),
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            changes: Arc::new(Notify::new()),
            deliveries: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (the transaction
        // rolls back on drop), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = this.lock();
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// Runs a read on a free read-only connection (the writer's, for an in-memory database).
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.readers.is_empty() {
            return self.run(move |c| f(c)).await;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let n = this.readers.len();
            let start = this.next_reader.fetch_add(1, Ordering::Relaxed);
            let free = (0..n).find_map(|i| this.readers[(start + i) % n].try_lock().ok());
            let conn = match free {
                Some(conn) => conn,
                None => this.readers[start % n].lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            };
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// Change records (outbox rows) after `seq`, in commit order.
    pub async fn changes_after(&self, seq: i64, limit: usize) -> Result<Vec<(i64, EventEnvelope)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT seq, envelope FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![seq, limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, env) = row.map_err(db_err)?;
                out.push((seq, serde_json::from_str(&env).map_err(json_err)?));
            }
            Ok(out)
        })
        .await
    }

    /// A reader's position in the change feed.
    pub async fn checkpoint(&self, name: &str) -> Result<i64, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            row(c, "SELECT seq FROM checkpoints WHERE name = ?1", params![name], |r| r.get(0))
                .optional()
                .map(|s| s.unwrap_or(0))
                .map_err(db_err)
        })
        .await
    }

    /// Moves a reader's position in the change feed.
    pub async fn set_checkpoint(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.run(move |c| {
            exec(
                c,
                "INSERT INTO checkpoints (name, seq) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                params![name, seq],
            )
            .map(|_| ())
            .map_err(db_err)
        })
        .await
    }

    /// Every aggregate of a context, for rebuilds and invariant checks.
    pub async fn all_aggregates(&self, context: &'static str) -> Result<Vec<(String, Stored)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT id, version, state FROM aggregates WHERE context = ?1 ORDER BY id")
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![context], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, version, state) = row.map_err(db_err)?;
                out.push((
                    id,
                    Stored {
                        version: version as u64,
                        state: serde_json::from_str(&state).map_err(json_err)?,
                    },
                ));
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl AggregateStore for Embedded {
    async fn load(&self, key: &AggregateKey) -> Result<Option<Stored>, StoreError> {
        let (context, id) = (key.context, key.id.clone());
        self.read(move |c| {
            let row = row(
                c,
                "SELECT version, state FROM aggregates WHERE context = ?1 AND id = ?2",
                params![context, id],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(db_err)?;
            row.map(|(version, state)| {
                Ok(Stored {
                    version: version as u64,
                    state: serde_json::from_str(&state).map_err(json_err)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn commit(&self, tx: Transaction) -> Result<(), StoreError> {
        if tx.is_empty() {
            return Ok(());
        }
        let has_events = !tx.outbox.is_empty();
        self.run(move |c| {
            let t = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(db_err)?;
            for w in &tx.writes {
                let state = serde_json::to_string(&w.state).map_err(json_err)?;
                let name = format!("{}/{}", w.key.context, w.key.id);
                if w.expected_version == 0 {
                    match exec(
                        &t,
                        "INSERT INTO aggregates (context, id, version, state) VALUES (?1, ?2, ?3, ?4)",
                        params![w.key.context, w.key.id, w.new_version as i64, state],
                    ) {
                        Ok(_) => {}
                        Err(e) if is_constraint(&e) => return Err(StoreError::VersionConflict(name)),
                        Err(e) => return Err(db_err(e)),
                    }
                } else {
                    let n = t
                        .execute(
                            "UPDATE aggregates SET version = ?1, state = ?2 WHERE context = ?3 AND id = ?4 AND version = ?5",
                            params![w.new_version as i64, state, w.key.context, w.key.id, w.expected_version as i64],
                        )
                        .map_err(db_err)?;
                    if n == 0 {
                        return Err(StoreError::VersionConflict(name));
                    }
                }
            }
            for m in &tx.counters {
                exec(&t, "INSERT OR IGNORE INTO counters (key, value) VALUES (?1, 0)", params![m.key]).map_err(db_err)?;
                let n = t
                    .execute(
                        "UPDATE counters SET value = value + ?1 WHERE key = ?2 AND value + ?1 >= 0 AND (?1 <= 0 OR value + ?1 <= ?3)",
                        params![m.delta, m.key, m.limit],
                    )
                    .map_err(db_err)?;
                if n == 0 {
                    return Err(StoreError::CounterExhausted(m.key.clone()));
                }
            }
            if let Some(p) = &tx.processed {
                match exec(
                    &t,
                    "INSERT INTO processed (consumer, event_id, at) VALUES (?1, ?2, ?3)",
                    params![p.consumer, p.event_id, ts(Utc::now())],
                ) {
                    Ok(_) => {}
                    Err(e) if is_constraint(&e) => return Err(StoreError::AlreadyProcessed),
                    Err(e) => return Err(db_err(e)),
                }
            }
            if let Some(i) = &tx.idempotency {
                let record = serde_json::to_string(i).map_err(json_err)?;
                match exec(
                    &t,
                    "INSERT INTO idempotency (scope, key, record) VALUES (?1, ?2, ?3)",
                    params![i.scope, i.key, record],
                ) {
                    Ok(_) => {}
                    Err(e) if is_constraint(&e) => return Err(StoreError::IdempotencyKeyTaken),
                    Err(e) => return Err(db_err(e)),
                }
            }
            for e in &tx.outbox {
                let env = serde_json::to_string(e).map_err(json_err)?;
                exec(
                    &t,
                    "INSERT INTO outbox (event_id, occurred_at, envelope) VALUES (?1, ?2, ?3)",
                    params![e.id, ts(e.occurred_at), env],
                )
                .map_err(db_err)?;
            }
            t.commit().map_err(db_err)
        })
        .await?;
        if has_events {
            self.changes.notify_one();
        }
        Ok(())
    }

    async fn counter(&self, key: &str) -> Result<i64, StoreError> {
        let key = key.to_owned();
        self.read(move |c| {
            row(c, "SELECT value FROM counters WHERE key = ?1", params![key], |r| r.get(0))
                .optional()
                .map(|v| v.unwrap_or(0))
                .map_err(db_err)
        })
        .await
    }

    async fn is_processed(&self, consumer: &str, event_id: &str) -> Result<bool, StoreError> {
        let (consumer, event_id) = (consumer.to_owned(), event_id.to_owned());
        self.read(move |c| {
            row(
                c,
                "SELECT 1 FROM processed WHERE consumer = ?1 AND event_id = ?2",
                params![consumer, event_id],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(db_err)
        })
        .await
    }

    async fn idempotency(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let (scope, key) = (scope.to_owned(), key.to_owned());
        self.read(move |c| {
            let row: Option<String> = row(
                c,
                "SELECT record FROM idempotency WHERE scope = ?1 AND key = ?2",
                params![scope, key],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
            row.map(|r| serde_json::from_str(&r).map_err(json_err)).transpose()
        })
        .await
    }
}

#[async_trait]
impl Outbox for Embedded {
    async fn unpublished(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<EventEnvelope>, StoreError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT envelope FROM outbox WHERE published_at IS NULL AND occurred_at < ?1 ORDER BY seq LIMIT ?2")
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![ts(before), limit as i64], |r| r.get::<_, String>(0))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(serde_json::from_str(&row.map_err(db_err)?).map_err(json_err)?);
            }
            Ok(out)
        })
        .await
    }

    async fn mark_published(&self, events: &[EventEnvelope]) -> Result<(), StoreError> {
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        // The local bus marks what it queues in its own transaction (see `SqliteBus`), so
        // usually nothing is left to mark: find out on a reader before taking the write lock.
        let probe = ids.clone();
        let pending = self
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT 1 FROM outbox WHERE event_id = ?1 AND published_at IS NULL")
                    .map_err(db_err)?;
                for id in &probe {
                    if stmt.exists(params![id]).map_err(db_err)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            })
            .await?;
        if !pending {
            return Ok(());
        }
        self.run(move |c| {
            let t = c.transaction().map_err(db_err)?;
            let now = ts(Utc::now());
            for id in &ids {
                exec(
                    &t,
                    "UPDATE outbox SET published_at = ?1 WHERE event_id = ?2 AND published_at IS NULL",
                    params![now, id],
                )
                .map_err(db_err)?;
            }
            t.commit().map_err(db_err)
        })
        .await
    }
}

fn view_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ViewRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

type ViewRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
);

fn view_record(row: ViewRow) -> Result<ViewRecord, StoreError> {
    let (id, flow, owner, date, status, created_at, revision, body, queue, category) = row;
    Ok(ViewRecord {
        id,
        flow,
        owner,
        date,
        status,
        queue,
        category,
        created_at: parse_ts(&created_at)?,
        revision: revision as u64,
        body: serde_json::from_str(&body).map_err(json_err)?,
    })
}

const VIEW_COLUMNS: &str = "id, flow, owner, date, status, created_at, revision, body, queue, category";

#[async_trait]
impl ViewStore for Embedded {
    async fn get(&self, id: &str) -> Result<Option<ViewRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            let row = row(
                c,
                &format!("SELECT {VIEW_COLUMNS} FROM views WHERE id = ?1"),
                params![id],
                view_from_row,
            )
            .optional()
            .map_err(db_err)?;
            row.map(view_record).transpose()
        })
        .await
    }

    async fn put(&self, view: ViewRecord, expected_revision: u64) -> Result<(), StoreError> {
        self.run(move |c| {
            let body = serde_json::to_string(&view.body).map_err(json_err)?;
            let n = if expected_revision == 0 {
                match exec(
                    c,
                    &format!("INSERT INTO views ({VIEW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                    params![view.id, view.flow, view.owner, view.date, view.status, ts(view.created_at), view.revision as i64, body, view.queue, view.category],
                ) {
                    Ok(n) => n,
                    Err(e) if is_constraint(&e) => 0,
                    Err(e) => return Err(db_err(e)),
                }
            } else {
                exec(
                    c,
                    "UPDATE views SET flow = ?2, owner = ?3, date = ?4, status = ?5, created_at = ?6, revision = ?7, body = ?8, queue = ?10, category = ?11 WHERE id = ?1 AND revision = ?9",
                    params![view.id, view.flow, view.owner, view.date, view.status, ts(view.created_at), view.revision as i64, body, expected_revision as i64, view.queue, view.category],
                )
                .map_err(db_err)?
            };
            if n == 0 { Err(StoreError::VersionConflict(format!("view/{}", view.id))) } else { Ok(()) }
        })
        .await
    }

    async fn list(&self, query: &ViewQuery) -> Result<Vec<ViewRecord>, StoreError> {
        let q = query.clone();
        self.read(move |c| {
            let mut sql = format!("SELECT {VIEW_COLUMNS} FROM views WHERE flow = ?1");
            let mut args: Vec<Box<dyn rusqlite::ToSql + Send>> = vec![Box::new(q.flow.clone())];
            let mut push = |sql: &mut String, clause: &str, v: Box<dyn rusqlite::ToSql + Send>| {
                args.push(v);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(owner) = &q.owner {
                push(&mut sql, " AND owner = ?", Box::new(owner.clone()));
            }
            if let Some(queue) = &q.queue {
                push(&mut sql, " AND queue = ?", Box::new(queue.clone()));
            }
            if let Some(date) = &q.date {
                push(&mut sql, " AND date = ?", Box::new(date.clone()));
            }
            if let Some(status) = &q.status {
                push(&mut sql, " AND status = ?", Box::new(status.clone()));
            }
            if let Some(category) = &q.category {
                push(&mut sql, " AND category = ?", Box::new(category.clone()));
            }
            let (before, order) = if q.oldest_first { (">", "ASC") } else { ("<", "DESC") };
            if let Some((at, id)) = &q.after {
                push(&mut sql, &format!(" AND (created_at {before} ?"), Box::new(ts(*at)));
                push(&mut sql, " OR (created_at = ?", Box::new(ts(*at)));
                push(&mut sql, &format!(" AND id {before} ?))"), Box::new(id.clone()));
            }
            push(
                &mut sql,
                &format!(" ORDER BY created_at {order}, id {order} LIMIT ?"),
                Box::new(q.limit as i64),
            );
            let mut stmt = c.prepare_cached(&sql).map_err(db_err)?;
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|a| a.as_ref() as &dyn rusqlite::ToSql).collect();
            let rows = stmt.query_map(refs.as_slice(), view_from_row).map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(view_record(row.map_err(db_err)?)?);
            }
            Ok(out)
        })
        .await
    }
}

/// A delivery of one event to one rule target, waiting in the local bus's queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Queue row id.
    pub id: i64,
    /// Target function.
    pub target: String,
    /// How many times it was tried before.
    pub attempts: u32,
    /// The event.
    pub event: EventEnvelope,
}

/// The local event bus: publishing matches each event against the rules of `topology.rs`
/// and queues one durable delivery per matching target (EventBridge → SQS, in one table).
#[derive(Debug, Clone)]
pub struct SqliteBus {
    db: Embedded,
    rules: Vec<Rule>,
}

impl SqliteBus {
    /// A bus over `db` applying `rules`.
    pub fn new(db: Embedded, rules: Vec<Rule>) -> Self {
        Self { db, rules }
    }

    /// Deliveries due at `now`, oldest first.
    pub async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT id, target, attempts, envelope FROM deliveries WHERE dead = 0 AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2")
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![ts(now), limit as i64], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
                    })
                    .map_err(db_err)?;
                let mut out = Vec::new();
                for row in rows {
                    let (id, target, attempts, env) = row.map_err(db_err)?;
                    out.push(Delivery { id, target, attempts: attempts as u32, event: serde_json::from_str(&env).map_err(json_err)? });
                }
                Ok(out)
            })
            .await
    }

    /// The earliest time a live delivery is due, if any.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<String> = self
            .db
            .read(|c| row(c, "SELECT MIN(next_at) FROM deliveries WHERE dead = 0", [], |r| r.get(0)).map_err(db_err))
            .await?;
        next.map(|s| parse_ts(&s)).transpose()
    }

    /// A delivery succeeded: remove it.
    pub async fn complete(&self, id: i64) -> Result<(), StoreError> {
        self.db
            .run(move |c| {
                exec(c, "DELETE FROM deliveries WHERE id = ?1", params![id])
                    .map(|_| ())
                    .map_err(db_err)
            })
            .await
    }

    /// Deliveries that succeeded: remove them, in one transaction.
    pub async fn complete_all(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.db
            .run(move |c| {
                let t = c.transaction().map_err(db_err)?;
                for id in &ids {
                    exec(&t, "DELETE FROM deliveries WHERE id = ?1", params![id]).map_err(db_err)?;
                }
                t.commit().map_err(db_err)
            })
            .await
    }

    /// A delivery failed: try again at `next_at`, or park it in the dead-letter queue.
    pub async fn fail(&self, id: i64, error: &str, next_at: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.db
            .run(move |c| {
                match next_at {
                    Some(at) => exec(
                        c,
                        "UPDATE deliveries SET attempts = attempts + 1, last_error = ?2, next_at = ?3 WHERE id = ?1",
                        params![id, error, ts(at)],
                    ),
                    None => exec(
                        c,
                        "UPDATE deliveries SET attempts = attempts + 1, last_error = ?2, dead = 1 WHERE id = ?1",
                        params![id, error],
                    ),
                }
                .map(|_| ())
                .map_err(db_err)
            })
            .await
    }

    /// Parks an event that `target` can never handle (a poison record) in the dead-letter
    /// queue, where it is listed and can be redriven.
    pub async fn park(&self, target: &str, event: &EventEnvelope, error: &str) -> Result<(), StoreError> {
        let (target, error) = (target.to_owned(), error.to_owned());
        let (event_id, env) = (event.id.clone(), serde_json::to_string(event).map_err(json_err)?);
        self.db
            .run(move |c| {
                exec(
                    c,
                    "INSERT INTO deliveries (event_id, target, envelope, attempts, next_at, last_error, dead) VALUES (?1, ?2, ?3, 1, ?4, ?5, 1)
                     ON CONFLICT(event_id, target) DO UPDATE SET dead = 1, last_error = excluded.last_error",
                    params![event_id, target, env, ts(Utc::now()), error],
                )
                .map(|_| ())
                .map_err(db_err)
            })
            .await
    }

    /// Dead-lettered deliveries: (target, event type, last error).
    pub async fn dead_letters(&self) -> Result<Vec<(String, EventEnvelope, String)>, StoreError> {
        self.db
            .read(|c| {
                let mut stmt = c
                    .prepare_cached("SELECT target, envelope, COALESCE(last_error, '') FROM deliveries WHERE dead = 1 ORDER BY id")
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                    .map_err(db_err)?;
                let mut out = Vec::new();
                for row in rows {
                    let (t, env, err) = row.map_err(db_err)?;
                    out.push((t, serde_json::from_str(&env).map_err(json_err)?, err));
                }
                Ok(out)
            })
            .await
    }

    /// Puts dead-lettered deliveries back in the queue (a redrive).
    pub async fn redrive(&self) -> Result<usize, StoreError> {
        self.db
            .run(|c| {
                exec(
                    c,
                    "UPDATE deliveries SET dead = 0, attempts = 0, next_at = ?1 WHERE dead = 1",
                    params![ts(Utc::now())],
                )
                .map_err(db_err)
            })
            .await
            .inspect(|_| self.db.deliveries.notify_one())
    }
}

#[async_trait]
impl Publisher for SqliteBus {
    async fn publish(&self, events: &[EventEnvelope]) -> PublishOutcome {
        let mut rows = Vec::new();
        let mut outcome = PublishOutcome::default();
        for e in events {
            match serde_json::to_string(e) {
                Ok(env) => {
                    for rule in self.rules.iter().filter(|r| r.matches(&e.source, &e.event_type)) {
                        rows.push((e.id.clone(), rule.target.to_owned(), env.clone()));
                    }
                    outcome.published.push(e.id.clone());
                }
                Err(err) => outcome.failed.push((e.id.clone(), err.to_string())),
            }
        }
        let queued = !rows.is_empty();
        let published = outcome.published.clone();
        let result = self
            .db
            .run(move |c| {
                let t = c.transaction().map_err(db_err)?;
                let now = ts(Utc::now());
                for (event_id, target, env) in &rows {
                    t.prepare_cached("INSERT OR IGNORE INTO deliveries (event_id, target, envelope, next_at) VALUES (?1, ?2, ?3, ?4)")
                        .and_then(|mut s| s.execute(params![event_id, target, env, now]))
                        .map_err(db_err)?;
                }
                // The deliveries are durable in this database now: the event is published. Mark
                // it in the same transaction, which spares the relay a write of its own.
                for id in &published {
                    t.prepare_cached("UPDATE outbox SET published_at = ?1 WHERE event_id = ?2 AND published_at IS NULL")
                        .and_then(|mut s| s.execute(params![now, id]))
                        .map_err(db_err)?;
                }
                t.commit().map_err(db_err)
            })
            .await;
        match result {
            Ok(()) => {
                if queued {
                    self.db.deliveries.notify_one();
                }
                outcome
            }
            Err(err) => {
                let mut failed = outcome.failed;
                failed.extend(outcome.published.into_iter().map(|id| (id, err.to_string())));
                PublishOutcome { published: vec![], failed }
            }
        }
    }
}

/// One SMS kept by the local SMS outbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SentSms {
    /// Order sent.
    pub seq: i64,
    /// Dedup key (the causing event id).
    pub key: String,
    /// Recipient, E.164.
    pub to: String,
    /// Text.
    pub body: String,
    /// When.
    pub sent_at: String,
    /// The channel's message id (SNS), when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// The local SMS channel: keeps every SMS, once per key, instead of sending it.
#[derive(Debug, Clone)]
pub struct SqliteSmsOutbox {
    db: Embedded,
}

impl SqliteSmsOutbox {
    /// An SMS outbox on `db`.
    pub fn new(db: Embedded) -> Self {
        Self { db }
    }

    /// Opts `phone` out, as a person who replied STOP to SNS is: no SMS goes to it again
    /// (the send is refused, as the SNS adapter refuses a number SNS says opted out).
    pub async fn opt_out(&self, phone: &PhoneNumber) -> Result<(), StoreError> {
        let to = phone.e164().to_owned();
        self.db
            .run(move |c| {
                exec(c, "INSERT OR IGNORE INTO sms_opted_out (recipient) VALUES (?1)", params![to]).map_err(db_err)?;
                Ok(())
            })
            .await
    }

    /// Every SMS kept, oldest first.
    pub async fn list(&self) -> Result<Vec<SentSms>, StoreError> {
        self.db
            .read(|c| {
                let mut stmt = c
                    .prepare_cached("SELECT seq, key, recipient, body, sent_at FROM sms ORDER BY seq")
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok(SentSms {
                            seq: r.get(0)?,
                            key: r.get(1)?,
                            to: r.get(2)?,
                            body: r.get(3)?,
                            sent_at: r.get(4)?,
                            message_id: None,
                        })
                    })
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
            })
            .await
    }
}

#[async_trait]
impl SmsSender for SqliteSmsOutbox {
    async fn send(&self, message: &SmsMessage) -> Result<String, SmsError> {
        let (key, to, body) = (message.key.clone(), message.to.e164().to_owned(), message.body.clone());
        let opted_out = self
            .db
            .read({
                let to = to.clone();
                move |c| {
                    c.prepare_cached("SELECT 1 FROM sms_opted_out WHERE recipient = ?1")
                        .and_then(|mut s| s.exists(params![to]))
                        .map_err(db_err)
                }
            })
            .await
            .map_err(|e| SmsError::Transient(e.to_string()))?;
        if opted_out {
            tracing::debug!(to = %message.to.masked(), "sms not sent: the number opted out");
            return Err(SmsError::Refused("opted out".into()));
        }
        self.db
            .run(move |c| {
                exec(
                    c,
                    "INSERT OR IGNORE INTO sms (key, recipient, body, sent_at) VALUES (?1, ?2, ?3, ?4)",
                    params![key, to, body, ts(Utc::now())],
                )
                .map_err(db_err)?;
                row(c, "SELECT seq FROM sms WHERE key = ?1", params![key], |r| r.get::<_, i64>(0)).map_err(db_err)
            })
            .await
            .map(|seq| format!("local-{seq}"))
            .map_err(|e| SmsError::Transient(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_opted_out_number_is_refused_and_the_others_are_sent() {
        let outbox = SqliteSmsOutbox::new(Embedded::in_memory().expect("a database"));
        let phone = |n: &str| PhoneNumber::parse(n).expect("a phone");
        let message = |key: &str, to: &str| SmsMessage {
            key: key.to_owned(),
            to: phone(to),
            body: "hello".to_owned(),
        };
        outbox.opt_out(&phone("010-5555-0099")).await.expect("opts out");
        outbox.opt_out(&phone("+821055550099")).await.expect("twice is harmless");
        assert_eq!(
            outbox.send(&message("e1", "010-5555-0099")).await,
            Err(SmsError::Refused("opted out".into()))
        );
        assert!(outbox.send(&message("e2", "010-5555-0001")).await.is_ok());
        let sent = outbox.list().await.expect("the list");
        assert_eq!(sent.iter().map(|s| s.to.as_str()).collect::<Vec<_>>(), ["+821055550001"]);
    }

    #[tokio::test]
    async fn a_database_made_before_the_queue_and_category_columns_is_migrated_and_keeps_its_views() {
        let conn = Connection::open_in_memory().expect("a database");
        conn.execute_batch(
            "CREATE TABLE views (
                id TEXT PRIMARY KEY, flow TEXT NOT NULL, owner TEXT NOT NULL, date TEXT, status TEXT,
                created_at TEXT NOT NULL, revision INTEGER NOT NULL, body TEXT NOT NULL);
             INSERT INTO views VALUES ('old', 'f', 'p1', NULL, 'open', '2026-01-01T00:00:00.000000Z', 1, '{}');",
        )
        .expect("the old schema");
        let db = Embedded::with(Embedded::prepare(conn).expect("migrated"), vec![]);
        let old = db.get("old").await.expect("get").expect("kept");
        assert_eq!((&old.queue, &old.category), (&None, &None));
        let queued = ViewRecord {
            id: "new".into(),
            queue: Some("q1".into()),
            category: Some("c1".into()),
            ..old
        };
        db.put(queued.clone(), 0).await.expect("a view with a queue");
        let listed = db
            .list(&ViewQuery {
                flow: "f".into(),
                queue: Some("q1".into()),
                category: Some("c1".into()),
                limit: 10,
                ..ViewQuery::default()
            })
            .await
            .expect("list");
        assert_eq!(listed, vec![queued]);
    }
}
