//! The check-up flow's queries: one booking, the patient's own bookings, and the centre's
//! work list. They read the status views only, never the command side.

use super::domain::BookingStatus;
use super::view::{CheckupResponse, CheckupView};
use crate::app::queries::{ListParams, Page, date_filter, page, paging, parsed, refuse_filters};
use crate::app::{AppError, Platform, projector};
use crate::domain::Actor;
use crate::http::routes::Access;
use crate::ports::ViewQuery;

/// One booking's status view, for its patient or for centre staff. Another patient's
/// booking is not found, as if it did not exist.
pub async fn checkup(p: &Platform, access: &Access, id: &str) -> Result<CheckupResponse, AppError> {
    let (record, view) = projector::read::<CheckupView>(p, id).await?.ok_or(AppError::NotFound)?;
    if !access.sees(&record.owner) {
        return Err(AppError::NotFound);
    }
    view.into_response().ok_or(AppError::NotFound)
}

/// The patient's own bookings, newest first.
pub async fn my_checkups(p: &Platform, actor: &Actor, params: &ListParams) -> Result<Page<CheckupResponse>, AppError> {
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
    page(p, query, CheckupView::into_response).await
}

/// The centre's work list, optionally for one date and one status, newest first.
pub async fn centre_list(p: &Platform, params: &ListParams) -> Result<Page<CheckupResponse>, AppError> {
    let mut errors = Vec::new();
    let date = parsed(params.date.as_deref(), &mut errors, date_filter);
    let status = parsed(params.status.as_deref(), &mut errors, BookingStatus::parse);
    let (limit, after) = paging(params, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let query = ViewQuery {
        date: date.map(|d| d.to_string()),
        status: status.map(|s| s.as_str().to_owned()),
        after,
        limit,
        ..Default::default()
    };
    page(p, query, CheckupView::into_response).await
}
