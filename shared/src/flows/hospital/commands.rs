//! The hospital flow's commands, one desk each: reception registers, cancels and closes
//! visits; a doctor takes a patient, prescribes exams, reviews their results and completes
//! or refuses the treatment; an examiner performs or cancels an exam. Each writes its own
//! desk's table; the desks learn of each other by events. The one decision two desks share,
//! whether a doctor took the patient or reception cancelled the visit first, is the visit's
//! claim, taken by either in the transaction that records it.
//!
//! No exam name, note, reason or diagnosis is ever logged: the log lines carry ids.

use super::config::HospitalConfig;
use super::exam::{self, ExamOrder, ExamStatus, MAX_TEXT};
use super::faults;
use super::treatment::{self, Treatment, TreatmentStatus, claim_key};
use super::view::{Detail, VisitView};
use super::visit::{self, NewVisit, Visit, VisitStatus};
use crate::app::command::{self, Accepted, Decided, Idempotency, IdempotencyKey, Loaded, Work};
use crate::app::{AppError, Platform, projector};
use crate::domain::{Actor, Aggregate, Contact, FieldError, Locale, PersonName, PhoneNumber, today_in_korea};
use crate::ports::CounterMove;

/// Why reception cannot cancel: the claim is the doctor's.
const TAKEN: &str = "a doctor has already taken this patient; the visit cannot be cancelled";
/// Why a doctor cannot take the patient: the claim is gone (to reception's cancellation, or
/// to a doctor who committed first).
const GONE: &str = "the patient is no longer waiting: the visit was cancelled at reception, or another doctor took them";

fn required<'a>(field: &str, value: &'a Option<String>, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match value.as_deref() {
        Some(v) => Some(v),
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
    }
}

/// A short free text (a result note, a reason): trimmed, 1 to [`MAX_TEXT`] characters, no
/// control characters but line breaks.
pub fn short_text(field: &str, raw: &str) -> Result<String, FieldError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(FieldError::new(field, format!("must be at most {MAX_TEXT} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(text.to_owned())
}

fn account(raw: &str) -> Result<String, FieldError> {
    let ok = (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(FieldError::new(
            "patient_sub",
            "must be the patient's account id (1 to 128 letters, digits and - _ . : @)",
        ))
    }
}

/// A registration as reception sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = VisitRequest, description = "A visit registered at reception: the patient, their phone for the SMS, the department \
                                            (`VISIT_DEPARTMENTS`), and optionally their account, so that they can follow it.")]
pub struct VisitInput {
    /// The patient's name, 1 to 50 characters.
    #[schema(value_type = String, example = "홍길동")]
    pub name: Option<String>,
    /// A Korean mobile number (`010-1234-5678` or `+821012345678`).
    #[schema(value_type = String, example = "010-1234-5678")]
    pub phone: Option<String>,
    /// A department id.
    #[schema(value_type = String, example = "internal")]
    pub department: Option<String>,
    /// SMS language, `ko` (default) or `en`.
    #[schema(value_type = Option<String>, example = "ko")]
    pub locale: Option<String>,
    /// The patient's account (their `sub`), so that `GET /me/visits` lists the visit.
    #[schema(value_type = Option<String>)]
    pub patient_sub: Option<String>,
}

/// Registers a visit (reception). The patient joins the department's doctors' queue when
/// diagnosis hears of it, even if diagnosis is down now.
pub async fn register(
    p: &Platform,
    actor: &Actor,
    input: VisitInput,
    idempotency: Option<IdempotencyKey>,
    request_id: &str,
) -> Result<Accepted, AppError> {
    let cfg = p.config.slice::<HospitalConfig>();
    let mut errors = Vec::new();
    let name = required("name", &input.name, &mut errors).and_then(|v| PersonName::parse(v).map_err(|e| errors.push(e)).ok());
    let phone = required("phone", &input.phone, &mut errors).and_then(|v| PhoneNumber::parse(v).map_err(|e| errors.push(e)).ok());
    let department = required("department", &input.department, &mut errors)
        .and_then(|d| cfg.department("department", d).cloned().map_err(|e| errors.push(e)).ok());
    let locale = match input.locale.as_deref() {
        None => Some(Locale::Ko),
        Some(v) => Locale::parse(v).map_err(|e| errors.push(e)).ok(),
    };
    let patient_sub = input
        .patient_sub
        .as_deref()
        .and_then(|s| account(s).map_err(|e| errors.push(e)).ok());
    let (Some(name), Some(phone), Some(department), Some(locale)) = (name, phone, department, locale) else {
        return Err(AppError::Invalid(errors));
    };
    if !errors.is_empty() {
        return Err(AppError::Invalid(errors));
    }
    let idempotency = idempotency.map(|key| Idempotency {
        scope: format!("{}:POST /visits", actor.sub),
        key,
    });
    let id = p.ids.new_id();
    let new = NewVisit {
        patient_sub,
        department: department.id.clone(),
        department_name: department.name.clone(),
        date: today_in_korea(p.clock.now()),
        contact: Contact { name, phone, locale },
    };
    let accepted = command::run(p, faults::REGISTER, idempotency.as_ref(), || async {
        let mut work = Work::for_request(p, &id, request_id);
        work.decide(Loaded::<Visit>::absent(&id), visit::Command::Register(new.clone()))?;
        let body = projector::view_of::<VisitView>(work.events())
            .and_then(|v| v.into_response(Detail::Clinical))
            .ok_or_else(|| AppError::Internal("a visit registered to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: Accepted {
                status: 201,
                body: serde_json::to_value(body)?,
                location: Some(format!("/visits/{id}")),
            },
        })
    })
    .await?;
    tracing::info!(visit_id = %id, correlation_id = %id, department = %department.id, "visit registered");
    Ok(accepted)
}

/// What a command on a visit answers: the visit and the status it reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = VisitCommandResult)]
pub struct VisitChange {
    /// Visit number.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The visit's status, in the clinic's words.
    pub status: VisitStatus,
    /// FHIR Encounter's.
    #[schema(example = "in-progress")]
    pub fhir_status: String,
}

fn visit_change(id: &str, status: VisitStatus) -> Result<Accepted, AppError> {
    Ok(Accepted {
        status: 200,
        body: serde_json::to_value(VisitChange {
            id: id.to_owned(),
            status,
            fhir_status: status.fhir().to_owned(),
        })?,
        location: None,
    })
}

/// What reception does at the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desk {
    /// Cancel the visit, before a doctor took the patient.
    Cancel,
    /// Close it, once the treatment is over.
    Close,
}

/// Cancels or closes a visit (reception). Cancelling takes the visit's claim, so that no
/// doctor takes the patient afterwards; once a doctor has, it is refused (`409`).
pub async fn at_desk(p: &Platform, visit_id: &str, desk: Desk, request_id: &str) -> Result<Accepted, AppError> {
    let (function, command) = match desk {
        Desk::Cancel => (faults::CANCEL, visit::Command::Cancel),
        Desk::Close => (faults::CLOSE, visit::Command::Close),
    };
    let accepted = command::run(p, function, None, || async {
        let loaded = command::load::<Visit>(p, visit_id).await?;
        let Some(state) = loaded.state.as_ref() else {
            return Err(AppError::NotFound);
        };
        let events = Visit::decide(Some(state), command.clone()).map_err(AppError::from)?;
        let mut work = Work::for_request(p, visit_id, request_id);
        if desk == Desk::Cancel && !events.is_empty() {
            let claim = claim_key(visit_id);
            if p.store.counter(&claim).await? > 0 {
                return Err(AppError::Conflict(TAKEN.into()));
            }
            work.counter_or_refuse(
                CounterMove {
                    key: claim,
                    delta: 1,
                    limit: 1,
                },
                TAKEN,
            );
        }
        let visit = work
            .stage(loaded, &events)?
            .ok_or_else(|| AppError::Internal("a visit changed to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: visit_change(visit_id, visit.status)?,
        })
    })
    .await?;
    tracing::info!(visit_id, correlation_id = visit_id, ?desk, "visit changed at reception");
    Ok(accepted)
}

/// A visit's treatment, if diagnosis has it: a doctor acts on the patients of the queue,
/// and diagnosis knows no other (`404`; it reads nothing of reception's).
async fn treatment_of(p: &Platform, visit_id: &str) -> Result<(Loaded<Treatment>, Treatment), AppError> {
    let loaded = command::load::<Treatment>(p, visit_id).await?;
    let t = loaded.state.clone().ok_or(AppError::NotFound)?;
    Ok((loaded, t))
}

/// Only the doctor who took the patient acts on their treatment.
fn treating(t: &Treatment, actor: &Actor) -> Result<(), AppError> {
    match &t.doctor {
        Some(d) if *d != actor.sub => Err(AppError::Forbidden("this patient is another doctor's".into())),
        _ => Ok(()),
    }
}

fn as_visit_status(s: TreatmentStatus) -> VisitStatus {
    match s {
        TreatmentStatus::Queued => VisitStatus::Received,
        TreatmentStatus::InProgress => VisitStatus::InProgress,
        TreatmentStatus::Completed => VisitStatus::Completed,
        TreatmentStatus::Refused => VisitStatus::Refused,
        TreatmentStatus::Withdrawn => VisitStatus::Cancelled,
    }
}

/// A doctor takes a patient from the queue (doctor). Two doctors at once: one wins, the
/// other gets `409`; a visit reception cancelled first: `409`.
pub async fn start(p: &Platform, actor: &Actor, visit_id: &str, request_id: &str) -> Result<Accepted, AppError> {
    let accepted = command::run(p, faults::START, None, || async {
        let (loaded, t) = treatment_of(p, visit_id).await?;
        let events = Treatment::decide(Some(&t), treatment::Command::Start { doctor: actor.sub.clone() }).map_err(AppError::from)?;
        let mut work = Work::for_request(p, visit_id, request_id);
        if !events.is_empty() {
            let claim = claim_key(visit_id);
            if p.store.counter(&claim).await? > 0 {
                return Err(AppError::Conflict("the visit was cancelled at reception".into()));
            }
            work.counter_or_refuse(
                CounterMove {
                    key: claim,
                    delta: 1,
                    limit: 1,
                },
                GONE,
            );
        }
        let t = work
            .stage(loaded, &events)?
            .ok_or_else(|| AppError::Internal("a treatment changed to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: visit_change(visit_id, as_visit_status(t.status))?,
        })
    })
    .await?;
    tracing::info!(visit_id, correlation_id = visit_id, "patient taken by a doctor");
    Ok(accepted)
}

/// An exam prescription as the doctor sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ExamRequest)]
pub struct ExamInput {
    /// An exam id (`VISIT_EXAMS`).
    #[schema(value_type = String, example = "blood")]
    pub exam: Option<String>,
}

/// What a command on an exam answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ExamCommandResult)]
pub struct ExamChange {
    /// Exam order number.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The visit.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub visit_id: String,
    /// `ordered`, `performed` or `cancelled`.
    pub status: ExamStatus,
    /// FHIR ServiceRequest's.
    #[schema(example = "active")]
    pub fhir_status: String,
}

fn exam_change(id: &str, visit_id: &str, status: ExamStatus, code: u16) -> Result<Accepted, AppError> {
    Ok(Accepted {
        status: code,
        body: serde_json::to_value(ExamChange {
            id: id.to_owned(),
            visit_id: visit_id.to_owned(),
            status,
            fhir_status: status.fhir().to_owned(),
        })?,
        location: None,
    })
}

/// The treating doctor prescribes an exam; it reaches the examiners' work list when
/// examination hears of it, even if examination is down now.
pub async fn prescribe(
    p: &Platform,
    actor: &Actor,
    visit_id: &str,
    input: ExamInput,
    idempotency: Option<IdempotencyKey>,
    request_id: &str,
) -> Result<Accepted, AppError> {
    let cfg = p.config.slice::<HospitalConfig>();
    let mut errors = Vec::new();
    let exam = required("exam", &input.exam, &mut errors).and_then(|e| cfg.exam("exam", e).map_err(|e| errors.push(e)).ok());
    let Some(exam) = exam else {
        return Err(AppError::Invalid(errors));
    };
    let idempotency = idempotency.map(|key| Idempotency {
        scope: format!("{}:POST /visits/{visit_id}/exams", actor.sub),
        key,
    });
    let exam_id = p.ids.new_id();
    let accepted = command::run(p, faults::PRESCRIBE, idempotency.as_ref(), || async {
        let (loaded, t) = treatment_of(p, visit_id).await?;
        treating(&t, actor)?;
        let mut work = Work::for_request(p, visit_id, request_id);
        work.decide(
            loaded,
            treatment::Command::Prescribe {
                exam_id: exam_id.clone(),
                exam: exam.clone(),
            },
        )?;
        Ok(Decided {
            work,
            // The visit shows the exam at once; the work list, once examination heard of it.
            accepted: Accepted {
                location: Some(format!("/visits/{visit_id}")),
                ..exam_change(&exam_id, visit_id, ExamStatus::Ordered, 201)?
            },
        })
    })
    .await?;
    tracing::info!(visit_id, correlation_id = visit_id, exam_id = %exam_id, "exam prescribed");
    Ok(accepted)
}

/// What the treating doctor decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Reviewed an exam's result.
    Review(String),
    /// Completes the treatment.
    Complete,
    /// Refuses it, with a reason.
    Refuse(String),
}

/// The treating doctor reviews a result, completes or refuses the treatment. Completing
/// waits for every exam to be performed or cancelled and every result reviewed (`409`).
pub async fn decide(p: &Platform, actor: &Actor, visit_id: &str, decision: Decision, request_id: &str) -> Result<Accepted, AppError> {
    let (function, command) = match &decision {
        Decision::Review(exam_id) => (faults::REVIEW, treatment::Command::Review { exam_id: exam_id.clone() }),
        Decision::Complete => (faults::COMPLETE, treatment::Command::Complete),
        Decision::Refuse(reason) => (faults::REFUSE, treatment::Command::Refuse { reason: reason.clone() }),
    };
    let accepted = command::run(p, function, None, || async {
        let (loaded, t) = treatment_of(p, visit_id).await?;
        treating(&t, actor)?;
        if t.doctor.is_none() {
            return Err(AppError::Conflict("no doctor has taken this patient yet".into()));
        }
        if let Decision::Review(exam_id) = &decision
            && t.exam(exam_id).is_none()
        {
            return Err(AppError::Invalid(vec![FieldError::new("exam_id", "is no exam of this visit")]));
        }
        let mut work = Work::for_request(p, visit_id, request_id);
        let t = work
            .decide(loaded, command.clone())?
            .ok_or_else(|| AppError::Internal("a treatment changed to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: visit_change(visit_id, as_visit_status(t.status))?,
        })
    })
    .await?;
    let what = match decision {
        Decision::Review(_) => "exam result reviewed",
        Decision::Complete => "treatment completed",
        Decision::Refuse(_) => "treatment refused",
    };
    tracing::info!(visit_id, correlation_id = visit_id, "{what}");
    Ok(accepted)
}

/// What an examiner does to an exam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExamWork {
    /// Performs it, with a result note.
    Perform(String),
    /// Cancels it, with a reason.
    Cancel(String),
}

/// An examiner performs or cancels an exam on the work list; the doctor sees it when
/// diagnosis hears of it.
pub async fn examine(p: &Platform, actor: &Actor, exam_id: &str, work_done: ExamWork, request_id: &str) -> Result<Accepted, AppError> {
    let examiner = actor.sub.clone();
    let (function, command) = match &work_done {
        ExamWork::Perform(note) => (
            faults::PERFORM,
            exam::Command::Perform {
                note: note.clone(),
                examiner,
            },
        ),
        ExamWork::Cancel(reason) => (
            faults::EXAM_CANCEL,
            exam::Command::Cancel {
                reason: reason.clone(),
                examiner,
            },
        ),
    };
    let accepted = command::run(p, function, None, || async {
        let loaded = command::load::<ExamOrder>(p, exam_id).await?;
        let Some(order) = loaded.state.clone() else {
            return Err(AppError::NotFound);
        };
        let mut work = Work::for_request(p, &order.visit_id, request_id);
        let after = work
            .decide(loaded, command.clone())?
            .ok_or_else(|| AppError::Internal("an exam changed to nothing".into()))?;
        Ok(Decided {
            work,
            accepted: exam_change(exam_id, &order.visit_id, after.status, 200)?,
        })
    })
    .await?;
    let what = match work_done {
        ExamWork::Perform(_) => "exam performed",
        ExamWork::Cancel(_) => "exam cancelled",
    };
    tracing::info!(exam_id, "{what}");
    Ok(accepted)
}

/// The body of `perform` and `cancel`: a note or a reason, validated for `field`.
pub fn text_field(field: &str, raw: &Option<serde_json::Value>) -> Result<String, AppError> {
    let invalid = |detail: &str| AppError::Invalid(vec![FieldError::new(field, detail)]);
    match raw {
        None | Some(serde_json::Value::Null) => Err(invalid("is required")),
        Some(serde_json::Value::String(s)) => short_text(field, s).map_err(|e| AppError::Invalid(vec![e])),
        Some(_) => Err(invalid("must be a string")),
    }
}

/// The `exam_id` of a review: required, an id this API returned.
pub fn exam_id_field(raw: &Option<String>) -> Result<String, AppError> {
    let invalid = |detail: &str| AppError::Invalid(vec![FieldError::new("exam_id", detail)]);
    match raw.as_deref() {
        None => Err(invalid("is required")),
        Some(id) if id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric()) => Ok(id.to_owned()),
        Some(_) => Err(invalid("must be an exam id this API returned (26 letters and digits)")),
    }
}
