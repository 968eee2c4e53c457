//! Check-up commands: book (pay first, then store booking, payment, place and events in one
//! transaction), cancel, and the centre's confirm and reject.

use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use super::{AppError, Platform, faults, projector, relay};
use crate::domain::checkup::{self, BookCheckup, Booking, Contact, Package};
use crate::domain::{Actor, FieldError, Locale, PersonName, PhoneNumber, availability, centre, parse_future_date, payment};
use crate::events::{Causality, EventEnvelope};
use crate::ports::{
    AggregateKey, AggregateWrite, CardToken, ChargeRequest, CounterMove, IdempotencyRecord, PaymentGateway, StoreError, Transaction,
};

/// A booking request as the client sent it, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookInput {
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    /// `basic`, `standard` or `premium`.
    pub package: Option<String>,
    /// Patient name.
    pub name: Option<String>,
    /// Phone, national or E.164.
    pub phone: Option<String>,
    /// Card token from the payment widget.
    pub card_token: Option<String>,
    /// `ko` (default) or `en`.
    pub locale: Option<String>,
}

/// A client's `Idempotency-Key` with the hash of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key.
    pub key: String,
    /// SHA-256 of the request body.
    pub request_hash: String,
}

impl IdempotencyKey {
    /// Validates a header value: 1 to 255 visible ASCII characters.
    pub fn parse(raw: &str, body: &[u8]) -> Result<Self, FieldError> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldError::new("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
        }
        Ok(Self {
            key: raw.to_owned(),
            request_hash: hex(&Sha256::digest(body)),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A command's result: the HTTP status, body and `Location`, also what an idempotent
/// replay returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: serde_json::Value,
    /// `Location`.
    pub location: Option<String>,
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
        parse_future_date("date", d, now, p.config.booking_horizon_days)
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

/// Loads an aggregate's typed state and version (0 when absent).
pub async fn load<T: DeserializeOwned>(p: &Platform, key: &AggregateKey) -> Result<(Option<T>, u64), AppError> {
    match p.store.load(key).await? {
        None => Ok((None, 0)),
        Some(stored) => Ok((Some(serde_json::from_value(stored.state)?), stored.version)),
    }
}

/// Folds new events into an aggregate and returns its write and the events' envelopes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stage<S: Serialize, E: Serialize>(
    p: &Platform,
    context: &'static str,
    id: &str,
    version: u64,
    state: Option<S>,
    events: &[E],
    apply: impl Fn(Option<S>, &str, &E) -> Option<S>,
    causality: &Causality,
) -> Result<(Option<AggregateWrite>, Vec<EventEnvelope>), AppError> {
    if events.is_empty() {
        return Ok((None, vec![]));
    }
    let now = p.clock.now();
    let mut envelopes = Vec::with_capacity(events.len());
    let mut state = state;
    for (i, e) in events.iter().enumerate() {
        state = apply(state, id, e);
        envelopes.push(EventEnvelope::wrap(
            p.ids.new_id(),
            context,
            id,
            version + 1 + i as u64,
            causality,
            now,
            e,
        )?);
    }
    let write = AggregateWrite {
        key: AggregateKey::new(context, id),
        expected_version: version,
        new_version: version + events.len() as u64,
        state: serde_json::to_value(&state)?,
    };
    Ok((Some(write), envelopes))
}

/// Publishes what a command committed. An armed [`faults::AFTER_COMMIT`] or `command`
/// point stops here as a crash would: committed, not published; the sweeper publishes later.
async fn publish_after_commit(p: &Platform, command: &'static str, events: &[EventEnvelope]) -> Result<(), AppError> {
    p.faults.check(faults::AFTER_COMMIT).await?;
    p.faults.check(command).await?;
    relay::publish(p, events).await;
    Ok(())
}

/// Commits `tx`, then publishes its events; `command` names its after-commit failure point.
pub(crate) async fn commit_and_publish(p: &Platform, command: &'static str, tx: Transaction) -> Result<(), AppError> {
    let events = tx.outbox.clone();
    p.store.commit(tx).await?;
    publish_after_commit(p, command, &events).await
}

/// Books a check-up: checks the place, takes the payment, then stores booking, payment,
/// place and events in one transaction. A place lost to a race voids the payment.
pub async fn book(
    p: &Platform,
    actor: &Actor,
    input: BookInput,
    idempotency: Option<IdempotencyKey>,
    request_id: &str,
) -> Result<Accepted, AppError> {
    // A retry is answered as the first request was, before anything else is judged.
    let scope = format!("{}:POST /checkups", actor.sub);
    if let Some(key) = &idempotency
        && let Some(first) = p.store.idempotency(&scope, &key.key).await?
    {
        return replay(first, key);
    }
    let valid = validate(p, &input)?;
    let slot = availability::slot_key(valid.date, valid.package);
    let capacity = p.config.daily_capacity;
    if p.store.counter(&slot).await? >= capacity {
        return Err(AppError::Conflict(format!(
            "no places left for {} on {}",
            valid.package.as_str(),
            valid.date
        )));
    }

    let booking_id = p.ids.new_id();
    let payment_id = p.ids.new_id();
    let price = p.config.prices.price(valid.package);
    // With an Idempotency-Key, a retried request reuses the provider's idempotency key, so
    // a crash after charging never charges twice. The key covers the request's body too: a
    // different request under the same key is charged on its own (and voided below when
    // it loses), never handed the first request's payment.
    let charge_key = match &idempotency {
        Some(k) => hex(&Sha256::digest(format!("{scope}:{}:{}", k.key, k.request_hash).as_bytes())),
        None => booking_id.clone(),
    };
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

    let causality = Causality {
        correlation_id: booking_id.clone(),
        causation_id: request_id.to_owned(),
    };
    let booking_events = checkup::decide(
        None,
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
    let payment_events = payment::decide(
        None,
        payment::Command::Record {
            booking_id: booking_id.clone(),
            amount: price,
            provider_ref: provider_ref.clone(),
        },
    )?;
    let (bw, mut outbox) = stage(
        p,
        checkup::CONTEXT,
        &booking_id,
        0,
        None,
        &booking_events,
        checkup::apply,
        &causality,
    )?;
    let (pw, pe) = stage(
        p,
        payment::CONTEXT,
        &payment_id,
        0,
        None,
        &payment_events,
        payment::apply,
        &causality,
    )?;
    outbox.extend(pe);

    let view = projector::checkup_view_of(&outbox);
    let accepted = Accepted {
        status: 201,
        body: view,
        location: Some(format!("/checkups/{booking_id}")),
    };
    let tx = Transaction {
        writes: bw.into_iter().chain(pw).collect(),
        counters: vec![CounterMove {
            key: slot,
            delta: 1,
            limit: capacity,
        }],
        outbox,
        processed: None,
        idempotency: idempotency.as_ref().map(|k| IdempotencyRecord {
            scope: scope.clone(),
            key: k.key.clone(),
            request_hash: k.request_hash.clone(),
            status: accepted.status,
            body: accepted.body.clone(),
            location: accepted.location.clone(),
        }),
    };
    let events = tx.outbox.clone();
    let booking_key = AggregateKey::new(checkup::CONTEXT, &booking_id);
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
            return match p.store.idempotency(&scope, &key.key).await? {
                Some(first) => {
                    if first.request_hash != key.request_hash {
                        void().await;
                    }
                    replay(first, key)
                }
                None => Err(AppError::Conflict(
                    "a request with this Idempotency-Key is being processed; retry".into(),
                )),
            };
        }
        Err(StoreError::CounterExhausted(_)) => {
            void().await;
            return Err(AppError::Conflict(format!(
                "no places left for {} on {}",
                valid.package.as_str(),
                valid.date
            )));
        }
        // An unavailable store may or may not have committed: look before voiding.
        Err(StoreError::Unavailable(why)) => match p.store.load(&booking_key).await {
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
    publish_after_commit(p, faults::BOOK_AFTER_COMMIT, &events).await?;
    tracing::info!(booking_id = %booking_id, correlation_id = %booking_id, package = valid.package.as_str(), date = %valid.date, "check-up booked");
    Ok(accepted)
}

fn replay(first: IdempotencyRecord, key: &IdempotencyKey) -> Result<Accepted, AppError> {
    if first.request_hash != key.request_hash {
        return Err(AppError::Invalid(vec![FieldError::new(
            "Idempotency-Key",
            "was already used with a different request body; use a new key for a new request",
        )]));
    }
    Ok(Accepted {
        status: first.status,
        body: first.body,
        location: first.location,
    })
}

/// How many times a command reloads and retries after losing a race on one aggregate.
const RACE_RETRIES: usize = 3;

/// The patient cancels their booking. Cancelling twice is harmless.
pub async fn cancel(p: &Platform, actor: &Actor, booking_id: &str, request_id: &str) -> Result<Accepted, AppError> {
    for _ in 0..RACE_RETRIES {
        let key = AggregateKey::new(checkup::CONTEXT, booking_id);
        let (booking, version) = load::<Booking>(p, &key).await?;
        let Some(b) = booking.filter(|b| b.patient_sub == actor.sub) else {
            return Err(AppError::NotFound);
        };
        let events = checkup::decide(Some(&b), checkup::Command::Cancel)?;
        let causality = Causality {
            correlation_id: booking_id.to_owned(),
            causation_id: request_id.to_owned(),
        };
        let (write, outbox) = stage(
            p,
            checkup::CONTEXT,
            booking_id,
            version,
            Some(b),
            &events,
            checkup::apply,
            &causality,
        )?;
        let body = serde_json::json!({"id": booking_id, "status": "cancelled"});
        let accepted = Accepted {
            status: 202,
            body,
            location: Some(format!("/checkups/{booking_id}")),
        };
        let Some(write) = write else {
            return Ok(accepted);
        };
        match commit_and_publish(
            p,
            faults::CANCEL_AFTER_COMMIT,
            Transaction {
                writes: vec![write],
                outbox,
                ..Default::default()
            },
        )
        .await
        {
            Ok(()) => {
                tracing::info!(booking_id, correlation_id = booking_id, "check-up cancelled");
                return Ok(accepted);
            }
            Err(AppError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(AppError::Conflict("the booking is changing concurrently; retry".into()))
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
    for _ in 0..RACE_RETRIES {
        let bkey = AggregateKey::new(checkup::CONTEXT, booking_id);
        let rkey = AggregateKey::new(centre::CONTEXT, booking_id);
        let (booking, bver) = load::<Booking>(p, &bkey).await?;
        let Some(b) = booking else {
            return Err(AppError::NotFound);
        };
        let (reservation, rver) = load::<centre::Reservation>(p, &rkey).await?;
        let (bcmd, rcmd) = match &decision {
            CentreDecision::Confirm => (checkup::Command::Confirm, centre::Command::Confirm),
            CentreDecision::Reject { reason } => (
                checkup::Command::Reject { reason: reason.clone() },
                centre::Command::Reject { reason: reason.clone() },
            ),
        };
        let bevents = checkup::decide(Some(&b), bcmd)?;
        let revents = centre::decide(reservation.as_ref(), rcmd)?;
        let causality = Causality {
            correlation_id: booking_id.to_owned(),
            causation_id: request_id.to_owned(),
        };
        let (bw, mut outbox) = stage(p, checkup::CONTEXT, booking_id, bver, Some(b), &bevents, checkup::apply, &causality)?;
        let (rw, re) = stage(
            p,
            centre::CONTEXT,
            booking_id,
            rver,
            reservation,
            &revents,
            centre::apply,
            &causality,
        )?;
        outbox.extend(re);
        let status = match decision {
            CentreDecision::Confirm => "confirmed",
            CentreDecision::Reject { .. } => "rejected",
        };
        let accepted = Accepted {
            status: 200,
            body: serde_json::json!({"id": booking_id, "status": status}),
            location: None,
        };
        let writes: Vec<_> = bw.into_iter().chain(rw).collect();
        if writes.is_empty() {
            return Ok(accepted);
        }
        let point = match decision {
            CentreDecision::Confirm => faults::CONFIRM_AFTER_COMMIT,
            CentreDecision::Reject { .. } => faults::REJECT_AFTER_COMMIT,
        };
        match commit_and_publish(
            p,
            point,
            Transaction {
                writes,
                outbox,
                ..Default::default()
            },
        )
        .await
        {
            Ok(()) => {
                tracing::info!(booking_id, correlation_id = booking_id, status, "centre decided");
                return Ok(accepted);
            }
            Err(AppError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(AppError::Conflict("the booking is changing concurrently; retry".into()))
}
