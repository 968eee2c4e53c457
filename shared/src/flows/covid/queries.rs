//! The COVID flow's queries, on the status views (CQRS: the centres' tables are never
//! read to answer): one application (its citizen, and the staff of the centres involved), a
//! citizen's applications, a test site's waiting list with its count, the transfer centre's
//! requests, an isolation centre's occupants with its free beds, a certificate; and the
//! public verifier's key and answer.

use super::certificate::{Verification, verification};
use super::config::CovidConfig;
use super::site::{WAITING_LIMIT, waiting_key};
use super::stay::StayStatus;
use super::transfer::{TransferStatus, beds_key};
use super::view::{
    CertificateResponse, CertificateView, CovidResponse, CovidView, Stage, StayResponse, StayView, TransferResponse, TransferView,
};
use super::{ISOLATION_CENTRE, TEST_SITE, TRANSFER_CENTRE};
use crate::app::queries::{ListParams, Page, page, paging, parsed};
use crate::app::{AppError, Platform, projector};
use crate::domain::{Actor, FieldError};
use crate::http::routes::Access;
use crate::ports::ViewQuery;
use crate::sealing;

/// May `access` read application `view`? Its citizen; test-site staff of its site; the
/// transfer centre once a transfer is asked for; isolation-centre staff of the centre it is
/// dispatched to. Nobody else (a `404`, as if it did not exist).
fn may_read(access: &Access, view: &CovidView) -> bool {
    let c = &access.claims;
    (!view.citizen_sub.is_empty() && c.sub == view.citizen_sub)
        || (c.has(TEST_SITE) && view.site.as_deref().is_some_and(|s| c.works_at(s)))
        || (c.has(TRANSFER_CENTRE) && view.transfer.is_some())
        || (c.has(ISOLATION_CENTRE) && view.stay.as_ref().is_some_and(|s| c.works_at(&s.isolation_centre)))
}

/// One application.
pub async fn application(p: &Platform, access: &Access, id: &str) -> Result<CovidResponse, AppError> {
    let (_, view) = projector::read::<CovidView>(p, id).await?.ok_or(AppError::NotFound)?;
    if !may_read(access, &view) {
        return Err(AppError::NotFound);
    }
    view.into_response().ok_or(AppError::NotFound)
}

/// The citizen's applications, newest first, by stage.
pub async fn my_applications(p: &Platform, actor: &Actor, params: &ListParams) -> Result<Page<CovidResponse>, AppError> {
    let mut errors = Vec::new();
    let status = parsed(params.status.as_deref(), &mut errors, |s| Stage::parse("status", s));
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
    page(p, query, CovidView::into_response).await
}

/// The caller's own site of the flow's `kind`: a known id (`422` listing them otherwise)
/// that the caller works at (`403` otherwise).
fn own<T>(access: &Access, raw: &str, known: Result<T, FieldError>, kind: &str) -> Result<T, AppError> {
    let known = known.map_err(|e| AppError::Invalid(vec![e]))?;
    if access.claims.works_at(raw) {
        Ok(known)
    } else {
        Err(AppError::Forbidden(format!("this is not your {kind} (your account's custom:site)")))
    }
}

/// A test site's waiting list, first come first, with its waiting count.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = CovidSiteQueue)]
pub struct SiteQueue {
    /// Citizens waiting at the site now: the site's count, which rises when an application
    /// reaches the site and falls only when its test is taken, it is withdrawn, or a
    /// no-show is marked.
    pub waiting: u64,
    /// The applications waiting, oldest first.
    #[schema(max_items = 100)]
    pub items: Vec<CovidResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A test site's waiting list (test-site staff of that site).
pub async fn site_queue(p: &Platform, access: &Access, site: &str, params: &ListParams) -> Result<SiteQueue, AppError> {
    let cfg = p.config.slice::<CovidConfig>();
    own(access, site, cfg.site("site", site).map(drop), "test site")?;
    let mut errors = Vec::new();
    crate::app::queries::refuse_filters(params, &mut errors);
    let (limit, after) = paging(params, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let waiting = p.store.counter(&waiting_key(site)).await?.clamp(0, WAITING_LIMIT);
    let query = ViewQuery {
        queue: Some(site.to_owned()),
        oldest_first: true,
        after,
        limit,
        ..Default::default()
    };
    let Page { items, next_cursor } = page(p, query, CovidView::into_response).await?;
    Ok(SiteQueue {
        waiting: u64::try_from(waiting).unwrap_or_default(),
        items,
        next_cursor,
    })
}

/// The transfer centre's requests, oldest first, by status (`requested` by default).
pub async fn transfers(p: &Platform, params: &ListParams) -> Result<Page<TransferResponse>, AppError> {
    let mut errors = Vec::new();
    let status = parsed(params.status.as_deref(), &mut errors, |s| TransferStatus::parse("status", s)).unwrap_or(TransferStatus::Requested);
    if params.date.is_some() {
        errors.push(FieldError::new("date", "is not a filter of this list"));
    }
    let (limit, after) = paging(params, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let query = ViewQuery {
        status: Some(status.as_str().to_owned()),
        oldest_first: true,
        after,
        limit,
        ..Default::default()
    };
    page(p, query, TransferView::into_response).await
}

/// An isolation centre's stays, with its free beds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = CovidIsolationCentre)]
pub struct IsolationBoard {
    /// The centre's beds.
    pub beds: u32,
    /// Beds not taken by a dispatched or admitted citizen.
    pub free_beds: u32,
    /// The stays of the status asked (`isolated` by default), oldest first.
    #[schema(max_items = 100)]
    pub items: Vec<StayResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// An isolation centre's occupants and free beds (isolation-centre staff of that centre).
pub async fn isolation(p: &Platform, access: &Access, centre: &str, params: &ListParams) -> Result<IsolationBoard, AppError> {
    let cfg = p.config.slice::<CovidConfig>();
    let beds = own(access, centre, cfg.centre("centre", centre).map(|c| c.beds), "isolation centre")?;
    let mut errors = Vec::new();
    let status = parsed(params.status.as_deref(), &mut errors, |s| StayStatus::parse("status", s)).unwrap_or(StayStatus::Isolated);
    if params.date.is_some() {
        errors.push(FieldError::new("date", "is not a filter of this list"));
    }
    let (limit, after) = paging(params, &mut errors);
    let Some(limit) = limit.filter(|_| errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let taken = p.store.counter(&beds_key(centre)).await?.clamp(0, i64::from(beds));
    let query = ViewQuery {
        status: Some(status.as_str().to_owned()),
        category: Some(centre.to_owned()),
        oldest_first: true,
        after,
        limit,
        ..Default::default()
    };
    let Page { items, next_cursor } = page(p, query, StayView::into_response).await?;
    Ok(IsolationBoard {
        beds,
        free_beds: beds.saturating_sub(u32::try_from(taken).unwrap_or(beds)),
        items,
        next_cursor,
    })
}

/// A certificate, for its citizen only.
pub async fn certificate(p: &Platform, actor: &Actor, id: &str) -> Result<CertificateResponse, AppError> {
    let (record, view) = projector::read::<CertificateView>(p, id).await?.ok_or(AppError::NotFound)?;
    if record.owner != actor.sub {
        return Err(AppError::NotFound);
    }
    view.into_response().ok_or(AppError::NotFound)
}

/// The public key that verifies certificates: a JWK (RFC 7517).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = CovidCertificateKey)]
pub struct Jwk {
    /// `EC`.
    #[schema(example = "EC")]
    pub kty: String,
    /// `P-256`.
    #[schema(example = "P-256")]
    pub crv: String,
    /// The point's x coordinate, Base64url.
    pub x: String,
    /// The point's y coordinate, Base64url.
    pub y: String,
    /// The key id the certificates' COSE header names, Base64url.
    pub kid: String,
    /// `ES256`.
    #[schema(example = "ES256")]
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub key_use: String,
}

/// The public key that verifies certificates (public).
pub async fn public_key(p: &Platform) -> Result<Jwk, AppError> {
    let signer = p.signer()?;
    let key = signer.public_key().await.map_err(unavailable)?;
    Ok(serde_json::from_value(sealing::public_jwk(&key, signer.key_id()))?)
}

/// What the public verifier answers for `payload` now (public): valid, expired, altered,
/// foreign, or not a certificate at all.
pub async fn verify(p: &Platform, payload: &str) -> Result<Verification, AppError> {
    let signer = p.signer()?;
    let key = signer.public_key().await.map_err(unavailable)?;
    Ok(verification(sealing::open(
        payload,
        &key,
        signer.key_id(),
        p.clock.now().timestamp(),
    )))
}

fn unavailable(e: sealing::SignError) -> AppError {
    AppError::Unavailable {
        reason: e.to_string(),
        retry_after: std::time::Duration::from_secs(1),
    }
}
