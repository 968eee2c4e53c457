//! The vaccine flow's queries: a reservation, a citizen's reservations, offers and
//! subscriptions, a slot's reservations, and the slots. They read the status views; a
//! slot's remaining doses are read from its shard counters, the only place they are kept.

use chrono::NaiveDate;

use super::alert::Subscription;
use super::config::VaccineConfig;
use super::reservation::ReservationStatus;
use super::slot::{Slot, SlotStatus, shard_key};
use super::view::{AlertResponse, AlertView, HELD, ReservationResponse, ReservationView, SlotView};
use crate::app::queries::{ListParams, Page, date_filter, page, paging, parsed, refuse_filters};
use crate::app::{AppError, Platform, projector};
use crate::domain::{Actor, FieldError};
use crate::http::routes::Access;
use crate::ports::ViewQuery;

/// Doses left in `slot`: the sum over its shards of what each holds less what was taken.
pub async fn remaining(p: &Platform, slot: &Slot) -> Result<i64, AppError> {
    Ok(left_per_shard(p, slot).await?.iter().sum())
}

/// The doses each of `slot`'s shards has left, by shard, its counters read at once.
pub async fn left_per_shard(p: &Platform, slot: &Slot) -> Result<Vec<i64>, AppError> {
    let reads = (0..slot.shards.max(1)).map(|shard| async move {
        let taken = p.store.counter(&shard_key(&slot.id, shard)).await?;
        Ok::<_, AppError>((slot.shard_limit(shard) - taken).max(0))
    });
    futures::future::try_join_all(reads).await
}

/// A slot as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = VaccineSlot, description = "A vaccination slot and the doses it has left (the sum of its shards).")]
pub struct SlotResponse {
    /// Slot id.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// Vaccination date (Korea).
    pub date: NaiveDate,
    /// Hospital id.
    pub hospital: String,
    /// Hospital display name.
    pub hospital_name: String,
    /// Vaccine id.
    pub vaccine: String,
    /// Doses in all.
    pub quantity: u32,
    /// Doses left to reserve.
    pub remaining: i64,
    /// Shard counters.
    pub shards: u8,
    /// `open` or `closed`.
    pub status: SlotStatus,
}

/// The API's view of `slot`.
pub fn slot_response(cfg: &VaccineConfig, slot: &Slot, remaining: i64) -> SlotResponse {
    SlotResponse {
        id: slot.id.clone(),
        date: slot.date,
        hospital_name: cfg.hospital_name(&slot.hospital),
        hospital: slot.hospital.clone(),
        vaccine: slot.vaccine.clone(),
        quantity: slot.quantity,
        remaining,
        shards: slot.shards,
        status: slot.status,
    }
}

/// The API's view of a subscription.
pub fn alert_response(s: &Subscription) -> AlertResponse {
    AlertResponse {
        id: s.id.clone(),
        hospital: s.hospital.clone(),
        vaccine: s.vaccine.clone(),
        status: if s.active { "active" } else { "cancelled" }.to_owned(),
    }
}

/// One slot with its remaining doses, from the slot itself (any signed-in caller).
pub async fn slot(p: &Platform, id: &str) -> Result<SlotResponse, AppError> {
    let slot = crate::app::command::load::<Slot>(p, id).await?.state.ok_or(AppError::NotFound)?;
    let left = remaining(p, &slot).await?;
    Ok(slot_response(&p.config.slice::<VaccineConfig>(), &slot, left))
}

/// The filters of the slot list, as the client sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SlotParams {
    /// Only this date (`YYYY-MM-DD`).
    #[param(value_type = Option<chrono::NaiveDate>)]
    pub date: Option<String>,
    /// Only this hospital's.
    pub hospital: Option<String>,
    /// Only this vaccine's.
    pub vaccine: Option<String>,
    /// `open` (the default) or `closed`.
    #[param(value_type = Option<SlotStatus>)]
    pub status: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// The slots, newest first, open ones by default, filtered by date, hospital and vaccine,
/// each with its remaining doses (an empty slot is still listed, with `remaining` 0).
pub async fn slots(p: &Platform, params: &SlotParams) -> Result<Page<SlotResponse>, AppError> {
    let cfg = p.config.slice::<VaccineConfig>();
    let mut errors = Vec::new();
    let date = parsed(params.date.as_deref(), &mut errors, date_filter);
    let hospital = parsed(params.hospital.as_deref(), &mut errors, |h| {
        cfg.hospital("hospital", h).map(|h| h.id.clone())
    });
    let vaccine = parsed(params.vaccine.as_deref(), &mut errors, |v| cfg.vaccine("vaccine", v));
    let status = parsed(params.status.as_deref(), &mut errors, |s| match s {
        "open" | "closed" => Ok(s.to_owned()),
        _ => Err(FieldError::new("status", "must be open or closed")),
    });
    let list = ListParams {
        limit: params.limit.clone(),
        cursor: params.cursor.clone(),
        ..Default::default()
    };
    let (limit, after) = paging(&list, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let query = ViewQuery {
        owner: hospital,
        queue: vaccine,
        date: date.map(|d| d.to_string()),
        status: Some(status.unwrap_or_else(|| "open".to_owned())),
        after,
        limit,
        ..Default::default()
    };
    let views = page(p, query, Some::<SlotView>).await?;
    let mut items = Vec::with_capacity(views.items.len());
    for v in views.items {
        let (Some(date), Some(hospital), Some(vaccine), Some(status)) = (v.date, v.hospital, v.vaccine, v.status) else {
            continue;
        };
        let slot = Slot {
            id: v.id,
            date,
            hospital,
            vaccine,
            quantity: v.quantity,
            shards: v.shards,
            status,
            announced: true,
            waiting: Vec::new(),
            held: Vec::new(),
        };
        let left = remaining(p, &slot).await?;
        items.push(slot_response(&cfg, &slot, left));
    }
    Ok(Page {
        items,
        next_cursor: views.next_cursor,
    })
}

/// One reservation, for its citizen or an administrator; another citizen's is not found.
pub async fn reservation(p: &Platform, access: &Access, id: &str) -> Result<ReservationResponse, AppError> {
    let (record, view) = projector::read::<ReservationView>(p, id).await?.ok_or(AppError::NotFound)?;
    if !access.sees(&record.owner) {
        return Err(AppError::NotFound);
    }
    view.into_response().ok_or(AppError::NotFound)
}

/// The citizen's reservations and waiting-list entries, newest first.
pub async fn my_reservations(p: &Platform, actor: &Actor, params: &ListParams) -> Result<Page<ReservationResponse>, AppError> {
    let mut errors = Vec::new();
    let status = parsed(params.status.as_deref(), &mut errors, ReservationStatus::parse);
    if params.date.is_some() {
        errors.push(FieldError::new("date", "is not a filter of this list"));
    }
    let (limit, after) = paging(params, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let query = ViewQuery {
        owner: Some(actor.sub.clone()),
        status: status.map(|s| s.as_str().to_owned()),
        after,
        limit,
        ..Default::default()
    };
    page(p, query, ReservationView::into_response).await
}

/// The doses held for the citizen right now, soonest hold end first.
pub async fn my_offers(p: &Platform, actor: &Actor, params: &ListParams) -> Result<Page<ReservationResponse>, AppError> {
    let mut errors = Vec::new();
    refuse_filters(params, &mut errors);
    let (limit, after) = paging(params, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let query = ViewQuery {
        owner: Some(actor.sub.clone()),
        queue: Some(HELD.to_owned()),
        after,
        limit,
        ..Default::default()
    };
    page(p, query, ReservationView::into_response).await
}

/// A slot's reservations and waiting-list entries, newest first (vaccine-admin).
pub async fn slot_reservations(p: &Platform, slot_id: &str, params: &ListParams) -> Result<Page<ReservationResponse>, AppError> {
    let mut errors = Vec::new();
    let status = parsed(params.status.as_deref(), &mut errors, ReservationStatus::parse);
    if params.date.is_some() {
        errors.push(FieldError::new("date", "is not a filter of this list"));
    }
    let (limit, after) = paging(params, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    if crate::app::command::load::<Slot>(p, slot_id).await?.state.is_none() {
        return Err(AppError::NotFound);
    }
    let query = ViewQuery {
        queue: Some(slot_id.to_owned()),
        status: status.map(|s| s.as_str().to_owned()),
        after,
        limit,
        ..Default::default()
    };
    page(p, query, ReservationView::into_response).await
}

/// The citizen's subscriptions, newest first.
pub async fn my_subscriptions(p: &Platform, actor: &Actor, params: &ListParams) -> Result<Page<AlertResponse>, AppError> {
    let mut errors = Vec::new();
    refuse_filters(params, &mut errors);
    let (limit, after) = paging(params, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let query = ViewQuery {
        owner: Some(actor.sub.clone()),
        after,
        limit,
        ..Default::default()
    };
    page(p, query, AlertView::into_response).await
}

/// Every row of view `V` that `query` matches, page after page (the jobs and the fan-out).
pub async fn all<V: crate::app::projector::View>(p: &Platform, mut query: ViewQuery) -> Result<Vec<V>, AppError> {
    query.flow = V::NAME.to_owned();
    query.limit = crate::app::queries::MAX_PAGE;
    let mut out = Vec::new();
    loop {
        let rows = p.views.list(&query).await?;
        let last = rows.last().map(|r| (r.created_at, r.id.clone()));
        let full = rows.len() == query.limit;
        for r in rows {
            out.push(V::deserialize(&r.body)?);
        }
        match last {
            Some(after) if full => query.after = Some(after),
            _ => return Ok(out),
        }
    }
}
