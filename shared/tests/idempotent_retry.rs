//! A client retries a request that timed out, under the same `Idempotency-Key`, while the
//! first one is still on its way to the store: the retry finds no key, decides on what it
//! reads, and the first request's commit lands meanwhile. When the retry is then refused
//! (`409`: the slot it would take is now full, the case it would open is now open), the key
//! is there, committed with that effect: the retry is answered as the first request was,
//! not with a refusal of what the client in fact got.

use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::command::{self, Accepted, Decided, Idempotency, IdempotencyKey};
use clinicflow::app::{AppError, Faults, Platform};
use clinicflow::config::Config;
use clinicflow::ports::Transaction;
use clinicflow::wiring;
use serde_json::json;

fn platform() -> Platform {
    let db = Embedded::in_memory().expect("a database");
    wiring::embedded(clinicflow::catalog(), db, Config::default(), Faults::none()).0
}

fn key(body: &[u8]) -> Idempotency {
    Idempotency {
        scope: "citizen-1:POST /things".into(),
        key: IdempotencyKey::parse("retry-1", body).expect("a key"),
    }
}

fn first_answer() -> Accepted {
    Accepted {
        status: 201,
        body: json!({"id": "first"}),
        location: Some("/things/first".into()),
    }
}

/// The first request's commit: its key with its answer (and, in a real command, its effect).
async fn first_request_commits(p: &Platform, key: &Idempotency) {
    let tx = Transaction {
        idempotency: Some(key.record(&first_answer())),
        ..Default::default()
    };
    p.store.commit(tx).await.expect("the first request commits");
}

#[tokio::test]
async fn a_refused_retry_whose_first_request_committed_meanwhile_gets_the_first_answer() {
    let p = platform();
    let key = key(b"{}");
    let answer = command::run(&p, "things", Some(&key), || async {
        // The retry has looked for its key (absent), and reads now: the first request lands.
        first_request_commits(&p, &key).await;
        Err::<Decided<'_>, _>(AppError::Conflict("no room left".into()))
    })
    .await
    .expect("answered as the first request was");
    assert_eq!(answer, first_answer());
}

#[tokio::test]
async fn a_refusal_without_a_committed_first_request_stays_a_refusal() {
    let p = platform();
    let key = key(b"{}");
    let refused = command::run(&p, "things", Some(&key), || async {
        Err::<Decided<'_>, _>(AppError::Conflict("no room left".into()))
    })
    .await;
    assert_eq!(refused, Err(AppError::Conflict("no room left".into())));
}

#[tokio::test]
async fn another_request_under_a_committed_key_is_refused_for_its_key() {
    let p = platform();
    let first = key(b"{}");
    let other = key(b"{\"other\": true}");
    let refused = command::run(&p, "things", Some(&other), || async {
        first_request_commits(&p, &first).await;
        Err::<Decided<'_>, _>(AppError::Conflict("no room left".into()))
    })
    .await;
    match refused {
        Err(AppError::Invalid(errors)) => assert_eq!(errors[0].field, "Idempotency-Key"),
        other => panic!("a 422 on the key: {other:?}"),
    }
}

#[tokio::test]
async fn only_a_conflict_is_checked_again() {
    let p = platform();
    let key = key(b"{}");
    let refused = command::run(&p, "things", Some(&key), || async {
        first_request_commits(&p, &key).await;
        Err::<Decided<'_>, _>(AppError::NotFound)
    })
    .await;
    assert_eq!(
        refused,
        Err(AppError::NotFound),
        "a 404 does not depend on a race with the first request"
    );
}
