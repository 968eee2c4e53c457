//! Fresh, valid work for every spawn of every function: the runner opens, acts on and
//! settles cases on the emulator in-process (how, for each slice, its bench fixture in
//! [`crate::slices`] says), with the same adapters the functions use, and hands each
//! spawned `bootstrap` the Lambda event it would get on AWS for a case of its own: an API
//! Gateway request on a case that exists, an EventBridge delivery its consumer has not
//! processed yet, a stream batch with outbox records not yet projected, or a schedule tick
//! with events waiting in the outbox. The event shapes come from the samples in
//! `events/<function>/`, so they are the ones the functions are tested with.
//!
//! A stack whose slice seals documents holds a signing key, as its template creates it: an
//! asymmetric KMS key on the emulator for each signing stack. The functions that seal or
//! verify get their own stack's key (`SIGNING_KEY_ARN`), and the seeding platforms sign with
//! it, so that what the seeder seals the spawned verifier accepts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use async_trait::async_trait;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use axum::body::Body;
use axum::http::Request;
use clinicflow::adapters::dynamodb::DynamoStore;
use clinicflow::adapters::kms::KmsSigner;
use clinicflow::app::{Faults, Platform, consumers, projector};
use clinicflow::events::EventEnvelope;
use clinicflow::http::Claims;
use clinicflow::ports::{PublishOutcome, Publisher};
use clinicflow::topology::{self, Trigger};
use clinicflow::wiring::{self, AwsSettings};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::slices;

/// Keeps what the seeding platform publishes, to deliver it by hand; or refuses it, so
/// that it stays in the outbox for the sweeper.
#[derive(Default)]
struct Capture {
    events: Mutex<Vec<EventEnvelope>>,
    refuse: bool,
}

impl Capture {
    fn take(&self) -> Vec<EventEnvelope> {
        self.events.lock().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default()
    }
}

#[async_trait]
impl Publisher for Capture {
    async fn publish(&self, events: &[EventEnvelope]) -> PublishOutcome {
        if self.refuse {
            return PublishOutcome {
                published: vec![],
                failed: events.iter().map(|e| (e.id.clone(), "held for the sweeper".to_owned())).collect(),
            };
        }
        if let Ok(mut kept) = self.events.lock() {
            kept.extend(events.iter().cloned());
        }
        PublishOutcome {
            published: events.iter().map(|e| e.id.clone()).collect(),
            failed: vec![],
        }
    }
}

/// A seeding request the API refused, with its status.
#[derive(Debug, thiserror::Error)]
#[error("refused with {0}")]
struct Refused(u16);

/// The seeding side of a benchmark deployment on the emulator: the tables, the bus and the
/// signing keys, a platform whose events are kept to be delivered by hand
/// ([`Seeder::settle`]), and a holding one whose events stay in the outbox. The fixtures
/// open and act on cases with it.
pub struct Seeder {
    settings: AwsSettings,
    dynamodb: aws_sdk_dynamodb::Client,
    /// The ARN of each signing stack's key.
    signing_keys: BTreeMap<&'static str, String>,
    /// The fixtures' variables for the spawned functions.
    fixtures: Vec<(String, String)>,
    platform: Arc<Platform>,
    published: Arc<Capture>,
    holding: Arc<Platform>,
    events_dir: PathBuf,
    counter: AtomicU64,
}

impl Seeder {
    /// Creates the tables, the bus and the signing keys under `prefix` at the emulator `sdk`
    /// points to. The seeding platforms sign with the first signing stack's key (the
    /// catalog's only one today: another stack's documents would verify only with its own).
    pub async fn new(sdk: &aws_config::SdkConfig, prefix: &str, root: &Path) -> anyhow::Result<Self> {
        let settings = AwsSettings::prefixed(clinicflow::catalog(), prefix);
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        DynamoStore::new(dynamodb.clone(), settings.tables.clone())
            .create_tables(&clinicflow::catalog().tables)
            .await
            .context("creating the tables on the emulator")?;
        aws_sdk_eventbridge::Client::new(sdk)
            .create_event_bus()
            .name(&settings.bus)
            .send()
            .await
            .context("creating the event bus on the emulator")?;
        let signing_keys = signing_keys(sdk, prefix).await?;
        let config = slices::config();
        let (mut platform, _) = wiring::aws(clinicflow::catalog(), sdk, settings.clone(), config.clone(), Faults::none());
        let published = Arc::new(Capture::default());
        platform.publisher = published.clone();
        let (mut holding, _) = wiring::aws(clinicflow::catalog(), sdk, settings.clone(), config, Faults::none());
        holding.publisher = Arc::new(Capture {
            events: Mutex::default(),
            refuse: true,
        });
        let first = clinicflow::catalog().signing_stacks().first().and_then(|s| signing_keys.get(s));
        if let Some(arn) = first {
            let signer = Arc::new(KmsSigner::new(aws_sdk_kms::Client::new(sdk), arn.clone()));
            platform = platform.with_signer(signer.clone());
            holding = holding.with_signer(signer);
        }
        Ok(Self {
            settings,
            dynamodb,
            signing_keys,
            fixtures: slices::environment(),
            platform: Arc::new(platform),
            published,
            holding: Arc::new(holding),
            events_dir: root.join("events"),
            counter: AtomicU64::new(0),
        })
    }

    /// The environment `function`'s `bootstrap` needs to find these resources (its own
    /// stack's signing key, for a function that seals or verifies) and to run with the
    /// fixtures' settings.
    pub fn environment(&self, function: &str) -> Vec<(String, String)> {
        let tables = &self.settings.tables;
        let mut env: Vec<(String, String)> = tables
            .contexts
            .iter()
            .map(|(context, name)| (AwsSettings::table_variable(context), name.clone()))
            .collect();
        env.push((AwsSettings::table_variable("views"), tables.views.clone()));
        env.push((AwsSettings::table_variable("processed"), tables.processed.clone()));
        env.push((topology::BUS_VARIABLE.to_owned(), self.settings.bus.clone()));
        let catalog = clinicflow::catalog();
        let key = catalog
            .function(function)
            .filter(|f| f.uses.seals || f.uses.verifies)
            .and_then(|f| self.signing_keys.get(catalog.stack_of(f.name)));
        if let Some(arn) = key {
            env.push((topology::SIGNING_KEY_VARIABLE.to_owned(), arn.clone()));
        }
        env.extend(self.fixtures.iter().cloned());
        env
    }

    /// The platform whose events are kept, for [`Seeder::settle`] to deliver.
    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }

    /// The platform whose events stay in the outbox (its publisher refuses them), for the
    /// sweeper.
    pub fn holding(&self) -> &Arc<Platform> {
        &self.holding
    }

    /// A number of its own for each call (for dates, phone numbers, sequence numbers).
    pub fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// The sample `file` of `function` (`events/<function>/<file>`).
    pub fn sample(&self, function: &str, file: &str) -> anyhow::Result<Value> {
        read_json(&self.events_dir.join(function).join(file))
    }

    /// Serves `method path` in-process on `platform` as API Gateway would after its
    /// authorizer, as `caller` (`(sub, group)`), with the body `body()` makes; a conflict or
    /// an unavailable store (the emulator is shared with the spawned functions) is retried,
    /// with a body made again (so that a request which must be unique stays so).
    pub async fn http(
        &self,
        platform: &Arc<Platform>,
        method: &str,
        path: &str,
        caller: (&str, &str),
        body: &(dyn Fn() -> Option<Value> + Sync),
    ) -> anyhow::Result<Value> {
        let mut last = None;
        for attempt in 0..5u64 {
            match self.http_once(platform, method, path, caller, body()).await {
                Ok(value) => return Ok(value),
                Err(e) if e.downcast_ref::<Refused>().is_some_and(|r| r.0 == 409 || r.0 == 503) => {
                    last = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(20 * (attempt + 1))).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("seeding {method} {path} kept conflicting")))
    }

    async fn http_once(
        &self,
        platform: &Arc<Platform>,
        method: &str,
        path: &str,
        caller: (&str, &str),
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))?;
        request.extensions_mut().insert(Claims {
            sub: caller.0.to_owned(),
            groups: vec![caller.1.to_owned()],
            site: None,
        });
        let response = clinicflow::http::router(platform.clone(), None).oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(anyhow::Error::new(Refused(status.as_u16())).context(format!("seeding {method} {path}: {status} {value}")));
        }
        Ok(value)
    }

    /// Delivers what was published to every consumer and the projector, until nothing new
    /// is published, except to `held` (a consumer, or the projector): what would have
    /// reached it is returned instead, for the function under test.
    pub async fn settle(&self, held: Option<&str>) -> anyhow::Result<Vec<EventEnvelope>> {
        let mut kept = Vec::new();
        for _ in 0..20 {
            let events = self.published.take();
            if events.is_empty() {
                return Ok(kept);
            }
            for event in events {
                let mut routed = false;
                if held == Some(topology::STATUS_PROJECTOR) {
                    routed = true;
                } else {
                    let mut attempt = 0u64;
                    while let Err(e) = projector::project(&self.platform, &event).await {
                        attempt += 1;
                        if attempt > 5 {
                            return Err(e.into());
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                    }
                }
                for rule in clinicflow::catalog()
                    .rules
                    .iter()
                    .filter(|r| r.matches(&event.source, &event.event_type))
                {
                    if held == Some(rule.target) {
                        routed = true;
                    } else {
                        // As the bus would: a retryable failure (a conflict on the
                        // emulator shared with the spawned functions) is delivered again.
                        let mut attempt = 0u64;
                        loop {
                            match consumers::dispatch(&self.platform, rule.target, &event).await {
                                Ok(_) => break,
                                Err(consumers::ConsumerError::Retryable(_)) if attempt < 5 => {
                                    attempt += 1;
                                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                                }
                                Err(e) => bail!("{} on {}: {e}", rule.target, event.event_type),
                            }
                        }
                    }
                }
                if routed {
                    kept.push(event);
                }
            }
        }
        bail!("the seeding saga did not settle")
    }

    /// `count` Lambda payloads for one spawn of `function`, on cases of their own: an HTTP
    /// function's from its fixture; a consumer's, the projector's and the sweeper's from
    /// cases its fixture opens (and ends, for consumers of the events that end a case).
    pub async fn payloads(&self, function: &str, count: usize) -> anyhow::Result<Vec<Value>> {
        let f = clinicflow::catalog()
            .function(function)
            .with_context(|| format!("{function} is not in the topology"))?;
        let fixture = slices::driver(function)?;
        let mut out = Vec::with_capacity(count);
        match f.trigger {
            // The platform's HTTP function serves the public routes: its own sample, as is.
            Trigger::Http if clinicflow::catalog().slice_of(function).is_none() => {
                let sample = first_sample(&self.events_dir.join(function))?;
                out = vec![sample; count];
            }
            Trigger::Http => {
                out = fixture.http_events(self, function, count).await?;
                if out.len() != count {
                    bail!(
                        "the fixture of {} made {} events for {function}, not {count}",
                        fixture.slice().name,
                        out.len()
                    );
                }
            }
            Trigger::Events => {
                let template = first_sample(&self.events_dir.join(function))?;
                for _ in 0..count {
                    let id = fixture.open_case(self, &self.platform).await?;
                    let mut held = self.settle(Some(function)).await?;
                    if held.is_empty() {
                        // Consumers of the events that end a case: end the settled one.
                        fixture.end_case(self, &id).await?;
                        held = self.settle(Some(function)).await?;
                    }
                    let event = held.into_iter().next().with_context(|| format!("no event reaches {function}"))?;
                    out.push(eventbridge_event(&template, &event)?);
                }
            }
            Trigger::Stream => {
                let template = outbox_record(&self.events_dir.join(function))?;
                for _ in 0..count {
                    fixture.open_case(self, &self.platform).await?;
                    let events = self.settle(Some(function)).await?;
                    let mut records = Vec::new();
                    for event in &events {
                        records.push(self.stream_record(&template, event).await?);
                    }
                    out.push(json!({ "Records": records }));
                }
            }
            Trigger::Schedule(_) => {
                // The schedule's input names the tables to sweep, as a flow's stack sets it
                // (events/outbox-sweeper/ holds one as deployed).
                let tables: serde_json::Map<String, Value> = clinicflow::catalog()
                    .context_tables()
                    .filter_map(|c| self.settings.tables.name_of(c).map(|n| (c.to_owned(), Value::String(n.to_owned()))))
                    .collect();
                let template = json!({ "tables": tables });
                // One case whose publish failed: its events wait in the outbox.
                fixture.open_case(self, &self.holding).await?;
                for _ in 0..count {
                    out.push(template.clone());
                }
            }
        }
        Ok(out)
    }

    /// The stream record of an outbox item, read back from its table as the stream would
    /// carry it, in the shape of the sample record `template`.
    async fn stream_record(&self, template: &Value, event: &EventEnvelope) -> anyhow::Result<Value> {
        let pk = format!("event#{}", event.id);
        for (_, table) in &self.settings.tables.contexts {
            let item = self
                .dynamodb
                .get_item()
                .table_name(table)
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
                .consistent_read(true)
                .send()
                .await?
                .item;
            if let Some(item) = item {
                let image = serde_json::to_value(serde_dynamo::Item::from(item))?;
                let mut record = template.clone();
                record["dynamodb"]["Keys"] = json!({ "pk": { "S": pk } });
                record["dynamodb"]["NewImage"] = image;
                record["dynamodb"]["SequenceNumber"] = json!(format!("{:021}", self.next()));
                record["eventID"] = json!(ulid::Ulid::new().to_string());
                record["eventSourceARN"] = json!(format!(
                    "arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-11-01T00:00:00.000"
                ));
                return Ok(record);
            }
        }
        bail!("outbox item {pk} not found")
    }
}

/// A signing key on the emulator for each stack whose slice seals documents, as the stack's
/// template creates it; the ARN of each, by stack.
async fn signing_keys(sdk: &aws_config::SdkConfig, prefix: &str) -> anyhow::Result<BTreeMap<&'static str, String>> {
    let kms = aws_sdk_kms::Client::new(sdk);
    let mut keys = BTreeMap::new();
    for stack in clinicflow::catalog().signing_stacks() {
        let created = kms
            .create_key()
            .key_spec(KeySpec::from(topology::SIGNING_KEY_SPEC))
            .key_usage(KeyUsageType::from(topology::SIGNING_KEY_USAGE))
            .description(format!("clinicflow bench ({prefix}): the {stack} stack's signing key"))
            .send()
            .await
            .with_context(|| format!("creating the {stack} stack's signing key on the emulator"))?;
        let arn = created
            .key_metadata()
            .and_then(|m| m.arn())
            .with_context(|| format!("the {stack} stack's signing key has no ARN"))?;
        keys.insert(stack, arn.to_owned());
    }
    Ok(keys)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The samples (`*.json`) in a function's events folder, by name.
fn samples(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// The first sample (by name) in a function's events folder.
fn first_sample(dir: &Path) -> anyhow::Result<Value> {
    read_json(samples(dir)?.first().with_context(|| format!("no sample in {}", dir.display()))?)
}

/// The first record (in the samples' order) of a stream sample in `dir` that inserts an
/// outbox item: the shape of the records [`Seeder::payloads`] reads back.
fn outbox_record(dir: &Path) -> anyhow::Result<Value> {
    for file in samples(dir)? {
        let sample = read_json(&file)?;
        let found =
            sample["Records"].as_array().into_iter().flatten().find(|r| {
                r["eventName"] == "INSERT" && r["dynamodb"]["Keys"]["pk"]["S"].as_str().is_some_and(|pk| pk.starts_with("event#"))
            });
        if let Some(record) = found {
            return Ok(record.clone());
        }
    }
    bail!("no sample in {} inserts an outbox item", dir.display())
}

/// An API Gateway (HTTP API, payload 2.0) event from a sample, on another path, case,
/// body and caller.
pub fn http_event(template: &Value, path: &str, id: Option<&str>, body: Option<&Value>, sub: &str) -> Value {
    let mut event = template.clone();
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["requestContext"]["requestId"] = json!(ulid::Ulid::new().to_string());
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(sub);
    event["requestContext"]["authorizer"]["jwt"]["claims"]["cognito:username"] = json!(sub);
    if let Some(id) = id {
        event["pathParameters"] = json!({ "id": id });
    }
    if let Some(headers) = event["headers"].as_object_mut() {
        headers.remove("content-length");
    }
    if let Some(body) = body {
        event["body"] = json!(body.to_string());
        event["isBase64Encoded"] = json!(false);
    }
    event
}

/// The EventBridge delivery of `event`, in a sample's envelope.
pub fn eventbridge_event(template: &Value, event: &EventEnvelope) -> anyhow::Result<Value> {
    let mut delivery = template.clone();
    delivery["id"] = json!(ulid::Ulid::new().to_string());
    delivery["detail-type"] = json!(event.event_type);
    delivery["source"] = json!(event.source);
    delivery["time"] = json!(event.occurred_at);
    delivery["detail"] = serde_json::to_value(event)?;
    Ok(delivery)
}
