//! A local Lambda Runtime API (`/2018-06-01/runtime/...`), as the Lambda service serves it
//! to a custom runtime's `bootstrap`: the runner hands out one invocation at a time and is
//! told, with the instant it happened, when the runtime asks for work and when it answers.
//! Sockets have `TCP_NODELAY`, so that small responses are not held back by Nagle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

/// What the runtime did, and when.
#[derive(Debug)]
pub enum Report {
    /// It asked for the next invocation (init is over, or the last one is answered).
    Next(Instant),
    /// It answered invocation `id`: a response (`ok`) or an error report.
    Answer {
        /// The invocation.
        id: String,
        /// When the answer arrived.
        at: Instant,
        /// A response, not an error report.
        ok: bool,
        /// The body.
        body: Bytes,
    },
    /// Init failed.
    InitError(Bytes),
}

struct Shared {
    invocations: Mutex<mpsc::Receiver<(String, Bytes)>>,
    reports: mpsc::UnboundedSender<Report>,
    function_arn: String,
}

/// One Runtime API for one process's life.
pub struct RuntimeApi {
    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub address: SocketAddr,
    invocations: mpsc::Sender<(String, Bytes)>,
    reports: mpsc::UnboundedReceiver<Report>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves a Runtime API on a free loopback port.
    pub async fn start(function: &str) -> anyhow::Result<Self> {
        let (invocations, invocations_rx) = mpsc::channel(64);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            invocations: Mutex::new(invocations_rx),
            reports: reports_tx,
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let address = listener.local_addr()?;
        let listener = listener.tap_io(|tcp| {
            // Small responses go out at once; a failure here only costs latency.
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            invocations,
            reports,
            server,
        })
    }

    /// Queues invocation `id` with `payload`, for the runtime's next `/next`.
    pub async fn invoke(&self, id: &str, payload: Bytes) -> anyhow::Result<()> {
        self.invocations
            .send((id.to_owned(), payload))
            .await
            .map_err(|_| anyhow::anyhow!("the runtime API is gone"))
    }

    /// The runtime's next report, within `within`.
    pub async fn report(&mut self, within: Duration) -> anyhow::Result<Report> {
        match tokio::time::timeout(within, self.reports.recv()).await {
            Ok(Some(report)) => Ok(report),
            Ok(None) => anyhow::bail!("the runtime API stopped"),
            Err(_) => anyhow::bail!("no word from the runtime within {within:?}"),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let _ = shared.reports.send(Report::Next(Instant::now()));
    let invocation = shared.invocations.lock().await.recv().await;
    let Some((id, payload)) = invocation else {
        return StatusCode::GONE.into_response();
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    let mut headers = HeaderMap::new();
    let pairs = [
        ("lambda-runtime-aws-request-id", id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        ("lambda-runtime-invoked-function-arn", shared.function_arn.clone()),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    (StatusCode::OK, headers, payload).into_response()
}

async fn response(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let _ = shared.reports.send(Report::Answer { id, at, ok: true, body });
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let _ = shared.reports.send(Report::Answer { id, at, ok: false, body });
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let _ = shared.reports.send(Report::InitError(body));
    StatusCode::ACCEPTED
}
