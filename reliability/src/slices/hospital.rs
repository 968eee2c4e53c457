//! The hospital slice's fixture (`shared/src/flows/hospital/`): what every area of the
//! harness needs to know about a hospital visit and cannot read from the catalog.
//!
//! - A case is a visit: `POST /visits`, sent by reception ([`RECEPTION_DESK`], the
//!   fixture's [`Fixture::opener`]) with the patient's name, phone, locale, a department
//!   (variant 0: internal, variant 1: surgery) and the patient's account, `patient_sub`
//!   ([`Fixture::owned_by`]): the owner of the case is that patient, who may follow the
//!   visit (`GET /me/visits`, `GET /visits/{id}`) and do nothing else. A visit takes no
//!   payment and no place: the card of a journey is not sent, and there is no capacity
//!   ([`Fixture::has_places`] is false).
//! - Three desks linked by events: reception's visit, diagnosis's treatment (the patient in
//!   the department's doctors' queue once diagnosis hears of the visit), examination's exam
//!   orders (on the work list once examination hears of the prescription). A visit is ready
//!   for its steps once its view shows the patient in the queue; a later step waits for what
//!   it depends on of the other desks ([`Fixture::ready_for`]): an exam performed or
//!   cancelled only once its order is on the work list, a result reviewed or a treatment
//!   completed only once diagnosis heard the exam's outcome, a visit closed only once
//!   reception heard the treatment's. An exam order's id, made at prescription, is read from
//!   the treatment (`{exam}` in a path or a body, [`Fixture::resolve_on`]).
//! - Journeys: register → start → prescribe → perform → review → complete → close;
//!   register → cancel; register → start → prescribe → exam cancelled → refuse;
//!   register → start → prescribe → refuse (the exam still to do is revoked); register,
//!   left in the queue. Between them they pass through every failure point of the slice.
//!   The result note and the reasons are distinctive texts ([`Fixture::confidential`]) that
//!   the `privacy` area looks for in every log line and SMS.
//! - The authorization matrix's call of each of the slice's sixteen routes; a doctor's route
//!   is called on a visit a doctor took (and, to review, whose exam was performed), a
//!   closing on a completed visit ([`RouteCall::given`]). The routes whose `{id}` names an
//!   exam order, not a visit, are called with an id that names nothing: every allowed
//!   caller gets `404`.
//! - Its invariants: one terminal state per visit, the expected one, with at most one of
//!   each event; exactly one treatment per visit; no visit both cancelled and taken (the
//!   visit's claim taken once, by whichever committed first); no completed treatment with an
//!   exam still to do; each exam order's status what diagnosis recorded of it; reception's
//!   status agreeing with diagnosis's; the views agreeing with the aggregates. A visit owes
//!   no money: no dues.
//! - The `concurrency` area's contest: two doctors taking the same patient (one wins, the
//!   other gets `409`) and reception cancelling the visit; each excludes the others.
//! - The use cases themselves (`commands::register`, `commands::at_desk`) for the openings
//!   and endings the areas make without HTTP.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::command::{self, IdempotencyKey};
use clinicflow::app::{Platform, faults as platform, projector};
use clinicflow::config::Config;
use clinicflow::domain::{Actor, Won, short_ref};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::hospital::commands::{self as usecase, Desk, VisitInput};
use clinicflow::flows::hospital::exam::{self, ExamOrder, ExamStatus};
use clinicflow::flows::hospital::treatment::{self, Treatment, TreatmentStatus, claim_key};
use clinicflow::flows::hospital::view::{self, ExamView, VisitView};
use clinicflow::flows::hospital::visit::{self, Visit, VisitStatus};
use clinicflow::flows::hospital::{DOCTOR, EXAMINER, RECEPTION_DESK, SLICE, faults};
use clinicflow::topology::{Method, Route, SMS_NOTIFIER};
use clinicflow_tests::{LocalOptions, LocalStack};
use serde_json::{Value, json};

use super::{Body, Contest, Due, Fixture, Journey, Opened, Opens, Personal, RouteCall, Step, Who};
use crate::areas::api::{Api, CONTENDER, Person, wait_for};
use crate::invariants::{Case, aggregates};

/// The hospital slice's fixture.
#[derive(Debug, Clone, Copy)]
pub struct Hospital;

/// The one instance, listed in [`super::all`].
pub static HOSPITAL: Hospital = Hospital;

const OPENING: &str = "/visits";

/// The departments of the two variants of the opening request.
const DEPARTMENTS: [&str; 2] = ["internal", "surgery"];
/// The exam the journeys prescribe.
const EXAM: &str = "blood";
/// A well-formed id of no exam order.
const NO_EXAM: &str = "01JD3M7Q0000000000000000AB";

/// The result note an examiner records: health data, never logged, never texted.
const NOTE: &str = "cfrel-note-Kq7Zw glucose 5.4 within range";
/// Why an examiner cancels an exam.
const EXAM_CANCEL_REASON: &str = "cfrel-exam-reason-Vb3Jx patient had eaten";
/// Why a doctor refuses a treatment.
const REFUSAL_REASON: &str = "cfrel-refusal-Pm5Tr patient declined surgery";

/// The event sources of the three desks.
const RECEPTION_SOURCE: &str = "clinicflow.reception";
const DIAGNOSIS_SOURCE: &str = "clinicflow.diagnosis";
const EXAMINATION_SOURCE: &str = "clinicflow.examination";

/// What the SMS of a visit say when it is registered (`en`, `ko`), cancelled, and when a
/// doctor calls the patient in.
const REGISTERED_TEXTS: &[&str] = &["You are registered", "접수가 완료되었습니다"];
const CANCELLED_TEXTS: &[&str] = &["registration was cancelled", "접수가 취소되었습니다"];
const CALLED_IN_TEXTS: &[&str] = &["The doctor will see you now", "진료 순서입니다"];

fn exam_body() -> Value {
    json!({"exam": EXAM})
}

fn note_body() -> Value {
    json!({"note": NOTE})
}

fn exam_cancel_body() -> Value {
    json!({"reason": EXAM_CANCEL_REASON})
}

fn refusal_body() -> Value {
    json!({"reason": REFUSAL_REASON})
}

/// `{exam}`: the visit's latest exam order ([`Fixture::resolve_on`]).
fn review_body() -> Value {
    json!({"exam_id": "{exam}"})
}

/// Reception cancels the visit, before a doctor took the patient.
const CANCEL: Step = Step {
    name: "cancel",
    who: Who::Staff(RECEPTION_DESK),
    method: Method::Post,
    path: "/visits/{id}/cancel",
    body: None,
    success: 200,
};

/// A doctor takes the patient from the queue.
const START: Step = Step {
    name: "start",
    who: Who::Staff(DOCTOR),
    method: Method::Post,
    path: "/visits/{id}/start",
    body: None,
    success: 200,
};

/// Another doctor tries to take the same patient (the contest).
const START_OTHER: Step = Step {
    name: "start (another doctor)",
    who: Who::Colleague(DOCTOR, "second"),
    method: Method::Post,
    path: "/visits/{id}/start",
    body: None,
    success: 200,
};

/// The patient's doctor prescribes an exam.
const PRESCRIBE: Step = Step {
    name: "prescribe",
    who: Who::Staff(DOCTOR),
    method: Method::Post,
    path: "/visits/{id}/exams",
    body: Some(exam_body),
    success: 201,
};

/// An examiner performs the exam, once it is on the work list.
const PERFORM: Step = Step {
    name: "perform",
    who: Who::Staff(EXAMINER),
    method: Method::Post,
    path: "/exams/{exam}/perform",
    body: Some(note_body),
    success: 200,
};

/// An examiner cancels the exam, once it is on the work list.
const EXAM_CANCEL: Step = Step {
    name: "exam cancel",
    who: Who::Staff(EXAMINER),
    method: Method::Post,
    path: "/exams/{exam}/cancel",
    body: Some(exam_cancel_body),
    success: 200,
};

/// The doctor reviews the exam's result, once diagnosis heard it was performed.
const REVIEW: Step = Step {
    name: "review",
    who: Who::Staff(DOCTOR),
    method: Method::Post,
    path: "/visits/{id}/review",
    body: Some(review_body),
    success: 200,
};

/// The doctor completes the treatment, once diagnosis heard every exam's outcome.
const COMPLETE: Step = Step {
    name: "complete",
    who: Who::Staff(DOCTOR),
    method: Method::Post,
    path: "/visits/{id}/complete",
    body: None,
    success: 200,
};

/// The doctor refuses the treatment.
const REFUSE: Step = Step {
    name: "refuse",
    who: Who::Staff(DOCTOR),
    method: Method::Post,
    path: "/visits/{id}/refuse",
    body: Some(refusal_body),
    success: 200,
};

/// Reception closes the visit, once it heard the treatment is over.
const CLOSE: Step = Step {
    name: "close",
    who: Who::Staff(RECEPTION_DESK),
    method: Method::Post,
    path: "/visits/{id}/close",
    body: None,
    success: 200,
};

fn after_commit(point: &str, function: &str) -> bool {
    point == platform::after_commit(function)
}

fn consumed(point: &str, consumer: &str) -> bool {
    platform::consumer_points(consumer).iter().any(|p| p == point)
}

/// The whole way of a visit: every command of it but the cancellations and the refusal,
/// every consumer, and the platform's points (its commits, its SMS, its views).
fn closed_points(point: &str) -> bool {
    [
        platform::AFTER_COMMIT,
        platform::SMS_BEFORE_SEND,
        platform::SMS_AFTER_SEND,
        platform::PROJECTOR,
        platform::PROJECTOR_AFTER_WRITE,
    ]
    .contains(&point)
        || consumed(point, SMS_NOTIFIER)
        || [
            faults::REGISTER,
            faults::START,
            faults::PRESCRIBE,
            faults::PERFORM,
            faults::REVIEW,
            faults::COMPLETE,
            faults::CLOSE,
        ]
        .iter()
        .any(|f| after_commit(point, f))
        || [faults::QUEUE, faults::EXAM_ORDER, faults::EXAM_OUTCOME, faults::VISIT_FOLLOW]
            .iter()
            .any(|c| consumed(point, c))
}

/// A cancellation at reception, and the patient withdrawn from the queue.
fn cancelled_points(point: &str) -> bool {
    after_commit(point, faults::CANCEL) || consumed(point, faults::QUEUE)
}

/// An exam cancelled, its outcome heard, the treatment refused (its revocation heard by
/// examination, its outcome by reception).
fn refused_points(point: &str) -> bool {
    after_commit(point, faults::EXAM_CANCEL)
        || after_commit(point, faults::REFUSE)
        || [faults::EXAM_ORDER, faults::EXAM_OUTCOME, faults::VISIT_FOLLOW]
            .iter()
            .any(|c| consumed(point, c))
}

/// A refusal racing its own prescription to examination: the exam revoked.
fn revoked_points(point: &str) -> bool {
    consumed(point, faults::EXAM_ORDER)
}

/// Covered by the journeys above.
fn nowhere(_: &str) -> bool {
    false
}

/// A visit takes no payment; the opening body carries no card.
const NO_CARD: &str = "tok_ok";

const JOURNEYS: &[Journey] = &[
    Journey {
        name: "register→start→prescribe→perform→review→complete→close",
        card: NO_CARD,
        opens: Opens::Case("closed"),
        opening: None,
        steps: &[START, PRESCRIBE, PERFORM, REVIEW, COMPLETE, CLOSE],
        armed_at: closed_points,
    },
    Journey {
        name: "register→cancel",
        card: NO_CARD,
        opens: Opens::Case("cancelled"),
        opening: None,
        steps: &[CANCEL],
        armed_at: cancelled_points,
    },
    Journey {
        name: "register→start→prescribe→exam cancel→refuse",
        card: NO_CARD,
        opens: Opens::Case("refused"),
        opening: None,
        steps: &[START, PRESCRIBE, EXAM_CANCEL, REFUSE],
        armed_at: refused_points,
    },
    Journey {
        name: "register→start→prescribe→refuse (the exam revoked)",
        card: NO_CARD,
        opens: Opens::Case("refused"),
        opening: None,
        steps: &[START, PRESCRIBE, REFUSE],
        armed_at: revoked_points,
    },
    Journey {
        name: "register→cancel→cancel again",
        card: NO_CARD,
        opens: Opens::Case("cancelled"),
        opening: None,
        steps: &[CANCEL, CANCEL],
        armed_at: nowhere,
    },
    Journey {
        name: "register, left in the queue",
        card: NO_CARD,
        opens: Opens::Case("received"),
        opening: None,
        steps: &[],
        armed_at: nowhere,
    },
];

/// The opening body of variant `variant`, without its owner.
fn body_for(variant: usize, person: &Person<'_>) -> Value {
    json!({
        "name": person.name,
        "phone": person.phone,
        "locale": person.locale,
        "department": DEPARTMENTS[variant.min(1)],
    })
}

fn variant_of(department: &str) -> &'static str {
    if department == DEPARTMENTS[1] {
        DEPARTMENTS[1]
    } else {
        DEPARTMENTS[0]
    }
}

/// The subject reception acts as.
fn reception() -> String {
    Who::Staff(RECEPTION_DESK).caller("").0
}

/// The exam order a step of visit `id` acts on: its treatment's latest (none yet: an id
/// that names nothing, so that the step is refused rather than the walk stopped).
async fn latest_exam(p: &Platform, id: &str) -> anyhow::Result<String> {
    let t = command::load::<Treatment>(p, id).await?.state;
    Ok(t.and_then(|t| t.exams.last().map(|e| e.id.clone()))
        .unwrap_or_else(|| NO_EXAM.to_owned()))
}

/// Visit `id`'s view, raw.
async fn raw_view(stack: &LocalStack, id: &str) -> Option<Value> {
    let key = projector::view_id(view::VISITS, id);
    stack.platform.views.get(&key).await.ok().flatten().map(|v| v.body)
}

/// The treatment status reception's visit status stands for.
fn agrees(visit: VisitStatus, treatment: TreatmentStatus) -> bool {
    matches!(
        (visit, treatment),
        (VisitStatus::Received, TreatmentStatus::Queued)
            | (VisitStatus::InProgress, TreatmentStatus::InProgress)
            | (VisitStatus::Completed, TreatmentStatus::Completed)
            | (VisitStatus::Refused, TreatmentStatus::Refused)
            | (VisitStatus::Closed, TreatmentStatus::Completed | TreatmentStatus::Refused)
            | (VisitStatus::Cancelled, TreatmentStatus::Withdrawn)
    )
}

fn treatment_str(s: TreatmentStatus) -> &'static str {
    match s {
        TreatmentStatus::Queued => "queued",
        TreatmentStatus::InProgress => "in-progress",
        TreatmentStatus::Completed => "completed",
        TreatmentStatus::Refused => "refused",
        TreatmentStatus::Withdrawn => "withdrawn",
    }
}

#[async_trait]
impl Fixture for Hospital {
    fn slice(&self) -> &'static str {
        SLICE.name
    }

    fn context(&self) -> &'static str {
        visit::CONTEXT
    }

    fn opening(&self) -> &'static str {
        OPENING
    }

    /// Reception registers the visit, not the patient.
    fn opener(&self) -> Who {
        Who::Staff(RECEPTION_DESK)
    }

    /// The patient's account, so that they own (and may follow) the visit.
    fn owned_by(&self, body: &Value, owner: &str) -> Value {
        let mut owned = body.clone();
        owned["patient_sub"] = json!(owner);
        owned
    }

    /// `{exam}` is the visit's latest exam order.
    async fn resolve_on(&self, p: &Platform, text: &str, id: &str, body: &Value) -> anyhow::Result<String> {
        let text = self.resolve(text, id, body);
        if !text.contains("{exam}") {
            return Ok(text);
        }
        Ok(text.replace("{exam}", &latest_exam(p, id).await?))
    }

    /// Performing or cancelling an exam waits for its order on the work list; reviewing and
    /// completing, for diagnosis to have heard every exam's outcome; closing, for reception
    /// to have heard the treatment's.
    async fn ready_for(&self, stack: &LocalStack, id: &str, step: &Step) -> bool {
        let p = &stack.platform;
        if step.path == PERFORM.path || step.path == EXAM_CANCEL.path {
            let Ok(exam_id) = latest_exam(p, id).await else { return false };
            let Ok(order) = command::load::<ExamOrder>(p, &exam_id).await else {
                return false;
            };
            let listed = raw_view_of_exam(stack, &exam_id).await.is_some_and(|v| v["status"] == "ordered");
            return order.state.is_some() && listed;
        }
        if step.path == REVIEW.path || step.path == COMPLETE.path {
            return command::load::<Treatment>(p, id)
                .await
                .ok()
                .and_then(|l| l.state)
                .is_some_and(|t| t.exams.iter().all(|e| e.status.ended()));
        }
        if step.path == CLOSE.path {
            return command::load::<Visit>(p, id)
                .await
                .ok()
                .and_then(|l| l.state)
                .is_some_and(|v| matches!(v.status, VisitStatus::Completed | VisitStatus::Refused));
        }
        true
    }

    fn confidential(&self) -> &'static [&'static str] {
        &[NOTE, EXAM_CANCEL_REASON, REFUSAL_REASON]
    }

    fn has_places(&self) -> bool {
        false
    }

    /// There is no slot: the day is not sent (a visit is registered today). The card is not
    /// sent either: a visit takes no payment (and the request refuses unknown fields).
    fn open_body(&self, _day: i64, person: &Person<'_>, _card: &str) -> Value {
        body_for(0, person)
    }

    /// The other department.
    fn other_body(&self, body: &Value) -> Value {
        let mut other = body.clone();
        other["department"] = json!(DEPARTMENTS[1]);
        other
    }

    fn variants(&self) -> [&'static str; 2] {
        DEPARTMENTS
    }

    fn personal(&self) -> Personal {
        Personal {
            name: "name",
            phone: "phone",
            card: None,
        }
    }

    fn invalid_openings(&self, valid: &Value) -> Vec<(&'static str, Value)> {
        let with = |field: &str, value: Value| {
            let mut b = valid.clone();
            b[field] = value;
            b
        };
        let mut no_department = valid.clone();
        if let Some(fields) = no_department.as_object_mut() {
            fields.remove("department");
        }
        vec![
            ("no department", no_department),
            ("an unknown department", with("department", json!("astrology"))),
            ("an account that is no account", with("patient_sub", json!("a b/c"))),
            ("an unknown locale", with("locale", json!("fr"))),
        ]
    }

    fn view_key(&self, id: &str) -> String {
        projector::view_id(view::VISITS, id)
    }

    /// A visit is ready once its view shows the patient in the doctors' queue (diagnosis
    /// heard of the registration): a doctor may take them, reception may cancel.
    async fn ready(&self, stack: &LocalStack, id: &str) -> bool {
        raw_view(stack, id)
            .await
            .is_some_and(|v| v["status"] == "received" && v["queued"] == true)
    }

    fn journeys(&self) -> &'static [Journey] {
        JOURNEYS
    }

    fn route(&self, route: &Route) -> Option<RouteCall> {
        let call = RouteCall::new;
        match (route.method, route.path) {
            (Method::Post, "/visits") => Some(call(false, true, 201, Body::Opening)),
            (Method::Get, "/visits") => Some(RouteCall {
                filters: &["date", "status", "department"],
                ..call(false, false, 200, Body::Empty)
            }),
            (Method::Get, "/visits/{id}") => Some(call(true, false, 200, Body::Empty)),
            (Method::Get, "/me/visits") => Some(RouteCall {
                filters: &["status"],
                ..call(false, false, 200, Body::Empty)
            }),
            (Method::Post, "/visits/{id}/cancel") => Some(call(true, true, 200, Body::Empty)),
            // On a visit whose treatment is over.
            (Method::Post, "/visits/{id}/close") => Some(RouteCall {
                given: &[START, COMPLETE],
                ..call(true, true, 200, Body::Empty)
            }),
            (Method::Get, "/doctor/queue") => Some(RouteCall {
                filters: &["department"],
                query: Some("department=internal"),
                ..call(false, false, 200, Body::Empty)
            }),
            (Method::Post, "/visits/{id}/start") => Some(call(true, true, 200, Body::Empty)),
            // A doctor's routes, on a patient the doctor took.
            (Method::Post, "/visits/{id}/exams") => Some(RouteCall {
                given: &[START],
                ..call(true, true, 201, Body::Json(exam_body))
            }),
            (Method::Post, "/visits/{id}/review") => Some(RouteCall {
                given: &[START, PRESCRIBE, PERFORM],
                ..call(true, true, 200, Body::Json(review_body))
            }),
            (Method::Post, "/visits/{id}/complete") => Some(RouteCall {
                given: &[START],
                ..call(true, true, 200, Body::Empty)
            }),
            (Method::Post, "/visits/{id}/refuse") => Some(RouteCall {
                text: Some("reason"),
                given: &[START],
                ..call(true, true, 200, Body::Json(refusal_body))
            }),
            (Method::Get, "/exams") => Some(RouteCall {
                filters: &["status", "department"],
                ..call(false, false, 200, Body::Empty)
            }),
            // Exam orders: `{id}` names an exam order, never a case, so these are called
            // with an id that names nothing: every allowed caller gets 404.
            (Method::Get, "/exams/{id}") => Some(call(false, false, 404, Body::Empty)),
            (Method::Post, "/exams/{id}/perform") => Some(RouteCall {
                text: Some("note"),
                ..call(false, true, 404, Body::Json(note_body))
            }),
            (Method::Post, "/exams/{id}/cancel") => Some(RouteCall {
                text: Some("reason"),
                ..call(false, true, 404, Body::Json(exam_cancel_body))
            }),
            _ => None,
        }
    }

    async fn check(&self, stack: &LocalStack, cases: &[&Case], events: &[EventEnvelope]) -> anyhow::Result<Vec<String>> {
        let db = &stack.embedded().context("the invariants are read from the SQLite backend")?.db;
        let p: &Platform = &stack.platform;
        let mut violations = Vec::new();
        let mut broken = |invariant: &str, what: String| violations.push(format!("{invariant}: {what}"));
        let visits: BTreeMap<String, Visit> = aggregates(db, visit::CONTEXT).await?;
        let treatments: BTreeMap<String, Treatment> = aggregates(db, treatment::CONTEXT).await?;
        let orders: BTreeMap<String, ExamOrder> = aggregates(db, exam::CONTEXT).await?;
        let mut of: HashMap<(&str, &str), HashMap<&str, usize>> = HashMap::new();
        for e in events {
            *of.entry((e.source.as_str(), e.aggregate_id.as_str()))
                .or_default()
                .entry(e.event_type.as_str())
                .or_default() += 1;
        }
        let count = |source: &str, id: &str, t: &str| of.get(&(source, id)).and_then(|m| m.get(t)).copied().unwrap_or(0);

        // Each case reached exactly one terminal state, the expected one.
        for case in cases {
            let Some(id) = &case.id else {
                if let Some((id, _)) = visits.iter().find(|(_, v)| v.patient_sub.as_deref() == Some(case.owner.as_str())) {
                    broken("terminal state", format!("visit {id} exists, none was expected"));
                }
                continue;
            };
            let Some(v) = visits.get(id) else {
                broken("terminal state", format!("visit {id} does not exist"));
                continue;
            };
            if Some(v.status.as_str()) != case.outcome {
                broken(
                    "terminal state",
                    format!("visit {id} is {}, expected {:?}", v.status.as_str(), case.outcome),
                );
            }
            if v.patient_sub.as_deref() != Some(case.owner.as_str()) {
                broken(
                    "terminal state",
                    format!("visit {id} is registered for another account than its owner's"),
                );
            }
        }

        // At most one of each event per aggregate; an aggregate ends once.
        for id in visits.keys() {
            for t in [
                "VisitReceived",
                "VisitCancelled",
                "VisitStarted",
                "VisitCompleted",
                "VisitRefused",
                "VisitClosed",
            ] {
                if count(RECEPTION_SOURCE, id, t) > 1 {
                    broken(
                        "terminal state",
                        format!("visit {id} has {} {t} events", count(RECEPTION_SOURCE, id, t)),
                    );
                }
            }
            if count(RECEPTION_SOURCE, id, "VisitCompleted") + count(RECEPTION_SOURCE, id, "VisitRefused") > 1 {
                broken("terminal state", format!("visit {id} ended twice"));
            }
        }
        for id in treatments.keys() {
            for t in [
                "TreatmentQueued",
                "TreatmentWithdrawn",
                "TreatmentStarted",
                "TreatmentCompleted",
                "TreatmentRefused",
            ] {
                if count(DIAGNOSIS_SOURCE, id, t) > 1 {
                    broken(
                        "terminal state",
                        format!("treatment {id} has {} {t} events", count(DIAGNOSIS_SOURCE, id, t)),
                    );
                }
            }
            let ends = ["TreatmentWithdrawn", "TreatmentCompleted", "TreatmentRefused"]
                .iter()
                .map(|t| count(DIAGNOSIS_SOURCE, id, t))
                .sum::<usize>();
            if ends > 1 {
                broken("terminal state", format!("treatment {id} ended {ends} times"));
            }
        }
        for id in orders.keys() {
            for t in ["ExamOrdered", "ExamPerformed", "ExamCancelled"] {
                if count(EXAMINATION_SOURCE, id, t) > 1 {
                    broken(
                        "terminal state",
                        format!("exam order {id} has {} {t} events", count(EXAMINATION_SOURCE, id, t)),
                    );
                }
            }
            if count(EXAMINATION_SOURCE, id, "ExamPerformed") + count(EXAMINATION_SOURCE, id, "ExamCancelled") > 1 {
                broken("terminal state", format!("exam order {id} was both performed and cancelled"));
            }
        }

        // Exactly one treatment per visit, and none for no visit.
        for id in visits.keys() {
            if !treatments.contains_key(id) {
                broken("one treatment per visit", format!("visit {id} has no treatment"));
            }
        }
        for (id, t) in &treatments {
            if !visits.contains_key(id) {
                broken(
                    "one treatment per visit",
                    format!("treatment {id} ({}) is of no visit", treatment_str(t.status)),
                );
            }
        }

        for (id, v) in &visits {
            let Some(t) = treatments.get(id) else { continue };
            // No visit both cancelled and taken: the claim taken once, by one of them.
            let cancelled = v.status == VisitStatus::Cancelled || count(RECEPTION_SOURCE, id, "VisitCancelled") > 0;
            let taken = t.doctor.is_some() || count(DIAGNOSIS_SOURCE, id, "TreatmentStarted") > 0;
            if cancelled && taken {
                broken(
                    "cancelled or taken",
                    format!(
                        "visit {id} was cancelled at reception ({}) and taken by a doctor (treatment {})",
                        v.status.as_str(),
                        treatment_str(t.status)
                    ),
                );
            }
            let claim = p.store.counter(&claim_key(id)).await?;
            if claim != i64::from(cancelled || taken) {
                broken(
                    "cancelled or taken",
                    format!("visit {id}'s claim is {claim}; cancelled {cancelled}, taken {taken}"),
                );
            }

            // Reception's status agrees with diagnosis's outcome, and names no other doctor.
            // (Reception may know no doctor at all: a start heard after the outcome it led to
            // moves nothing, by design, so its doctor is not recorded; the visit's view, which
            // folds diagnosis's events, names them.)
            let other_doctor = v.doctor.is_some() && v.doctor != t.doctor;
            if !agrees(v.status, t.status) || other_doctor {
                broken(
                    "reception agrees with diagnosis",
                    format!(
                        "visit {id} is {} (doctor set: {}), its treatment {} (doctor set: {}, same: {})",
                        v.status.as_str(),
                        v.doctor.is_some(),
                        treatment_str(t.status),
                        t.doctor.is_some(),
                        v.doctor == t.doctor
                    ),
                );
            }

            // No completed treatment with an exam still to do.
            if t.status == TreatmentStatus::Completed {
                let pending_line = t.exams.iter().any(|e| e.status == ExamStatus::Ordered);
                let pending_order = orders.values().any(|o| o.visit_id == *id && o.status == ExamStatus::Ordered);
                let unreviewed = t.exams.iter().any(|e| e.status == ExamStatus::Performed && !e.reviewed);
                if pending_line || pending_order || unreviewed {
                    broken(
                        "no completed treatment with an exam to do",
                        format!(
                            "treatment {id} is completed with an exam still ordered at diagnosis ({pending_line}), at \
                             examination ({pending_order}), or a result not reviewed ({unreviewed})"
                        ),
                    );
                }
            }

            // Each exam of the treatment has its order, in the status diagnosis recorded.
            for line in &t.exams {
                match orders.get(&line.id) {
                    Some(o) if o.status == line.status && o.visit_id == *id => {}
                    Some(o) => broken(
                        "exam status equals diagnosis's",
                        format!(
                            "exam {} of visit {id}: examination says {} (of visit {}), diagnosis recorded {}",
                            line.id,
                            o.status.as_str(),
                            o.visit_id,
                            line.status.as_str()
                        ),
                    ),
                    None => broken(
                        "exam status equals diagnosis's",
                        format!(
                            "exam {} of visit {id} ({} at diagnosis) has no order at examination",
                            line.id,
                            line.status.as_str()
                        ),
                    ),
                }
            }
        }
        for (exam_id, o) in &orders {
            let line = treatments.get(&o.visit_id).and_then(|t| t.exam(exam_id));
            if line.is_none() {
                broken(
                    "exam status equals diagnosis's",
                    format!(
                        "exam order {exam_id} ({}) is no exam of visit {}'s treatment",
                        o.status.as_str(),
                        o.visit_id
                    ),
                );
            }
        }

        // Each view agrees with the aggregates.
        for (id, v) in &visits {
            let Some(body) = raw_view(stack, id).await else {
                broken("view equals aggregates", format!("view of visit {id} is missing"));
                continue;
            };
            let Ok(view) = serde_json::from_value::<VisitView>(body) else {
                broken("view equals aggregates", format!("view of visit {id} is unreadable"));
                continue;
            };
            let t = treatments.get(id);
            let queued = t.is_some_and(|t| t.status == TreatmentStatus::Queued);
            let doctor = t.and_then(|t| t.doctor.clone());
            if view.status != Some(v.status) || view.doctor != doctor || view.queued != queued {
                broken(
                    "view equals aggregates",
                    format!(
                        "view of visit {id} says {:?}, queued {}, doctor set {}; the aggregates {}, queued {queued}, \
                         doctor set {} (same: {})",
                        view.status.map(VisitStatus::as_str),
                        view.queued,
                        view.doctor.is_some(),
                        v.status.as_str(),
                        doctor.is_some(),
                        view.doctor == doctor
                    ),
                );
            }
            for line in t.map_or(&[][..], |t| t.exams.as_slice()) {
                let shown = view.exams.iter().find(|e| e.id == line.id);
                let order = orders.get(&line.id).map(|o| o.status);
                if shown.is_none_or(|e| e.status != order || e.reviewed != line.reviewed) {
                    broken(
                        "view equals aggregates",
                        format!(
                            "view of visit {id} shows exam {} as {:?} (reviewed {:?}); examination says {:?}, diagnosis \
                             reviewed {}",
                            line.id,
                            shown.and_then(|e| e.status).map(ExamStatus::as_str),
                            shown.map(|e| e.reviewed),
                            order.map(ExamStatus::as_str),
                            line.reviewed
                        ),
                    );
                }
            }
        }
        for (exam_id, o) in &orders {
            let stored = p.views.get(&projector::view_id(view::EXAMS, exam_id)).await?;
            let Some(v) = stored.and_then(|v| serde_json::from_value::<ExamView>(v.body).ok()) else {
                broken(
                    "view equals aggregates",
                    format!("view of exam order {exam_id} is missing or unreadable"),
                );
                continue;
            };
            if v.status != Some(o.status) || v.visit_id.as_deref() != Some(o.visit_id.as_str()) {
                broken(
                    "view equals aggregates",
                    format!(
                        "view of exam order {exam_id} says {:?}, the aggregate {}",
                        v.status.map(ExamStatus::as_str),
                        o.status.as_str()
                    ),
                );
            }
        }
        Ok(violations)
    }

    /// A visit owes no money.
    async fn dues(&self, _db: &Embedded) -> anyhow::Result<Vec<Due>> {
        Ok(Vec::new())
    }

    /// Every visit's claim: the one-place counter a doctor's start and reception's
    /// cancellation race for.
    async fn counters(&self, stack: &LocalStack) -> anyhow::Result<Vec<(String, i64)>> {
        let db = &stack.embedded().context("on SQLite")?.db;
        let visits: BTreeMap<String, Visit> = aggregates(db, visit::CONTEXT).await?;
        let mut counters = Vec::new();
        for id in visits.keys() {
            let key = claim_key(id);
            let value = stack.platform.store.counter(&key).await?;
            counters.push((key, value));
        }
        Ok(counters)
    }

    /// No capacity ([`Fixture::has_places`] is false): nothing to set.
    fn set_capacity(&self, _options: &mut LocalOptions, _places: i64) {}

    /// A visit is free.
    fn price(&self, _config: &Config, _variant: usize) -> Won {
        Won(0)
    }

    /// No capacity ([`Fixture::has_places`] is false): no place is ever taken.
    async fn places_taken(&self, _stack: &LocalStack, _body: &Value) -> anyhow::Result<i64> {
        Ok(0)
    }

    /// The visits of the department `body` names (there are no slots; never asked, as the
    /// slice has no places).
    async fn cases_like(&self, db: &Embedded, body: &Value) -> anyhow::Result<HashSet<String>> {
        let department = body["department"].as_str().unwrap_or_default();
        let visits: BTreeMap<String, Visit> = aggregates(db, visit::CONTEXT).await?;
        Ok(visits.into_values().filter(|v| v.department == department).map(|v| v.id).collect())
    }

    /// Every stored visit; none has a payment (`payment_id` is empty, the price 0), its owner
    /// is the account reception registered it for.
    async fn opened(&self, db: &Embedded) -> anyhow::Result<Vec<Opened>> {
        let visits: BTreeMap<String, Visit> = aggregates(db, visit::CONTEXT).await?;
        Ok(visits
            .into_values()
            .map(|v| Opened {
                variant: variant_of(&v.department),
                id: v.id,
                owner: v.patient_sub.unwrap_or_default(),
                payment_id: String::new(),
                price: Won(0),
            })
            .collect())
    }

    fn contest(&self) -> Contest {
        Contest {
            decisions: &[START, START_OTHER, CANCEL],
            // Each outcome contested by all three, and by each pair.
            mixes: &[&[0, 1, 2], &[0, 1, 2], &[0, 1], &[0, 2], &[1, 2]],
        }
    }

    fn implied_outcome(&self, won: &[bool]) -> Result<&'static str, String> {
        let [first, second, cancelled] = won else {
            return Err(format!("{} decisions, expected two doctors' starts and a cancel", won.len()));
        };
        implied_outcome(*first, *second, *cancelled)
    }

    async fn judge_contest(
        &self,
        stack: &LocalStack,
        api: &Api,
        id: &str,
        owner: &str,
        _body: &Value,
        won: &[bool],
        outcome: &str,
    ) -> anyhow::Result<Vec<String>> {
        let won_one = |i: usize| won.get(i).copied().unwrap_or(false);
        let doctor = if won_one(0) {
            Some(START.who.caller("").0)
        } else if won_one(1) {
            Some(START_OTHER.who.caller("").0)
        } else {
            None
        };
        let cancelled = won_one(2);
        let mut wrong = Vec::new();

        // The patient's view: the outcome, and the doctor who won.
        let path = format!("/visits/{id}");
        let expected_doctor = doctor.clone().map_or(Value::Null, Value::String);
        let view = wait_for(api, owner, &path, Duration::from_secs(5), |v| {
            v["status"] == outcome && v["doctor"] == expected_doctor
        })
        .await;
        if view.is_none() {
            let seen = api.send("GET", &path, Some(owner), None).await?;
            wrong.push(format!(
                "view shows status {} with doctor {} (expected {outcome} with {expected_doctor})",
                seen.body["status"], seen.body["doctor"]
            ));
        }

        // The stored visit and treatment, and the claim taken once.
        let p = &stack.platform;
        let v = command::load::<Visit>(p, id).await?.state;
        let t = command::load::<Treatment>(p, id).await?.state;
        let (visit_status, treatment_status) = if cancelled {
            (VisitStatus::Cancelled, TreatmentStatus::Withdrawn)
        } else {
            (VisitStatus::InProgress, TreatmentStatus::InProgress)
        };
        match &v {
            Some(v) if v.status == visit_status && v.doctor == doctor => {}
            Some(v) => wrong.push(format!(
                "the visit is {} (doctor {:?}), expected {} (doctor {doctor:?})",
                v.status.as_str(),
                v.doctor,
                visit_status.as_str()
            )),
            None => wrong.push("the visit is not stored".into()),
        }
        match &t {
            Some(t) if t.status == treatment_status && t.doctor == doctor => {}
            Some(t) => wrong.push(format!(
                "the treatment is {} (doctor {:?}), expected {} (doctor {doctor:?})",
                treatment_str(t.status),
                t.doctor,
                treatment_str(treatment_status)
            )),
            None => wrong.push("the treatment is not stored".into()),
        }
        let claim = p.store.counter(&claim_key(id)).await?;
        if claim != 1 {
            wrong.push(format!("the visit's claim is {claim} (expected 1: taken once)"));
        }

        // SMS: registered, then called in if a doctor won, or cancelled if reception did.
        let sms = stack.sms_sent().await?;
        let texts: Vec<&str> = sms
            .iter()
            .filter(|s| s.body.contains(short_ref(id)))
            .map(|s| s.body.as_str())
            .collect();
        let count = |needles: &[&str]| texts.iter().filter(|t| needles.iter().any(|n| t.contains(*n))).count();
        let expected = [
            ("registered", REGISTERED_TEXTS, 1),
            ("called in", CALLED_IN_TEXTS, usize::from(doctor.is_some())),
            ("cancelled", CANCELLED_TEXTS, usize::from(cancelled)),
        ];
        let total: usize = expected.iter().map(|(_, _, n)| n).sum();
        for (what, needles, n) in expected {
            if count(needles) != n {
                wrong.push(format!("{} '{what}' SMS (expected {n})", count(needles)));
            }
        }
        if texts.len() != total {
            wrong.push(format!("{} SMS in all (expected {total})", texts.len()));
        }
        Ok(wrong)
    }

    /// Reception's cancellation (a visit has no money to give back).
    fn ending(&self) -> &'static Step {
        &CANCEL
    }

    /// Reception registers the visit for `owner` on the use case. The `Idempotency-Key` is
    /// hashed with the request's body, as the route does.
    async fn open_direct(&self, p: &Platform, owner: &str, _day: i64, variant: usize, key: &str, request_id: &str) -> Result<u16, String> {
        let body = self.owned_by(&body_for(variant, &CONTENDER), owner);
        let input: VisitInput = serde_json::from_value(body.clone()).map_err(|e| e.to_string())?;
        let key = IdempotencyKey::parse(key, body.to_string().as_bytes()).map_err(|e| e.detail)?;
        let actor = Actor { sub: reception() };
        usecase::register(p, &actor, input, Some(key), request_id)
            .await
            .map(|a| a.status)
            .map_err(|e| e.to_string())
    }

    async fn end_direct(&self, p: &Platform, _owner: &str, id: &str, request_id: &str) -> anyhow::Result<()> {
        usecase::at_desk(p, id, Desk::Cancel, request_id).await?;
        Ok(())
    }
}

/// Exam order `id`'s view, raw.
async fn raw_view_of_exam(stack: &LocalStack, id: &str) -> Option<Value> {
    let key = projector::view_id(view::EXAMS, id);
    stack.platform.views.get(&key).await.ok().flatten().map(|v| v.body)
}

/// The visit's state after the contest, as the decisions that won imply: whoever took the
/// visit's claim first excludes the other two.
fn implied_outcome(first: bool, second: bool, cancelled: bool) -> Result<&'static str, String> {
    match (first, second, cancelled) {
        (true, false, false) | (false, true, false) => Ok("in-progress"),
        (false, false, true) => Ok("cancelled"),
        (false, false, false) => Err("no decision succeeded".into()),
        _ => Err(format!(
            "more than one of the first doctor's start ({first}), the second doctor's ({second}) and reception's \
             cancel ({cancelled}) succeeded"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::areas::api::SOMEONE;

    #[test]
    fn exactly_one_of_two_doctors_and_reception_wins() {
        assert_eq!(implied_outcome(true, false, false), Ok("in-progress"));
        assert_eq!(implied_outcome(false, true, false), Ok("in-progress"));
        assert_eq!(implied_outcome(false, false, true), Ok("cancelled"));
        assert!(implied_outcome(true, true, false).is_err());
        assert!(implied_outcome(true, false, true).is_err());
        assert!(implied_outcome(false, true, true).is_err());
        assert!(implied_outcome(false, false, false).is_err());
        assert_eq!(HOSPITAL.implied_outcome(&[false, false, true]), Ok("cancelled"));
    }

    #[test]
    fn outcomes_are_visit_statuses() {
        for j in JOURNEYS {
            if let Some(outcome) = j.outcome() {
                assert!(VisitStatus::parse("status", outcome).is_ok(), "{}: {outcome}", j.name);
            }
        }
    }

    #[test]
    fn the_opening_body_is_a_valid_registration_owned_by_its_patient() {
        let body = HOSPITAL.owned_by(&HOSPITAL.open_body(30, &SOMEONE, "tok_ok"), "patient-1");
        let input: VisitInput = serde_json::from_value(body.clone()).expect("a registration");
        assert_eq!(input.patient_sub.as_deref(), Some("patient-1"));
        assert_eq!(input.department.as_deref(), Some("internal"));
        let other = HOSPITAL.other_body(&body);
        assert_eq!(other["department"], json!("surgery"));
        assert_eq!(other["patient_sub"], body["patient_sub"]);
        for (what, invalid) in HOSPITAL.invalid_openings(&body) {
            assert_ne!(invalid, body, "{what}");
        }
    }

    #[test]
    fn every_route_of_the_slice_has_a_call_and_no_post_is_the_customer_teams() {
        for route in SLICE.routes {
            assert!(HOSPITAL.route(route).is_some(), "{} {}", route.method.as_str(), route.path);
            if route.method == Method::Post {
                assert!(!route.roles.contains(&clinicflow::flows::hospital::CUSTOMER_TEAM), "{}", route.path);
            }
        }
    }

    #[test]
    fn the_contest_has_two_distinct_doctors() {
        assert_ne!(START.who.caller("").0, START_OTHER.who.caller("").0);
        assert_eq!(START.who.caller("").1, START_OTHER.who.caller("").1);
    }
}
