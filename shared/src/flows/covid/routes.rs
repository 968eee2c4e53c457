//! The COVID flow's routes, each with its handler and its operation of the OpenAPI
//! document; [`CovidApi`] is the slice's part of it (the platform adds tags, security, 401
//! and 403 from [`ROUTES`]). The certificate key and the verifier are public: anyone holding
//! a QR code verifies it, without an account.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::certificate::Verification;
use super::commands::{
    self as usecase, ApplicationInput, IsolationWork, SiteChange, SiteWork, StayChange, TransferChange, WithdrawalAsked,
};
use super::queries::{self, IsolationBoard, Jwk, SiteQueue};
use super::stay::StayStatus;
use super::transfer::TransferStatus;
use super::view::{CertificateResponse, CovidResponse, Stage, TransferResponse};
use super::{ISOLATION_CENTRE, TEST_SITE, TRANSFER_CENTRE, faults};
use crate::app::AppError;
use crate::app::queries::{ListParams, Page};
use crate::http::openapi::responses::{
    Conflict, Forbidden, Invalid, Malformed, NotFound, Throttled, TooLarge, Unavailable, UnsupportedMediaType,
};
use crate::http::openapi::{NO_BODY, NoBody};
use crate::http::routes::{Access, AppState, accepted, checked_id, fail, ignored_body, query};
use crate::http::{ApiError, IdempotencyHeader, RequestId, idempotency_key, parse_json};
use crate::topology::{PATIENT, Role, Route};

const ID: &str = "An id (a ULID) this API returned; anything else is not found.";

const CITIZENS: &[Role] = &[PATIENT];
const READERS: &[Role] = &[PATIENT, TEST_SITE, TRANSFER_CENTRE, ISOLATION_CENTRE];
const SITE_STAFF: &[Role] = &[TEST_SITE];
const TRANSFER_STAFF: &[Role] = &[TRANSFER_CENTRE];
const ISOLATION_STAFF: &[Role] = &[ISOLATION_CENTRE];
const ANYONE: &[Role] = &[];

/// Every route of the flow.
pub const ROUTES: &[Route] = &[
    route!(Post "/covid/applications", faults::APPLY, CITIZENS, apply),
    route!(Get "/covid/applications", faults::QUERY, CITIZENS, my_applications),
    route!(Get "/covid/applications/{id}", faults::QUERY, READERS, get_application),
    route!(Post "/covid/applications/{id}/withdraw", faults::WITHDRAW, CITIZENS, withdraw),
    route!(Get "/covid/sites/{site}/queue", faults::QUERY, SITE_STAFF, site_queue),
    route!(Post "/covid/applications/{id}/sample", faults::SAMPLE, SITE_STAFF, sample),
    route!(Post "/covid/applications/{id}/result", faults::RESULT, SITE_STAFF, record_result),
    route!(Post "/covid/applications/{id}/noshow", faults::NOSHOW, SITE_STAFF, noshow),
    route!(Get "/covid/certificates/key", faults::CERTIFICATES, ANYONE, certificate_key),
    route!(Post "/covid/certificates/verify", faults::CERTIFICATES, ANYONE, verify_certificate),
    route!(Get "/covid/certificates/{id}", faults::QUERY, CITIZENS, get_certificate),
    route!(Get "/covid/transfers", faults::QUERY, TRANSFER_STAFF, transfers),
    route!(Post "/covid/transfers/{id}/dispatch", faults::DISPATCH, TRANSFER_STAFF, dispatch),
    route!(Get "/covid/isolation/{centre}", faults::QUERY, ISOLATION_STAFF, isolation_centre),
    route!(Post "/covid/isolation/{id}/admit", faults::ADMIT, ISOLATION_STAFF, admit),
    route!(Post "/covid/isolation/{id}/release", faults::RELEASE, ISOLATION_STAFF, release),
];

/// The flow's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        description = "COVID testing: a citizen applies to the health centre at any hour; the application reaches the test site's \
                        waiting list; the site takes the sample and records the result; a negative result gets a signed certificate \
                        anyone can verify offline, a positive one a transfer to an isolation centre with a free bed, which admits and \
                        later releases the citizen. Every centre hears the others by events only."
    ),
    paths(
        apply,
        my_applications,
        get_application,
        withdraw,
        site_queue,
        sample,
        record_result,
        noshow,
        certificate_key,
        verify_certificate,
        get_certificate,
        transfers,
        dispatch,
        isolation_centre,
        admit,
        release
    )
)]
pub struct CovidApi;

/// A page of applications.
pub type CovidApplicationPage = Page<CovidResponse>;
/// A page of transfers.
pub type CovidTransferPage = Page<TransferResponse>;

fn json<T: serde::Serialize>(v: T) -> Response {
    axum::Json(v).into_response()
}

/// A site or centre id from the path: anything that is not text cannot exist.
fn place(raw: &Result<Path<String>, PathRejection>) -> Result<&str, ApiError> {
    match raw {
        Ok(Path(p)) => Ok(p),
        Err(_) => Err(ApiError(AppError::NotFound)),
    }
}

/// Apply for a test
#[utoipa::path(
    post,
    path = "/covid/applications",
    operation_id = "applyForCovidTest",
    description = "Taken at any hour, whether the test site is open or not: the application reaches the site's waiting list \
                   asynchronously, and the citizen gets an SMS. With an `Idempotency-Key`, a retry is answered as the first request \
                   was. Role: `patient`.",
    params(IdempotencyHeader),
    request_body(content = ApplicationInput, example = json!({"site": "mapo", "date": "2027-03-02", "name": "김서연", "phone": "010-1234-5678"})),
    responses(
        (status = 201, description = "Applied (status `applied`).", body = CovidResponse),
        (status = 400, response = Malformed),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn apply(State(p): State<AppState>, access: Access, RequestId(rid): RequestId, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let input: ApplicationInput = parse_json(&headers, &body)?;
        let idem = idempotency_key(&headers, &body)?;
        Ok::<_, ApiError>(usecase::apply(&p, &access.actor(), input, idem, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// The caller's applications, newest first
#[utoipa::path(
    get,
    path = "/covid/applications",
    operation_id = "listMyCovidApplications",
    description = "The caller's own applications, with their results (CQRS: answered from the status view, whatever the centres \
                   are doing). Role: `patient`. Unknown query parameters are refused (422).",
    params(("status" = Option<Stage>, Query, description = "Only this stage."), ListParams),
    responses(
        (status = 200, description = "A page.", body = CovidApplicationPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn my_applications(State(p): State<AppState>, access: Access, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::my_applications(&p, &access.actor(), &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// One application
#[utoipa::path(
    get,
    path = "/covid/applications/{id}",
    operation_id = "getCovidApplication",
    description = "Its stage, site, result once known, certificate once issued, transfer and isolation, and timeline. Roles: \
                   `patient` (their own), `test-site` (their site's), `transfer-centre` (once a transfer is asked for), \
                   `isolation-centre` (the citizens dispatched to their centre); any other is not found.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    responses(
        (status = 200, description = "The application.", body = CovidResponse),
        (status = 404, response = NotFound),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn get_application(State(p): State<AppState>, access: Access, id: Result<Path<String>, PathRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::application(&p, &access, checked_id(&id)?).await?) };
    run.await.map_or_else(fail, json)
}

/// Withdraw an application before the test
#[utoipa::path(
    post,
    path = "/covid/applications/{id}/withdraw",
    operation_id = "withdrawCovidApplication",
    description = "The test site decides, since only it knows whether the sample was taken: 202, and the application's view shows \
                   `withdrawn` (the site's waiting count drops) or the withdrawal `refused`. Once the health centre knows of the \
                   sample: 409. Asking twice is harmless. Role: `patient` (their own; another's is not found).",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 202, description = "Asked; the site decides.", body = WithdrawalAsked),
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
async fn withdraw(
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
        Ok::<_, ApiError>(usecase::withdraw(&p, &access.actor(), id, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// A test site's waiting list, with its count
#[utoipa::path(
    get,
    path = "/covid/sites/{site}/queue",
    operation_id = "getCovidSiteQueue",
    description = "The applications waiting at the site, oldest first, and `waiting`, the site's count. An unknown site: 422 \
                   listing the known ones; another site than the caller's (`custom:site`): 403. Role: `test-site`.",
    params(
        ("site" = String, Path, description = "A test site id (`COVID_TEST_SITES`)."),
        ListParams,
    ),
    responses(
        (status = 200, description = "The waiting list.", body = SiteQueue),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn site_queue(
    State(p): State<AppState>,
    access: Access,
    site: Result<Path<String>, PathRejection>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let run = async { Ok::<_, ApiError>(queries::site_queue(&p, &access, place(&site)?, &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// The result, as the site staff sent it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CovidResultRequest)]
struct ResultInput {
    /// `negative` or `positive` (never logged, never texted).
    #[schema(value_type = String, example = "negative")]
    result: Option<serde_json::Value>,
}

async fn at_site(
    p: &AppState,
    access: &Access,
    rid: &str,
    id: &Result<Path<String>, PathRejection>,
    work: SiteWork,
) -> Result<axum::response::Response, ApiError> {
    let id = checked_id(id)?;
    Ok(accepted(
        usecase::at_site(p, &access.actor(), access.claims.site.as_deref(), id, work, rid).await?,
    ))
}

/// Record that the sample was taken
#[utoipa::path(
    post,
    path = "/covid/applications/{id}/sample",
    operation_id = "takeCovidSample",
    description = "The citizen leaves the waiting list (the count drops). Another site's application, or one the site has not \
                   heard of (yet): 404; a caller whose account names no test site: 403; a withdrawn one or a no-show: 409. Twice \
                   is harmless. Role: `test-site`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Sampled.", body = SiteChange),
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
async fn sample(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        ignored_body(&headers, &body)?;
        at_site(&p, &access, &rid, &id, SiteWork::Sample).await
    };
    run.await.unwrap_or_else(fail)
}

/// Record the result
#[utoipa::path(
    post,
    path = "/covid/applications/{id}/result",
    operation_id = "recordCovidResult",
    description = "Negative: the health centre issues a signed certificate; positive: it asks the transfer centre for a transfer. \
                   Before the sample: 409; another result already recorded: 409; the same again is harmless. Another site's \
                   application: 404. Role: `test-site`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = ResultInput, example = json!({"result": "negative"})),
    responses(
        (status = 200, description = "Recorded.", body = SiteChange),
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
async fn record_result(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let input: ResultInput = parse_json(&headers, &body)?;
        let result = usecase::result_field(&input.result)?;
        at_site(&p, &access, &rid, &id, SiteWork::Record(result)).await
    };
    run.await.unwrap_or_else(fail)
}

/// Mark a no-show
#[utoipa::path(
    post,
    path = "/covid/applications/{id}/noshow",
    operation_id = "markCovidNoShow",
    description = "At the end of the day, for a citizen who did not come: they leave the waiting list (the count drops; until \
                   then it stays). Sampled or withdrawn: 409. Twice is harmless. Another site's application: 404. Role: \
                   `test-site`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Marked.", body = SiteChange),
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
async fn noshow(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        ignored_body(&headers, &body)?;
        at_site(&p, &access, &rid, &id, SiteWork::Noshow).await
    };
    run.await.unwrap_or_else(fail)
}

/// The key that verifies certificates (public)
#[utoipa::path(
    get,
    path = "/covid/certificates/key",
    operation_id = "getCovidCertificateKey",
    description = "The health centre's public key, a P-256 JWK (`alg` ES256) whose `kid` the certificates' COSE header names: \
                   with it, anyone verifies a certificate offline. No token needed.",
    responses(
        (status = 200, description = "The key (JWK).", body = Jwk),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn certificate_key(State(p): State<AppState>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::public_key(&p).await?) };
    run.await.map_or_else(fail, json)
}

/// A payload to verify, as presented.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CovidVerifyRequest)]
struct VerifyInput {
    /// A certificate's QR payload (`CF1:` and Base45), 1 to 4096 characters.
    #[schema(value_type = String, min_length = 1, max_length = 4096)]
    payload: Option<serde_json::Value>,
}

/// Verify a certificate (public)
#[utoipa::path(
    post,
    path = "/covid/certificates/verify",
    operation_id = "verifyCovidCertificate",
    description = "Whether a presented QR payload is a certificate this health centre signed and still holds: `valid`, with the \
                   holder, result and expiry; or `valid: false` and why (`expired`, `bad signature` for an altered one, `unknown \
                   key` for another issuer's, `not a certificate`), all `200`. A body that is no payload: 422. No token needed.",
    request_body(content = VerifyInput, example = json!({"payload": "CF1:6BF…"})),
    responses(
        (status = 200, description = "The verdict.", body = Verification),
        (status = 400, response = Malformed),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn verify_certificate(State(p): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let input: VerifyInput = parse_json(&headers, &body)?;
        let invalid = |detail: &str| ApiError(AppError::Invalid(vec![crate::domain::FieldError::new("payload", detail)]));
        let payload = match input.payload {
            Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 4096 => s,
            Some(serde_json::Value::String(_)) => return Err(invalid("must be 1 to 4096 characters")),
            None | Some(serde_json::Value::Null) => return Err(invalid("is required")),
            Some(_) => return Err(invalid("must be a string: the QR code's content")),
        };
        Ok::<_, ApiError>(queries::verify(&p, &payload).await?)
    };
    run.await.map_or_else(fail, json)
}

/// One certificate, with its QR payload
#[utoipa::path(
    get,
    path = "/covid/certificates/{id}",
    operation_id = "getCovidCertificate",
    description = "The certificate of a negative test and its QR payload. Role: `patient` (their own; another's is not found).",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    responses(
        (status = 200, description = "The certificate.", body = CertificateResponse),
        (status = 404, response = NotFound),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn get_certificate(State(p): State<AppState>, access: Access, id: Result<Path<String>, PathRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::certificate(&p, &access.actor(), checked_id(&id)?).await?) };
    run.await.map_or_else(fail, json)
}

/// The transfer centre's requests
#[utoipa::path(
    get,
    path = "/covid/transfers",
    operation_id = "listCovidTransfers",
    description = "Transfers by status, oldest first: `requested` (the default: to dispatch), `dispatched` or `closed`. Role: \
                   `transfer-centre`. Unknown query parameters are refused (422).",
    params(("status" = Option<TransferStatus>, Query, description = "Only this status (default `requested`)."), ListParams),
    responses(
        (status = 200, description = "A page.", body = CovidTransferPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn transfers(State(p): State<AppState>, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::transfers(&p, &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// The isolation centre, as the dispatcher sent it.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CovidDispatchRequest)]
struct DispatchInput {
    /// An isolation centre id (`COVID_ISOLATION_CENTRES`).
    #[schema(value_type = String, example = "incheon")]
    isolation_centre: Option<serde_json::Value>,
}

/// Dispatch a citizen to an isolation centre
#[utoipa::path(
    post,
    path = "/covid/transfers/{id}/dispatch",
    operation_id = "dispatchCovidTransfer",
    description = "Takes a bed at the centre in the same transaction: racing dispatches never put a centre over its beds (409 once \
                   it is full). The centre hears of it asynchronously and the citizen gets an SMS. A transfer the centre has not \
                   heard of (yet): 404; dispatched elsewhere or closed: 409; the same dispatch again is harmless. An unknown centre: \
                   422 listing the known ones. Role: `transfer-centre`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = DispatchInput, example = json!({"isolation_centre": "incheon"})),
    responses(
        (status = 200, description = "Dispatched.", body = TransferChange),
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
async fn dispatch(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        let input: DispatchInput = parse_json(&headers, &body)?;
        let centre = usecase::centre_field(&input.isolation_centre)?;
        Ok::<_, ApiError>(usecase::dispatch(&p, &access.actor(), id, &centre, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// An isolation centre's occupants and free beds
#[utoipa::path(
    get,
    path = "/covid/isolation/{centre}",
    operation_id = "getCovidIsolationCentre",
    description = "The centre's beds, its free beds, and its stays by status, oldest first: `isolated` (the default), `assigned` \
                   (dispatched, not arrived) or `released`. An unknown centre: 422 listing the known ones; another centre than the \
                   caller's (`custom:site`): 403. Role: `isolation-centre`.",
    params(
        ("centre" = String, Path, description = "An isolation centre id (`COVID_ISOLATION_CENTRES`)."),
        ("status" = Option<StayStatus>, Query, description = "Only this status (default `isolated`)."),
        ListParams,
    ),
    responses(
        (status = 200, description = "The centre.", body = IsolationBoard),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn isolation_centre(
    State(p): State<AppState>,
    access: Access,
    centre: Result<Path<String>, PathRejection>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let run = async { Ok::<_, ApiError>(queries::isolation(&p, &access, place(&centre)?, &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

async fn at_isolation(
    p: &AppState,
    access: &Access,
    rid: &str,
    id: &Result<Path<String>, PathRejection>,
    work: IsolationWork,
) -> Result<Response, ApiError> {
    let id = checked_id(id)?;
    Ok(accepted(
        usecase::at_isolation(p, &access.actor(), access.claims.site.as_deref(), id, work, rid).await?,
    ))
}

/// Admit a dispatched citizen
#[utoipa::path(
    post,
    path = "/covid/isolation/{id}/admit",
    operation_id = "admitToIsolation",
    description = "The citizen is in isolation. Before the dispatch reached the centre: 409; another centre's citizen: 404; \
                   released: 409. Twice is harmless. Role: `isolation-centre`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Admitted.", body = StayChange),
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
async fn admit(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        ignored_body(&headers, &body)?;
        at_isolation(&p, &access, &rid, &id, IsolationWork::Admit).await
    };
    run.await.unwrap_or_else(fail)
}

/// Release a citizen from isolation
#[utoipa::path(
    post,
    path = "/covid/isolation/{id}/release",
    operation_id = "releaseFromIsolation",
    description = "The citizen is released and gets an SMS (a citizen dispatched here who never arrived: the stay ends \
                   without isolation); the bed is freed, once, when the transfer centre hears of it. Another centre's citizen: 404. \
                   Twice is harmless. Role: `isolation-centre`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Released.", body = StayChange),
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
async fn release(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        ignored_body(&headers, &body)?;
        at_isolation(&p, &access, &rid, &id, IsolationWork::Release).await
    };
    run.await.unwrap_or_else(fail)
}
