//! The projector fed by real DynamoDB Streams records (moto): a booking's change records,
//! read back from the trim horizon, replay without changing any view, and records handed
//! over out of order are held back at the first early one instead of being applied.

use std::time::Duration;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use clinicflow::wiring::{ChangeRecord, project_changes};
use clinicflow_tests::{Client, On, booking, future_date, start_on, wait_for_status};

/// Every change record of the stack's context tables, oldest first per table.
async fn history(stack: &clinicflow_tests::LocalStack) -> Vec<ChangeRecord> {
    let clinicflow_local::Backend::Aws(runtime) = &stack.backend else {
        panic!("the stack runs on the AWS path");
    };
    let streams = aws_sdk_dynamodbstreams::Client::new(&runtime.parts.sdk);
    let mut records = Vec::new();
    for (_, arn) in runtime.parts.store.stream_arns().await.expect("stream arns") {
        let described = streams.describe_stream().stream_arn(&arn).send().await.expect("describe stream");
        let shards = described.stream_description().map(|d| d.shards().to_vec()).unwrap_or_default();
        for shard in shards {
            let mut iterator = streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard.shard_id().unwrap_or_default())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("iterator")
                .shard_iterator()
                .map(str::to_owned);
            while let Some(it) = iterator {
                let out = streams.get_records().shard_iterator(it).send().await.expect("records");
                if out.records().is_empty() {
                    break;
                }
                for r in out.records() {
                    let change = r.dynamodb().expect("a change");
                    records.push(ChangeRecord {
                        sequence_number: change.sequence_number().unwrap_or_default().to_owned(),
                        event_name: r.event_name().map(|n| n.as_str().to_owned()).unwrap_or_default(),
                        new_image: change.new_image().cloned().unwrap_or_default().into(),
                    });
                }
                iterator = out.next_shard_iterator().map(str::to_owned);
            }
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_streams_history_changes_no_view_and_early_records_wait() {
    let stack = start_on(On::Moto).await;
    let alice = Client::new(&stack, "alice", &["patient"]);
    let staff = Client::new(&stack, "centre-staff-1", &["centre"]);
    let r = alice.post("/checkups", &booking(&future_date(30), "basic", "tok_ok")).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().expect("id").to_owned();
    wait_for_status(&alice, &id, "reservation", "received").await;
    assert_eq!(staff.post_empty(&format!("/centre/checkups/{id}/confirm")).await.status, 200);
    wait_for_status(&alice, &id, "reservation", "confirmed").await;
    assert!(stack.settle(Duration::from_secs(20)).await, "settles");
    let before = stack
        .platform
        .views
        .get(&clinicflow::flows::checkup::view::view_key(&id))
        .await
        .expect("views")
        .expect("the view");

    let records = history(&stack).await;
    let inserts = records.iter().filter(|r| r.event_name == "INSERT").count();
    assert!(
        inserts >= 5,
        "booking, payment, reservation and confirmations were streamed: {inserts}"
    );

    // A replay of everything, twice: nothing fails, nothing changes.
    for _ in 0..2 {
        assert_eq!(project_changes(&stack.platform, records.clone()).await, None);
    }
    let after = stack
        .platform
        .views
        .get(&clinicflow::flows::checkup::view::view_key(&id))
        .await
        .expect("views")
        .expect("the view");
    assert_eq!(after.revision, before.revision, "a replay writes nothing");
    assert_eq!(after.body, before.body);

    // The same history, newest first, into a projector that has seen nothing of this case:
    // the first record refused is reported and nothing is applied ahead of its turn.
    let fresh = start_on(On::Moto).await;
    let mut reversed: Vec<ChangeRecord> = records.into_iter().filter(|r| r.event_name == "INSERT").collect();
    reversed.reverse();
    let failed = project_changes(&fresh.platform, reversed.clone()).await;
    assert!(failed.is_some(), "a later version before an earlier one is held back");
    let mut replayed = reversed;
    replayed.reverse();
    assert_eq!(
        project_changes(&fresh.platform, replayed).await,
        None,
        "in order, everything applies"
    );
    let rebuilt = fresh
        .platform
        .views
        .get(&clinicflow::flows::checkup::view::view_key(&id))
        .await
        .expect("views")
        .expect("the rebuilt view");
    assert_eq!(rebuilt.body, before.body, "a rebuild from the stream yields the same view");
    fresh.shutdown().await;
    stack.shutdown().await;
}
