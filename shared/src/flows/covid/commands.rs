//! The COVID flow's commands, one centre each: a citizen applies to the health centre (at
//! any hour, whether the test site is open or not) and may ask to withdraw; test-site staff
//! take samples, record results and mark no-shows at their own site; transfer-centre staff
//! dispatch positive citizens to isolation centres with a free bed; isolation-centre staff
//! admit and release citizens at their own centre. Each writes its own centre's table; the
//! centres hear each other by events only.
//!
//! No result, name or phone is ever logged: the log lines carry ids and sites.

use chrono::{DateTime, Utc};

use super::application::{self, Application, ApplicationStatus, NewApplication};
use super::config::CovidConfig;
use super::faults;
use super::site::{self, EntryStatus, SiteEntry, TestResult, WAITING_LIMIT, waiting_delta, waiting_key};
use super::stay::{self, Stay, StayStatus};
use super::transfer::{self, Transfer, TransferStatus, beds_delta, beds_key};
use super::view::CovidView;
use crate::app::command::{self, Accepted, Decided, Idempotency, IdempotencyKey, Loaded, Work};
use crate::app::{AppError, Platform, projector};
use crate::domain::{Actor, Aggregate, Contact, FieldError, Locale, PersonName, PhoneNumber, parse_future_date};
use crate::ports::CounterMove;

/// How far ahead a citizen may ask for a test.
pub const HORIZON_DAYS: i64 = 14;

fn required<'a>(field: &str, value: &'a Option<String>, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match value.as_deref() {
        Some(v) => Some(v),
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
    }
}

/// An application as the citizen sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CovidApplicationRequest, description = "An application for a COVID test: the test site (`COVID_TEST_SITES`), the \
                                                      date asked for (today to 14 days ahead, Korean calendar), and whom to text.")]
pub struct ApplicationInput {
    /// A test site id.
    #[schema(value_type = String, example = "mapo")]
    pub site: Option<String>,
    /// `YYYY-MM-DD`, today to 14 days ahead.
    #[schema(value_type = String, format = Date, example = "2027-03-02")]
    pub date: Option<String>,
    /// The citizen's name (the certificate's holder), 1 to 50 characters.
    #[schema(value_type = String, example = "김서연")]
    pub name: Option<String>,
    /// A Korean mobile number (`010-1234-5678` or `+821012345678`).
    #[schema(value_type = String, example = "010-1234-5678")]
    pub phone: Option<String>,
    /// SMS language, `ko` (default) or `en`.
    #[schema(value_type = Option<String>, example = "ko")]
    pub locale: Option<String>,
}

/// A citizen applies for a test (patient). The application reaches the site's waiting list
/// when the site hears of it, even if the site is closed or down now.
pub async fn apply(
    p: &Platform,
    actor: &Actor,
    input: ApplicationInput,
    idempotency: Option<IdempotencyKey>,
    request_id: &str,
) -> Result<Accepted, AppError> {
    let cfg = p.config.slice::<CovidConfig>();
    let now = p.clock.now();
    let mut errors = Vec::new();
    let site = required("site", &input.site, &mut errors).and_then(|s| cfg.site("site", s).cloned().map_err(|e| errors.push(e)).ok());
    let date = required("date", &input.date, &mut errors)
        .and_then(|d| parse_future_date("date", d, now, HORIZON_DAYS).map_err(|e| errors.push(e)).ok());
    let name = required("name", &input.name, &mut errors).and_then(|v| PersonName::parse(v).map_err(|e| errors.push(e)).ok());
    let phone = required("phone", &input.phone, &mut errors).and_then(|v| PhoneNumber::parse(v).map_err(|e| errors.push(e)).ok());
    let locale = match input.locale.as_deref() {
        None => Some(Locale::Ko),
        Some(v) => Locale::parse(v).map_err(|e| errors.push(e)).ok(),
    };
    let (Some(site), Some(date), Some(name), Some(phone), Some(locale)) = (site, date, name, phone, locale) else {
        return Err(AppError::Invalid(errors));
    };
    let idempotency = idempotency.map(|key| Idempotency {
        scope: format!("{}:POST /covid/applications", actor.sub),
        key,
    });
    let id = p.ids.new_id();
    let new = NewApplication {
        citizen_sub: actor.sub.clone(),
        site: site.id.clone(),
        site_name: site.name.clone(),
        date,
        contact: Contact { name, phone, locale },
    };
    let accepted = command::run(p, faults::APPLY, idempotency.as_ref(), || async {
        let mut work = Work::for_request(p, &id, request_id);
        work.decide(Loaded::<Application>::absent(&id), application::Command::Apply(new.clone()))?;
        let body = projector::view_of::<CovidView>(work.events())
            .and_then(CovidView::into_response)
            .ok_or_else(|| AppError::Internal("an application applied to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 201,
                body: serde_json::to_value(body)?,
                location: Some(format!("/covid/applications/{id}")),
            },
        })
    })
    .await?;
    tracing::info!(application_id = %id, correlation_id = %id, site = %site.id, "covid test applied for");
    Ok(accepted)
}

/// What a citizen's withdrawal answers: asked, the site decides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = CovidWithdrawalResult)]
pub struct WithdrawalAsked {
    /// The application.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The application's status at the health centre (`applied` until the site decides).
    pub status: ApplicationStatus,
    /// `requested`: the site decides, and the application's view shows what it decided.
    #[schema(example = "requested")]
    pub withdrawal: String,
}

/// The citizen asks to withdraw their application before the test (patient, its owner).
/// The site decides, since only it knows whether the sample was taken: `202`, and the
/// view shows `withdrawn`, or the withdrawal refused, once the site has decided. Once the
/// health centre has heard of the sample: `409`.
pub async fn withdraw(p: &Platform, actor: &Actor, id: &str, request_id: &str) -> Result<Accepted, AppError> {
    let accepted = command::run(p, faults::WITHDRAW, None, || async {
        let loaded = command::load::<Application>(p, id).await?;
        let Some(a) = loaded.state.clone() else {
            return Err(AppError::NotFound);
        };
        if a.citizen_sub != actor.sub {
            return Err(AppError::NotFound);
        }
        let mut work = Work::for_request(p, id, request_id);
        let after = work
            .decide(loaded, application::Command::Withdraw)?
            .ok_or_else(|| AppError::Internal("an application withdrawn to nothing".into()))?;
        let withdrawal = match after.status {
            ApplicationStatus::Withdrawn => "withdrawn",
            _ => "requested",
        };
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 202,
                body: serde_json::to_value(WithdrawalAsked {
                    id: id.to_owned(),
                    status: after.status,
                    withdrawal: withdrawal.to_owned(),
                })?,
                location: Some(format!("/covid/applications/{id}")),
            },
        })
    })
    .await?;
    tracing::info!(application_id = id, correlation_id = id, "covid application withdrawal asked");
    Ok(accepted)
}

/// The caller's site (`custom:site`), which must be one the flow knows of `kind`.
fn staff_site<'a>(site: Option<&'a str>, known: bool, kind: &str) -> Result<&'a str, AppError> {
    match site {
        Some(s) if known => Ok(s),
        Some(_) => Err(AppError::Forbidden(format!("your account's site is no {kind} of this deployment"))),
        None => Err(AppError::Forbidden(format!(
            "your account names no {kind} (the custom:site attribute)"
        ))),
    }
}

/// What test-site staff do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteWork {
    /// Take the sample.
    Sample,
    /// Record the result.
    Record(TestResult),
    /// Mark a no-show.
    Noshow,
}

/// What a test-site command answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = CovidSiteResult)]
pub struct SiteChange {
    /// The application.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The test site.
    pub site: String,
    /// Where the application stands at the site.
    pub status: EntryStatus,
    /// When the sample was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled_at: Option<DateTime<Utc>>,
}

/// Test-site staff act on an application at their own site (`custom:site`; another site's
/// is not found). Sampling, a withdrawal and a no-show leave the waiting list, and its count drops
/// in the same transaction; a result before the sample is a `409`.
pub async fn at_site(
    p: &Platform,
    actor: &Actor,
    caller_site: Option<&str>,
    id: &str,
    work_done: SiteWork,
    request_id: &str,
) -> Result<Accepted, AppError> {
    let cfg = p.config.slice::<CovidConfig>();
    let site_id = staff_site(caller_site, caller_site.is_some_and(|s| cfg.site("site", s).is_ok()), "test site")?;
    let (function, command) = match work_done {
        SiteWork::Sample => (
            faults::SAMPLE,
            site::Command::Sample {
                at: p.clock.now(),
                by: actor.sub.clone(),
            },
        ),
        SiteWork::Record(result) => (
            faults::RESULT,
            site::Command::Record {
                result,
                by: actor.sub.clone(),
            },
        ),
        SiteWork::Noshow => (faults::NOSHOW, site::Command::Noshow { by: actor.sub.clone() }),
    };
    let accepted = command::run(p, function, None, || async {
        let loaded = command::load::<SiteEntry>(p, id).await?;
        let Some(before) = loaded.state.clone() else {
            return Err(AppError::NotFound);
        };
        // Another site's application is not found, as if it did not exist: a 403 would
        // tell the caller it exists elsewhere.
        if before.site != site_id {
            return Err(AppError::NotFound);
        }
        let mut work = Work::for_request(p, id, request_id);
        let after = work
            .decide(loaded, command.clone())?
            .ok_or_else(|| AppError::Internal("an application at the site changed to nothing".into()))?;
        let delta = waiting_delta(Some(&before), Some(&after));
        if delta != 0 {
            work.counter(CounterMove {
                key: waiting_key(&after.site),
                delta,
                limit: WAITING_LIMIT,
            });
        }
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 200,
                body: serde_json::to_value(SiteChange {
                    id: id.to_owned(),
                    site: after.site.clone(),
                    status: after.status,
                    sampled_at: after.sampled_at,
                })?,
                location: None,
            },
        })
    })
    .await?;
    tracing::info!(
        application_id = id,
        correlation_id = id,
        site = site_id,
        ?function,
        "covid test site recorded"
    );
    Ok(accepted)
}

/// What a dispatch answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = CovidTransferResult)]
pub struct TransferChange {
    /// The application.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// Where the transfer stands.
    pub status: TransferStatus,
    /// The isolation centre.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolation_centre: Option<String>,
}

/// Why a dispatch is refused at a full centre.
fn full(centre: &str) -> String {
    format!("isolation centre {centre} has no free bed")
}

/// Transfer-centre staff dispatch a citizen to an isolation centre (transfer-centre). The
/// bed is taken in the transaction that records the dispatch: concurrent dispatches for the
/// last beds never put a centre over its capacity (`409` once it is full).
pub async fn dispatch(p: &Platform, actor: &Actor, id: &str, centre: &str, request_id: &str) -> Result<Accepted, AppError> {
    let cfg = p.config.slice::<CovidConfig>();
    let centre = cfg
        .centre("isolation_centre", centre)
        .map_err(|e| AppError::Invalid(vec![e]))?
        .clone();
    let accepted = command::run(p, faults::DISPATCH, None, || async {
        let loaded = command::load::<Transfer>(p, id).await?;
        let before = loaded.state.clone();
        if before.is_none() {
            return Err(AppError::NotFound);
        }
        let mut work = Work::for_request(p, id, request_id);
        let after = work.decide(
            loaded,
            transfer::Command::Dispatch {
                centre: centre.id.clone(),
                by: actor.sub.clone(),
            },
        )?;
        if let Some((bed_centre, delta)) = beds_delta(before.as_ref(), after.as_ref()) {
            work.counter_or_refuse(
                CounterMove {
                    key: beds_key(&bed_centre),
                    delta,
                    limit: i64::from(centre.beds),
                },
                full(&bed_centre),
            );
        }
        let after = after.ok_or_else(|| AppError::Internal("a transfer changed to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 200,
                body: serde_json::to_value(TransferChange {
                    id: id.to_owned(),
                    status: after.status,
                    isolation_centre: after.centre.clone(),
                })?,
                location: None,
            },
        })
    })
    .await?;
    tracing::info!(application_id = id, correlation_id = id, "covid transfer dispatched");
    Ok(accepted)
}

/// What isolation-centre staff do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationWork {
    /// Admit the citizen.
    Admit,
    /// Release them.
    Release,
}

/// What an isolation-centre command answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = CovidIsolationResult)]
pub struct StayChange {
    /// The application.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The isolation centre.
    pub isolation_centre: String,
    /// Where the stay stands.
    pub status: StayStatus,
}

/// Isolation-centre staff admit or release a citizen at their own centre (`custom:site`;
/// another centre's is not found). An admission before the dispatch reached the centre:
/// `409`. Releasing a citizen who never arrived ends the stay too. The bed is freed when the
/// transfer centre hears of the release.
pub async fn at_isolation(
    p: &Platform,
    actor: &Actor,
    caller_site: Option<&str>,
    id: &str,
    work_done: IsolationWork,
    request_id: &str,
) -> Result<Accepted, AppError> {
    let cfg = p.config.slice::<CovidConfig>();
    let centre = staff_site(
        caller_site,
        caller_site.is_some_and(|s| cfg.centre("site", s).is_ok()),
        "isolation centre",
    )?;
    let (function, command) = match work_done {
        IsolationWork::Admit => (faults::ADMIT, stay::Command::Admit { by: actor.sub.clone() }),
        IsolationWork::Release => (faults::RELEASE, stay::Command::Release { by: actor.sub.clone() }),
    };
    let accepted = command::run(p, function, None, || async {
        let loaded = command::load::<Stay>(p, id).await?;
        // Another centre's citizen is not found: a 403 would tell that they were dispatched
        // somewhere, which says their result.
        if let Some(s) = &loaded.state
            && s.centre != centre
        {
            return Err(AppError::NotFound);
        }
        let events = Stay::decide(loaded.state.as_ref(), command.clone()).map_err(AppError::from)?;
        let mut work = Work::for_request(p, id, request_id);
        let after = work
            .stage(loaded, &events)?
            .ok_or_else(|| AppError::Internal("a stay changed to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 200,
                body: serde_json::to_value(StayChange {
                    id: id.to_owned(),
                    isolation_centre: after.centre.clone(),
                    status: after.status,
                })?,
                location: None,
            },
        })
    })
    .await?;
    tracing::info!(application_id = id, correlation_id = id, ?function, "covid isolation recorded");
    Ok(accepted)
}

/// The `result` of a result command: required, `negative` or `positive`.
pub fn result_field(raw: &Option<serde_json::Value>) -> Result<TestResult, AppError> {
    let invalid = |detail: &str| AppError::Invalid(vec![FieldError::new("result", detail)]);
    match raw {
        None | Some(serde_json::Value::Null) => Err(invalid("is required")),
        Some(serde_json::Value::String(s)) => TestResult::parse("result", s).map_err(|e| AppError::Invalid(vec![e])),
        Some(_) => Err(invalid("must be a string: negative or positive")),
    }
}

/// The `isolation_centre` of a dispatch: required, a string (the centre itself is checked
/// against the configuration by [`dispatch`]).
pub fn centre_field(raw: &Option<serde_json::Value>) -> Result<String, AppError> {
    let invalid = |detail: &str| AppError::Invalid(vec![FieldError::new("isolation_centre", detail)]);
    match raw {
        None | Some(serde_json::Value::Null) => Err(invalid("is required")),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(invalid("must be a string: an isolation centre id")),
    }
}
