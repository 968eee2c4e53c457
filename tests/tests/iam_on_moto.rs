//! The IAM grants the templates give each function (`topology::permissions`) are enough,
//! and no more than enough, for what the function really does.
//!
//! Every function gets its own platform on moto, as on Lambda, whose DynamoDB client
//! records each call it sends: the IAM action and the table or index it acts on (the items
//! of a `TransactWriteItems` one by one, as IAM authorizes them), and whose KMS client (a
//! function that seals or verifies documents, on a key of moto's KMS) records its calls on
//! the stack's signing key. Every slice's saga runs
//! through them (its module under `iam/`: for the check-up slice, bookings, a confirmation,
//! a rejection, a cancellation), with every consumer, the projector and a sweep of events
//! whose publish failed; then every recorded call must be one that function's grants allow,
//! every function must have been exercised, and every grant used: none is more than the
//! function needs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use axum::body::Body;
use axum::http::Request;
use clinicflow::adapters::dynamodb::DynamoStore;
use clinicflow::adapters::kms::KmsSigner;
use clinicflow::adapters::resilient::ResilientGateway;
use clinicflow::adapters::sandbox::StoredSandbox;
use clinicflow::app::{Faults, Platform, consumers, projector};
use clinicflow::config::Config;
use clinicflow::contexts::payment;
use clinicflow::events::EventEnvelope;
use clinicflow::http::Claims;
use clinicflow::ports::{PublishOutcome, Publisher};
use clinicflow::topology::{self, Resource};
use clinicflow::wiring::{self, AwsSettings};
use clinicflow_tests::moto::{moto, unique};
use futures::future::BoxFuture;
use serde_json::Value;
use tower::ServiceExt;

#[path = "iam/checkup.rs"]
mod checkup;
#[path = "iam/covid.rs"]
mod covid;
#[path = "iam/hospital.rs"]
mod hospital;
#[path = "iam/vaccine.rs"]
mod vaccine;

/// (IAM action, resource in topology terms), as recorded.
type Calls = Arc<Mutex<BTreeSet<(String, String)>>>;

/// Records the IAM action and resource of every DynamoDB request a client sends.
#[derive(Debug)]
struct Recorder {
    calls: Calls,
    prefix: String,
}

impl Recorder {
    fn table(&self, physical: &Value) -> String {
        let name = physical.as_str().unwrap_or("?");
        name.strip_prefix(&format!("{}-", self.prefix)).unwrap_or(name).to_owned()
    }

    fn record(&self, action: &str, resource: String) {
        self.calls
            .lock()
            .expect("not poisoned")
            .insert((format!("dynamodb:{action}"), resource));
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "iam-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.split('.').nth(1))
            .unwrap_or("?")
            .to_owned();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        if operation == "TransactWriteItems" {
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                for (kind, action) in [
                    ("Put", "PutItem"),
                    ("Update", "UpdateItem"),
                    ("Delete", "DeleteItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                ] {
                    if let Some(op) = item.get(kind) {
                        self.record(action, format!("table/{}", self.table(&op["TableName"])));
                    }
                }
            }
        } else {
            let table = self.table(&body["TableName"]);
            let resource = match body["IndexName"].as_str() {
                Some(index) => format!("table/{table}/index/{index}"),
                None => format!("table/{table}"),
            };
            self.record(&operation, resource);
        }
        Ok(())
    }
}

/// Records the IAM action of every KMS request a client sends, on the signing key it was
/// given (`signing-key/<stack>`).
#[derive(Debug)]
struct KmsRecorder {
    calls: Calls,
    key: String,
}

impl Intercept for KmsRecorder {
    fn name(&self) -> &'static str {
        "iam-kms-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.split('.').nth(1))
            .unwrap_or("?")
            .to_owned();
        self.calls
            .lock()
            .expect("not poisoned")
            .insert((format!("kms:{operation}"), self.key.clone()));
        Ok(())
    }
}

/// Keeps what a function publishes, for the test to deliver. A refusing function's first
/// publish fails (those events wait in its outbox for the sweeper) and its later ones go
/// through, so that both the sweeper's marks and the function's own are exercised.
#[derive(Default)]
struct Capture {
    events: Mutex<Vec<EventEnvelope>>,
    refuse_first: std::sync::atomic::AtomicBool,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Publisher for Capture {
    async fn publish(&self, events: &[EventEnvelope]) -> PublishOutcome {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.refuse_first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return PublishOutcome {
                published: vec![],
                failed: events.iter().map(|e| (e.id.clone(), "bus down".to_owned())).collect(),
            };
        }
        self.events.lock().expect("not poisoned").extend(events.iter().cloned());
        PublishOutcome {
            published: events.iter().map(|e| e.id.clone()).collect(),
            failed: vec![],
        }
    }
}

struct Function {
    platform: Arc<Platform>,
    /// Its recorded store (the sweeper scopes it to the tables a schedule names).
    store: Arc<DynamoStore>,
    calls: Calls,
    published: Arc<Capture>,
}

impl Function {
    fn take_published(&self) -> Vec<EventEnvelope> {
        std::mem::take(&mut *self.published.events.lock().expect("not poisoned"))
    }
}

pub struct Deployment {
    functions: BTreeMap<&'static str, Function>,
    /// The tables' and bus's name prefix.
    prefix: String,
    /// Events the projector could not take yet: a later version of an aggregate than its
    /// view has, whose earlier one is still to come (published later, or swept).
    early: Mutex<Vec<EventEnvelope>>,
}

impl Deployment {
    async fn on_moto(prefix: &str, refusing: &[&str]) -> Self {
        let m = moto().await;
        let sdk = m.sdk().await;
        let catalog = clinicflow::catalog();
        let all = AwsSettings::prefixed(catalog, prefix);
        let admin = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), all.tables.clone());
        admin.create_tables(&catalog.tables).await.expect("tables");
        // Each signing stack's key, as its template creates it.
        let mut keys = BTreeMap::new();
        for stack in catalog.signing_stacks() {
            let created = aws_sdk_kms::Client::new(&sdk)
                .create_key()
                .key_spec(KeySpec::from(topology::SIGNING_KEY_SPEC))
                .key_usage(KeyUsageType::from(topology::SIGNING_KEY_USAGE))
                .send()
                .await
                .expect("a signing key");
            let arn = created.key_metadata().and_then(|m| m.arn()).expect("its ARN").to_owned();
            keys.insert(stack, arn);
        }
        // The deployment's variables; each function reads only those of its environment,
        // as on Lambda, so a table it uses without being given it fails its saga.
        let variable = |name: &str| -> Option<String> {
            if name == topology::BUS_VARIABLE {
                return Some(all.bus.clone());
            }
            let table = catalog.tables.iter().find(|t| topology::table_variable(t.name) == name)?;
            all.tables.name_of(table.name).map(str::to_owned)
        };
        let mut functions = BTreeMap::new();
        for f in &catalog.functions {
            // The function's own stack's key, as its template gives it.
            let key = keys.get(catalog.stack_of(f.name)).cloned();
            let lookup = |name: &str| {
                if name == topology::SIGNING_KEY_VARIABLE {
                    key.clone()
                } else {
                    variable(name)
                }
            };
            let settings = AwsSettings::from_lookup(catalog, f.name, lookup).expect("the function's environment");
            // The sweeper sweeps at once what its schedule finds (no grace period).
            let config = Config {
                outbox_grace: std::time::Duration::ZERO,
                ..Config::default()
            };
            let (mut platform, _parts) = wiring::aws(catalog, &sdk, settings.clone(), config, Faults::none());
            let calls = Calls::default();
            let client = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk)
                    .interceptor(Recorder {
                        calls: calls.clone(),
                        prefix: prefix.to_owned(),
                    })
                    .build(),
            );
            let store = Arc::new(DynamoStore::new(client, settings.tables.clone()));
            // Each function has its own provider, as each Lambda has its own process: the
            // sandbox's ledger is in the payment table, read and written through this
            // function's recorded client, so its calls are held to the function's grants too.
            let ledger = StoredSandbox::new(store.clone(), payment::CONTEXT, Config::default().sandbox_slow);
            platform.payments = Arc::new(ResilientGateway::new(Arc::new(ledger), Config::default().payment));
            platform.store = store.clone();
            platform.outbox = store.clone();
            platform.views = store.clone();
            let published = Arc::new(Capture {
                refuse_first: refusing.contains(&f.name).into(),
                ..Capture::default()
            });
            platform.publisher = published.clone();
            if let Some(arn) = &settings.signing_key {
                let kms = aws_sdk_kms::Client::from_conf(
                    aws_sdk_kms::config::Builder::from(&sdk)
                        .interceptor(KmsRecorder {
                            calls: calls.clone(),
                            key: Resource::SigningKey(catalog.stack_of(f.name)).to_string(),
                        })
                        .build(),
                );
                platform = platform.with_signer(Arc::new(KmsSigner::new(kms, arn.clone())));
            }
            functions.insert(
                f.name,
                Function {
                    platform: Arc::new(platform),
                    store,
                    calls,
                    published,
                },
            );
        }
        Self {
            functions,
            prefix: prefix.to_owned(),
            early: Mutex::new(Vec::new()),
        }
    }

    fn function(&self, name: &str) -> &Function {
        self.functions.get(name).unwrap_or_else(|| panic!("{name} is catalogued"))
    }

    /// Calls the function serving `method path` as `sub` in `group`, like API Gateway would.
    pub async fn http(&self, method: &str, path: &str, sub: &str, group: &str, body: Value) -> (u16, Value) {
        self.http_at(method, path, sub, group, None, body).await
    }

    /// [`Deployment::http`] as a staff member of `site` (the `custom:site` claim).
    pub async fn http_at(&self, method: &str, path: &str, sub: &str, group: &str, site: Option<&str>, body: Value) -> (u16, Value) {
        let route = clinicflow::catalog()
            .routes
            .iter()
            .find(|r| r.method.as_str() == method && path_matches(r.path, path.split('?').next().unwrap_or(path)))
            .unwrap_or_else(|| panic!("no route for {method} {path}"));
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("idempotency-key", unique("key"))
            .body(Body::from(if body.is_null() { String::new() } else { body.to_string() }))
            .expect("a request");
        request.extensions_mut().insert(Claims {
            sub: sub.to_owned(),
            groups: vec![group.to_owned()],
            site: site.map(str::to_owned),
        });
        let f = self.function(route.function);
        let response = clinicflow::http::router(f.platform.clone(), Some(route.function))
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Runs the scheduled job of function `name` through its Lambda handler, as EventBridge
    /// would at `at`; returns the cases it moved.
    pub async fn job(&self, name: &str, at: chrono::DateTime<chrono::Utc>) -> u64 {
        let job = clinicflow::catalog().job(name).unwrap_or_else(|| panic!("{name} is a job"));
        let event = serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": at.to_rfc3339(), "detail": {}});
        let report = wiring::handle_job(
            &self.function(name).platform,
            job,
            lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        report["moved"].as_u64().unwrap_or_else(|| panic!("{name}: {report}"))
    }

    /// Delivers every published event to its rules' consumers and to the projector, until
    /// nothing new is published.
    pub async fn settle(&self) {
        for _ in 0..20 {
            let events: Vec<EventEnvelope> = self.functions.values().flat_map(Function::take_published).collect();
            if events.is_empty() {
                return;
            }
            for event in &events {
                for rule in clinicflow::catalog()
                    .rules
                    .iter()
                    .filter(|r| r.matches(&event.source, &event.event_type))
                {
                    let handled = consumers::dispatch(&self.function(rule.target).platform, rule.target, event).await;
                    assert!(handled.is_ok(), "{} on {}: {handled:?}", rule.target, event.event_type);
                }
            }
            // The projector reads the tables' streams, each aggregate's events in order; the
            // functions' publishes arrive here in any order, so a pass projects what it can
            // and the next takes the rest.
            let early: Vec<EventEnvelope> = std::mem::take(&mut *self.early.lock().expect("not poisoned"));
            let mut pending: Vec<EventEnvelope> = early.into_iter().chain(events).collect();
            loop {
                let before = pending.len();
                let mut left = Vec::new();
                for event in pending {
                    if projector::project(&self.function("status-projector").platform, &event)
                        .await
                        .is_err()
                    {
                        left.push(event);
                    }
                }
                pending = left;
                if pending.is_empty() || pending.len() == before {
                    break;
                }
            }
            *self.early.lock().expect("not poisoned") = pending;
        }
        panic!("the saga did not settle");
    }
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let (p, a): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == a.len() && p.iter().zip(&a).all(|(p, a)| p.starts_with('{') || p == a)
}

/// Is `(action, resource)` allowed by `grants`? An index grant `*` covers every index.
fn allowed(grants: &[topology::Grant], action: &str, resource: &str) -> bool {
    grants.iter().any(|g| {
        g.actions.contains(&action)
            && match g.resource {
                Resource::Index(t, "*") => resource.starts_with(&format!("table/{t}/index/")),
                r => r.to_string() == resource,
            }
    })
}

/// A slice's saga on the deployment: it drives a case through every one of the slice's
/// functions (`run`), and after the sweep checks what the swept events did (`swept`).
pub struct Saga {
    /// The slice.
    pub slice: &'static str,
    /// Functions whose first publish fails: those events wait in the outbox for the sweeper
    /// (whose marks they exercise), the later ones are published and marked by the function.
    pub unpublished: &'static [&'static str],
    /// Drives the saga, settling as it goes; returns the cases it opened.
    pub run: for<'a> fn(&'a Deployment) -> BoxFuture<'a, Vec<String>>,
    /// After the sweep has published what `unpublished` left: the checks on the cases.
    pub swept: for<'a> fn(&'a Deployment, &'a [String]) -> BoxFuture<'a, ()>,
}

/// Every slice's saga, one module each under `iam/`.
const SAGAS: &[&Saga] = &[&checkup::SAGA, &vaccine::SAGA, &hospital::SAGA, &covid::SAGA];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_function_does_its_work_within_its_iam_grants() {
    for s in &clinicflow::catalog().slices {
        assert!(
            SAGAS.iter().any(|g| g.slice == s.name),
            "slice {} has no saga in tests/tests/iam/",
            s.name
        );
    }
    let unpublished: Vec<&str> = SAGAS.iter().flat_map(|s| s.unpublished.iter().copied()).collect();
    let d = Deployment::on_moto(&unique("iam"), &unpublished).await;
    let mut cases = Vec::new();
    for saga in SAGAS {
        cases.push((saga, (saga.run)(&d).await));
    }

    // The public routes, served by the platform's HTTP function (which touches no table).
    let (status, health) = d.http("GET", topology::HEALTH_PATH, "anyone", "", Value::Null).await;
    assert_eq!(status, 200, "{health}");

    // What the unpublished functions wrote was never published: the sweeper publishes it now,
    // through its Lambda handler, on the tables each stack's schedule names.
    let sweeper = d.function("outbox-sweeper");
    let catalog = clinicflow::catalog();
    for (stack, tables) in catalog.sweeps() {
        let names: serde_json::Map<String, Value> = tables
            .iter()
            .map(|t| ((*t).to_owned(), Value::String(format!("{}-{t}", d.prefix))))
            .collect();
        let input = serde_json::json!({ "tables": names });
        let event = lambda_runtime::LambdaEvent::new(input, lambda_runtime::Context::default());
        let report = wiring::handle_sweep(&sweeper.platform, &sweeper.store, event)
            .await
            .expect("a sweep");
        assert_eq!(
            report["tables"].as_array().map(Vec::len),
            Some(tables.len()),
            "stack {stack}: {report}"
        );
    }
    assert!(
        !sweeper.published.events.lock().expect("not poisoned").is_empty(),
        "the sweeper published nothing"
    );
    d.settle().await;
    for (saga, ids) in &cases {
        (saga.swept)(&d, ids).await;
    }

    let mut denied = Vec::new();
    let mut unused = Vec::new();
    for (name, f) in &d.functions {
        let calls = f.calls.lock().expect("not poisoned").clone();
        let uses_store = clinicflow::catalog().function(name).is_some_and(|f| f.uses.store());
        assert!(!calls.is_empty() || !uses_store, "{name} was never exercised");
        let grants = clinicflow::catalog().permissions(clinicflow::catalog().function(name).expect("catalogued"));
        for g in &grants {
            // The stream, ListStreams and the failure queue are Lambda's calls on the
            // function's behalf, and the SMS opt-out check is the SNS client's: what the
            // DynamoDB client records is every table and index grant, and the bus is the
            // publisher's.
            for action in g.actions.iter().filter(|a| a.starts_with("dynamodb:")) {
                let resource = g.resource.to_string();
                let used = calls.iter().any(|(a, r)| a == action && allowed(std::slice::from_ref(g), a, r));
                if !used && !resource.ends_with("/stream") && resource != "*" {
                    unused.push(format!("{name}: {action} on {resource}"));
                }
            }
            // The signing key's grants are the KMS client's calls.
            for action in g.actions.iter().filter(|a| a.starts_with("kms:")) {
                let resource = g.resource.to_string();
                if !calls.iter().any(|(a, r)| a == action && *r == resource) {
                    unused.push(format!("{name}: {action} on {resource}"));
                }
            }
            if g.actions.contains(&"events:PutEvents") && f.published.calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                unused.push(format!("{name}: events:PutEvents on the bus"));
            }
        }
        for (action, resource) in calls {
            if !allowed(&grants, &action, &resource) {
                denied.push(format!("{name}: {action} on {resource}"));
            }
        }
    }
    assert!(denied.is_empty(), "calls IAM would deny:\n  {}", denied.join("\n  "));
    assert!(
        unused.is_empty(),
        "grants no call of the sagas used (least privilege: drop them, or make a saga use them):\n  {}",
        unused.join("\n  ")
    );
}
