//! `clinicflow-local`: the whole clinicflow topology in one process. A gateway routes
//! from `topology.rs` and checks JWTs where API Gateway's authorizer would; an in-process
//! bus applies the same rules and delivers asynchronously and at least once, with retries
//! and a dead-letter queue; the change feed of the SQLite store drives the projector; an
//! SMS outbox keeps what would have been sent.

mod gateway;
mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::{Faults, Platform};
use clinicflow::config::Config;
use clinicflow::http::auth::DevTokens;
use clinicflow::wiring::{self, EmbeddedParts};
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
        }
    }
}

/// A running local stack.
pub struct LocalStack {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The platform its handlers and consumers share.
    pub platform: Arc<Platform>,
    /// Its adapters (database, bus, SMS outbox, payment sandbox).
    pub parts: EmbeddedParts,
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

impl LocalStack {
    /// Opens the store, republishes what a previous run left unpublished, starts the
    /// workers and the gateway.
    pub async fn start(options: LocalOptions) -> anyhow::Result<Self> {
        let db = match &options.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                Embedded::open(&dir.join("clinicflow.sqlite"))?
            }
            None => Embedded::in_memory()?,
        };
        let tokens = DevTokens::new(&secret_for(options.data_dir.as_ref())?);
        let (platform, parts) = wiring::embedded(db, options.config.clone(), Faults::none());
        let platform = Arc::new(platform);

        // Whatever a crashed run committed but never published goes out first.
        let recovered = clinicflow::app::relay::sweep(&platform, Duration::ZERO).await?;
        if recovered.published > 0 {
            tracing::info!(published = recovered.published, "republished events left by the previous run");
        }

        let (shutdown, watch_rx) = watch::channel(false);
        let mut tasks = workers::spawn(
            platform.clone(),
            parts.clone(),
            options.bus.clone(),
            options.sweep_every,
            watch_rx.clone(),
        );

        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("binding {}", options.listen))?;
        let addr = listener.local_addr()?;
        let app = gateway::router(platform.clone(), parts.clone(), tokens.clone());
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
            parts,
            tokens,
            shutdown,
            tasks,
        })
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The failure switches of this stack.
    pub fn faults(&self) -> &Faults {
        &self.platform.faults
    }

    /// A dev token for `sub` in `groups`, valid for an hour.
    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        self.tokens.issue(sub, &groups, 3600).unwrap_or_default()
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

    async fn is_idle(&self) -> anyhow::Result<bool> {
        let unpublished = self
            .platform
            .outbox
            .unpublished(chrono::Utc::now() + chrono::Duration::days(1), 1)
            .await?;
        let pending = self.parts.bus.next_due().await?;
        let checkpoint = self.parts.db.checkpoint(workers::PROJECTOR_CHECKPOINT).await?;
        let behind = self.parts.db.changes_after(checkpoint, 1).await?;
        Ok(unpublished.is_empty() && pending.is_none() && behind.is_empty())
    }
}
