//! The vaccine flow's routes, each with its handler and its operation of the OpenAPI
//! document; [`VaccineApi`] is the slice's part of it (the platform adds tags, security,
//! 401 and 403 from [`ROUTES`]).

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::commands::{self as usecase, CommandResult, Outcome, ReserveInput, SlotChange, SlotInput, SubscribeInput, WaitlistInput};
use super::queries::{self, SlotParams, SlotResponse};
use super::reservation::ReservationStatus;
use super::view::{AlertResponse, ReservationResponse};
use super::{VACCINE_ADMIN, faults};
use crate::app::AppError;
use crate::app::queries::{ListParams, Page};
use crate::domain::FieldError;
use crate::http::openapi::responses::{
    Conflict, Gone, Invalid, Malformed, NotFound, Throttled, TooLarge, Unavailable, UnsupportedMediaType,
};
use crate::http::openapi::{NO_BODY, NoBody};
use crate::http::routes::{Access, AppState, accepted, checked_id, fail, ignored_body, query};
use crate::http::{ApiError, IdempotencyHeader, RequestId, idempotency_key, parse_json};
use crate::topology::{PATIENT, Role, Route};

const ID: &str = "An id (a ULID) this API returned; anything else is not found.";

const PATIENT_ONLY: &[Role] = &[PATIENT];
const ADMIN_ONLY: &[Role] = &[VACCINE_ADMIN];
const ANYONE: &[Role] = &[PATIENT, VACCINE_ADMIN];

/// Every route of the flow.
pub const ROUTES: &[Route] = &[
    route!(Post "/vaccine/slots", faults::SLOT_OPEN, ADMIN_ONLY, open_slot),
    route!(Get "/vaccine/slots", faults::QUERY, ANYONE, list_slots),
    route!(Get "/vaccine/slots/{id}", faults::QUERY, ANYONE, get_slot),
    route!(Post "/vaccine/slots/{id}/doses", faults::SLOT_DOSES, ADMIN_ONLY, add_doses),
    route!(Post "/vaccine/slots/{id}/close", faults::SLOT_CLOSE, ADMIN_ONLY, close_slot),
    route!(Get "/vaccine/slots/{id}/reservations", faults::QUERY, ADMIN_ONLY, slot_reservations),
    route!(Post "/vaccine/slots/{id}/waitlist", faults::WAITLIST, PATIENT_ONLY, join_waitlist),
    route!(Post "/vaccine/subscriptions", faults::SUBSCRIBE, PATIENT_ONLY, subscribe),
    route!(Get "/vaccine/subscriptions", faults::QUERY, PATIENT_ONLY, my_subscriptions),
    route!(Delete "/vaccine/subscriptions/{id}", faults::SUBSCRIBE, PATIENT_ONLY, unsubscribe),
    route!(Post "/vaccine/reservations", faults::RESERVE, PATIENT_ONLY, reserve),
    route!(Get "/vaccine/reservations", faults::QUERY, PATIENT_ONLY, my_reservations),
    route!(Get "/vaccine/reservations/{id}", faults::QUERY, ANYONE, get_reservation),
    route!(Post "/vaccine/reservations/{id}/cancel", faults::CANCEL, PATIENT_ONLY, cancel),
    route!(Post "/vaccine/reservations/{id}/fulfil", faults::FULFIL, ADMIN_ONLY, fulfil),
    route!(Post "/vaccine/reservations/{id}/noshow", faults::NOSHOW, ADMIN_ONLY, noshow),
    route!(Get "/vaccine/offers", faults::QUERY, PATIENT_ONLY, my_offers),
    route!(Post "/vaccine/offers/{id}/accept", faults::ACCEPT, PATIENT_ONLY, accept_offer),
];

/// The flow's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        description = "Vaccine reservation: administrators register slots of doses; citizens subscribe to new-slot notices, reserve a \
                        dose (a rush never overbooks), cancel, and wait on an empty slot's waiting list for a dose given back."
    ),
    paths(
        open_slot,
        list_slots,
        get_slot,
        add_doses,
        close_slot,
        slot_reservations,
        join_waitlist,
        subscribe,
        my_subscriptions,
        unsubscribe,
        reserve,
        my_reservations,
        get_reservation,
        cancel,
        fulfil,
        noshow,
        my_offers,
        accept_offer
    )
)]
pub struct VaccineApi;

/// A page of slots.
pub type SlotPage = Page<SlotResponse>;
/// A page of reservations.
pub type VaccineReservationPage = Page<ReservationResponse>;
/// A page of subscriptions.
pub type SubscriptionPage = Page<AlertResponse>;

fn json<T: serde::Serialize>(v: T) -> Response {
    axum::Json(v).into_response()
}

/// Register a vaccination slot
#[utoipa::path(
    post,
    path = "/vaccine/slots",
    operation_id = "openVaccineSlot",
    description = "The slot's subscribers get one SMS each, asynchronously. Role: `vaccine-admin`.",
    request_body(content = SlotInput, example = json!({"date": "2027-03-02", "hospital": "seoul-central", "vaccine": "pfizer", "quantity": 100, "shards": 4})),
    responses(
        (status = 201, description = "Registered.", body = SlotResponse),
        (status = 400, response = Malformed),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn open_slot(State(p): State<AppState>, RequestId(rid): RequestId, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let input: SlotInput = parse_json(&headers, &body)?;
        Ok::<_, ApiError>(usecase::open_slot(&p, input, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// The slots, newest first
#[utoipa::path(
    get,
    path = "/vaccine/slots",
    operation_id = "listVaccineSlots",
    description = "Open slots by default, each with the doses it has left (an empty one too, with `remaining` 0). Roles: `patient`, \
                   `vaccine-admin`. Unknown query parameters are refused (422).",
    params(SlotParams),
    responses(
        (status = 200, description = "A page.", body = SlotPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn list_slots(State(p): State<AppState>, q: Result<Query<SlotParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::slots(&p, &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// One slot and its remaining doses
#[utoipa::path(
    get,
    path = "/vaccine/slots/{id}",
    operation_id = "getVaccineSlot",
    description = "Roles: `patient`, `vaccine-admin`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    responses(
        (status = 200, description = "The slot.", body = SlotResponse),
        (status = 404, response = NotFound),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn get_slot(State(p): State<AppState>, id: Result<Path<String>, PathRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::slot(&p, checked_id(&id)?).await?) };
    run.await.map_or_else(fail, json)
}

/// Doses to add, as the client sent them.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = DosesRequest)]
struct DosesInput {
    /// Doses to add, 1 to 100000 (a slot holds at most 100000).
    #[schema(value_type = u32, minimum = 1, maximum = 100000)]
    add: Option<serde_json::Value>,
}

/// Add doses to a slot
#[utoipa::path(
    post,
    path = "/vaccine/slots/{id}/doses",
    operation_id = "addVaccineDoses",
    description = "A closed slot takes no doses (409). Role: `vaccine-admin`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = DosesInput, example = json!({"add": 20})),
    responses(
        (status = 200, description = "The slot with its doses.", body = SlotResponse),
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
async fn add_doses(
    State(p): State<AppState>,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        let input: DosesInput = parse_json(&headers, &body)?;
        let add = match &input.add {
            None | Some(serde_json::Value::Null) => Err(FieldError::new("add", "is required")),
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=u64::from(usecase::MAX_QUANTITY)).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| FieldError::new("add", "must be a whole number from 1 to 100000")),
        }
        .map_err(|e| ApiError(AppError::Invalid(vec![e])))?;
        Ok::<_, ApiError>(usecase::change_slot(&p, id, SlotChange::AddDoses(add), &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// Close a slot
#[utoipa::path(
    post,
    path = "/vaccine/slots/{id}/close",
    operation_id = "closeVaccineSlot",
    description = "A closed slot takes no new reservation and keeps those it has. Closing twice is harmless. Role: `vaccine-admin`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Closed.", body = SlotResponse),
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
async fn close_slot(
    State(p): State<AppState>,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        ignored_body(&headers, &body)?;
        Ok::<_, ApiError>(usecase::change_slot(&p, id, SlotChange::Close, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// A slot's reservations and waiting list, newest first
#[utoipa::path(
    get,
    path = "/vaccine/slots/{id}/reservations",
    operation_id = "listVaccineSlotReservations",
    description = "Role: `vaccine-admin`. Unknown query parameters are refused (422).",
    params(
        ("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID),
        ("status" = Option<ReservationStatus>, Query, description = "Only this status."),
        ListParams,
    ),
    responses(
        (status = 200, description = "A page.", body = VaccineReservationPage),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn slot_reservations(
    State(p): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Response {
    let run = async { Ok::<_, ApiError>(queries::slot_reservations(&p, checked_id(&id)?, &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// Join an empty slot's waiting list
#[utoipa::path(
    post,
    path = "/vaccine/slots/{id}/waitlist",
    operation_id = "joinVaccineWaitlist",
    description = "Only when the slot has no dose left (409 otherwise, and when the caller already waits on it or holds a \
                   reservation for its vaccine). A dose given back is held for the first in line, who is told by SMS. With an \
                   `Idempotency-Key`, a retry is answered as the first request was. Role: `patient`.",
    params(
        ("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID),
        IdempotencyHeader,
    ),
    request_body(content = WaitlistInput, example = json!({"name": "김민수", "phone": "010-2222-3333"})),
    responses(
        (status = 201, description = "On the list (status `waitlist`).", body = ReservationResponse),
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
async fn join_waitlist(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        let input: WaitlistInput = parse_json(&headers, &body)?;
        let idem = idempotency_key(&headers, &body)?;
        Ok::<_, ApiError>(usecase::join_waitlist(&p, &access.actor(), id, input, idem, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// Subscribe to new-slot notices
#[utoipa::path(
    post,
    path = "/vaccine/subscriptions",
    operation_id = "subscribeVaccineSlots",
    description = "One SMS per new slot that matches, until unsubscribed. With an `Idempotency-Key`, a retry is answered as \
                   the first request was. Role: `patient`.",
    params(IdempotencyHeader),
    request_body(content = SubscribeInput, example = json!({"hospital": "seoul-central", "vaccine": "pfizer", "phone": "010-2222-3333"})),
    responses(
        (status = 201, description = "Subscribed.", body = AlertResponse),
        (status = 400, response = Malformed),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn subscribe(State(p): State<AppState>, access: Access, RequestId(rid): RequestId, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let input: SubscribeInput = parse_json(&headers, &body)?;
        let idem = idempotency_key(&headers, &body)?;
        Ok::<_, ApiError>(usecase::subscribe(&p, &access.actor(), input, idem, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// The caller's subscriptions, newest first
#[utoipa::path(
    get,
    path = "/vaccine/subscriptions",
    operation_id = "listMyVaccineSubscriptions",
    description = "Role: `patient`. Unknown query parameters are refused (422).",
    params(ListParams),
    responses(
        (status = 200, description = "A page.", body = SubscriptionPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn my_subscriptions(State(p): State<AppState>, access: Access, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::my_subscriptions(&p, &access.actor(), &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// Unsubscribe
#[utoipa::path(
    delete,
    path = "/vaccine/subscriptions/{id}",
    operation_id = "unsubscribeVaccineSlots",
    description = "No notice follows. Twice is harmless (204 again). Role: `patient`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    responses(
        (status = 204, description = "Unsubscribed."),
        (status = 404, response = NotFound),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn unsubscribe(
    State(p): State<AppState>,
    access: Access,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let run = async { Ok::<_, ApiError>(usecase::unsubscribe(&p, &access.actor(), checked_id(&id)?, &rid).await?) };
    run.await.map_or_else(fail, |_| StatusCode::NO_CONTENT.into_response())
}

/// Reserve a dose
#[utoipa::path(
    post,
    path = "/vaccine/reservations",
    operation_id = "reserveVaccine",
    description = "The dose is taken from the slot in the same write that stores the reservation. One active reservation per \
                   vaccine and citizen. With an `Idempotency-Key`, a retry is answered as the first request was. Under a rush \
                   the service sheds load (503 + `Retry-After`) rather than queue. Role: `patient`.",
    params(IdempotencyHeader),
    request_body(content = ReserveInput, example = json!({"slot_id": "01JQ0000000000000000000000", "name": "김민수", "phone": "010-2222-3333"})),
    responses(
        (status = 201, description = "Reserved.", body = ReservationResponse),
        (status = 400, response = Malformed),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn reserve(State(p): State<AppState>, access: Access, RequestId(rid): RequestId, headers: HeaderMap, body: Bytes) -> Response {
    let run = async {
        let input: ReserveInput = parse_json(&headers, &body)?;
        let idem = idempotency_key(&headers, &body)?;
        Ok::<_, ApiError>(usecase::reserve(&p, &access.actor(), input, idem, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// The caller's reservations and waiting-list entries, newest first
#[utoipa::path(
    get,
    path = "/vaccine/reservations",
    operation_id = "listMyVaccineReservations",
    description = "Role: `patient`. Unknown query parameters are refused (422).",
    params(("status" = Option<ReservationStatus>, Query, description = "Only this status."), ListParams),
    responses(
        (status = 200, description = "A page.", body = VaccineReservationPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn my_reservations(State(p): State<AppState>, access: Access, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::my_reservations(&p, &access.actor(), &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// One reservation's view
#[utoipa::path(
    get,
    path = "/vaccine/reservations/{id}",
    operation_id = "getVaccineReservation",
    description = "Roles: `patient` (their own only) and `vaccine-admin`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    responses(
        (status = 200, description = "The view.", body = ReservationResponse),
        (status = 404, response = NotFound),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn get_reservation(State(p): State<AppState>, access: Access, id: Result<Path<String>, PathRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::reservation(&p, &access, checked_id(&id)?).await?) };
    run.await.map_or_else(fail, json)
}

/// Cancel a reservation, or leave a waiting list
#[utoipa::path(
    post,
    path = "/vaccine/reservations/{id}/cancel",
    operation_id = "cancelVaccineReservation",
    description = "Accepted even while slot management is down: the dose goes back to the slot (or to the first in line) when it \
                   recovers, once. Cancelling twice is harmless (202 again). Role: `patient`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 202, description = "Cancelled; the dose follows.", body = CommandResult),
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

/// Mark a dose given
#[utoipa::path(
    post,
    path = "/vaccine/reservations/{id}/fulfil",
    operation_id = "fulfilVaccineReservation",
    description = "Only a booked reservation; twice is harmless. Role: `vaccine-admin`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Fulfilled.", body = CommandResult),
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
async fn fulfil(
    State(p): State<AppState>,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        ignored_body(&headers, &body)?;
        Ok::<_, ApiError>(usecase::mark(&p, id, Outcome::Fulfilled, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// Mark a citizen who did not come
#[utoipa::path(
    post,
    path = "/vaccine/reservations/{id}/noshow",
    operation_id = "noshowVaccineReservation",
    description = "Only a booked reservation; twice is harmless. Role: `vaccine-admin`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 200, description = "Marked a no-show.", body = CommandResult),
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
async fn noshow(
    State(p): State<AppState>,
    RequestId(rid): RequestId,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        let id = checked_id(&id)?;
        ignored_body(&headers, &body)?;
        Ok::<_, ApiError>(usecase::mark(&p, id, Outcome::NoShow, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}

/// The doses held for the caller now
#[utoipa::path(
    get,
    path = "/vaccine/offers",
    operation_id = "listMyVaccineOffers",
    description = "Each is a waiting-list entry with its `offer`: accept it before `offer.expires_at`. Role: `patient`.",
    params(ListParams),
    responses(
        (status = 200, description = "A page.", body = VaccineReservationPage),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn my_offers(State(p): State<AppState>, access: Access, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    let run = async { Ok::<_, ApiError>(queries::my_offers(&p, &access.actor(), &query(q)?).await?) };
    run.await.map_or_else(fail, json)
}

/// Take the dose held for the caller
#[utoipa::path(
    post,
    path = "/vaccine/offers/{id}/accept",
    operation_id = "acceptVaccineOffer",
    description = "`id` is the waiting-list entry's, which becomes a booked reservation. A hold that ended is gone (410): its dose \
                   passed to the next in line. Role: `patient`.",
    params(("id" = String, Path, pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26, description = ID)),
    request_body(content = NoBody, description = NO_BODY),
    responses(
        (status = 201, description = "Reserved.", body = ReservationResponse),
        (status = 400, response = Malformed),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 410, response = Gone),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, response = Unavailable),
    ),
)]
async fn accept_offer(
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
        Ok::<_, ApiError>(usecase::accept_offer(&p, &access.actor(), id, &rid).await?)
    };
    run.await.map_or_else(fail, accepted)
}
