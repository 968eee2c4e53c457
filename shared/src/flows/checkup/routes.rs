//! The check-up flow's routes, each with its handler: book, cancel, one booking, my
//! bookings, and the centre's work list with its confirm and reject. Each handler carries its
//! operation of the OpenAPI document (`#[utoipa::path]`), and [`openapi`] is the slice's part
//! of it; the platform adds each operation's tags, security, 401 and 403 from [`ROUTES`].

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::on;

use super::commands::{self as usecase, BookInput, CentreDecision, CommandResult};
use super::domain::{BookingStatus, parse_reason};
use super::view::CheckupResponse;
use super::{CENTRE, faults, queries};
use crate::app::AppError;
use crate::app::queries::{ListParams, Page};
use crate::domain::FieldError;
use crate::http::openapi::responses::{
    Conflict, Invalid, Malformed, NotFound, PaymentDeclined, Throttled, TooLarge, Unavailable, UnsupportedMediaType,
};
use crate::http::openapi::{NO_BODY, NoBody};
use crate::http::routes::{Access, AppState, accepted, checked_id, fail, ignored_body, query};
use crate::http::{ApiError, IdempotencyHeader, RequestId, idempotency_key, parse_json};
use crate::topology::{Method, PATIENT, Role, Route};

/// The description of the `id` path parameter.
const ID: &str = "The booking id (a ULID); anything else is not found.";

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

/// The flow's part of the OpenAPI document: the operations, and the schemas they use (which
/// utoipa collects from them).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        description = "Health check-up booking: patients book, pay, cancel and follow their status; the check-up centre confirms or \
                        rejects."
    ),
    paths(book, my_checkups, get_checkup, cancel, centre_checkups, confirm, reject)
)]
pub struct CheckupApi;

/// A page of the status views.
pub type CheckupPage = Page<CheckupResponse>;

// The `Location` of a booking's status view, `/checkups/{id}`: the schema of the header.
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^/checkups/[0-9A-Za-z]{26}$")]
#[allow(dead_code)]
struct ViewLocation(String);

/// Book and pay a check-up
#[utoipa::path(
    post,
    path = "/checkups",
    operation_id = "bookCheckup",
    description = "Takes the payment first; booking, payment, place and events are then stored in one transaction. With an \
                   `Idempotency-Key`, a retry of the same request is answered as the first one was (and never charges twice); the \
                   same key with another body is refused (422). Role: `patient`.",
    params(IdempotencyHeader),
    request_body(
        content = BookInput,
        example = json!({"date": "2027-06-01", "package": "basic", "name": "홍길동", "phone": "010-1234-5678", "card_token": "tok_ok"})
    ),
    responses(
        (
            status = 201,
            description = "Booked and paid (or the replay of the first answer to this `Idempotency-Key`).",
            body = CheckupResponse,
            headers(("Location" = inline(ViewLocation), description = "The booking's status view, `/checkups/{id}`."))
        ),
        (status = 400, response = Malformed),
        (status = 402, response = PaymentDeclined),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn book(State(p): State<AppState>, access: Access, RequestId(rid): RequestId, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let input: BookInput = parse_json(&headers, &body)?;
        let idem = idempotency_key(&headers, &body)?;
        Ok::<_, ApiError>(usecase::book(&p, &access.actor(), input, idem, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// Cancel the caller's booking
#[utoipa::path(
    post,
    path = "/checkups/{id}/cancel",
    operation_id = "cancelCheckup",
    description = "The place is released and the payment refunded asynchronously. Cancelling twice is harmless (202 again). Role: \
                   `patient`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (
            status = 202,
            description = "Cancelled; the refund follows.",
            body = CommandResult,
            headers(("Location" = inline(ViewLocation), description = "The booking's status view, `/checkups/{id}`."))
        ),
        (status = 400, response = Malformed),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
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

/// One booking's status view
#[utoipa::path(
    get,
    path = "/checkups/{id}",
    operation_id = "getCheckup",
    description = "Roles: `patient` (their own bookings only) and `centre`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    responses(
        (status = 200, description = "The status view.", body = CheckupResponse),
        (status = 404, response = NotFound),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn get_checkup(State(p): State<AppState>, access: Access, id: Result<Path<String>, PathRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::checkup(&p, &access, checked_id(&id)?).await?) };
    run.await.map_or_else(fail, |v| axum::Json(v).into_response())
}

/// The caller's own bookings, newest first
#[utoipa::path(
    get,
    path = "/checkups",
    operation_id = "listMyCheckups",
    description = "Role: `patient`. Unknown query parameters are refused (422).",
    params(ListParams),
    responses(
        (status = 200, description = "A page.", body = CheckupPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn my_checkups(State(p): State<AppState>, access: Access, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::my_checkups(&p, &access.actor(), &query(q)?).await?) };
    run.await.map_or_else(fail, |v| axum::Json(v).into_response())
}

/// The centre's work list, newest first
#[utoipa::path(
    get,
    path = "/centre/checkups",
    operation_id = "listCentreCheckups",
    description = "Role: `centre`. Unknown query parameters are refused (422).",
    params(
        ("date" = Option<chrono::NaiveDate>, Query, description = "Only this date."),
        ("status" = Option<BookingStatus>, Query, description = "Only this booking status."),
        ListParams,
    ),
    responses(
        (status = 200, description = "A page.", body = CheckupPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn centre_checkups(State(p): State<AppState>, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::centre_list(&p, &query(q)?).await?) };
    run.await.map_or_else(fail, |v| axum::Json(v).into_response())
}

/// Confirm a booking
#[utoipa::path(
    post,
    path = "/centre/checkups/{id}/confirm",
    operation_id = "confirmCheckup",
    description = "Confirming twice is harmless; confirming a cancelled or rejected booking is a conflict. Role: `centre`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Confirmed.", body = CommandResult),
        (status = 400, response = Malformed),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
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

/// The centre's rejection as the client sent it, before validation.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RejectRequest)]
struct RejectInput {
    /// Why, for the patient: 1 to 500 characters after trimming, no control characters but newlines.
    #[schema(value_type = String, min_length = 1, max_length = 500)]
    reason: Option<String>,
}

/// Reject a booking
#[utoipa::path(
    post,
    path = "/centre/checkups/{id}/reject",
    operation_id = "rejectCheckup",
    description = "The place is released and the payment refunded asynchronously. Rejecting twice is harmless; rejecting a confirmed \
                   or cancelled booking is a conflict. Role: `centre`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = RejectInput, example = json!({"reason": "the centre is closed that day"})),
    responses(
        (status = 200, description = "Rejected; the refund follows.", body = CommandResult),
        (status = 400, response = Malformed),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
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
