//! The vaccine flow's commands: slots (register, add doses, close), subscriptions,
//! reservations (reserve, cancel, join a waiting list, accept an offer) and the hospital's
//! marks. A reservation takes its dose from a shard counter in the transaction that stores
//! it, so a reservation exists only if its dose was taken; a cancellation writes the
//! reservation alone, and slot management gives the dose back when it hears of it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::alert::{self, Subscription};
use super::config::{MAX_SHARDS, VaccineConfig};
use super::reservation::{self, NewReservation, Offer, Reservation, ReservationStatus, holder_key};
use super::slot::{self, NewSlot, Slot, SlotStatus, shard_key, shard_order};
use super::view::{ReservationResponse, ReservationView, TimelineEntry};
use super::{faults, queries};
use crate::app::command::{self, Accepted, Decided, Idempotency, IdempotencyKey, Loaded, Work, replay};
use crate::app::projector;
use crate::app::{AppError, Platform};
use crate::domain::{Actor, Contact, FieldError, Locale, PersonName, PhoneNumber, parse_future_date, today_in_korea};
use crate::ports::{CounterMove, StoreError};

/// The most doses one slot may hold.
pub const MAX_QUANTITY: u32 = 100_000;

/// Subscribers per `SlotAnnounced` event: one notifier invocation sends a batch, paced.
pub const ANNOUNCE_BATCH: usize = 50;

fn required<'a>(field: &str, value: &'a Option<String>, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match value.as_deref() {
        Some(v) => Some(v),
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
    }
}

fn whole(field: &str, value: &Option<serde_json::Value>, min: u64, max: u64, errors: &mut Vec<FieldError>) -> Option<u64> {
    match value {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => match v.as_u64().filter(|n| (min..=max).contains(n)) {
            Some(n) => Some(n),
            None => {
                errors.push(FieldError::new(field, format!("must be a whole number from {min} to {max}")));
                None
            }
        },
    }
}

fn locale(raw: &Option<String>, errors: &mut Vec<FieldError>) -> Option<Locale> {
    match raw.as_deref() {
        None => Some(Locale::Ko),
        Some(v) => Locale::parse(v).map_err(|e| errors.push(e)).ok(),
    }
}

fn ulid_field(field: &str, raw: &str) -> Result<String, FieldError> {
    if raw.len() == 26 && raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::new(field, "must be an id this API returned (26 letters and digits)"))
    }
}

/// What one reservation or waiting-list entry is for: the citizen's contact.
fn contact(name: &Option<String>, phone: &Option<String>, locale_raw: &Option<String>, errors: &mut Vec<FieldError>) -> Option<Contact> {
    let name = required("name", name, errors).and_then(|v| PersonName::parse(v).map_err(|e| errors.push(e)).ok());
    let phone = required("phone", phone, errors).and_then(|v| PhoneNumber::parse(v).map_err(|e| errors.push(e)).ok());
    let locale = locale(locale_raw, errors);
    Some(Contact {
        name: name?,
        phone: phone?,
        locale: locale?,
    })
}

/// A slot registration as the client sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SlotRequest, description = "A vaccination slot: a date (today or later, Korean time), a hospital and a vaccine from \
                                           the configured lists, and its doses, split across `shards` counters (1 to 32).")]
pub struct SlotInput {
    /// `YYYY-MM-DD`.
    #[schema(value_type = chrono::NaiveDate)]
    pub date: Option<String>,
    /// A hospital id (`VACCINE_HOSPITALS`).
    #[schema(value_type = String, example = "seoul-central")]
    pub hospital: Option<String>,
    /// A vaccine id (`VACCINE_TYPES`).
    #[schema(value_type = String, example = "pfizer")]
    pub vaccine: Option<String>,
    /// Doses, 1 to 100000.
    #[schema(value_type = u32, minimum = 1, maximum = 100000)]
    pub quantity: Option<serde_json::Value>,
    /// Shard counters, 1 to 32 (default `VACCINE_DEFAULT_SHARDS`): more for a slot that a
    /// rush will hit (one DynamoDB item takes about 1,000 writes a second).
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 32)]
    pub shards: Option<serde_json::Value>,
}

/// Registers a slot (vaccine-admin); its subscribers are told asynchronously.
pub async fn open_slot(p: &Platform, input: SlotInput, request_id: &str) -> Result<Accepted, AppError> {
    let cfg = p.config.slice::<VaccineConfig>();
    let mut errors = Vec::new();
    let date = required("date", &input.date, &mut errors).and_then(|d| {
        parse_future_date("date", d, p.clock.now(), cfg.horizon_days)
            .map_err(|e| errors.push(e))
            .ok()
    });
    let hospital = required("hospital", &input.hospital, &mut errors)
        .and_then(|h| cfg.hospital("hospital", h).map(|h| h.id.clone()).map_err(|e| errors.push(e)).ok());
    let vaccine = required("vaccine", &input.vaccine, &mut errors).and_then(|v| cfg.vaccine("vaccine", v).map_err(|e| errors.push(e)).ok());
    if input.quantity.as_ref().is_none_or(serde_json::Value::is_null) {
        errors.push(FieldError::new("quantity", "is required"));
    }
    let quantity = whole("quantity", &input.quantity, 1, MAX_QUANTITY.into(), &mut errors);
    let shards = whole("shards", &input.shards, 1, MAX_SHARDS.into(), &mut errors);
    let (Some(date), Some(hospital), Some(vaccine), Some(quantity)) = (date, hospital, vaccine, quantity) else {
        return Err(AppError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let id = p.ids.new_id();
    let new = NewSlot {
        date,
        hospital,
        vaccine,
        quantity: quantity as u32,
        shards: shards.map_or(cfg.default_shards, |s| s as u8),
    };
    let accepted = command::run(p, faults::SLOT_OPEN, None, || async {
        let mut work = Work::for_request(p, &id, request_id);
        let slot = work
            .decide(Loaded::<Slot>::absent(&id), slot::Command::Open(new.clone()))?
            .ok_or_else(|| AppError::Internal("a slot opened to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 201,
                body: serde_json::to_value(queries::slot_response(&cfg, &slot, i64::from(slot.quantity)))?,
                location: Some(format!("/vaccine/slots/{id}")),
            },
        })
    })
    .await?;
    tracing::info!(slot_id = %id, correlation_id = %id, "vaccination slot opened");
    Ok(accepted)
}

/// What an administrator does to a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotChange {
    /// Add doses.
    AddDoses(u32),
    /// Close it.
    Close,
}

/// Adds doses to a slot or closes it (vaccine-admin). Closing twice is harmless.
pub async fn change_slot(p: &Platform, slot_id: &str, change: SlotChange, request_id: &str) -> Result<Accepted, AppError> {
    let cfg = p.config.slice::<VaccineConfig>();
    let (function, command) = match change {
        SlotChange::AddDoses(add) => (faults::SLOT_DOSES, slot::Command::AddDoses { add }),
        SlotChange::Close => (faults::SLOT_CLOSE, slot::Command::Close),
    };
    let accepted = command::run(p, function, None, || async {
        let loaded = command::load::<Slot>(p, slot_id).await?;
        if loaded.state.is_none() {
            return Err(AppError::NotFound);
        }
        let mut work = Work::for_request(p, slot_id, request_id);
        let slot = work
            .decide(loaded, command.clone())?
            .ok_or_else(|| AppError::Internal("a slot changed to nothing".into()))?;
        let remaining = queries::remaining(p, &slot).await?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 200,
                body: serde_json::to_value(queries::slot_response(&cfg, &slot, remaining))?,
                location: None,
            },
        })
    })
    .await?;
    tracing::info!(slot_id, correlation_id = slot_id, ?change, "vaccination slot changed");
    Ok(accepted)
}

/// A subscription as the client sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SubscriptionRequest, description = "New-slot notices for a hospital, a vaccine, both, or (neither given) every slot.")]
pub struct SubscribeInput {
    /// Only this hospital's slots.
    #[schema(value_type = Option<String>, example = "seoul-central")]
    pub hospital: Option<String>,
    /// Only this vaccine's slots.
    #[schema(value_type = Option<String>, example = "pfizer")]
    pub vaccine: Option<String>,
    /// A Korean mobile number or a foreign E.164 number.
    #[schema(value_type = String, min_length = 1, max_length = 32)]
    pub phone: Option<String>,
    /// The subscriber's name, 1 to 50 characters (default `구독자`).
    #[schema(value_type = Option<String>, min_length = 1, max_length = 50)]
    pub name: Option<String>,
    /// SMS language; absent or null: `ko`.
    #[schema(value_type = Option<Locale>, default = "ko")]
    pub locale: Option<String>,
}

/// Subscribes the citizen to new-slot notices.
pub async fn subscribe(
    p: &Platform,
    actor: &Actor,
    input: SubscribeInput,
    idempotency: Option<IdempotencyKey>,
    request_id: &str,
) -> Result<Accepted, AppError> {
    let cfg = p.config.slice::<VaccineConfig>();
    let mut errors = Vec::new();
    let hospital = input
        .hospital
        .as_deref()
        .and_then(|h| cfg.hospital("hospital", h).map(|h| h.id.clone()).map_err(|e| errors.push(e)).ok());
    let vaccine = input
        .vaccine
        .as_deref()
        .and_then(|v| cfg.vaccine("vaccine", v).map_err(|e| errors.push(e)).ok());
    let name = Some(input.name.clone().unwrap_or_else(|| "구독자".to_owned()));
    let contact = contact(&name, &input.phone, &input.locale, &mut errors);
    let Some(contact) = contact.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let idempotency = idempotency.map(|key| Idempotency {
        scope: format!("{}:POST /vaccine/subscriptions", actor.sub),
        key,
    });
    let id = p.ids.new_id();
    command::run(p, faults::SUBSCRIBE, idempotency.as_ref(), || async {
        let mut work = Work::for_request(p, &id, request_id);
        let sub = work
            .decide(
                Loaded::<Subscription>::absent(&id),
                alert::Command::Subscribe {
                    patient_sub: actor.sub.clone(),
                    hospital: hospital.clone(),
                    vaccine: vaccine.clone(),
                    contact: contact.clone(),
                },
            )?
            .ok_or_else(|| AppError::Internal("a subscription to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 201,
                body: serde_json::to_value(queries::alert_response(&sub))?,
                location: Some(format!("/vaccine/subscriptions/{id}")),
            },
        })
    })
    .await
}

/// Unsubscribes (its citizen). Twice is harmless; another citizen's is not found.
pub async fn unsubscribe(p: &Platform, actor: &Actor, id: &str, request_id: &str) -> Result<Accepted, AppError> {
    command::run(p, faults::SUBSCRIBE, None, || async {
        let loaded = command::load::<Subscription>(p, id).await?;
        if loaded.state.as_ref().is_none_or(|s| s.patient_sub != actor.sub) {
            return Err(AppError::NotFound);
        }
        let mut work = Work::for_request(p, id, request_id);
        work.decide(loaded, alert::Command::Unsubscribe)?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 204,
                body: serde_json::Value::Null,
                location: None,
            },
        })
    })
    .await
}

/// A reservation as the client sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VaccineReservationRequest, description = "A dose of an open slot, for the caller.")]
pub struct ReserveInput {
    /// The slot (`GET /vaccine/slots`).
    #[schema(value_type = String, pattern = "^[0-9A-Za-z]{26}$")]
    pub slot_id: Option<String>,
    /// 1 to 50 characters after trimming; no control or invisible formatting characters.
    #[schema(value_type = String, min_length = 1, max_length = 50)]
    pub name: Option<String>,
    /// A Korean mobile number or a foreign E.164 number.
    #[schema(value_type = String, min_length = 1, max_length = 32)]
    pub phone: Option<String>,
    /// SMS language; absent or null: `ko`.
    #[schema(value_type = Option<Locale>, default = "ko")]
    pub locale: Option<String>,
}

/// A place on a slot's waiting list as the client sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WaitlistRequest, description = "A place on an empty slot's waiting list, for the caller.")]
pub struct WaitlistInput {
    /// 1 to 50 characters after trimming.
    #[schema(value_type = String, min_length = 1, max_length = 50)]
    pub name: Option<String>,
    /// A Korean mobile number or a foreign E.164 number.
    #[schema(value_type = String, min_length = 1, max_length = 32)]
    pub phone: Option<String>,
    /// SMS language; absent or null: `ko`.
    #[schema(value_type = Option<Locale>, default = "ko")]
    pub locale: Option<String>,
}

/// The reservations one instance works on at once; the next is shed (503 + `Retry-After`)
/// rather than queued. On Lambda an instance serves one request at a time and the
/// function's reserved concurrency is the limit; locally, this gate is.
fn gate(p: &Platform, cfg: &VaccineConfig) -> Result<OwnedSemaphorePermit, AppError> {
    p.state
        .get_or_init(|| ReservationGate(Arc::new(Semaphore::new(cfg.max_in_flight))))
        .0
        .clone()
        .try_acquire_owned()
        .map_err(|_| AppError::Unavailable {
            reason: "too many reservations at once; retry shortly".into(),
            retry_after: Duration::from_secs(1),
        })
}

/// The reservations in flight on one platform instance ([`VaccineConfig::max_in_flight`]).
struct ReservationGate(Arc<Semaphore>);

/// The slot a reservation or waiting-list entry is for, open and not past.
async fn open_slot_for(p: &Platform, slot_id: &str, field: Option<&str>) -> Result<Loaded<Slot>, AppError> {
    let loaded = command::load::<Slot>(p, slot_id).await?;
    let Some(slot) = &loaded.state else {
        return Err(match field {
            Some(f) => AppError::Invalid(vec![FieldError::new(f, "is no slot of this API")]),
            None => AppError::NotFound,
        });
    };
    if slot.status == SlotStatus::Closed {
        return Err(AppError::Conflict("the slot is closed".into()));
    }
    if slot.date < today_in_korea(p.clock.now()) {
        return Err(AppError::Conflict("the slot's date has passed".into()));
    }
    Ok(loaded)
}

fn already_holding(vaccine: &str) -> AppError {
    AppError::Conflict(format!("you already hold an active {vaccine} reservation"))
}

/// Reserves a dose: the reservation, its dose taken from a shard of the slot's counter
/// (the shard chosen from its id, then the others while that one is empty) and the
/// citizen's hold on the vaccine, in one transaction.
pub async fn reserve(
    p: &Platform,
    actor: &Actor,
    input: ReserveInput,
    idempotency: Option<IdempotencyKey>,
    request_id: &str,
) -> Result<Accepted, AppError> {
    // Every store call of a reservation, the idempotency read included, is behind the gate:
    // a shed request costs the store nothing.
    let cfg = p.config.slice::<VaccineConfig>();
    let _permit = gate(p, &cfg)?;
    let idempotency = idempotency.map(|key| Idempotency {
        scope: format!("{}:POST /vaccine/reservations", actor.sub),
        key,
    });
    if let Some(key) = &idempotency
        && let Some(first) = p.store.idempotency(&key.scope, &key.key.key).await?
    {
        return replay(first, &key.key);
    }
    let outcome = book(p, actor, input, idempotency.as_ref(), request_id).await;
    command::refusal_rechecked(p, idempotency.as_ref(), outcome).await
}

/// [`reserve`] past its gate and its key: the reservation, tried on each shard with doses.
async fn book(
    p: &Platform,
    actor: &Actor,
    input: ReserveInput,
    idempotency: Option<&Idempotency>,
    request_id: &str,
) -> Result<Accepted, AppError> {
    let mut errors = Vec::new();
    let slot_id = required("slot_id", &input.slot_id, &mut errors).and_then(|s| ulid_field("slot_id", s).map_err(|e| errors.push(e)).ok());
    let contact = contact(&input.name, &input.phone, &input.locale, &mut errors);
    let (Some(slot_id), Some(contact)) = (slot_id, contact) else {
        return Err(AppError::Invalid(errors));
    };
    let slot = open_slot_for(p, &slot_id, Some("slot_id"))
        .await?
        .state
        .ok_or_else(|| AppError::Internal("an open slot without state".into()))?;
    let holder = holder_key(&actor.sub, &slot.vaccine);
    let id = p.ids.new_id();
    let new = NewReservation {
        patient_sub: actor.sub.clone(),
        slot_id: slot.id.clone(),
        date: slot.date,
        hospital: slot.hospital.clone(),
        vaccine: slot.vaccine.clone(),
        contact,
    };
    // The shards with doses left, as read now: a shard that empties meanwhile refuses in
    // the transaction (its condition), and the next is tried; a rejected request costs the
    // reads, not a transaction per empty shard.
    let left = queries::left_per_shard(p, &slot).await?;
    let mut busy = false;
    for shard in shard_order(&id, slot.shards).filter(|s| left.get(usize::from(*s)).is_some_and(|l| *l > 0)) {
        let mut work = Work::for_request(p, &id, request_id);
        work.decide(Loaded::<Reservation>::absent(&id), reservation::Command::Book(new.clone(), shard))?;
        work.counter(CounterMove {
            key: shard_key(&slot.id, shard),
            delta: 1,
            limit: slot.shard_limit(shard),
        });
        work.counter(CounterMove {
            key: holder.clone(),
            delta: 1,
            limit: 1,
        });
        let accepted = answer(&work, &id, 201)?;
        let mut tx = work.into_transaction();
        tx.idempotency = idempotency.map(|k| k.record(&accepted));
        let events = tx.outbox.clone();
        match p.store.commit(tx).await {
            Ok(()) => {
                command::publish_after_commit(p, faults::RESERVE, &events).await?;
                tracing::info!(reservation_id = %id, correlation_id = %id, slot_id = %slot.id, shard, "dose reserved");
                return Ok(accepted);
            }
            Err(StoreError::CounterExhausted(key)) if key == holder => return Err(already_holding(&slot.vaccine)),
            // This shard is empty: the next one.
            Err(StoreError::CounterExhausted(_)) => continue,
            // Another transaction held the shard's counter (DynamoDB's TransactionConflict
            // on a hot item): it may have doses still, so this is no `409`; the next shard.
            Err(StoreError::VersionConflict(_)) => {
                busy = true;
                continue;
            }
            Err(StoreError::IdempotencyKeyTaken) => {
                let key = idempotency.ok_or_else(|| AppError::Internal("idempotency race without a key".into()))?;
                return replay(command::first_answer(p, key).await?, &key.key);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if busy {
        return Err(AppError::Unavailable {
            reason: "the slot is busy; retry shortly".into(),
            retry_after: Duration::from_secs(1),
        });
    }
    Err(AppError::Conflict(format!(
        "no doses left in this slot; join its waiting list at /vaccine/slots/{}/waitlist",
        slot.id
    )))
}

/// The answer of a command on reservation `id`: its view from the events staged.
fn answer(work: &Work<'_>, id: &str, status: u16) -> Result<Accepted, AppError> {
    let body = projector::view_of::<ReservationView>(work.events())
        .and_then(ReservationView::into_response)
        .map(serde_json::to_value)
        .transpose()?
        .unwrap_or(serde_json::Value::Null);
    Ok(Accepted {
        status,
        body,
        location: Some(format!("/vaccine/reservations/{id}")),
    })
}

/// What a command on a reservation answers when it does not show the whole view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = VaccineCommandResult)]
pub struct CommandResult {
    /// Reservation number.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The status it reached.
    pub status: ReservationStatus,
}

/// The citizen cancels a reservation or leaves a waiting list. The reservation alone is
/// written (and the citizen's hold on the vaccine released): slot management gives its
/// dose back when it hears of it, even if it is down now. Twice is harmless.
pub async fn cancel(p: &Platform, actor: &Actor, id: &str, request_id: &str) -> Result<Accepted, AppError> {
    let accepted = command::run(p, faults::CANCEL, None, || async {
        let loaded = command::load::<Reservation>(p, id).await?;
        let Some(r) = loaded.state.clone().filter(|r| r.patient_sub == actor.sub) else {
            return Err(AppError::NotFound);
        };
        let mut work = Work::for_request(p, id, request_id);
        work.decide(loaded, reservation::Command::Cancel)?;
        if r.status == ReservationStatus::Booked {
            work.counter(CounterMove {
                key: holder_key(&r.patient_sub, &r.vaccine),
                delta: -1,
                limit: i64::MAX,
            });
        }
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 202,
                body: serde_json::to_value(CommandResult {
                    id: id.to_owned(),
                    status: ReservationStatus::Cancelled,
                })?,
                location: Some(format!("/vaccine/reservations/{id}")),
            },
        })
    })
    .await?;
    tracing::info!(reservation_id = id, correlation_id = id, "vaccine reservation cancelled");
    Ok(accepted)
}

/// The citizen joins an empty slot's waiting list: their entry, and its place in the
/// slot's line, in one transaction.
pub async fn join_waitlist(
    p: &Platform,
    actor: &Actor,
    slot_id: &str,
    input: WaitlistInput,
    idempotency: Option<IdempotencyKey>,
    request_id: &str,
) -> Result<Accepted, AppError> {
    let mut errors = Vec::new();
    let Some(contact) = contact(&input.name, &input.phone, &input.locale, &mut errors).filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let idempotency = idempotency.map(|key| Idempotency {
        scope: format!("{}:POST /vaccine/slots/{slot_id}/waitlist", actor.sub),
        key,
    });
    let id = p.ids.new_id();
    command::run(p, faults::WAITLIST, idempotency.as_ref(), || async {
        let loaded = open_slot_for(p, slot_id, None).await?;
        let slot = loaded.state.clone().ok_or(AppError::NotFound)?;
        if queries::remaining(p, &slot).await? > 0 {
            return Err(AppError::Conflict("doses are left in this slot: reserve one instead".into()));
        }
        if p.store.counter(&holder_key(&actor.sub, &slot.vaccine)).await? > 0 {
            return Err(already_holding(&slot.vaccine));
        }
        let mut work = Work::for_request(p, &id, request_id);
        work.decide(
            Loaded::<Reservation>::absent(&id),
            reservation::Command::Wait(NewReservation {
                patient_sub: actor.sub.clone(),
                slot_id: slot.id.clone(),
                date: slot.date,
                hospital: slot.hospital.clone(),
                vaccine: slot.vaccine.clone(),
                contact: contact.clone(),
            }),
        )?;
        let accepted = answer(&work, &id, 201)?;
        work.on_case(slot_id).decide(
            loaded,
            slot::Command::Wait(slot::Waiter {
                entry_id: id.clone(),
                patient_sub: actor.sub.clone(),
            }),
        )?;
        Ok(Decided { work, accepted })
    })
    .await
}

/// The citizen takes the dose held for their waiting-list entry: the entry becomes a booked
/// reservation, and the slot stops holding the dose for it, in one transaction; a hold that
/// ended is `410`.
pub async fn accept_offer(p: &Platform, actor: &Actor, id: &str, request_id: &str) -> Result<Accepted, AppError> {
    let accepted = command::run(p, faults::ACCEPT, None, || async {
        let loaded = command::load::<Reservation>(p, id).await?;
        let Some(r) = loaded.state.clone().filter(|r| r.patient_sub == actor.sub) else {
            return Err(AppError::NotFound);
        };
        let now = p.clock.now();
        match (&r.status, &r.offer) {
            (ReservationStatus::Waitlist, Some(o)) if o.expires_at <= now => {
                return Err(AppError::Gone(
                    "the hold on this dose has ended; it passes to the next in line".into(),
                ));
            }
            (ReservationStatus::Cancelled, _) if r.shard.is_none() => {
                return Err(AppError::Gone("this offer is over".into()));
            }
            (ReservationStatus::Waitlist, None) => return Err(AppError::Conflict("no dose is held for you yet".into())),
            _ => {}
        }
        if r.status == ReservationStatus::Waitlist && p.store.counter(&holder_key(&r.patient_sub, &r.vaccine)).await? > 0 {
            return Err(already_holding(&r.vaccine));
        }
        let slot = command::load::<Slot>(p, &r.slot_id).await?;
        let mut work = Work::for_request(p, id, request_id);
        let before = work.events().len();
        work.decide(loaded, reservation::Command::Accept { now })?;
        if work.events().len() > before {
            work.counter(CounterMove {
                key: holder_key(&r.patient_sub, &r.vaccine),
                delta: 1,
                limit: 1,
            });
            work.on_case(&r.slot_id)
                .decide(slot, slot::Command::TakeHeld { entry_id: id.to_owned() })
                .map_err(|_| AppError::Gone("the hold on this dose has ended".into()))?;
            work.on_case(id);
        }
        let body = serde_json::to_value(ReservationResponse {
            id: id.to_owned(),
            status: ReservationStatus::Booked,
            slot_id: r.slot_id.clone(),
            date: r.date,
            hospital: r.hospital.clone(),
            vaccine: r.vaccine.clone(),
            offer: None,
            reason: None,
            timeline: vec![TimelineEntry {
                status: ReservationStatus::Booked.as_str().to_owned(),
                at: now,
            }],
            created_at: None,
        })?;
        let accepted = Accepted {
            status: 201,
            body,
            location: Some(format!("/vaccine/reservations/{id}")),
        };
        Ok(Decided { work, accepted })
    })
    .await?;
    tracing::info!(reservation_id = id, correlation_id = id, "held dose accepted");
    Ok(accepted)
}

/// What the hospital records about a booked dose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Given.
    Fulfilled,
    /// Not come.
    NoShow,
}

/// The hospital marks a booked reservation given or missed (vaccine-admin); the citizen's
/// hold on the vaccine ends either way.
pub async fn mark(p: &Platform, id: &str, outcome: Outcome, request_id: &str) -> Result<Accepted, AppError> {
    let (function, command, status) = match outcome {
        Outcome::Fulfilled => (faults::FULFIL, reservation::Command::Fulfil, ReservationStatus::Fulfilled),
        Outcome::NoShow => (faults::NOSHOW, reservation::Command::NoShow, ReservationStatus::Noshow),
    };
    command::run(p, function, None, || async {
        let loaded = command::load::<Reservation>(p, id).await?;
        let r = loaded.state.clone().ok_or(AppError::NotFound)?;
        let mut work = Work::for_request(p, id, request_id);
        let before = work.events().len();
        work.decide(loaded, command.clone())?;
        if work.events().len() > before {
            work.counter(CounterMove {
                key: holder_key(&r.patient_sub, &r.vaccine),
                delta: -1,
                limit: i64::MAX,
            });
        }
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 200,
                body: serde_json::to_value(CommandResult { id: id.to_owned(), status })?,
                location: None,
            },
        })
    })
    .await
}

/// Stages what follows the slot's own events on the cases they concern: a dose held for an
/// entry is offered to it, a hold that lapsed ends its entry, a dose returned to the pool
/// is given back to its shard's counter.
pub async fn follow_slot(p: &Platform, work: &mut Work<'_>, slot_id: &str, events: &[slot::Event]) -> Result<(), AppError> {
    for e in events {
        match e {
            slot::Event::SlotDoseHeld {
                entry_id,
                shard,
                expires_at,
                ..
            } => {
                let entry = command::load::<Reservation>(p, entry_id).await?;
                work.on_case(entry_id).decide(
                    entry,
                    reservation::Command::Offer(Offer {
                        shard: *shard,
                        expires_at: *expires_at,
                    }),
                )?;
            }
            slot::Event::SlotHoldLapsed { entry_id } => {
                let entry = command::load::<Reservation>(p, entry_id).await?;
                work.on_case(entry_id).decide(entry, reservation::Command::Lapse)?;
            }
            slot::Event::SlotDoseReturned { shard } => work.counter(CounterMove {
                key: shard_key(slot_id, *shard),
                delta: -1,
                limit: i64::MAX,
            }),
            _ => {}
        }
    }
    Ok(())
}

/// When a dose offered now is held until.
pub fn hold_until(p: &Platform, now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::seconds(p.config.slice::<VaccineConfig>().offer_hold_s as i64)
}
