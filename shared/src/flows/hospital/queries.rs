//! The hospital flow's queries, all on the status views: one visit (its patient, the
//! staff), the customer team's board of a day, a patient's visits, the doctors' queue of a
//! department and the examiners' work list (both oldest first, as they are worked through),
//! one exam order.

use super::config::HospitalConfig;
use super::exam::ExamStatus;
use super::view::{Detail, ExamResponse, ExamView, VisitResponse, VisitView};
use super::visit::VisitStatus;
use super::{DOCTOR, EXAMINER};
use crate::app::queries::{ListParams, Page, date_filter, page, paging, parsed};
use crate::app::{AppError, Platform, projector};
use crate::domain::{Actor, FieldError, today_in_korea};
use crate::http::routes::Access;
use crate::ports::ViewQuery;

/// What `access` may read of a visit's clinical detail: its patient and the clinicians all
/// of it; reception and the customer team, statuses.
fn detail_for(access: &Access, owner: &str) -> Detail {
    let clinician = access.claims.has(DOCTOR) || access.claims.has(EXAMINER);
    if clinician || (!owner.is_empty() && access.claims.sub == owner) {
        Detail::Clinical
    } else {
        Detail::Administrative
    }
}

/// One visit, for its patient or the staff; anyone else's is not found.
pub async fn visit(p: &Platform, access: &Access, id: &str) -> Result<VisitResponse, AppError> {
    let (record, view) = projector::read::<VisitView>(p, id).await?.ok_or(AppError::NotFound)?;
    if !access.sees(&record.owner) {
        return Err(AppError::NotFound);
    }
    let detail = detail_for(access, &record.owner);
    view.into_response(detail).ok_or(AppError::NotFound)
}

/// The filters of the board, as the client sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BoardParams {
    /// The Korean calendar date of registration (`YYYY-MM-DD`; default today in Korea).
    #[param(value_type = Option<chrono::NaiveDate>)]
    pub date: Option<String>,
    /// Only this status.
    #[param(value_type = Option<VisitStatus>)]
    pub status: Option<String>,
    /// Only this department's (`VISIT_DEPARTMENTS`).
    pub department: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

fn department(p: &Platform, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<String> {
    let cfg = p.config.slice::<HospitalConfig>();
    parsed(raw, errors, |d| cfg.department("department", d).map(|d| d.id.clone()))
}

fn limits(
    limit: &Option<String>,
    cursor: &Option<String>,
    errors: &mut Vec<FieldError>,
) -> (Option<usize>, Option<(chrono::DateTime<chrono::Utc>, String)>) {
    let list = ListParams {
        limit: limit.clone(),
        cursor: cursor.clone(),
        ..Default::default()
    };
    paging(&list, errors)
}

/// Every visit of a day, newest first, by status and department (reception, the customer
/// team): statuses, no clinical detail.
pub async fn board(p: &Platform, params: &BoardParams) -> Result<Page<VisitResponse>, AppError> {
    let mut errors = Vec::new();
    let date = parsed(params.date.as_deref(), &mut errors, date_filter).unwrap_or_else(|| today_in_korea(p.clock.now()));
    let status = parsed(params.status.as_deref(), &mut errors, |s| VisitStatus::parse("status", s));
    let department = department(p, params.department.as_deref(), &mut errors);
    let (limit, after) = limits(&params.limit, &params.cursor, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let query = ViewQuery {
        date: Some(date.to_string()),
        status: status.map(|s| s.as_str().to_owned()),
        category: department,
        after,
        limit,
        ..Default::default()
    };
    page(p, query, |v: VisitView| v.into_response(Detail::Administrative)).await
}

/// The patient's visits, newest first.
pub async fn my_visits(p: &Platform, actor: &Actor, params: &ListParams) -> Result<Page<VisitResponse>, AppError> {
    let mut errors = Vec::new();
    let status = parsed(params.status.as_deref(), &mut errors, |s| VisitStatus::parse("status", s));
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
    page(p, query, |v: VisitView| v.into_response(Detail::Clinical)).await
}

/// The filters of the doctors' queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    /// The department whose queue (`VISIT_DEPARTMENTS`).
    #[param(required = true)]
    pub department: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// A department's doctors' queue: the patients diagnosis holds for a doctor, first come
/// first (doctor). A patient a doctor took has left it.
pub async fn doctor_queue(p: &Platform, params: &QueueParams) -> Result<Page<VisitResponse>, AppError> {
    let mut errors = Vec::new();
    if params.department.is_none() {
        errors.push(FieldError::new("department", "is required"));
    }
    let department = department(p, params.department.as_deref(), &mut errors);
    let (limit, after) = limits(&params.limit, &params.cursor, &mut errors);
    let (Some(limit), Some(department)) = (limit.filter(|_| errors.is_empty()), department) else {
        return Err(AppError::Invalid(errors));
    };
    let query = ViewQuery {
        queue: Some(department),
        oldest_first: true,
        after,
        limit,
        ..Default::default()
    };
    page(p, query, |v: VisitView| v.into_response(Detail::Clinical)).await
}

/// The filters of the work list.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExamParams {
    /// `ordered` (the default: the exams to do), `performed` or `cancelled`.
    #[param(value_type = Option<ExamStatus>)]
    pub status: Option<String>,
    /// Only this department's.
    pub department: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// The examiners' work list, oldest order first (examiner).
pub async fn work_list(p: &Platform, params: &ExamParams) -> Result<Page<ExamResponse>, AppError> {
    let mut errors = Vec::new();
    let status = parsed(params.status.as_deref(), &mut errors, |s| ExamStatus::parse("status", s)).unwrap_or(ExamStatus::Ordered);
    let department = department(p, params.department.as_deref(), &mut errors);
    let (limit, after) = limits(&params.limit, &params.cursor, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let query = ViewQuery {
        status: Some(status.as_str().to_owned()),
        category: department,
        oldest_first: true,
        after,
        limit,
        ..Default::default()
    };
    page(p, query, ExamView::into_response).await
}

/// One exam order (examiner, doctor).
pub async fn exam(p: &Platform, id: &str) -> Result<ExamResponse, AppError> {
    let (_, view) = projector::read::<ExamView>(p, id).await?.ok_or(AppError::NotFound)?;
    view.into_response().ok_or(AppError::NotFound)
}
