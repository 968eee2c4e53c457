//! The hospital flow's routes, each with its handler and its operation of the OpenAPI
//! document; [`HospitalApi`] is the slice's part of it (the platform adds tags, security,
//! 401 and 403 from [`ROUTES`]).

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::commands::{self as usecase, Decision, Desk, ExamChange, ExamInput, ExamWork, VisitChange, VisitInput};
use super::queries::{self, BoardParams, ExamParams, QueueParams};
use super::view::{ExamResponse, VisitResponse};
use super::visit::VisitStatus;
use super::{CUSTOMER_TEAM, DOCTOR, EXAMINER, RECEPTION_DESK, faults};
use crate::app::queries::{ListParams, Page};
use crate::http::openapi::responses::{
    Conflict, Forbidden, Invalid, Malformed, NotFound, Throttled, TooLarge, Unavailable, UnsupportedMediaType,
};
use crate::http::openapi::{NO_BODY, NoBody};
use crate::http::routes::{Access, AppState, accepted, checked_id, fail, ignored_body, query};
use crate::http::{ApiError, IdempotencyHeader, RequestId, idempotency_key, parse_json};
use crate::topology::{PATIENT, Role, Route};

const ID: &str = "An id (a ULID) this API returned; anything else is not found.";

const DESK: &[Role] = &[RECEPTION_DESK];
const BOARD: &[Role] = &[RECEPTION_DESK, CUSTOMER_TEAM];
const EVERYONE: &[Role] = &[PATIENT, RECEPTION_DESK, DOCTOR, EXAMINER, CUSTOMER_TEAM];
const PATIENTS: &[Role] = &[PATIENT];
const DOCTORS: &[Role] = &[DOCTOR];
const EXAMINERS: &[Role] = &[EXAMINER];
const CLINICIANS: &[Role] = &[DOCTOR, EXAMINER];

/// Every route of the flow.
pub const ROUTES: &[Route] = &[
    route!(Post "/visits", faults::REGISTER, DESK, register),
    route!(Get "/visits", faults::QUERY, BOARD, board),
    route!(Get "/visits/{id}", faults::QUERY, EVERYONE, get_visit),
    route!(Get "/me/visits", faults::QUERY, PATIENTS, my_visits),
    route!(Post "/visits/{id}/cancel", faults::CANCEL, DESK, cancel),
    route!(Post "/visits/{id}/close", faults::CLOSE, DESK, close),
    route!(Get "/doctor/queue", faults::QUERY, DOCTORS, doctor_queue),
    route!(Post "/visits/{id}/start", faults::START, DOCTORS, start),
    route!(Post "/visits/{id}/exams", faults::PRESCRIBE, DOCTORS, prescribe),
    route!(Post "/visits/{id}/review", faults::REVIEW, DOCTORS, review),
    route!(Post "/visits/{id}/complete", faults::COMPLETE, DOCTORS, complete),
    route!(Post "/visits/{id}/refuse", faults::REFUSE, DOCTORS, refuse),
    route!(Get "/exams", faults::QUERY, EXAMINERS, work_list),
    route!(Get "/exams/{id}", faults::QUERY, CLINICIANS, get_exam),
    route!(Post "/exams/{id}/perform", faults::PERFORM, EXAMINERS, perform),
    route!(Post "/exams/{id}/cancel", faults::EXAM_CANCEL, EXAMINERS, cancel_exam),
];

/// The flow's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        description = "Hospital visit: reception registers a visit; the patient joins the department's doctors' queue; a doctor takes \
                        them, prescribes exams that reach the examiners' work list, reviews the results and completes or refuses the \
                        treatment; reception sees the outcome by itself and closes the visit. Each desk keeps working while another is \
                        down."
    ),
    paths(
        register,
        board,
        get_visit,
        my_visits,
        cancel,
        close,
        doctor_queue,
        start,
        prescribe,
        review,
        complete,
        refuse,
        work_list,
        get_exam,
        perform,
        cancel_exam
    )
)]
pub struct HospitalApi;

/// A page of visits.
pub type VisitPage = Page<VisitResponse>;
/// A page of exam orders.
pub type ExamOrderPage = Page<ExamResponse>;

fn json<T: serde::Serialize>(v: T) -> Response {
    axum::Json(v).into_response()
}

/// Register a visit
#[utoipa::path(
    post,
    path = "/visits",
    operation_id = "registerVisit",
    description = "The patient gets an SMS and joins the department's doctors' queue, asynchronously: registration works while \
                   diagnosis is down, and the queue catches up when it recovers. With an `Idempotency-Key`, a retry is answered as \
                   the first request was. Role: `reception`.",
    params(IdempotencyHeader),
    request_body(content = VisitInput, example = json!({"name": "홍길동", "phone": "010-1234-5678", "department": "internal"})),
    responses(
        (status = 201, description = "Registered (status `received`).", body = VisitResponse),
        (status = 400, response = Malformed),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn register(State(p): State<AppState>, access: Access, RequestId(rid): RequestId, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let input: VisitInput = parse_json(&headers, &body)?;
        let idem = idempotency_key(&headers, &body)?;
        Ok::<_, ApiError>(usecase::register(&p, &access.actor(), input, idem, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// The customer team's board: every visit of a day
#[utoipa::path(
    get,
    path = "/visits",
    operation_id = "listVisits",
    description = "Every visit registered on a day (today in Korea by default), newest first, with its current status, by status \
                   and department; no clinical detail. Roles: `reception`, `customer-team`. Unknown query parameters are refused \
                   (422).",
    params(BoardParams),
    responses(
        (status = 200, description = "A page.", body = VisitPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn board(State(p): State<AppState>, q: Result<Query<BoardParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::board(&p, &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// One visit
#[utoipa::path(
    get,
    path = "/visits/{id}",
    operation_id = "getVisit",
    description = "Its status (FHIR Encounter's beside it), department, doctor, exams and timeline. Exam notes and reasons are for \
                   the patient and the clinicians only. Roles: `reception`, `doctor`, `examiner`, `customer-team`; `patient` for a \
                   visit registered with their account (another's is not found).",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    responses(
        (status = 200, description = "The visit.", body = VisitResponse),
        (status = 404, response = NotFound),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn get_visit(State(p): State<AppState>, access: Access, id: Result<Path<String>, PathRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::visit(&p, &access, checked_id(&id)?).await?) };
    run.await.map_or_else(fail, json)
}

/// The caller's visits, newest first
#[utoipa::path(
    get,
    path = "/me/visits",
    operation_id = "listMyVisits",
    description = "The visits reception registered with the caller's account. Role: `patient`. Unknown query parameters are \
                   refused (422).",
    params(("status" = Option<VisitStatus>, Query, description = "Only this status."), ListParams),
    responses(
        (status = 200, description = "A page.", body = VisitPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn my_visits(State(p): State<AppState>, access: Access, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::my_visits(&p, &access.actor(), &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// Cancel a visit at the desk
#[utoipa::path(
    post,
    path = "/visits/{id}/cancel",
    operation_id = "cancelVisit",
    description = "Only before a doctor has taken the patient (409 after): the patient leaves the doctors' queue. Cancelling twice \
                   is harmless. Role: `reception`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Cancelled.", body = VisitChange),
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
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        ignored_body(&headers, &body)?;
        Ok::<_, ApiError>(usecase::at_desk(&p, id, Desk::Cancel, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// Close a visit at the desk
#[utoipa::path(
    post,
    path = "/visits/{id}/close",
    operation_id = "closeVisit",
    description = "Once the treatment is over (`completed` or `refused`; 409 before): paid, left. Closing twice is harmless. Role: \
                   `reception`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Closed.", body = VisitChange),
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
async fn close(
    State(p): State<AppState>,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        ignored_body(&headers, &body)?;
        Ok::<_, ApiError>(usecase::at_desk(&p, id, Desk::Close, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// A department's doctors' queue, first come first
#[utoipa::path(
    get,
    path = "/doctor/queue",
    operation_id = "listDoctorQueue",
    description = "The department's patients waiting for a doctor, oldest first; a patient a doctor took has left it. Role: \
                   `doctor`. Unknown query parameters are refused (422).",
    params(QueueParams),
    responses(
        (status = 200, description = "A page.", body = VisitPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn doctor_queue(State(p): State<AppState>, q: Result<Query<QueueParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::doctor_queue(&p, &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// Take a patient from the queue
#[utoipa::path(
    post,
    path = "/visits/{id}/start",
    operation_id = "startTreatment",
    description = "The caller becomes the patient's doctor (status `in-progress`) and the patient is called in by SMS. Another \
                   doctor's patient or a visit cancelled at reception: 409; a visit diagnosis has not queued (yet): 404. Role: \
                   `doctor`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Taken.", body = VisitChange),
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
async fn start(
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
        Ok::<_, ApiError>(usecase::start(&p, &access.actor(), id, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// Prescribe an exam
#[utoipa::path(
    post,
    path = "/visits/{id}/exams",
    operation_id = "prescribeExam",
    description = "The exam order reaches the examiners' work list asynchronously: prescribing works while examination is down. \
                   An exam of the same kind still to do, or a treatment not under way: 409. Only the patient's doctor (403 for \
                   another). With an `Idempotency-Key`, a retry is answered as the first request was. Role: `doctor`.",
    params(
        ("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID),
        IdempotencyHeader,
    ),
    request_body(content = ExamInput, example = json!({"exam": "blood"})),
    responses(
        (status = 201, description = "Prescribed (status `ordered`).", body = ExamChange),
        (status = 400, response = Malformed),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn prescribe(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        let input: ExamInput = parse_json(&headers, &body)?;
        let idem = idempotency_key(&headers, &body)?;
        Ok::<_, ApiError>(usecase::prescribe(&p, &access.actor(), id, input, idem, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// The exam to review, as the doctor sent it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReviewRequest)]
struct ReviewInput {
    /// The exam order whose result was reviewed.
    #[schema(value_type = String, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    exam_id: Option<String>,
}

/// Review an exam's result
#[utoipa::path(
    post,
    path = "/visits/{id}/review",
    operation_id = "reviewExam",
    description = "The patient's doctor records having read a performed exam's result (409 for an exam not performed or \
                   cancelled). Reviewing twice is harmless. Role: `doctor`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = ReviewInput, example = json!({"exam_id": "01JF3Q4W5E6R7T8Y9U0I1O2P3A"})),
    responses(
        (status = 200, description = "Reviewed.", body = VisitChange),
        (status = 400, response = Malformed),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn review(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        let input: ReviewInput = parse_json(&headers, &body)?;
        let exam_id = usecase::exam_id_field(&input.exam_id)?;
        Ok::<_, ApiError>(usecase::decide(&p, &access.actor(), id, Decision::Review(exam_id), &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// Complete the treatment
#[utoipa::path(
    post,
    path = "/visits/{id}/complete",
    operation_id = "completeTreatment",
    description = "Once every exam is performed or cancelled and every result reviewed (409 before); reception's visit moves to \
                   `completed` by itself. Completing twice is harmless. Only the patient's doctor (403). Role: `doctor`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Completed.", body = VisitChange),
        (status = 400, response = Malformed),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn complete(
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
        Ok::<_, ApiError>(usecase::decide(&p, &access.actor(), id, Decision::Complete, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// Why, as the client sent it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReasonRequest)]
struct ReasonInput {
    /// Why, 1 to 500 characters (never logged, never texted).
    #[schema(value_type = String, min_length = 1, max_length = 500)]
    reason: Option<serde_json::Value>,
}

/// Refuse the treatment
#[utoipa::path(
    post,
    path = "/visits/{id}/refuse",
    operation_id = "refuseTreatment",
    description = "The exams still to do are revoked; reception's visit moves to `refused` by itself. Only the patient's doctor \
                   (403). Role: `doctor`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = ReasonInput, example = json!({"reason": "the patient declined the treatment"})),
    responses(
        (status = 200, description = "Refused.", body = VisitChange),
        (status = 400, response = Malformed),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn refuse(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        let input: ReasonInput = parse_json(&headers, &body)?;
        let reason = usecase::text_field("reason", &input.reason)?;
        Ok::<_, ApiError>(usecase::decide(&p, &access.actor(), id, Decision::Refuse(reason), &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// The examiners' work list, oldest first
#[utoipa::path(
    get,
    path = "/exams",
    operation_id = "listExams",
    description = "The exams to do by default (`status=ordered`), oldest order first. Role: `examiner`. Unknown query parameters \
                   are refused (422).",
    params(ExamParams),
    responses(
        (status = 200, description = "A page.", body = ExamOrderPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn work_list(State(p): State<AppState>, q: Result<Query<ExamParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::work_list(&p, &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// One exam order
#[utoipa::path(
    get,
    path = "/exams/{id}",
    operation_id = "getExam",
    description = "Roles: `examiner`, `doctor`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    responses(
        (status = 200, description = "The exam order.", body = ExamResponse),
        (status = 404, response = NotFound),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn get_exam(State(p): State<AppState>, id: Result<Path<String>, PathRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::exam(&p, checked_id(&id)?).await?) };
    run.await.map_or_else(fail, json)
}

/// The result note, as the examiner sent it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NoteRequest)]
struct NoteInput {
    /// A short result note, 1 to 500 characters (never logged, never texted).
    #[schema(value_type = String, min_length = 1, max_length = 500)]
    note: Option<serde_json::Value>,
}

/// Perform an exam
#[utoipa::path(
    post,
    path = "/exams/{id}/perform",
    operation_id = "performExam",
    description = "Records the result note; the doctor sees it on the visit. A cancelled exam: 409. Performing twice is harmless. \
                   Role: `examiner`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoteInput, example = json!({"note": "within normal limits"})),
    responses(
        (status = 200, description = "Performed.", body = ExamChange),
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
async fn perform(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        let input: NoteInput = parse_json(&headers, &body)?;
        let note = usecase::text_field("note", &input.note)?;
        Ok::<_, ApiError>(usecase::examine(&p, &access.actor(), id, ExamWork::Perform(note), &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// Cancel an exam
#[utoipa::path(
    post,
    path = "/exams/{id}/cancel",
    operation_id = "cancelExam",
    description = "With a reason; the doctor sees it on the visit. A performed exam: 409. Cancelling twice is harmless. Role: \
                   `examiner`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = ReasonInput, example = json!({"reason": "the patient could not fast"})),
    responses(
        (status = 200, description = "Cancelled.", body = ExamChange),
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
async fn cancel_exam(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        let input: ReasonInput = parse_json(&headers, &body)?;
        let reason = usecase::text_field("reason", &input.reason)?;
        Ok::<_, ApiError>(usecase::examine(&p, &access.actor(), id, ExamWork::Cancel(reason), &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}
