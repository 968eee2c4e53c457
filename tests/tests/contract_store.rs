//! The store contract, run on every store: the embedded SQLite store (the local runtime and
//! the fast fakes), the in-memory store (benchmarks) and the DynamoDB store on moto. Each
//! test is written once against the ports and instantiated for each backend, so the stores
//! cannot drift apart: versions, counters, dedup marks, idempotency keys, all-or-nothing
//! transactions, the outbox and the status views, including under concurrency.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use clinicflow::adapters::dynamodb::{DynamoStore, outbox_envelope};
use clinicflow::adapters::embedded::Embedded;
use clinicflow::adapters::memory::Memory;
use clinicflow::events::EventEnvelope;
use clinicflow::ports::{
    AggregateKey, AggregateStore, AggregateWrite, CounterMove, IdempotencyRecord, Outbox, ProcessedMark, StoreError, Stored, Transaction,
    ViewQuery, ViewRecord, ViewStore,
};
use clinicflow_tests::moto::{moto, unique};
use serde_json::{Value, json};

/// One store behind the three ports.
#[derive(Clone)]
struct Backend {
    store: Arc<dyn AggregateStore>,
    outbox: Arc<dyn Outbox>,
    views: Arc<dyn ViewStore>,
}

fn sqlite() -> Backend {
    let db = Embedded::in_memory().expect("in-memory database");
    Backend {
        store: Arc::new(db.clone()),
        outbox: Arc::new(db.clone()),
        views: Arc::new(db),
    }
}

fn memory() -> Backend {
    let store = Memory::new();
    Backend {
        store: Arc::new(store.clone()),
        outbox: Arc::new(store.clone()),
        views: Arc::new(store),
    }
}

/// A DynamoDB store on fresh tables of the shared moto server.
async fn dynamo_store() -> DynamoStore {
    dynamo_store_on(&moto().await.sdk().await).await
}

async fn dynamo_store_on(sdk: &aws_config::SdkConfig) -> DynamoStore {
    let prefix = unique("cs");
    let tables = clinicflow::wiring::AwsSettings::prefixed(clinicflow::catalog(), &prefix).tables;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), tables);
    store.create_tables(&clinicflow::catalog().tables).await.expect("tables created");
    store
}

fn backend(store: DynamoStore) -> Backend {
    Backend {
        store: Arc::new(store.clone()),
        outbox: Arc::new(store.clone()),
        views: Arc::new(store),
    }
}

async fn dynamodb() -> Backend {
    backend(dynamo_store().await)
}

/// Each contract test, once per backend: `test: sqlite_name, dynamodb_name, memory_name;`.
/// The racing tests (`serial:`) need DynamoDB's serializable transactions, which the test
/// run's moto server provides by serializing its DynamoDB calls (`scripts/moto_server.py`).
macro_rules! contract {
    (@one $test:ident, $sqlite:ident, $dynamodb:ident, $memory:ident, $backend:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $sqlite() {
            $test(sqlite()).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $dynamodb() {
            $test($backend().await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $memory() {
            $test(memory()).await;
        }
    };
    (serial: $($test:ident: $sqlite:ident, $dynamodb:ident, $memory:ident;)*) => {
        $(contract!(@one $test, $sqlite, $dynamodb, $memory, dynamodb);)*
    };
    ($($test:ident: $sqlite:ident, $dynamodb:ident, $memory:ident;)*) => {
        $(contract!(@one $test, $sqlite, $dynamodb, $memory, dynamodb);)*
    };
}

contract! {
    create_then_load: sqlite_create_then_load, dynamodb_create_then_load, memory_create_then_load;
    update_with_the_right_version: sqlite_update_with_the_right_version, dynamodb_update_with_the_right_version, memory_update_with_the_right_version;
    version_conflict_is_refused: sqlite_version_conflict_is_refused, dynamodb_version_conflict_is_refused, memory_version_conflict_is_refused;
    second_create_is_refused: sqlite_second_create_is_refused, dynamodb_second_create_is_refused, memory_second_create_is_refused;
    counter_stops_at_its_limit: sqlite_counter_stops_at_its_limit, dynamodb_counter_stops_at_its_limit, memory_counter_stops_at_its_limit;
    counter_give_back_below_zero_is_refused: sqlite_counter_give_back_below_zero_is_refused, dynamodb_counter_give_back_below_zero_is_refused, memory_counter_give_back_below_zero_is_refused;
    processed_mark_twice_is_refused: sqlite_processed_mark_twice_is_refused, dynamodb_processed_mark_twice_is_refused, memory_processed_mark_twice_is_refused;
    idempotency_key_twice_is_refused: sqlite_idempotency_key_twice_is_refused, dynamodb_idempotency_key_twice_is_refused, memory_idempotency_key_twice_is_refused;
    one_failing_item_cancels_the_whole_transaction: sqlite_one_failing_item_cancels_the_whole_transaction, dynamodb_one_failing_item_cancels_the_whole_transaction, memory_one_failing_item_cancels_the_whole_transaction;
    empty_transaction_is_a_no_op: sqlite_empty_transaction_is_a_no_op, dynamodb_empty_transaction_is_a_no_op, memory_empty_transaction_is_a_no_op;
    unpublished_lists_events_oldest_first: sqlite_unpublished_lists_events_oldest_first, dynamodb_unpublished_lists_events_oldest_first, memory_unpublished_lists_events_oldest_first;
    views_put_get_and_revision_conflict: sqlite_views_put_get_and_revision_conflict, dynamodb_views_put_get_and_revision_conflict, memory_views_put_get_and_revision_conflict;
    views_list_by_owner_date_and_flow: sqlite_views_list_by_owner_date_and_flow, dynamodb_views_list_by_owner_date_and_flow, memory_views_list_by_owner_date_and_flow;
    views_pages_yield_every_view_once: sqlite_views_pages_yield_every_view_once, dynamodb_views_pages_yield_every_view_once, memory_views_pages_yield_every_view_once;
}

contract! {
    serial:
    racing_updates_have_one_winner: sqlite_racing_updates_have_one_winner, dynamodb_racing_updates_have_one_winner, memory_racing_updates_have_one_winner;
    racing_counter_moves_stop_at_the_limit: sqlite_racing_counter_moves_stop_at_the_limit, dynamodb_racing_counter_moves_stop_at_the_limit, memory_racing_counter_moves_stop_at_the_limit;
}

const SLOT: &str = "checkup#2026-12-01#basic";

fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

/// Now, to the microsecond both stores keep.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn key(context: &'static str, id: &str) -> AggregateKey {
    AggregateKey::new(context, id)
}

fn write(key: &AggregateKey, expected_version: u64, new_version: u64, state: Value) -> AggregateWrite {
    AggregateWrite {
        key: key.clone(),
        expected_version,
        new_version,
        state,
    }
}

fn event(context: &str, aggregate_id: &str, occurred_at: DateTime<Utc>) -> EventEnvelope {
    let id = new_id();
    EventEnvelope {
        id: id.clone(),
        event_type: "CheckupBooked".into(),
        source: format!("clinicflow.{context}"),
        aggregate_id: aggregate_id.into(),
        version: 1,
        correlation_id: aggregate_id.into(),
        causation_id: format!("request-{id}"),
        occurred_at,
        data: json!({"date": "2026-12-01", "package": "basic", "price": 120000, "tags": ["a"], "note": null}),
    }
}

fn take_place(limit: i64) -> CounterMove {
    CounterMove {
        key: SLOT.into(),
        delta: 1,
        limit,
    }
}

fn give_back() -> CounterMove {
    CounterMove {
        key: SLOT.into(),
        delta: -1,
        limit: 10,
    }
}

fn record(scope: &str, key: &str, body: Value) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: scope.into(),
        key: key.into(),
        request_hash: "hash-1".into(),
        status: 201,
        body,
        location: Some("/checkups/b1".into()),
    }
}

async fn creates(b: &Backend, key: &AggregateKey, state: Value) {
    b.store
        .commit(Transaction {
            writes: vec![write(key, 0, 1, state)],
            ..Transaction::default()
        })
        .await
        .expect("created");
}

async fn all_unpublished(b: &Backend) -> Vec<EventEnvelope> {
    b.outbox.unpublished(Utc::now() + Duration::days(1), 1000).await.expect("outbox")
}

fn ids(events: &[EventEnvelope]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

async fn create_then_load(b: Backend) {
    let k = key("checkup", &new_id());
    let state = json!({
        "status": "booked",
        "name": "홍길동",
        "price": 120000,
        "ratio": 0.5,
        "paid": true,
        "note": null,
        "history": [{"at": "2026-01-01T00:00:00Z", "status": "received"}],
        "empty": {},
    });
    creates(&b, &k, state.clone()).await;
    assert_eq!(b.store.load(&k).await.expect("load"), Some(Stored { version: 1, state }));
    assert_eq!(b.store.load(&key("checkup", &new_id())).await.expect("load"), None);
    assert_eq!(
        b.store.load(&key("payment", &k.id)).await.expect("load"),
        None,
        "contexts are separate"
    );
}

async fn update_with_the_right_version(b: Backend) {
    let k = key("payment", &new_id());
    creates(&b, &k, json!({"status": "captured"})).await;
    let e = event("payment", &k.id, now());
    b.store
        .commit(Transaction {
            writes: vec![write(&k, 1, 3, json!({"status": "refunded"}))],
            outbox: vec![e.clone()],
            ..Transaction::default()
        })
        .await
        .expect("updated");
    let stored = b.store.load(&k).await.expect("load").expect("stored");
    assert_eq!(
        stored,
        Stored {
            version: 3,
            state: json!({"status": "refunded"})
        }
    );
    assert_eq!(all_unpublished(&b).await, vec![e]);
}

async fn version_conflict_is_refused(b: Backend) {
    let (a, other) = (key("checkup", &new_id()), key("centre", &new_id()));
    creates(&b, &a, json!({"v": 1})).await;
    creates(&b, &other, json!({"v": 1})).await;
    b.store
        .commit(Transaction {
            writes: vec![write(&a, 1, 2, json!({"v": 2}))],
            ..Transaction::default()
        })
        .await
        .expect("first update");

    let refused = event("checkup", &a.id, now());
    let stale = Transaction {
        writes: vec![write(&other, 1, 2, json!({"v": "changed"})), write(&a, 1, 2, json!({"v": "stale"}))],
        outbox: vec![refused],
        ..Transaction::default()
    };
    assert_eq!(
        b.store.commit(stale).await,
        Err(StoreError::VersionConflict(format!("checkup/{}", a.id)))
    );
    assert_eq!(
        b.store.load(&a).await.expect("load"),
        Some(Stored {
            version: 2,
            state: json!({"v": 2})
        })
    );
    assert_eq!(
        b.store.load(&other).await.expect("load"),
        Some(Stored {
            version: 1,
            state: json!({"v": 1})
        })
    );
    assert!(
        all_unpublished(&b).await.is_empty(),
        "the refused transaction's event was not written"
    );
}

async fn second_create_is_refused(b: Backend) {
    let k = key("centre", &new_id());
    creates(&b, &k, json!({"first": true})).await;
    let again = Transaction {
        writes: vec![write(&k, 0, 1, json!({"first": false}))],
        ..Transaction::default()
    };
    assert_eq!(
        b.store.commit(again).await,
        Err(StoreError::VersionConflict(format!("centre/{}", k.id)))
    );
    assert_eq!(
        b.store.load(&k).await.expect("load"),
        Some(Stored {
            version: 1,
            state: json!({"first": true})
        })
    );
}

async fn counter_stops_at_its_limit(b: Backend) {
    assert_eq!(b.store.counter(SLOT).await.expect("counter"), 0, "a counter never moved is 0");
    for _ in 0..2 {
        let booking = key("checkup", &new_id());
        b.store
            .commit(Transaction {
                writes: vec![write(&booking, 0, 1, json!({}))],
                counters: vec![take_place(2)],
                ..Transaction::default()
            })
            .await
            .expect("a place is left");
    }
    assert_eq!(b.store.counter(SLOT).await.expect("counter"), 2);

    let late = key("checkup", &new_id());
    let full = Transaction {
        writes: vec![write(&late, 0, 1, json!({}))],
        counters: vec![take_place(2)],
        outbox: vec![event("checkup", &late.id, now())],
        ..Transaction::default()
    };
    assert_eq!(b.store.commit(full).await, Err(StoreError::CounterExhausted(SLOT.into())));
    assert_eq!(b.store.counter(SLOT).await.expect("counter"), 2);
    assert_eq!(b.store.load(&late).await.expect("load"), None, "the whole transaction rolled back");
    assert!(all_unpublished(&b).await.is_empty());

    let too_big = Transaction {
        counters: vec![CounterMove {
            key: "payment#too-big".into(),
            delta: 3,
            limit: 2,
        }],
        ..Transaction::default()
    };
    assert_eq!(
        b.store.commit(too_big).await,
        Err(StoreError::CounterExhausted("payment#too-big".into()))
    );
    assert_eq!(b.store.counter("payment#too-big").await.expect("counter"), 0);
}

async fn counter_give_back_below_zero_is_refused(b: Backend) {
    let moves = |m: CounterMove| Transaction {
        counters: vec![m],
        ..Transaction::default()
    };
    assert_eq!(
        b.store.commit(moves(give_back())).await,
        Err(StoreError::CounterExhausted(SLOT.into())),
        "nothing to give back on a counter never moved"
    );
    b.store.commit(moves(take_place(10))).await.expect("taken");
    b.store.commit(moves(give_back())).await.expect("given back");
    assert_eq!(b.store.counter(SLOT).await.expect("counter"), 0);
    assert_eq!(
        b.store.commit(moves(give_back())).await,
        Err(StoreError::CounterExhausted(SLOT.into()))
    );
    assert_eq!(b.store.counter(SLOT).await.expect("counter"), 0);
}

async fn processed_mark_twice_is_refused(b: Backend) {
    let mark = ProcessedMark {
        consumer: "centre-worklist".into(),
        event_id: new_id(),
    };
    assert!(!b.store.is_processed(&mark.consumer, &mark.event_id).await.expect("read"));
    let first = key("centre", &new_id());
    b.store
        .commit(Transaction {
            writes: vec![write(&first, 0, 1, json!({}))],
            processed: Some(mark.clone()),
            ..Transaction::default()
        })
        .await
        .expect("first processing");
    assert!(b.store.is_processed(&mark.consumer, &mark.event_id).await.expect("read"));
    assert!(
        !b.store.is_processed("payment-refund", &mark.event_id).await.expect("read"),
        "marks are per consumer"
    );

    let redelivered = key("centre", &new_id());
    let again = Transaction {
        writes: vec![write(&redelivered, 0, 1, json!({}))],
        processed: Some(mark.clone()),
        ..Transaction::default()
    };
    assert_eq!(b.store.commit(again).await, Err(StoreError::AlreadyProcessed));
    assert_eq!(b.store.load(&redelivered).await.expect("load"), None);
    assert!(b.store.is_processed(&mark.consumer, &mark.event_id).await.expect("read"));
}

async fn idempotency_key_twice_is_refused(b: Backend) {
    let first = record("patient-1 POST /checkups", "key-1", json!({"id": "b1", "status": "booked"}));
    b.store
        .commit(Transaction {
            idempotency: Some(first.clone()),
            ..Transaction::default()
        })
        .await
        .expect("first response remembered");
    let second = IdempotencyRecord {
        request_hash: "hash-2".into(),
        location: None,
        ..record("patient-1 POST /checkups", "key-1", json!({"id": "b2"}))
    };
    let k = key("checkup", &new_id());
    let again = Transaction {
        writes: vec![write(&k, 0, 1, json!({}))],
        idempotency: Some(second),
        ..Transaction::default()
    };
    assert_eq!(b.store.commit(again).await, Err(StoreError::IdempotencyKeyTaken));
    assert_eq!(b.store.load(&k).await.expect("load"), None);
    assert_eq!(
        b.store.idempotency(&first.scope, &first.key).await.expect("read"),
        Some(first.clone())
    );
    assert_eq!(b.store.idempotency("patient-2 POST /checkups", "key-1").await.expect("read"), None);

    let no_location = IdempotencyRecord {
        location: None,
        ..record("patient-2 POST /checkups", "key-1", json!(null))
    };
    b.store
        .commit(Transaction {
            idempotency: Some(no_location.clone()),
            ..Transaction::default()
        })
        .await
        .expect("another scope's key");
    assert_eq!(
        b.store.idempotency(&no_location.scope, "key-1").await.expect("read"),
        Some(no_location)
    );
}

async fn one_failing_item_cancels_the_whole_transaction(b: Backend) {
    b.store
        .commit(Transaction {
            counters: vec![take_place(1)],
            ..Transaction::default()
        })
        .await
        .expect("the last place");
    let booking = key("checkup", &new_id());
    let payment = key("payment", &new_id());
    let mark = ProcessedMark {
        consumer: "availability-release".into(),
        event_id: new_id(),
    };
    let response = record("patient-1 POST /checkups", "key-9", json!({"id": booking.id}));
    let tx = Transaction {
        writes: vec![write(&booking, 0, 1, json!({"status": "booked"})), write(&payment, 0, 1, json!({}))],
        counters: vec![take_place(1)],
        outbox: vec![event("checkup", &booking.id, now()), event("payment", &payment.id, now())],
        processed: Some(mark.clone()),
        idempotency: Some(response.clone()),
    };
    assert_eq!(b.store.commit(tx).await, Err(StoreError::CounterExhausted(SLOT.into())));
    assert_eq!(b.store.load(&booking).await.expect("load"), None);
    assert_eq!(b.store.load(&payment).await.expect("load"), None);
    assert_eq!(b.store.counter(SLOT).await.expect("counter"), 1);
    assert!(all_unpublished(&b).await.is_empty());
    assert!(!b.store.is_processed(&mark.consumer, &mark.event_id).await.expect("read"));
    assert_eq!(b.store.idempotency(&response.scope, &response.key).await.expect("read"), None);
}

async fn empty_transaction_is_a_no_op(b: Backend) {
    b.store.commit(Transaction::default()).await.expect("nothing to do");
    assert!(all_unpublished(&b).await.is_empty());
}

async fn unpublished_lists_events_oldest_first(b: Backend) {
    let t0 = now() - Duration::hours(1);
    let at = |s: i64| t0 + Duration::seconds(s);
    let booking = new_id();
    let e: Vec<EventEnvelope> = vec![
        event("checkup", &booking, at(0)),
        event("checkup", &booking, at(1)),
        event("payment", &booking, at(2)),
        event("centre", &booking, at(3)),
        event("checkup", &booking, at(4)),
    ];
    let k = key("checkup", &booking);
    b.store
        .commit(Transaction {
            writes: vec![write(&k, 0, 2, json!({}))],
            outbox: e[..2].to_vec(),
            ..Transaction::default()
        })
        .await
        .expect("first command");
    for later in &e[2..] {
        b.store
            .commit(Transaction {
                outbox: vec![later.clone()],
                ..Transaction::default()
            })
            .await
            .expect("later event");
    }

    assert_eq!(
        b.outbox.unpublished(at(10), 10).await.expect("outbox"),
        e,
        "every event, oldest first, intact"
    );
    assert_eq!(
        ids(&b.outbox.unpublished(at(2), 10).await.expect("outbox")),
        ids(&e[..2]),
        "`before` is exclusive"
    );
    assert_eq!(ids(&b.outbox.unpublished(at(0), 10).await.expect("outbox")), Vec::<&str>::new());
    assert_eq!(
        ids(&b.outbox.unpublished(at(10), 3).await.expect("outbox")),
        ids(&e[..3]),
        "at most `limit`"
    );
    assert_eq!(b.outbox.unpublished(at(10), 0).await.expect("outbox"), vec![]);

    let unknown = event("checkup", &booking, at(5));
    b.outbox
        .mark_published(&[e[0].clone(), e[2].clone(), unknown])
        .await
        .expect("marked; an unknown event is fine");
    b.outbox.mark_published(&[]).await.expect("nothing to mark");
    let left = b.outbox.unpublished(at(10), 10).await.expect("outbox");
    assert_eq!(ids(&left), ids(&[e[1].clone(), e[3].clone(), e[4].clone()]));
    b.outbox.mark_published(&[e[0].clone()]).await.expect("marking twice is fine");

    b.outbox.mark_published(&e).await.expect("marked");
    assert!(all_unpublished(&b).await.is_empty());
}

fn view(id: &str, owner: &str, date: Option<&str>, status: Option<&str>, created_at: DateTime<Utc>) -> ViewRecord {
    ViewRecord {
        id: id.into(),
        flow: "checkup".into(),
        owner: owner.into(),
        date: date.map(str::to_owned),
        status: status.map(str::to_owned),
        queue: None,
        category: None,
        created_at,
        revision: 1,
        body: json!({"id": id, "status": status, "reservation": {"status": "received"}, "price": 120000}),
    }
}

async fn views_put_get_and_revision_conflict(b: Backend) {
    let id = new_id();
    let first = view(&id, "patient-1", Some("2026-12-01"), Some("booked"), now());
    b.views.put(first.clone(), 0).await.expect("created");
    assert_eq!(b.views.get(&id).await.expect("get"), Some(first.clone()));
    assert_eq!(b.views.get(&new_id()).await.expect("get"), None);
    assert_eq!(
        b.views.put(first.clone(), 0).await,
        Err(StoreError::VersionConflict(format!("view/{id}")))
    );

    let second = ViewRecord {
        revision: 2,
        status: Some("cancelled".into()),
        date: None,
        body: json!({"status": "cancelled"}),
        ..first.clone()
    };
    b.views.put(second.clone(), 1).await.expect("updated");
    let stale = ViewRecord {
        revision: 3,
        ..first.clone()
    };
    assert_eq!(b.views.put(stale, 1).await, Err(StoreError::VersionConflict(format!("view/{id}"))));
    assert_eq!(
        b.views.put(first.clone(), 5).await,
        Err(StoreError::VersionConflict(format!("view/{id}")))
    );
    assert_eq!(b.views.get(&id).await.expect("get"), Some(second));
    let never_created = view(&new_id(), "patient-1", None, None, now());
    assert!(matches!(b.views.put(never_created, 1).await, Err(StoreError::VersionConflict(_))));
}

/// Nine views of two owners, two dates (or none), two statuses (or none), two queues (or
/// none) and two categories (or none), two of them created at the same instant; plus one
/// view of another flow that no query returns.
async fn seed_views(b: &Backend) -> Vec<ViewRecord> {
    let t0 = now() - Duration::days(1);
    let at = |m: i64| t0 + Duration::minutes(m);
    let same = at(4);
    let seeds = [
        ("patient-1", Some("2026-12-01"), Some("booked"), Some("doctor-1"), at(0)),
        ("patient-2", Some("2026-12-01"), Some("booked"), Some("doctor-2"), at(1)),
        ("patient-1", Some("2026-12-02"), Some("cancelled"), None, at(2)),
        ("patient-1", Some("2026-12-01"), Some("cancelled"), Some("doctor-1"), at(3)),
        ("patient-2", Some("2026-12-02"), Some("booked"), Some("doctor-1"), same),
        ("patient-1", Some("2026-12-01"), Some("booked"), Some("doctor-2"), same),
        ("patient-1", None, Some("booked"), Some("doctor-1"), at(5)),
        ("patient-2", Some("2026-12-01"), None, None, at(6)),
        ("patient-1", Some("2026-12-02"), Some("booked"), Some("doctor-1"), at(7)),
    ];
    let mut views = Vec::new();
    for (i, (owner, date, status, queue, created_at)) in seeds.into_iter().enumerate() {
        let v = ViewRecord {
            queue: queue.map(str::to_owned),
            category: [Some("dept-a"), Some("dept-b"), None][i % 3].map(str::to_owned),
            ..view(&new_id(), owner, date, status, created_at)
        };
        b.views.put(v.clone(), 0).await.expect("seeded");
        views.push(v);
    }
    let elsewhere = ViewRecord {
        flow: "other".into(),
        ..view(&new_id(), "patient-1", Some("2026-12-01"), Some("booked"), at(8))
    };
    b.views.put(elsewhere, 0).await.expect("seeded");
    views
}

/// What `query` must return from `views`: matching, newest first (or oldest first), at most
/// `limit`.
fn expected<'a>(views: &'a [ViewRecord], query: &ViewQuery) -> Vec<&'a str> {
    let mut matching: Vec<&ViewRecord> = views
        .iter()
        .filter(|v| v.flow == query.flow)
        .filter(|v| query.owner.as_ref().is_none_or(|o| *o == v.owner))
        .filter(|v| query.queue.is_none() || query.queue == v.queue)
        .filter(|v| query.date.is_none() || query.date == v.date)
        .filter(|v| query.status.is_none() || query.status == v.status)
        .filter(|v| query.category.is_none() || query.category == v.category)
        .filter(|v| {
            query.after.as_ref().is_none_or(|(at, id)| {
                let key = (v.created_at, &v.id);
                if query.oldest_first { key > (*at, id) } else { key < (*at, id) }
            })
        })
        .collect();
    matching.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    if query.oldest_first {
        matching.reverse();
    }
    matching.into_iter().take(query.limit).map(|v| v.id.as_str()).collect()
}

fn query(owner: Option<&str>, date: Option<&str>, status: Option<&str>, limit: usize) -> ViewQuery {
    ViewQuery {
        flow: "checkup".into(),
        owner: owner.map(str::to_owned),
        date: date.map(str::to_owned),
        status: status.map(str::to_owned),
        queue: None,
        category: None,
        oldest_first: false,
        after: None,
        limit,
    }
}

fn oldest_first(q: ViewQuery) -> ViewQuery {
    ViewQuery { oldest_first: true, ..q }
}

fn of_category(category: &str, q: ViewQuery) -> ViewQuery {
    ViewQuery {
        category: Some(category.to_owned()),
        ..q
    }
}

fn in_queue(queue: &str, date: Option<&str>, status: Option<&str>, limit: usize) -> ViewQuery {
    ViewQuery {
        queue: Some(queue.to_owned()),
        ..query(None, date, status, limit)
    }
}

async fn views_list_by_owner_date_and_flow(b: Backend) {
    let views = seed_views(&b).await;
    let queries = [
        query(Some("patient-1"), None, None, 100),
        query(Some("patient-2"), None, None, 100),
        query(Some("patient-1"), Some("2026-12-01"), None, 100),
        query(Some("patient-1"), Some("2026-12-01"), Some("booked"), 100),
        query(Some("patient-1"), None, Some("cancelled"), 100),
        query(None, Some("2026-12-01"), None, 100),
        query(None, Some("2026-12-02"), Some("booked"), 100),
        query(None, None, Some("booked"), 100),
        query(None, None, None, 100),
        query(None, None, None, 4),
        query(None, None, Some("booked"), 2),
        query(Some("patient-3"), None, None, 100),
        query(None, Some("2027-01-01"), None, 100),
        query(None, None, None, 0),
        in_queue("doctor-1", None, None, 100),
        in_queue("doctor-2", None, None, 100),
        in_queue("doctor-1", Some("2026-12-01"), None, 100),
        in_queue("doctor-1", None, Some("booked"), 100),
        in_queue("doctor-1", Some("2026-12-02"), Some("booked"), 100),
        in_queue("doctor-1", None, None, 2),
        in_queue("doctor-3", None, None, 100),
        ViewQuery {
            queue: Some("doctor-1".into()),
            ..query(Some("patient-2"), None, None, 100)
        },
        of_category("dept-a", query(None, None, None, 100)),
        of_category("dept-b", query(None, Some("2026-12-01"), Some("booked"), 100)),
        of_category("dept-a", in_queue("doctor-1", None, None, 100)),
        oldest_first(query(None, None, None, 100)),
        oldest_first(in_queue("doctor-1", None, None, 2)),
        oldest_first(of_category("dept-b", query(None, None, Some("booked"), 100))),
    ];
    for q in &queries {
        let listed = b.views.list(q).await.expect("list");
        let listed_ids: Vec<&str> = listed.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(listed_ids, expected(&views, q), "{q:?}");
    }
    let all = b.views.list(&query(None, None, None, 100)).await.expect("list");
    assert_eq!(all.len(), 9);
    for listed in &all {
        let seeded = views.iter().find(|v| v.id == listed.id).expect("a seeded view");
        assert_eq!(listed, seeded, "views come back whole");
    }
}

async fn views_pages_yield_every_view_once(b: Backend) {
    let views = seed_views(&b).await;
    for base in [
        query(None, None, None, 3),
        query(Some("patient-1"), None, None, 3),
        query(None, Some("2026-12-01"), None, 3),
        query(None, None, Some("booked"), 3),
        in_queue("doctor-1", None, None, 3),
        of_category("dept-a", query(None, None, None, 3)),
        oldest_first(query(None, None, None, 3)),
        oldest_first(in_queue("doctor-1", None, None, 3)),
        oldest_first(of_category("dept-b", query(None, Some("2026-12-01"), None, 1))),
    ] {
        let everything = expected(
            &views,
            &ViewQuery {
                limit: 100,
                ..base.clone()
            },
        );
        let mut seen: Vec<String> = Vec::new();
        let mut q = base.clone();
        let mut pages = 0;
        loop {
            let page = b.views.list(&q).await.expect("page");
            pages += 1;
            assert!(page.len() <= base.limit, "{base:?}: page {pages} too long");
            assert_eq!(
                page.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
                expected(&views, &q),
                "{base:?}: page {pages}"
            );
            seen.extend(page.iter().map(|v| v.id.clone()));
            match page.last() {
                Some(last) if page.len() == base.limit => q.after = Some((last.created_at, last.id.clone())),
                _ => break,
            }
            assert!(pages <= everything.len() + 1, "{base:?}: pagination does not end");
        }
        assert_eq!(seen, everything, "{base:?}: every view once, in the list's order");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len(), "{base:?}: no view twice");
    }
}

async fn racing_updates_have_one_winner(b: Backend) {
    let k = key("checkup", &new_id());
    creates(&b, &k, json!({"winner": null})).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (b, k) = (b.clone(), k.clone());
            tokio::spawn(async move {
                let tx = Transaction {
                    writes: vec![write(&k, 1, 2, json!({"winner": i}))],
                    outbox: vec![event("checkup", &k.id, now())],
                    ..Transaction::default()
                };
                b.store.commit(tx).await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => won += 1,
            Err(StoreError::VersionConflict(name)) => assert_eq!(name, format!("checkup/{}", k.id)),
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one update wins");
    let stored = b.store.load(&k).await.expect("load").expect("stored");
    assert_eq!(stored.version, 2);
    assert_eq!(all_unpublished(&b).await.len(), 1, "only the winner's event is in the outbox");
}

async fn racing_counter_moves_stop_at_the_limit(b: Backend) {
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move {
                let booking = key("checkup", &new_id());
                // A transaction conflict (real DynamoDB) is retryable, as the use cases retry it.
                for _ in 0..20 {
                    let tx = Transaction {
                        writes: vec![write(&booking, 0, 1, json!({}))],
                        counters: vec![take_place(10)],
                        ..Transaction::default()
                    };
                    match b.store.commit(tx).await {
                        Err(StoreError::VersionConflict(_)) => tokio::task::yield_now().await,
                        other => return other,
                    }
                }
                Err(StoreError::VersionConflict("still conflicting after 20 tries".into()))
            })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => taken += 1,
            Err(StoreError::CounterExhausted(key)) => assert_eq!(key, SLOT),
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(taken, 10, "exactly the limit succeeds");
    assert_eq!(b.store.counter(SLOT).await.expect("counter"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_outbox_envelope_reads_outbox_items_only() {
    let store = dynamo_store().await;
    let booking = key("checkup", &new_id());
    let e = event("checkup", &booking.id, now());
    store
        .commit(Transaction {
            writes: vec![write(&booking, 0, 1, json!({"status": "booked"}))],
            counters: vec![take_place(5)],
            outbox: vec![e.clone()],
            ..Transaction::default()
        })
        .await
        .expect("committed");
    let table = store
        .tables()
        .contexts
        .iter()
        .find(|(c, _)| *c == "checkup")
        .map(|(_, t)| t.clone())
        .expect("checkup table");
    let read = |pk: String| {
        let (client, table) = (store.client().clone(), table.clone());
        async move {
            client
                .get_item()
                .table_name(table)
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
                .send()
                .await
                .expect("get item")
                .item
                .expect("item exists")
        }
    };
    let outbox_item = read(format!("event#{}", e.id)).await;
    assert_eq!(outbox_envelope(outbox_item.into()).expect("decoded"), Some(e));
    let aggregate_item = read(format!("aggregate#{}", booking.id)).await;
    assert_eq!(outbox_envelope(aggregate_item.into()).expect("not an event"), None);
    let counter_item = read(format!("counter#{SLOT}")).await;
    assert_eq!(outbox_envelope(counter_item.into()).expect("not an event"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_create_tables_twice_is_harmless() {
    let store = dynamo_store().await;
    store.create_tables(&clinicflow::catalog().tables).await.expect("created again");
    let arns = store.stream_arns().await.expect("stream arns");
    let contexts: Vec<&str> = arns.iter().map(|(c, _)| *c).collect();
    let expected: Vec<&str> = clinicflow::catalog().context_tables().collect();
    assert_eq!(contexts, expected, "every context table has a stream, the notifier's none");
    assert!(!contexts.contains(&clinicflow::topology::NOTIFICATION));
    assert!(arns.iter().all(|(_, arn)| arn.contains(":table/")), "{arns:?}");
    store.prime(clinicflow::topology::VIEWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_refuses_an_oversized_transaction_without_writing() {
    let store = dynamo_store().await;
    let tx = Transaction {
        outbox: (0..101).map(|_| event("checkup", "b1", now())).collect(),
        ..Transaction::default()
    };
    match store.commit(tx).await {
        Err(StoreError::Corrupt(message)) => assert!(message.contains("transaction too large"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        store
            .unpublished(Utc::now() + Duration::days(1), 10)
            .await
            .expect("outbox")
            .is_empty()
    );
}
