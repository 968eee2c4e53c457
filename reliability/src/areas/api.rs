//! A small HTTP client shared by the `concurrency`, `authz` and `privacy` areas and the
//! slices' fixtures, and the fixed people the areas open cases with. Unlike the
//! end-to-end tests' client it never panics: a request that cannot be sent or read is an
//! error the area counts, so that a thousand requests in flight cannot bring the harness down.
//! It also sets the `Authorization` header verbatim, so that bad tokens can be presented.

use std::time::Duration;

use clinicflow_tests::LocalStack;
use serde_json::Value;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A client of one local stack; cheap to clone, one connection pool for every caller.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// A response as the areas judge it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, or empty.
    pub content_type: String,
    /// `WWW-Authenticate`, if any.
    pub www_authenticate: Option<String>,
    /// `Retry-After` in seconds, if any.
    pub retry_after: Option<u64>,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Answer {
    /// Is the body an RFC 9457 problem document?
    pub fn is_problem(&self) -> bool {
        self.content_type.starts_with(PROBLEM_JSON) && self.body["status"] == self.status
    }

    /// A server error.
    pub fn is_5xx(&self) -> bool {
        self.status >= 500
    }
}

/// One request: method, path, the `Authorization` header as sent, and a body.
#[derive(Debug, Clone, Default)]
pub struct Call<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// The whole `Authorization` header value (`Bearer <jwt>`), if any.
    pub authorization: Option<&'a str>,
    /// Content type and bytes of the body, if any.
    pub body: Option<(&'a str, Vec<u8>)>,
    /// Further headers.
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> Call<'a> {
    /// A call with a bearer header (`None`: anonymous) and an optional JSON body.
    pub fn json(method: &'a str, path: &'a str, authorization: Option<&'a str>, body: Option<&Value>) -> Self {
        Self {
            method,
            path,
            authorization,
            body: body.map(|b| ("application/json", b.to_string().into_bytes())),
            headers: &[],
        }
    }
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

impl Api {
    /// A client of `stack`.
    pub fn new(stack: &LocalStack) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .pool_idle_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { http, base: stack.url() })
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(&self, call: Call<'_>) -> anyhow::Result<Answer> {
        let method = reqwest::Method::from_bytes(call.method.as_bytes())?;
        let mut req = self.http.request(method, format!("{}{}", self.base, call.path));
        if let Some(auth) = call.authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        for (name, value) in call.headers {
            req = req.header(*name, *value);
        }
        if let Some((content_type, bytes)) = call.body {
            req = req.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes);
        }
        let res = req.send().await?;
        let header = |name: reqwest::header::HeaderName| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        let www_authenticate = header(reqwest::header::WWW_AUTHENTICATE);
        let retry_after = header(reqwest::header::RETRY_AFTER).and_then(|v| v.trim().parse().ok());
        let status = res.status().as_u16();
        let bytes = res.bytes().await?;
        Ok(Answer {
            status,
            content_type,
            www_authenticate,
            retry_after,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// Sends a request with a bearer token (`None`: anonymous) and an optional JSON body.
    pub async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> anyhow::Result<Answer> {
        let authorization = token.map(bearer);
        self.call(Call::json(method, path, authorization.as_deref(), body)).await
    }

    /// Sends a request as a well-behaved client does: a `503` with `Retry-After` (the service
    /// shedding load) is sent again, same headers and body, after the delay it asks for (at
    /// most a second, 50 times); answers the last answer and how many times it was shed.
    pub async fn call_shed_aware<'a>(&self, call: impl Fn() -> Call<'a>) -> (anyhow::Result<Answer>, u64) {
        let mut sheds = 0;
        loop {
            let answer = self.call(call()).await;
            let retry_after = match &answer {
                Ok(a) if a.status == 503 && sheds < 50 => a.retry_after,
                _ => None,
            };
            let Some(secs) = retry_after else {
                return (answer, sheds);
            };
            sheds += 1;
            tokio::time::sleep(Duration::from_millis(secs.min(1) * 1000 + fastrand::u64(..250))).await;
        }
    }

    /// [`Api::send`] as a well-behaved client sends it ([`Api::call_shed_aware`]).
    pub async fn send_shed_aware(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (anyhow::Result<Answer>, u64) {
        let authorization = token.map(bearer);
        self.call_shed_aware(|| Call::json(method, path, authorization.as_deref(), body))
            .await
    }
}

/// Personal data a case is opened with.
#[derive(Debug, Clone)]
pub struct Person<'a> {
    /// Name as given.
    pub name: &'a str,
    /// Phone as given.
    pub phone: &'a str,
    /// `ko` or `en`.
    pub locale: &'a str,
}

/// The fixture person of the end-to-end tests.
pub const SOMEONE: Person<'static> = Person {
    name: "홍길동",
    phone: "010-1234-5678",
    locale: "ko",
};

/// The contenders of the `concurrency` area.
pub const CONTENDER: Person<'static> = Person {
    name: "Kim Minji",
    phone: "010-2000-3000",
    locale: "en",
};

/// Every fixed person the areas open cases with: the `privacy` area looks for them in the logs too.
pub const FIXTURE_PEOPLE: [Person<'static>; 2] = [SOMEONE, CONTENDER];

/// Polls `f` every 25 ms until it returns `Some`, for at most `within`.
pub async fn poll<T, F, Fut>(within: Duration, f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    clinicflow_tests::eventually(within, f).await
}

/// Waits until `GET path`, read with `token`, answers `200` with a body satisfying `ready`;
/// returns it.
pub async fn wait_for(api: &Api, token: &str, path: &str, within: Duration, ready: impl Fn(&Value) -> bool) -> Option<Value> {
    poll(within, || async {
        let answer = api.send("GET", path, Some(token), None).await.ok()?;
        (answer.status == 200 && ready(&answer.body)).then_some(answer.body)
    })
    .await
}

/// The case id in a `201 Created` answer.
pub fn created_id(answer: &Answer) -> Option<String> {
    (answer.status == 201)
        .then(|| answer.body["id"].as_str().map(str::to_owned))
        .flatten()
}
