//! The routers built from the catalog's routes, each route with its handler and guarded by
//! its roles: a function's router serves only its own routes, the local gateway's serves
//! them all. Here too: what handlers share (answers, ids, bodies, query strings, the
//! caller's access), and the platform's public routes, the health check and
//! `GET /openapi.json` (the document generated from the catalog, [`super::openapi`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};

use super::{ApiError, Claims, Problem, parse_json, problem_of};
use crate::app::command::Accepted;
use crate::app::resilience::BreakerState;
use crate::app::{AppError, Platform};
use crate::domain::FieldError;
use crate::topology::{Role, Scope};

/// Largest request body accepted (413 beyond).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The state every handler gets: the platform.
pub type AppState = Arc<Platform>;

/// A command's answer as a response: its status, body and `Location`.
pub fn accepted(a: Accepted) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let mut res = (status, axum::Json(a.body)).into_response();
    if let Some(loc) = a.location.and_then(|l| l.parse().ok()) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    res
}

/// An error as its problem response.
pub fn fail(e: ApiError) -> Response {
    problem_of(e).into_response()
}

/// Ids are ULIDs; anything else (including a path segment that is not UTF-8 once
/// percent-decoded) cannot exist.
pub fn checked_id(id: &Result<Path<String>, PathRejection>) -> Result<&str, ApiError> {
    match id {
        Ok(Path(id)) if id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(id),
        _ => Err(ApiError(AppError::NotFound)),
    }
}

/// The body of a command that takes no fields: none at all, or a JSON object whose fields
/// are ignored. Any other body is refused as any body is (415 not JSON, 400 broken, 413
/// too large, 422 not an object or not Unicode), so that a command never runs on a body it
/// could not read.
pub fn ignored_body(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    parse_json::<serde_json::Map<String, serde_json::Value>>(headers, body).map(drop)
}

/// A query string parsed into `T`, or a 422 naming the parameter at fault.
pub fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
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

/// The health check (public): the process answers, and the state of its payment circuit.
pub fn health(method: MethodFilter) -> MethodRouter<AppState> {
    on(method, health_handler)
}

/// What the health check answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(description = "The process answers (`ok`), with the payment provider's circuit breaker as this process sees it.")]
pub struct Health {
    /// Always `ok`: the process answers.
    #[schema(schema_with = super::openapi::ok)]
    pub status: &'static str,
    // The payment provider's circuit breaker as this process sees it (described by its
    // type: a field's description would wrap the inlined schema in a `oneOf`).
    #[schema(inline)]
    pub payment_circuit: BreakerState,
}

/// Health check (public)
///
/// The process answers, with the state of its payment circuit. No token needed.
#[utoipa::path(
    get,
    path = crate::topology::HEALTH_PATH,
    operation_id = "health",
    responses((status = 200, description = "Up.", body = Health)),
)]
pub(crate) async fn health_handler(State(p): State<AppState>) -> Response {
    axum::Json(Health {
        status: "ok",
        payment_circuit: p.payments.state(),
    })
    .into_response()
}

/// The API's OpenAPI document (public).
pub fn openapi(method: MethodFilter) -> MethodRouter<AppState> {
    on(method, openapi_handler)
}

/// This document (public)
#[utoipa::path(
    get,
    path = crate::topology::OPENAPI_PATH,
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI document.", body = super::openapi::OpenApiDocument)),
)]
pub(crate) async fn openapi_handler(State(p): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], p.catalog.openapi_json()).into_response()
}

/// What the caller may see on this route: the widest [`Scope`] among their roles that the
/// route allows. Handlers check ownership against it (an `Own` caller sees only their own
/// cases, as if no other existed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The caller.
    pub claims: Claims,
    /// Their widest scope here.
    pub scope: Scope,
}

impl Access {
    /// May the caller see a case owned by `owner`? Staff of the flow see every case; a
    /// person, their own. A caller who sees only what is assigned to them sees no case by
    /// ownership: the handler asks [`Access::assigned`] with the case's assignee.
    pub fn sees(&self, owner: &str) -> bool {
        match self.scope {
            Scope::Flow => true,
            Scope::Own => self.claims.sub == owner,
            Scope::Assigned => false,
        }
    }

    /// May the caller act on a case assigned to `assignee` (a doctor's patient, a test
    /// site's application)? Staff of the flow may; an assigned caller only on their own.
    pub fn assigned(&self, assignee: &str) -> bool {
        match self.scope {
            Scope::Flow => true,
            Scope::Assigned => self.claims.sub == assignee,
            Scope::Own => false,
        }
    }

    /// The caller as a domain actor.
    pub fn actor(&self) -> crate::domain::Actor {
        self.claims.actor()
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Access>().cloned().ok_or(ApiError(AppError::Unauthorized))
    }
}

/// Refuses callers without one of the route's roles: 401 without claims, 403 without role.
/// Lets the others through with their [`Access`].
async fn authorize(State(roles): State<&'static [Role]>, claims: Result<Claims, ApiError>, mut request: Request, next: Next) -> Response {
    match claims {
        Err(e) => fail(e),
        Ok(c) => match roles.iter().filter(|r| c.has(**r)).map(|r| r.scope).max() {
            Some(scope) => {
                request.extensions_mut().insert(Access { claims: c, scope });
                next.run(request).await
            }
            None => fail(ApiError(AppError::Forbidden(format!(
                "this route is for: {}",
                roles.iter().map(|r| r.group()).collect::<Vec<_>>().join(", ")
            )))),
        },
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
/// by its roles from the catalog.
pub fn router(platform: Arc<Platform>, function: Option<&str>) -> Router {
    let mut router = Router::new();
    for route in platform.catalog.routes.iter().filter(|r| function.is_none_or(|f| r.function == f)) {
        let handler = (route.handler)(route.method.filter());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn access(sub: &str, scope: Scope) -> Access {
        Access {
            claims: Claims {
                sub: sub.into(),
                groups: vec![],
                site: None,
            },
            scope,
        }
    }

    #[test]
    fn each_scope_sees_what_it_should_and_nothing_more() {
        let person = access("p1", Scope::Own);
        assert!(person.sees("p1") && !person.sees("p2"));
        assert!(!person.assigned("p1"));
        let doctor = access("d1", Scope::Assigned);
        assert!(doctor.assigned("d1") && !doctor.assigned("d2"));
        assert!(!doctor.sees("p1"), "an assigned caller sees no case by ownership");
        let staff = access("s1", Scope::Flow);
        assert!(staff.sees("p1") && staff.assigned("d1"));
    }
}
