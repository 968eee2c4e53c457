//! The Lambda path of the HTTP functions: an API Gateway HTTP API (v2) event, claims from
//! its JWT authorizer, converted by `lambda_http` exactly as on Lambda and served by the
//! function's own router, which serves only that function's routes.

use std::sync::Arc;

use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::Faults;
use clinicflow::config::Config;
use serde_json::{Value, json};
use tower::ServiceExt;

fn platform() -> Arc<clinicflow::app::Platform> {
    Arc::new(
        clinicflow::wiring::embedded(
            clinicflow::catalog(),
            Embedded::in_memory().expect("db"),
            Config::default(),
            Faults::none(),
        )
        .0,
    )
}

fn apigw_v2(method: &str, path: &str, groups: Option<&str>, body: Option<Value>) -> lambda_http::Request {
    let authorizer = groups.map(|g| json!({"jwt": {"claims": {"sub": "patient-7", "cognito:groups": g}, "scopes": null}}));
    let event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "test"},
            "requestId": "req-1",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "21/Nov/2026:09:30:00 +0000",
            "timeEpoch": 1_795_000_000_000_i64,
            "authorizer": authorizer,
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}

async fn call(function: &str, req: lambda_http::Request) -> (u16, Value) {
    let res = clinicflow::http::router(platform(), Some(function))
        .oneshot(req)
        .await
        .expect("infallible");
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn date() -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(30)).to_string()
}

#[tokio::test]
async fn a_booking_arriving_through_api_gateway_uses_the_authorizer_claims() {
    let body = json!({"date": date(), "package": "basic", "name": "Kim", "phone": "+821012345678", "card_token": "tok_ok", "locale": "en"});
    let (status, view) = call("checkup-book", apigw_v2("POST", "/checkups", Some("[patient]"), Some(body))).await;
    assert_eq!(status, 201, "{view}");
    assert_eq!(view["status"], "booked");
}

#[tokio::test]
async fn without_authorizer_claims_the_function_answers_401() {
    let (status, problem) = call("checkup-query", apigw_v2("GET", "/checkups", None, None)).await;
    assert_eq!(status, 401);
    assert_eq!(problem["status"], 401);
}

#[tokio::test]
async fn a_role_the_route_does_not_allow_is_refused() {
    let (status, _) = call("checkup-book", apigw_v2("POST", "/checkups", Some("[centre]"), Some(json!({})))).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_function_serves_only_its_own_routes() {
    let (status, _) = call("checkup-book", apigw_v2("GET", "/checkups", Some("[patient]"), None)).await;
    assert_eq!(status, 405, "GET /checkups belongs to checkup-query");
    let (status, _) = call(
        "checkup-book",
        apigw_v2(
            "POST",
            "/centre/checkups/01JD3M7Q0000000000000000AB/confirm",
            Some("[centre]"),
            None,
        ),
    )
    .await;
    assert_eq!(status, 404);
}
