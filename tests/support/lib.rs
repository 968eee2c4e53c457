//! Support for the workspace's end-to-end tests: a local stack per test, an HTTP client
//! that speaks its API, and waiting for eventual consistency without timing assertions.

pub mod moto;
pub mod templates;

use std::time::Duration;

use clinicflow::config::Config;
pub use clinicflow_local::{BusOptions, LocalOptions, LocalStack};
use serde_json::{Value, json};

/// A check-up date that stays valid: 30 days from today.
pub fn future_date(days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(days)).to_string()
}

/// Options for a fast, in-memory stack on a free port, with short payment timeouts.
pub fn fast_options() -> LocalOptions {
    let mut config = Config {
        outbox_grace: Duration::from_millis(300),
        sms_send_rate: 2000,
        ..Config::default()
    };
    config.payment.timeout = Duration::from_millis(300);
    config.payment.cool_down = Duration::from_millis(1500);
    config.sandbox_slow = Duration::from_secs(5);
    LocalOptions {
        listen: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!("valid address")),
        data_dir: None,
        config,
        bus: BusOptions {
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..BusOptions::default()
        },
        sweep_every: Duration::from_millis(100),
        ..LocalOptions::default()
    }
}

/// Starts a fast in-memory stack.
pub async fn start() -> LocalStack {
    LocalStack::start(fast_options()).await.expect("local stack starts")
}

/// Which adapters a test's stack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// The embedded SQLite adapters, in memory.
    Sqlite,
    /// The AWS adapters against the test run's moto server, under a prefix of its own.
    Moto,
}

/// [`fast_options`] on `on`.
pub async fn options_on(on: On) -> LocalOptions {
    let mut options = fast_options();
    if on == On::Moto {
        options.aws_endpoint = Some(moto::moto().await.endpoint.clone());
        options.aws_prefix = moto::unique("e2e");
    }
    options
}

/// [`options_on`], on a moto server of the test's own when `on` is [`On::Moto`]
/// ([`moto::own`]): for the tests that load it heavily.
pub async fn options_on_own_server(on: On) -> LocalOptions {
    let mut options = fast_options();
    if on == On::Moto {
        options.aws_endpoint = Some(moto::own().await.endpoint);
        options.aws_prefix = moto::unique("e2e");
    }
    options
}

/// Starts a fast stack on `on`.
pub async fn start_on(on: On) -> LocalStack {
    LocalStack::start(options_on(on).await).await.expect("local stack starts")
}

/// A response: status, headers we care about, JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Content-Type.
    pub content_type: String,
    /// Location.
    pub location: Option<String>,
    /// Retry-After.
    pub retry_after: Option<String>,
    /// Body as JSON (Null if empty or not JSON).
    pub body: Value,
}

/// A client of one stack, as one caller.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A caller with a dev token for `sub` in `groups` (none: anonymous).
    pub fn new(stack: &LocalStack, sub: &str, groups: &[&str]) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: stack.url(),
            token: (!sub.is_empty()).then(|| stack.token(sub, groups)),
        }
    }

    /// An anonymous caller.
    pub fn anonymous(stack: &LocalStack) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: stack.url(),
            token: None,
        }
    }

    /// A caller presenting `token` as is.
    pub fn with_token(stack: &LocalStack, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: stack.url(),
            token: Some(token.to_owned()),
        }
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let res = req.send().await.expect("request sent");
        Self::reply(res).await
    }

    /// Sends raw bytes with a content type.
    pub async fn send_raw(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        Self::reply(req.send().await.expect("request sent")).await
    }

    async fn reply(res: reqwest::Response) -> Reply {
        let status = res.status().as_u16();
        let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header("content-type").unwrap_or_default();
        let location = header("location");
        let retry_after = header("retry-after");
        let bytes = res.bytes().await.expect("body read");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            location,
            retry_after,
            body,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[]).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(body), &[]).await
    }

    /// POST without a body.
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send("POST", path, None, &[]).await
    }
}

/// A valid booking request for `date` and `package` paid with `card_token`.
pub fn booking(date: &str, package: &str, card_token: &str) -> Value {
    json!({"date": date, "package": package, "name": "홍길동", "phone": "010-1234-5678", "card_token": card_token})
}

/// Polls `f` every 25 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_every(within, Duration::from_millis(25), f).await
}

/// Polls `f` every `pause` until it returns `Some`, for at most `within` (a longer pause for
/// a poll that costs: listing SMS on moto reads the whole of its state).
pub async fn eventually_every<T, F, Fut>(within: Duration, pause: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(pause).await;
    }
}

/// Asserts `r` is an RFC 9457 problem of `status`.
pub fn assert_problem(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{:?}", r.body);
    assert!(
        r.content_type.starts_with("application/problem+json"),
        "content type {:?}",
        r.content_type
    );
    assert_eq!(r.body["status"], status, "the problem repeats its status: {:?}", r.body);
}

/// The fields a problem's `errors` name.
pub fn error_fields(r: &Reply) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The statuses of a view's timeline, oldest first.
pub fn timeline(view: &Value) -> Vec<String> {
    view["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|t| t["status"].as_str().expect("timeline status").to_owned())
        .collect()
}

/// The short reference the SMS quote: the last 8 characters of a case's id.
pub fn short_ref(id: &str) -> &str {
    &id[id.len() - 8..]
}

/// Waits until the booking's view shows `status`; returns the view.
pub async fn wait_for_status(client: &Client, id: &str, field: &str, status: &str) -> Value {
    let path = format!("/checkups/{id}");
    eventually(Duration::from_secs(10), || async {
        let r = client.get(&path).await;
        let current = match field {
            "status" => r.body["status"].clone(),
            other => r.body[other]["status"].clone(),
        };
        (r.status == 200 && current == status).then_some(r.body)
    })
    .await
    .unwrap_or_else(|| panic!("booking {id}: {field} never became {status}"))
}

/// Places taken for `date` (`YYYY-MM-DD`) in the basic package, read from the store.
pub async fn basic_places_taken(stack: &LocalStack, date: &str) -> i64 {
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("a date");
    let slot = clinicflow::flows::checkup::availability::slot_key(date, clinicflow::flows::checkup::domain::Package::Basic);
    stack.platform.store.counter(&slot).await.expect("counter")
}

/// The SMS the stack has sent so far.
pub async fn sms(stack: &LocalStack) -> Vec<Value> {
    stack
        .sms_sent()
        .await
        .expect("sms list")
        .into_iter()
        .map(|s| serde_json::to_value(s).expect("json"))
        .collect()
}

/// The texts sent to `phone` (E.164, [`e164`]) so far.
pub async fn texts_to(stack: &LocalStack, phone: &str) -> Vec<String> {
    sms(stack)
        .await
        .iter()
        .filter(|s| s["to"] == phone)
        .map(|s| s["body"].as_str().expect("sms body").to_owned())
        .collect()
}

/// Waits (20 s at most, polling gently: on moto each poll reads its whole state) until
/// `phone` (E.164) got `n` texts; returns them.
pub async fn wait_texts(stack: &LocalStack, phone: &str, n: usize) -> Vec<String> {
    eventually_every(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(200),
        || async {
            let t = texts_to(stack, phone).await;
            (t.len() >= n).then_some(t)
        },
    )
    .await
    .unwrap_or_else(|| panic!("{phone} never got {n} SMS"))
}

/// A Korean mobile number (`010-1234-5678`) as the SMS are sent to it (`+821012345678`).
pub fn e164(local: &str) -> String {
    format!("+82{}", local.replace('-', "").trim_start_matches('0'))
}

/// The price of the basic package on `stack`, from the check-up flow's settings.
pub fn basic_price(stack: &LocalStack) -> u64 {
    stack
        .platform
        .config
        .slice::<clinicflow::flows::checkup::config::CheckupConfig>()
        .prices
        .basic
        .0
}

/// Sets the check-up flow's places per date and package on `options`.
pub fn set_daily_capacity(options: &mut LocalOptions, places: i64) {
    options
        .config
        .slice_mut::<clinicflow::flows::checkup::config::CheckupConfig>()
        .daily_capacity = places;
}
