//! The DynamoDB Streams reader of the local runtime on the AWS path: one task per shard of
//! every context table's stream, from the trim horizon (a restart replays history, which
//! the projector ignores as stale), feeding change records to the same projector code the
//! `status-projector` Lambda runs. A record that keeps failing is parked after a bounded
//! number of attempts, as a stream's retry limit and on-failure destination do on AWS.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use clinicflow::adapters::dynamodb::outbox_envelope;
use clinicflow::app::Platform;
use clinicflow::events::EventEnvelope;
use clinicflow::wiring::{ChangeRecord, project_changes};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Attempts at one change record before it is parked.
pub const MAX_ATTEMPTS: u32 = 10;

/// What the readers have done, for `settle` and the dead-letter listing.
#[derive(Debug, Default)]
pub struct Progress {
    /// Per reader (a stream's ARN and a shard: moto names every table's one shard alike).
    empty_polls: Mutex<HashMap<String, u64>>,
    parked: Mutex<Vec<(EventEnvelope, String)>>,
}

impl Progress {
    /// A reader that has not polled empty yet: `settle` waits for it too.
    fn register(&self, reader: &str) {
        let mut polls = self.empty_polls.lock().unwrap_or_else(PoisonError::into_inner);
        polls.entry(reader.to_owned()).or_default();
    }

    fn polled_empty(&self, reader: &str) {
        let mut polls = self.empty_polls.lock().unwrap_or_else(PoisonError::into_inner);
        *polls.entry(reader.to_owned()).or_default() += 1;
    }

    /// Empty polls so far, per reader.
    pub fn snapshot(&self) -> HashMap<String, u64> {
        self.empty_polls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records the projector gave up on, with the last error.
    pub fn parked(&self) -> Vec<(EventEnvelope, String)> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn park(&self, event: EventEnvelope, error: String) {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner).push((event, error));
    }
}

/// Starts one reader per shard of every stream in `arns`.
pub async fn spawn(
    p: Arc<Platform>,
    client: Client,
    arns: Vec<(&'static str, String)>,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for (context, arn) in arns {
        let described = client.describe_stream().stream_arn(&arn).send().await?;
        let shards: Vec<String> = described
            .stream_description()
            .map(|d| d.shards().iter().filter_map(|s| s.shard_id().map(str::to_owned)).collect())
            .unwrap_or_default();
        for shard in shards {
            let reader = ShardReader {
                p: p.clone(),
                client: client.clone(),
                key: format!("{arn}#{shard}"),
                arn: arn.clone(),
                shard,
                progress: progress.clone(),
            };
            progress.register(&reader.key);
            tracing::debug!(context, shard = %reader.shard, "reading stream shard");
            tasks.push(tokio::spawn(reader.run(stop.clone())));
        }
    }
    Ok(tasks)
}

struct ShardReader {
    p: Arc<Platform>,
    client: Client,
    arn: String,
    shard: String,
    /// The reader's name in [`Progress`].
    key: String,
    progress: Arc<Progress>,
}

impl ShardReader {
    async fn iterator(&self, after: Option<&str>) -> anyhow::Result<Option<String>> {
        let request = self.client.get_shard_iterator().stream_arn(&self.arn).shard_id(&self.shard);
        let request = match after {
            Some(seq) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(seq),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        Ok(request.send().await?.shard_iterator().map(str::to_owned))
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut iterator: Option<String> = None;
        let mut last_seq: Option<String> = None;
        let mut pending: VecDeque<ChangeRecord> = VecDeque::new();
        let mut attempts = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let pause = match self.step(&mut iterator, &mut last_seq, &mut pending, &mut attempts).await {
                Ok(Some(pause)) => pause,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(shard = %self.shard, error = %e, "stream read failed; retrying");
                    iterator = None;
                    Duration::from_millis(500)
                }
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One step: project the next pending record, or fetch more. Returns how long to pause.
    async fn step(
        &self,
        iterator: &mut Option<String>,
        last_seq: &mut Option<String>,
        pending: &mut VecDeque<ChangeRecord>,
        attempts: &mut u32,
    ) -> anyhow::Result<Option<Duration>> {
        if let Some(record) = pending.front().cloned() {
            if project_changes(&self.p, [record.clone()]).await.is_none() {
                *last_seq = Some(record.sequence_number.clone());
                pending.pop_front();
                *attempts = 0;
                return Ok(None);
            }
            *attempts += 1;
            if *attempts < MAX_ATTEMPTS {
                return Ok(Some(Duration::from_millis(50u64 << (*attempts).min(5))));
            }
            if let Ok(Some(event)) = outbox_envelope(record.new_image.clone()) {
                tracing::error!(event_id = %event.id, shard = %self.shard, "change record parked after {MAX_ATTEMPTS} attempts");
                self.progress.park(event, format!("not projected after {MAX_ATTEMPTS} attempts"));
            }
            *last_seq = Some(record.sequence_number);
            pending.pop_front();
            *attempts = 0;
            return Ok(None);
        }
        if iterator.is_none() {
            *iterator = self.iterator(last_seq.as_deref()).await?;
            if iterator.is_none() {
                // A closed shard with nothing left.
                return Ok(Some(Duration::from_secs(5)));
            }
        }
        let current = iterator.clone().unwrap_or_default();
        let out = self.client.get_records().shard_iterator(current).limit(100).send().await?;
        *iterator = out.next_shard_iterator().map(str::to_owned);
        let records = out.records();
        if records.is_empty() {
            self.progress.polled_empty(&self.key);
            return Ok(Some(Duration::from_millis(100)));
        }
        for r in records {
            let Some(change) = r.dynamodb() else { continue };
            pending.push_back(ChangeRecord {
                sequence_number: change.sequence_number().unwrap_or_default().to_owned(),
                event_name: r.event_name().map(|n| n.as_str().to_owned()).unwrap_or_default(),
                new_image: serde_dynamo::Item::from(change.new_image().cloned().unwrap_or_default()),
            });
        }
        Ok(None)
    }
}
