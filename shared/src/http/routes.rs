//! The API's handlers and the routers built from `topology::ROUTES`: a function's router
//! serves only its own routes, the local gateway's serves them all.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};

use super::{ApiError, Claims, Problem, RequestId, parse_json, problem_of};
use crate::app::checkup::{self as usecase, Accepted, BookInput, CentreDecision, IdempotencyKey};
use crate::app::queries::{self, ListParams};
use crate::app::{AppError, Platform};
use crate::domain::FieldError;
use crate::domain::checkup::parse_reason;
use crate::topology::{self, Method, Role, Route};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

type AppState = Arc<Platform>;

fn accepted(a: Accepted) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let mut res = (status, axum::Json(a.body)).into_response();
    if let Some(loc) = a.location.and_then(|l| l.parse().ok()) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    res
}

fn fail(e: ApiError) -> Response {
    problem_of(e).into_response()
}

/// Ids are ULIDs; anything else cannot exist.
fn checked_id(id: &str) -> Result<&str, ApiError> {
    if id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(ApiError(AppError::NotFound))
    }
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| {
        let text = e.body_text();
        let field = text
            .split("unknown field `")
            .nth(1)
            .and_then(|r| r.split('`').next())
            .unwrap_or("query")
            .to_owned();
        ApiError(AppError::Invalid(vec![FieldError::new(field, text)]))
    })
}

async fn book(State(p): State<AppState>, claims: Claims, RequestId(rid): RequestId, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let input: BookInput = parse_json(&headers, &body)?;
        let idem = match headers.get("idempotency-key") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| FieldError::new("Idempotency-Key", "must be visible ASCII"))
                    .and_then(|k| IdempotencyKey::parse(k, &body))
                    .map_err(|e| ApiError(AppError::Invalid(vec![e])))?,
            ),
        };
        Ok::<_, ApiError>(usecase::book(&p, &claims.actor(), input, idem, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

async fn cancel(State(p): State<AppState>, claims: Claims, RequestId(rid): RequestId, Path(id): Path<String>) -> Response {
    let run = async { Ok::<_, ApiError>(usecase::cancel(&p, &claims.actor(), checked_id(&id)?, &rid).await?) };
    run.await.map_or_else(fail, accepted)
}

async fn get_checkup(State(p): State<AppState>, claims: Claims, Path(id): Path<String>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::checkup(&p, &claims.actor(), claims.has(Role::Centre), checked_id(&id)?).await?) };
    run.await.map_or_else(fail, |v| axum::Json(v).into_response())
}

async fn my_checkups(State(p): State<AppState>, claims: Claims, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::my_checkups(&p, &claims.actor(), &query(q)?).await?) };
    run.await.map_or_else(fail, |v| axum::Json(v).into_response())
}

async fn centre_checkups(State(p): State<AppState>, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::centre_list(&p, &query(q)?).await?) };
    run.await.map_or_else(fail, |v| axum::Json(v).into_response())
}

async fn confirm(State(p): State<AppState>, RequestId(rid): RequestId, Path(id): Path<String>) -> Response {
    let run = async { Ok::<_, ApiError>(usecase::decide_as_centre(&p, checked_id(&id)?, CentreDecision::Confirm, &rid).await?) };
    run.await.map_or_else(fail, accepted)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectInput {
    reason: Option<String>,
}

async fn reject(State(p): State<AppState>, RequestId(rid): RequestId, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        let input: RejectInput = parse_json(&headers, &body)?;
        let reason = input
            .reason
            .ok_or_else(|| FieldError::new("reason", "is required"))
            .and_then(|r| parse_reason(&r))
            .map_err(|e| ApiError(AppError::Invalid(vec![e])))?;
        Ok::<_, ApiError>(usecase::decide_as_centre(&p, id, CentreDecision::Reject { reason }, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// The health check (public): the process answers, and the state of its payment circuit.
async fn health(State(p): State<AppState>) -> Response {
    let circuit = format!("{:?}", p.payments.state()).to_lowercase();
    axum::Json(serde_json::json!({"status": "ok", "payment_circuit": circuit})).into_response()
}

/// The handler of a catalogued route.
fn handler(route: &Route) -> MethodRouter<AppState> {
    match (route.method, route.path) {
        (Method::Get, topology::HEALTH_PATH) => get(health),
        (Method::Post, "/checkups") => post(book),
        (Method::Get, "/checkups") => get(my_checkups),
        (Method::Get, "/checkups/{id}") => get(get_checkup),
        (Method::Post, "/checkups/{id}/cancel") => post(cancel),
        (Method::Get, "/centre/checkups") => get(centre_checkups),
        (Method::Post, "/centre/checkups/{id}/confirm") => post(confirm),
        (Method::Post, "/centre/checkups/{id}/reject") => post(reject),
        (m, path) => {
            // A catalogued route without a handler is a build mistake the topology test catches.
            tracing::error!(method = m.as_str(), path, "route has no handler");
            axum::routing::any(|| async {
                Problem::new(StatusCode::NOT_IMPLEMENTED, "not-implemented", "Not implemented", "no handler").into_response()
            })
        }
    }
}

/// Refuses callers without one of the route's roles: 401 without claims, 403 without role.
async fn authorize(State(roles): State<&'static [Role]>, claims: Result<Claims, ApiError>, request: Request, next: Next) -> Response {
    match claims {
        Err(e) => fail(e),
        Ok(c) if roles.iter().any(|r| c.has(*r)) => next.run(request).await,
        Ok(_) => fail(ApiError(AppError::Forbidden(format!(
            "this route is for: {}",
            roles.iter().map(|r| r.group()).collect::<Vec<_>>().join(", ")
        )))),
    }
}

async fn not_found() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such route").into_response()
}

async fn method_not_allowed() -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this route does not take that method",
    )
    .into_response()
}

/// Turns axum's plain-text 413 into a problem.
async fn problem_for_too_large(request: Request, next: Next) -> Response {
    let res = next.run(request).await;
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Payload too large",
            format!("bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    }
    res
}

/// The router of `function` (or of every API function when `None`), each route guarded
/// by its roles from the topology.
pub fn router(platform: Arc<Platform>, function: Option<&str>) -> Router {
    let mut router = Router::new();
    for route in topology::ROUTES.iter().filter(|r| function.is_none_or(|f| r.function == f)) {
        let handler = handler(route);
        let handler = if route.is_public() {
            handler
        } else {
            handler.route_layer(middleware::from_fn_with_state(route.roles, authorize))
        };
        router = router.route(route.path, handler);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(problem_for_too_large))
        .with_state(platform)
}
