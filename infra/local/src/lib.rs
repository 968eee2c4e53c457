//! `clinicflow-local`: the whole clinicflow topology in one process. A gateway routes
//! from `topology.rs` and checks JWTs where API Gateway's authorizer would. Two backends:
//! - embedded (default): an in-process bus applies the same rules and delivers
//!   asynchronously and at least once, with retries and a dead-letter queue; the change
//!   feed of the SQLite store drives the projector; an SMS outbox keeps what would be sent;
//! - AWS (`aws_endpoint`): DynamoDB, EventBridge and SNS through the AWS SDK at that
//!   endpoint (a moto server), rule targets delivered from SQS, the projector fed from
//!   DynamoDB Streams (see [`aws`]).

pub mod aws;
mod gateway;
mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clinicflow::adapters::embedded::Embedded;
pub use clinicflow::adapters::embedded::SentSms;
use clinicflow::adapters::sandbox::SandboxGateway;
use clinicflow::app::{Faults, Platform};
use clinicflow::config::Config;
use clinicflow::events::EventEnvelope;
use clinicflow::http::auth::DevTokens;
use clinicflow::wiring::{self, EmbeddedParts};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use workers::BusOptions;

/// How to run the local stack.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Where the SQLite file and dev-token secret live; `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Use-case configuration.
    pub config: Config,
    /// Bus delivery behaviour.
    pub bus: BusOptions,
    /// How often the sweeper looks for unpublished events.
    pub sweep_every: Duration,
    /// Run on the AWS adapters against this endpoint (a moto server) instead of SQLite.
    pub aws_endpoint: Option<String>,
    /// Prefix of the tables, bus, rules and queues created at `aws_endpoint`.
    pub aws_prefix: String,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: None,
            config: Config {
                outbox_grace: Duration::from_secs(2),
                ..Config::default()
            },
            bus: BusOptions::default(),
            sweep_every: Duration::from_millis(500),
            aws_endpoint: None,
            aws_prefix: "clinicflow-local".into(),
        }
    }
}

/// A delivery that gave up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// The consumer (or the projector).
    pub target: String,
    /// The event.
    pub event: EventEnvelope,
    /// The last error.
    pub error: String,
}

/// The adapters behind a stack.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite: store, views, bus, SMS outbox.
    Embedded(EmbeddedParts),
    /// DynamoDB, EventBridge (to SQS), SNS at an endpoint.
    Aws(Box<aws::AwsRuntime>),
}

impl Backend {
    /// The SMS sent so far, oldest first.
    pub async fn sms_sent(&self) -> anyhow::Result<Vec<SentSms>> {
        match self {
            Self::Embedded(parts) => Ok(parts.sms.list().await?),
            Self::Aws(runtime) => Ok(runtime.sms_sent().await),
        }
    }

    /// The deliveries that ended in a dead-letter queue.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        match self {
            Self::Embedded(parts) => Ok(parts
                .bus
                .dead_letters()
                .await?
                .into_iter()
                .map(|(target, event, error)| DeadLetter { target, event, error })
                .collect()),
            Self::Aws(runtime) => runtime.dead_letters().await,
        }
    }
}

/// A running local stack.
pub struct LocalStack {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The platform its handlers and consumers share.
    pub platform: Arc<Platform>,
    /// Its adapters.
    pub backend: Backend,
    /// The sandbox payment provider.
    pub sandbox: SandboxGateway,
    /// The dev-token issuer the gateway trusts.
    pub tokens: DevTokens,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStack").field("addr", &self.addr).finish_non_exhaustive()
    }
}

fn secret_for(dir: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    let fresh = || format!("{}{}", ulid::Ulid::new(), ulid::Ulid::new()).into_bytes();
    let Some(dir) = dir else {
        return Ok(fresh());
    };
    let path = dir.join("dev-token-secret");
    match std::fs::read(&path) {
        Ok(s) if s.len() >= 32 => Ok(s),
        _ => {
            let s = fresh();
            std::fs::write(&path, &s).with_context(|| format!("writing {}", path.display()))?;
            Ok(s)
        }
    }
}

/// The signing key of sealed documents: the data directory's key file (made on first
/// start, kept across restarts), or a key of this run's own without a data directory.
fn signer_for(dir: Option<&PathBuf>) -> anyhow::Result<Arc<dyn clinicflow::sealing::Signer>> {
    use clinicflow::adapters::keyfile;
    Ok(match dir {
        Some(dir) => Arc::new(keyfile::load_or_create(&dir.join(keyfile::KEY_FILE))?),
        None => Arc::new(clinicflow::sealing::KeySigner::random()),
    })
}

impl LocalStack {
    /// Opens the store, republishes what a previous run left unpublished, starts the
    /// workers and the gateway.
    pub async fn start(options: LocalOptions) -> anyhow::Result<Self> {
        if let Some(dir) = &options.data_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tokens = DevTokens::new(&secret_for(options.data_dir.as_ref())?);
        let (shutdown, watch_rx) = watch::channel(false);
        let (platform, backend, sandbox, mut tasks) = match &options.aws_endpoint {
            None => {
                let db = match &options.data_dir {
                    Some(dir) => Embedded::open(&dir.join("clinicflow.sqlite"))?,
                    None => Embedded::in_memory()?,
                };
                let (platform, parts) = wiring::embedded(clinicflow::catalog(), db, options.config.clone(), Faults::none());
                let platform = Arc::new(platform.with_signer(signer_for(options.data_dir.as_ref())?));
                recover(&platform).await?;
                let tasks = workers::spawn(
                    platform.clone(),
                    parts.clone(),
                    options.bus.clone(),
                    options.sweep_every,
                    watch_rx.clone(),
                );
                let sandbox = parts.sandbox.clone();
                (platform, Backend::Embedded(parts), sandbox, tasks)
            }
            Some(endpoint) => {
                let (platform, runtime) =
                    aws::AwsRuntime::provision(endpoint, &options.aws_prefix, options.config.clone(), &options.bus).await?;
                // The endpoint's KMS key when a slice seals documents, else the key file.
                let platform = Arc::new(if platform.signer().is_ok() {
                    platform
                } else {
                    platform.with_signer(signer_for(options.data_dir.as_ref())?)
                });
                recover(&platform).await?;
                let mut tasks = runtime.spawn(platform.clone(), options.bus.clone(), watch_rx.clone()).await?;
                tasks.push(tokio::spawn(workers::sweep(
                    platform.clone(),
                    options.sweep_every,
                    watch_rx.clone(),
                )));
                tasks.push(tokio::spawn(workers::jobs(platform.clone(), watch_rx.clone())));
                let sandbox = runtime.parts.sandbox.clone();
                (platform, Backend::Aws(Box::new(runtime)), sandbox, tasks)
            }
        };

        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("binding {}", options.listen))?;
        let addr = listener.local_addr()?;
        let app = gateway::router(platform.clone(), backend.clone(), tokens.clone());
        let mut stop = watch_rx;
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "gateway stopped");
            }
        }));
        Ok(Self {
            addr,
            platform,
            backend,
            sandbox,
            tokens,
            shutdown,
            tasks,
        })
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The failure points of this stack.
    #[cfg(feature = "failpoints")]
    pub fn faults(&self) -> &Faults {
        &self.platform.faults
    }

    /// A dev token for `sub` in `groups`, valid for an hour.
    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        self.tokens.issue(sub, &groups, 3600).unwrap_or_default()
    }

    /// A dev token for a staff member `sub` in `groups` who works at `site`, valid for an hour.
    pub fn token_at(&self, sub: &str, groups: &[&str], site: &str) -> String {
        let claims = clinicflow::http::Claims {
            sub: sub.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            site: Some(site.to_owned()),
        };
        self.tokens.issue_for(&claims, 3600).unwrap_or_default()
    }

    /// Stops the gateway and the workers, as a crash or a restart would, and waits for them.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }

    /// Waits until nothing is left to do: no unpublished event, no pending delivery, the
    /// projector caught up. Returns false if `within` passed first.
    pub async fn settle(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.is_idle().await.unwrap_or(false) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the scheduled job of function `name` once, as its schedule would at `at`; how
    /// many cases it moved.
    pub async fn run_job(&self, name: &str, at: chrono::DateTime<chrono::Utc>) -> anyhow::Result<usize> {
        let job = self
            .platform
            .catalog
            .job(name)
            .with_context(|| format!("no scheduled job named {name}"))?;
        Ok((job.run)(&self.platform, at).await?)
    }

    /// The SMS sent so far, oldest first.
    pub async fn sms_sent(&self) -> anyhow::Result<Vec<SentSms>> {
        self.backend.sms_sent().await
    }

    /// Opts `phone` out of SMS, as its owner replying STOP would. On SQLite the local SMS
    /// outbox keeps the list; SNS has no call that opts a number out, and moto answers
    /// `CheckIfPhoneNumberIsOptedOut` true for every number ending in `99`, so there only
    /// such a number can be opted out (any other is an error).
    pub async fn opt_out(&self, phone: &str) -> anyhow::Result<()> {
        let number = clinicflow::domain::PhoneNumber::parse(phone).map_err(|e| anyhow::anyhow!("{phone}: {e:?}"))?;
        match &self.backend {
            Backend::Embedded(parts) => Ok(parts.sms.opt_out(&number).await?),
            Backend::Aws(_) if number.e164().ends_with("99") => Ok(()),
            Backend::Aws(_) => anyhow::bail!("on SNS (moto) only a number ending in 99 is opted out"),
        }
    }

    /// The embedded adapters, when the stack runs on SQLite.
    pub fn embedded(&self) -> Option<&EmbeddedParts> {
        match &self.backend {
            Backend::Embedded(parts) => Some(parts),
            Backend::Aws(_) => None,
        }
    }

    /// The deliveries that ended in a dead-letter queue.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        self.backend.dead_letters().await
    }

    async fn is_idle(&self) -> anyhow::Result<bool> {
        let unpublished = self
            .platform
            .outbox
            .unpublished(chrono::Utc::now() + chrono::Duration::days(1), 1)
            .await?;
        if !unpublished.is_empty() {
            return Ok(false);
        }
        match &self.backend {
            Backend::Embedded(parts) => {
                let pending = parts.bus.next_due().await?;
                let checkpoint = parts.db.checkpoint(workers::PROJECTOR_CHECKPOINT).await?;
                let behind = parts.db.changes_after(checkpoint, 1).await?;
                Ok(pending.is_none() && behind.is_empty())
            }
            Backend::Aws(runtime) => runtime.is_idle().await,
        }
    }
}

/// Whatever a crashed run committed but never published goes out first.
async fn recover(platform: &Platform) -> anyhow::Result<()> {
    let recovered = clinicflow::app::relay::sweep(platform, Duration::ZERO).await?;
    if recovered.published > 0 {
        tracing::info!(published = recovered.published, "republished events left by the previous run");
    }
    Ok(())
}
