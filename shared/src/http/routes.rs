//! The API's handlers and the routers built from `topology::ROUTES`: a function's router
//! serves only its own routes, the local gateway's serves them all. `GET /openapi.json`
//! serves `docs/openapi.json`, the API's description, compiled in.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
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

/// The OpenAPI 3.1 document of the whole API (`docs/openapi.json`), served at
/// [`topology::OPENAPI_PATH`].
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

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

/// Ids are ULIDs; anything else (including a path segment that is not UTF-8 once
/// percent-decoded) cannot exist.
fn checked_id(id: &Result<Path<String>, PathRejection>) -> Result<&str, ApiError> {
    match id {
        Ok(Path(id)) if id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(id),
        _ => Err(ApiError(AppError::NotFound)),
    }
}

/// The body of a command that takes no fields: none at all, or a JSON object whose fields
/// are ignored. Any other body is refused as any body is (415 not JSON, 400 broken, 413
/// too large, 422 not an object or not Unicode), so that a command never runs on a body it
/// could not read.
fn ignored_body(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    parse_json::<serde_json::Map<String, serde_json::Value>>(headers, body).map(drop)
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

async fn cancel(
    State(p): State<AppState>,
    claims: Claims,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        ignored_body(&headers, &body)?;
        Ok::<_, ApiError>(usecase::cancel(&p, &claims.actor(), id, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

async fn get_checkup(State(p): State<AppState>, claims: Claims, id: Result<Path<String>, PathRejection>) -> Response {
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

async fn confirm(
    State(p): State<AppState>,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        ignored_body(&headers, &body)?;
        Ok::<_, ApiError>(usecase::decide_as_centre(&p, id, CentreDecision::Confirm, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectInput {
    reason: Option<String>,
}

async fn reject(
    State(p): State<AppState>,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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

/// The API's OpenAPI document (public).
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// The handler of a catalogued route.
fn handler(route: &Route) -> MethodRouter<AppState> {
    match (route.method, route.path) {
        (Method::Get, topology::HEALTH_PATH) => get(health),
        (Method::Get, topology::OPENAPI_PATH) => get(openapi),
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

/// Turns axum's own plain-text rejections (413 from the body limit, and any other error
/// an extractor answers by itself) into problems, so that every error is problem+json.
async fn problems_only(request: Request, next: Next) -> Response {
    let res = next.run(request).await;
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(super::PROBLEM_JSON.as_bytes()));
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "Payload too large",
            format!("bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    }
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let (slug, title) = if status.is_client_error() {
        ("malformed", "Malformed request")
    } else {
        ("internal", "Internal error")
    };
    tracing::warn!(status = status.as_u16(), "a rejection answered outside the handlers, as a problem");
    Problem::new(status, slug, title, status.canonical_reason().unwrap_or("error").to_lowercase()).into_response()
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
        .layer(middleware::from_fn(problems_only))
        .with_state(platform)
}
