//! The check-up flow's routes, each with its handler: book, cancel, one booking, my
//! bookings, and the centre's work list with its confirm and reject.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::on;

use super::commands::{self as usecase, BookInput, CentreDecision};
use super::domain::parse_reason;
use super::{CENTRE, faults, queries};
use crate::app::AppError;
use crate::app::command::IdempotencyKey;
use crate::app::queries::ListParams;
use crate::domain::FieldError;
use crate::http::routes::{Access, AppState, accepted, checked_id, fail, ignored_body, query};
use crate::http::{ApiError, RequestId, parse_json};
use crate::topology::{Method, PATIENT, Role, Route};

const PATIENT_ONLY: &[Role] = &[PATIENT];
const CENTRE_ONLY: &[Role] = &[CENTRE];
const PATIENT_OR_CENTRE: &[Role] = &[PATIENT, CENTRE];

/// Every route of the flow.
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::Post,
        path: "/checkups",
        function: faults::BOOK,
        roles: PATIENT_ONLY,
        handler: |m| on(m, book),
    },
    Route {
        method: Method::Get,
        path: "/checkups",
        function: faults::QUERY,
        roles: PATIENT_ONLY,
        handler: |m| on(m, my_checkups),
    },
    Route {
        method: Method::Get,
        path: "/checkups/{id}",
        function: faults::QUERY,
        roles: PATIENT_OR_CENTRE,
        handler: |m| on(m, get_checkup),
    },
    Route {
        method: Method::Post,
        path: "/checkups/{id}/cancel",
        function: faults::CANCEL,
        roles: PATIENT_ONLY,
        handler: |m| on(m, cancel),
    },
    Route {
        method: Method::Get,
        path: "/centre/checkups",
        function: faults::QUERY,
        roles: CENTRE_ONLY,
        handler: |m| on(m, centre_checkups),
    },
    Route {
        method: Method::Post,
        path: "/centre/checkups/{id}/confirm",
        function: faults::CONFIRM,
        roles: CENTRE_ONLY,
        handler: |m| on(m, confirm),
    },
    Route {
        method: Method::Post,
        path: "/centre/checkups/{id}/reject",
        function: faults::REJECT,
        roles: CENTRE_ONLY,
        handler: |m| on(m, reject),
    },
];

async fn book(State(p): State<AppState>, access: Access, RequestId(rid): RequestId, headers: HeaderMap, body: Bytes) -> Response {
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
        Ok::<_, ApiError>(usecase::book(&p, &access.actor(), input, idem, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

async fn cancel(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        ignored_body(&headers, &body)?;
        Ok::<_, ApiError>(usecase::cancel(&p, &access.actor(), id, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

async fn get_checkup(State(p): State<AppState>, access: Access, id: Result<Path<String>, PathRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::checkup(&p, &access, checked_id(&id)?).await?) };
    run.await.map_or_else(fail, |v| axum::Json(v).into_response())
}

async fn my_checkups(State(p): State<AppState>, access: Access, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::my_checkups(&p, &access.actor(), &query(q)?).await?) };
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
