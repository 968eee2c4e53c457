//! A moto server (the AWS emulator) for the tests that run against the AWS adapters: the
//! one `scripts/test.sh` started (`CLINICFLOW_MOTO_ENDPOINT`), or else one this test
//! process starts with `scripts/moto_server.py` (moto with its DynamoDB calls serialized, as
//! DynamoDB's transactions are) under `.venv/bin/python` or the `PATH`'s `python3`, and
//! that exits with it.
//! Every test names its own tables, bus and queues ([`unique`]), so tests share a server.

use std::time::Duration;

use clinicflow::adapters::aws::{AwsTarget, sdk_config};
use serde_json::Value;
use tokio::sync::OnceCell;

/// A running moto server.
#[derive(Debug, Clone)]
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

static MOTO: OnceCell<Moto> = OnceCell::const_new();

/// The moto server of this test run, started on first use.
pub async fn moto() -> &'static Moto {
    MOTO.get_or_init(|| async {
        let endpoint = match std::env::var("CLINICFLOW_MOTO_ENDPOINT") {
            Ok(url) if !url.is_empty() => url,
            _ => spawn(),
        };
        let moto = Moto { endpoint };
        moto.wait_ready().await;
        moto
    })
    .await
}

/// A moto server of this test's own, started now (and stopped when the process ends): for a
/// test that loads moto so heavily (thousands of items, hundreds of SMS) that it would slow
/// every test sharing the run's server, since moto answers each SMS listing and each stream
/// read from the whole of its state.
pub async fn own() -> Moto {
    let moto = Moto { endpoint: spawn() };
    moto.wait_ready().await;
    moto
}

/// The project's Python: `.venv/bin/python` (which `scripts/test.sh` makes), or the `PATH`'s
/// `python3`.
pub fn python() -> String {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
    if std::path::Path::new(venv).exists() {
        venv.to_owned()
    } else {
        "python3".to_owned()
    }
}

/// Starts moto on a free port under a watchdog shell that stops it when this process ends.
fn spawn() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let script = format!(
        "\"{python}\" \"{script}\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & child=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $child",
        python = python(),
        script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/moto_server.py"),
        parent = std::process::id(),
    );
    let mut watchdog = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("moto starts (install it with: pip install 'moto[server]', or run ./scripts/test.sh)");
    std::thread::spawn(move || watchdog.wait());
    format!("http://127.0.0.1:{port}")
}

impl Moto {
    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let url = format!("{}/moto-api/data.json", self.endpoint);
        for _ in 0..300 {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto server at {} did not answer within 30 s", self.endpoint);
    }

    /// The endpoint as an adapter target.
    pub fn target(&self) -> AwsTarget {
        AwsTarget {
            endpoint: Some(self.endpoint.clone()),
        }
    }

    /// SDK configuration pointing at this server.
    pub async fn sdk(&self) -> aws_config::SdkConfig {
        sdk_config(&self.target()).await
    }

    /// SMS moto recorded as sent, as `(phone number, message)`, oldest first.
    pub async fn sms(&self) -> Vec<(String, String)> {
        // moto builds data.json from every backend's live state; while other tests change
        // that state it can fail and answer an error page instead, so ask again.
        let url = format!("{}/moto-api/data.json", self.endpoint);
        let mut last = String::new();
        let mut data = None;
        for _ in 0..20 {
            let res = reqwest::get(&url).await.expect("moto data");
            let status = res.status();
            let text = res.text().await.expect("moto data read");
            match serde_json::from_str::<Value>(&text) {
                Ok(v) if status.is_success() => {
                    data = Some(v);
                    break;
                }
                _ => last = format!("{status}: {}", text.chars().take(200).collect::<String>()),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let data = data.unwrap_or_else(|| panic!("moto data is not JSON after 20 tries; last answer {last}"));
        data["sns"]["SMS"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|m| {
                        (
                            m["phone_number"].as_str().unwrap_or_default().to_owned(),
                            m["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A name no other test uses: `prefix` and a fresh ULID, lower case (valid for tables,
/// buses, rules and queues).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}
