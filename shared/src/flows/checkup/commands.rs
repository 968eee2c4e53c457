//! Check-up commands: book (pay first, then store booking, payment, place and events in one
//! transaction), cancel, and the centre's confirm and reject.

use super::centre::{self, Reservation};
use super::config::CheckupConfig;
use super::domain::{self as checkup, BookCheckup, Booking, BookingStatus, Package};
use super::view::CheckupView;
use super::{availability, faults};
use crate::app::command::{self, Accepted, Decided, Idempotency, Work, replay};
use crate::app::projector;
use crate::app::{AppError, Platform};
use crate::contexts::payment;
use crate::domain::{Actor, Contact, FieldError, Locale, PersonName, PhoneNumber, parse_future_date};
use crate::ports::{AggregateKey, CardToken, ChargeRequest, CounterMove, PaymentGateway, StoreError};

/// A booking request as the client sent it, before validation: every field is read as text,
/// so that each one at fault is named. Its schema (`BookingRequest`) is what validation
/// accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = BookingRequest,
    description = "A booking. The server trims `name` and checks it for control and invisible formatting characters; `date` must \
                   be today or later (Korean time) and within the booking horizon (365 days by default)."
)]
pub struct BookInput {
    /// `YYYY-MM-DD`.
    #[schema(value_type = chrono::NaiveDate)]
    pub date: Option<String>,
    /// The package.
    #[schema(value_type = Package)]
    pub package: Option<String>,
    /// 1 to 50 characters after trimming; no control or invisible formatting characters (U+200B–U+200F, U+202A–U+202E, U+2066–U+2069, U+FEFF).
    #[schema(value_type = String, min_length = 1, max_length = 50)]
    pub name: Option<String>,
    /// A Korean mobile number (`010-1234-5678`, `+82 10 1234 5678`) or a foreign E.164 number.
    #[schema(value_type = String, min_length = 1, max_length = 32)]
    pub phone: Option<String>,
    /// A token from the payment widget. Sandbox: `tok_ok` approves, `tok_declined` is declined (402), `tok_slow` and `tok_down` fail (503 + Retry-After).
    #[schema(value_type = String, pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub card_token: Option<String>,
    /// The language of the SMS; absent or null: `ko`.
    #[schema(value_type = Option<Locale>, default = "ko")]
    pub locale: Option<String>,
}

/// What a command on a booking answers: the booking and the status it reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CommandResult {
    /// Booking id.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The status the booking reached.
    pub status: BookingStatus,
}

struct ValidBooking {
    date: chrono::NaiveDate,
    package: Package,
    contact: Contact,
    card_token: CardToken,
}

fn required<'a>(field: &str, value: &'a Option<String>, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match value.as_deref() {
        Some(v) => Some(v),
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
    }
}

fn validate(p: &Platform, input: &BookInput) -> Result<ValidBooking, AppError> {
    let mut errors = Vec::new();
    let now = p.clock.now();
    let date = required("date", &input.date, &mut errors).and_then(|d| {
        parse_future_date("date", d, now, p.config.slice::<CheckupConfig>().booking_horizon_days)
            .map_err(|e| errors.push(e))
            .ok()
    });
    let package = required("package", &input.package, &mut errors).and_then(|v| Package::parse(v).map_err(|e| errors.push(e)).ok());
    let name = required("name", &input.name, &mut errors).and_then(|v| PersonName::parse(v).map_err(|e| errors.push(e)).ok());
    let phone = required("phone", &input.phone, &mut errors).and_then(|v| PhoneNumber::parse(v).map_err(|e| errors.push(e)).ok());
    let card_token = required("card_token", &input.card_token, &mut errors).and_then(|v| {
        if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            errors.push(FieldError::new(
                "card_token",
                "must be a token from the payment widget (letters, digits, _ and -)",
            ));
            None
        } else {
            Some(CardToken(v.to_owned()))
        }
    });
    let locale = match input.locale.as_deref() {
        None => Some(Locale::Ko),
        Some(v) => Locale::parse(v).map_err(|e| errors.push(e)).ok(),
    };
    match (date, package, name, phone, card_token, locale) {
        (Some(date), Some(package), Some(name), Some(phone), Some(card_token), Some(locale)) if errors.is_empty() => Ok(ValidBooking {
            date,
            package,
            contact: Contact { name, phone, locale },
            card_token,
        }),
        _ => Err(AppError::Invalid(errors)),
    }
}

/// Books a check-up: checks the place, takes the payment, then stores booking, payment,
/// place and events in one transaction. A place lost to a race voids the payment.
pub async fn book(
    p: &Platform,
    actor: &Actor,
    input: BookInput,
    idempotency: Option<command::IdempotencyKey>,
    request_id: &str,
) -> Result<Accepted, AppError> {
    let idempotency = idempotency.map(|key| Idempotency {
        scope: format!("{}:POST /checkups", actor.sub),
        key,
    });
    // A retry is answered as the first request was, before anything else is judged.
    if let Some(key) = &idempotency
        && let Some(first) = p.store.idempotency(&key.scope, &key.key.key).await?
    {
        return replay(first, &key.key);
    }
    let valid = validate(p, &input)?;
    let slot = availability::slot_key(valid.date, valid.package);
    let settings = p.config.slice::<CheckupConfig>();
    let capacity = settings.daily_capacity;
    let no_place = || AppError::Conflict(format!("no places left for {} on {}", valid.package.as_str(), valid.date));
    if p.store.counter(&slot).await? >= capacity {
        return Err(no_place());
    }

    let booking_id = p.ids.new_id();
    let payment_id = p.ids.new_id();
    let price = settings.prices.price(valid.package);
    // With an Idempotency-Key, a retried request reuses the provider's idempotency key, so
    // a crash after charging never charges twice. The key covers the request's body too: a
    // different request under the same key is charged on its own (and voided below when
    // it loses), never handed the first request's payment.
    let charge_key = idempotency.as_ref().map_or_else(|| booking_id.clone(), Idempotency::provider_key);
    let provider_ref = p
        .payments
        .charge_with_faults(
            &p.faults,
            &ChargeRequest {
                idempotency_key: charge_key.clone(),
                card_token: valid.card_token,
                amount: price,
                reference: booking_id.clone(),
            },
        )
        .await
        .inspect_err(|e| tracing::info!(booking_id = %booking_id, error = %e, "payment not taken"))?;

    let mut work = Work::for_request(p, &booking_id, request_id);
    work.decide(
        command::Loaded::<Booking>::absent(&booking_id),
        checkup::Command::Book(BookCheckup {
            id: booking_id.clone(),
            patient_sub: actor.sub.clone(),
            date: valid.date,
            package: valid.package,
            price,
            payment_id: payment_id.clone(),
            contact: valid.contact,
        }),
    )?;
    payment::record(&mut work, &booking_id, &payment_id, price, &provider_ref)?;
    work.counter(CounterMove {
        key: slot,
        delta: 1,
        limit: capacity,
    });
    let view = projector::view_of::<CheckupView>(work.events())
        .and_then(|v| v.render())
        .unwrap_or(serde_json::Value::Null);
    let accepted = Accepted {
        status: 201,
        body: view,
        location: Some(format!("/checkups/{booking_id}")),
    };
    let mut tx = work.into_transaction();
    tx.idempotency = idempotency.as_ref().map(|k| k.record(&accepted));
    let events = tx.outbox.clone();
    let void = || async {
        match p.payments.void(&provider_ref, &charge_key).await {
            Ok(()) => tracing::info!(booking_id = %booking_id, "booking not stored; payment voided"),
            Err(e) => {
                tracing::error!(booking_id = %booking_id, provider_ref = %provider_ref, error = %e, "booking not stored and the void failed: reconcile")
            }
        }
    };
    match p.store.commit(tx).await {
        Ok(()) => {}
        // Another request with the same key won the race. The same request was charged under
        // the same provider key, so its payment belongs to the stored booking: never void it,
        // replay the answer. A different request was charged on its own: void that charge.
        Err(StoreError::IdempotencyKeyTaken) => {
            let key = idempotency
                .as_ref()
                .ok_or_else(|| AppError::Internal("idempotency race without a key".into()))?;
            let first = command::first_answer(p, key).await?;
            if first.request_hash != key.key.request_hash {
                void().await;
            }
            return replay(first, &key.key);
        }
        Err(StoreError::CounterExhausted(_)) => {
            void().await;
            return Err(no_place());
        }
        // An unavailable store may or may not have committed: look before voiding.
        Err(StoreError::Unavailable(why)) => match p.store.load(&AggregateKey::new(checkup::CONTEXT, &booking_id)).await {
            Ok(Some(_)) => tracing::warn!(booking_id = %booking_id, reason = %why, "commit reported a failure but the booking is stored"),
            Ok(None) => {
                void().await;
                return Err(StoreError::Unavailable(why).into());
            }
            Err(e) => {
                tracing::error!(booking_id = %booking_id, provider_ref = %provider_ref, error = %e, "commit outcome unknown; payment kept: reconcile");
                return Err(StoreError::Unavailable(why).into());
            }
        },
        Err(other) => {
            void().await;
            return Err(other.into());
        }
    }
    command::publish_after_commit(p, faults::BOOK, &events).await?;
    tracing::info!(booking_id = %booking_id, correlation_id = %booking_id, package = valid.package.as_str(), date = %valid.date, "check-up booked");
    Ok(accepted)
}

/// The patient cancels their booking. Cancelling twice is harmless.
pub async fn cancel(p: &Platform, actor: &Actor, booking_id: &str, request_id: &str) -> Result<Accepted, AppError> {
    let accepted = command::run(p, faults::CANCEL, None, || async {
        let booking = command::load::<Booking>(p, booking_id).await?;
        if booking.state.as_ref().is_none_or(|b| b.patient_sub != actor.sub) {
            return Err(AppError::NotFound);
        }
        let mut work = Work::for_request(p, booking_id, request_id);
        work.decide(booking, checkup::Command::Cancel)?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 202,
                body: serde_json::to_value(CommandResult {
                    id: booking_id.to_owned(),
                    status: BookingStatus::Cancelled,
                })?,
                location: Some(format!("/checkups/{booking_id}")),
            },
        })
    })
    .await?;
    tracing::info!(booking_id, correlation_id = booking_id, "check-up cancelled");
    Ok(accepted)
}

/// What the centre decides on a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CentreDecision {
    /// Confirm it.
    Confirm,
    /// Reject it, with a reason for the patient.
    Reject {
        /// Why.
        reason: String,
    },
}

/// Centre staff confirm or reject a booking on their work list. The booking and its
/// reservation change in one transaction, so a concurrent cancel makes one of them fail.
pub async fn decide_as_centre(p: &Platform, booking_id: &str, decision: CentreDecision, request_id: &str) -> Result<Accepted, AppError> {
    let (function, status) = match decision {
        CentreDecision::Confirm => (faults::CONFIRM, BookingStatus::Confirmed),
        CentreDecision::Reject { .. } => (faults::REJECT, BookingStatus::Rejected),
    };
    let accepted = command::run(p, function, None, || async {
        let booking = command::load::<Booking>(p, booking_id).await?;
        if booking.state.is_none() {
            return Err(AppError::NotFound);
        }
        let reservation = command::load::<Reservation>(p, booking_id).await?;
        let (bcmd, rcmd) = match &decision {
            CentreDecision::Confirm => (checkup::Command::Confirm, centre::Command::Confirm),
            CentreDecision::Reject { reason } => (
                checkup::Command::Reject { reason: reason.clone() },
                centre::Command::Reject { reason: reason.clone() },
            ),
        };
        let mut work = Work::for_request(p, booking_id, request_id);
        work.decide(booking, bcmd)?;
        work.decide(reservation, rcmd)?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 200,
                body: serde_json::to_value(CommandResult {
                    id: booking_id.to_owned(),
                    status,
                })?,
                location: None,
            },
        })
    })
    .await?;
    tracing::info!(booking_id, correlation_id = booking_id, status = status.as_str(), "centre decided");
    Ok(accepted)
}
