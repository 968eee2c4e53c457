//! The local gateway: the API routes from `topology.rs`, each behind the JWT check that
//! API Gateway's authorizer does in AWS, plus the local-only routes (dev tokens, the SMS
//! outbox, dead letters, failure points with the `failpoints` feature) and a health check.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clinicflow::app::{AppError, Platform};
use clinicflow::domain::FieldError;
use clinicflow::http::auth::DevTokens;
use clinicflow::http::{ApiError, Claims, Problem, parse_json, problem_of};
use serde::Deserialize;

use crate::Backend;

#[derive(Clone)]
struct Local {
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    platform: Arc<Platform>,
    backend: Backend,
    tokens: DevTokens,
}

/// Checks `Authorization: Bearer <JWT>` and hands the claims to the handler.
async fn authorizer(State(tokens): State<DevTokens>, mut request: Request, next: Next) -> Response {
    // Like API Gateway, the public routes (the health check, the OpenAPI document) have no
    // authorizer at all.
    let public = clinicflow::catalog()
        .routes
        .iter()
        .any(|r| r.is_public() && r.path == request.uri().path() && r.method.as_str() == request.method().as_str());
    if public {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token.map(|t| tokens.verify(t)) {
        Some(Ok(claims)) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Some(Err(e)) => {
            tracing::info!(reason = %e, "token refused");
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "the bearer token is invalid or expired",
            )
            .into_response()
        }
        None => Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "a bearer token is required",
        )
        .into_response(),
    }
}

/// Access log: method, route, status, latency. Never bodies or headers.
async fn access_log(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(method = %method, route = %route, status = response.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    sub: Option<String>,
    groups: Option<Vec<String>>,
    /// A staff member's site (`custom:site`), as a Cognito administrator would set it.
    site: Option<String>,
}

async fn issue_token(State(s): State<Local>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let run = || -> Result<String, ApiError> {
        let req: TokenRequest = parse_json(&headers, &body)?;
        let mut errors = vec![];
        let sub = req.sub.unwrap_or_default();
        if sub.trim().is_empty() || sub.len() > 128 {
            errors.push(FieldError::new("sub", "must be 1 to 128 characters"));
        }
        let groups = req.groups.unwrap_or_default();
        if let Some(bad) = groups.iter().find(|g| clinicflow::catalog().role(g).is_none()) {
            let known: Vec<_> = clinicflow::catalog().roles.iter().map(|r| r.group()).collect();
            errors.push(FieldError::new(
                "groups",
                format!("unknown group {bad:?}; known: {}", known.join(", ")),
            ));
        }
        let site = req.site.filter(|s| !s.is_empty());
        if let Some(site) = &site
            && !(site.len() <= 64 && site.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            errors.push(FieldError::new("site", "must be 1 to 64 letters, digits, '-' or '_'"));
        }
        if !errors.is_empty() {
            return Err(ApiError(AppError::Invalid(errors)));
        }
        s.tokens
            .issue_for(&Claims { sub, groups, site }, 12 * 3600)
            .map_err(|e| ApiError(AppError::Internal(e.to_string())))
    };
    match run() {
        Ok(token) => axum::Json(serde_json::json!({"token": token, "expires_in": 12 * 3600})).into_response(),
        Err(e) => problem_of(e).into_response(),
    }
}

async fn list_sms(State(s): State<Local>) -> Response {
    match s.backend.sms_sent().await {
        Ok(list) => axum::Json(serde_json::json!({"items": list})).into_response(),
        Err(e) => internal(e),
    }
}

fn internal(e: anyhow::Error) -> Response {
    problem_of(ApiError(AppError::Internal(e.to_string()))).into_response()
}

async fn dead_letters(State(s): State<Local>) -> Response {
    match s.backend.dead_letters().await {
        Ok(list) => {
            let items: Vec<_> = list
                .into_iter()
                .map(|d| serde_json::json!({"target": d.target, "event_id": d.event.id, "type": d.event.event_type, "error": d.error}))
                .collect();
            axum::Json(serde_json::json!({"items": items})).into_response()
        }
        Err(e) => internal(e),
    }
}

async fn redrive(State(s): State<Local>) -> Response {
    let Backend::Embedded(parts) = &s.backend else {
        return Problem::new(
            StatusCode::NOT_IMPLEMENTED,
            "not-implemented",
            "Not implemented",
            "on the AWS path, redrive the dead-letter queues with SQS StartMessageMoveTask",
        )
        .into_response();
    };
    match parts.bus.redrive().await {
        Ok(n) => axum::Json(serde_json::json!({"redriven": n})).into_response(),
        Err(e) => problem_of(ApiError(e.into())).into_response(),
    }
}

/// `POST /_local/faults`: arms or disarms a failure point. `effect` is `crash` (the
/// default), `fail` or `delay` (`delay_ms`); `times` limits the firings.
#[cfg(feature = "failpoints")]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    point: String,
    on: bool,
    effect: Option<String>,
    delay_ms: Option<u64>,
    times: Option<u64>,
}

#[cfg(feature = "failpoints")]
async fn set_fault(State(s): State<Local>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    use clinicflow::app::Effect;
    let f = match parse_json::<FaultRequest>(&headers, &body) {
        Ok(f) => f,
        Err(e) => return problem_of(e).into_response(),
    };
    let effect = match (f.effect.as_deref(), f.delay_ms) {
        (None | Some("crash"), None) => Effect::Crash,
        (Some("fail"), None) => Effect::Fail,
        (Some("delay"), Some(ms)) => Effect::Delay(std::time::Duration::from_millis(ms)),
        _ => {
            let error = FieldError::new("effect", "must be \"crash\", \"fail\" or \"delay\" (with delay_ms, and only then)");
            return problem_of(ApiError(AppError::Invalid(vec![error]))).into_response();
        }
    };
    if f.on {
        s.platform.faults.arm(&f.point, effect, f.times);
    } else {
        s.platform.faults.disarm(&f.point);
    }
    tracing::warn!(point = %f.point, on = f.on, "failure point changed");
    axum::Json(serde_json::json!({"point": f.point, "on": f.on})).into_response()
}

/// The gateway's router.
pub fn router(platform: Arc<Platform>, backend: Backend, tokens: DevTokens) -> Router {
    let api = clinicflow::http::router(platform.clone(), None).route_layer(middleware::from_fn_with_state(tokens.clone(), authorizer));
    let local = Router::new()
        .route("/_local/token", post(issue_token))
        .route("/_local/sms", get(list_sms))
        .route("/_local/dead-letters", get(dead_letters))
        .route("/_local/redrive", post(redrive));
    #[cfg(feature = "failpoints")]
    let local = local.route("/_local/faults", post(set_fault));
    let local = local.with_state(Local { platform, backend, tokens });
    local.merge(api).layer(middleware::from_fn(access_log))
}
