//! How the desks hear each other: diagnosis queues (and withdraws) the patients reception
//! registers (and cancels); examination puts prescribed exams on the work list (and revokes
//! those a refused treatment leaves); diagnosis records what examination did; reception
//! follows the treatment to its outcome. Each is idempotent on the event id: its effect and
//! its dedup mark are one transaction, and a desk that was down catches up once.

use super::exam::{self, ExamOrder, ExamStatus, Prescription};
use super::faults;
use super::treatment::{self, Treatment};
use super::visit::{self, Outcome, Visit};
use crate::app::Platform;
use crate::app::command::{self, Work};
use crate::app::consumers::{ConsumerError, ConsumerFuture, Handled, commit_once, mark};
use crate::app::faults::{after_write, before_write};
use crate::domain::{Aggregate, DomainError};
use crate::events::EventEnvelope;

/// `hospital-queue`'s handler.
pub fn queue<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(queue_patient(p, event))
}

/// `hospital-exam-order`'s handler.
pub fn exam_order<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(order_exams(p, event))
}

/// `hospital-exam-outcome`'s handler.
pub fn exam_outcome<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(record_outcome(p, event))
}

/// `hospital-visit-follow`'s handler.
pub fn visit_follow<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(follow_treatment(p, event))
}

/// Decides `commands` (aggregate id, command) and commits their events with consumer
/// `name`'s mark for `event`, once.
async fn once<A: Aggregate>(
    p: &Platform,
    name: &str,
    event: &EventEnvelope,
    commands: Vec<(String, A::Command)>,
) -> Result<Handled, ConsumerError> {
    if p.store.is_processed(name, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let mut work = Work::new(p, event.caused());
    for (id, command) in commands {
        let loaded = command::load::<A>(p, &id).await?;
        let events = A::decide(loaded.state.as_ref(), command).map_err(|e| ConsumerError::from(Into::<DomainError>::into(e)))?;
        work.stage(loaded, &events)?;
    }
    let mut tx = work.into_transaction();
    tx.processed = mark(name, event);
    p.faults.check(&before_write(name)).await?;
    commit_once(p, &after_write(name), tx).await
}

/// Reception registered a visit: its patient joins the department's doctors' queue; it
/// cancelled one: the patient leaves the queue (or never joins it, if heard first).
async fn queue_patient(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let command = match event.decode::<visit::Event>()? {
        visit::Event::VisitReceived { department, contact, .. } => treatment::Command::Queue {
            department,
            patient_name: contact.name,
        },
        visit::Event::VisitCancelled { department } => treatment::Command::Withdraw { department },
        _ => return Ok(Handled::Skipped),
    };
    once::<Treatment>(p, faults::QUEUE, event, vec![(event.aggregate_id.clone(), command)]).await
}

/// A doctor prescribed an exam: it goes on the examiners' work list. A doctor refused a
/// treatment: the exams still to do are revoked.
async fn order_exams(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let visit_id = event.aggregate_id.clone();
    let commands = match event.decode::<treatment::Event>()? {
        treatment::Event::ExamPrescribed {
            exam_id,
            exam,
            department,
            patient_name,
        } => vec![(
            exam_id,
            exam::Command::Order(Prescription {
                visit_id,
                exam,
                department,
                patient_name,
            }),
        )],
        treatment::Event::TreatmentRefused { open_exams, .. } => open_exams
            .into_iter()
            .map(|id| {
                (
                    id,
                    exam::Command::Revoke {
                        visit_id: visit_id.clone(),
                    },
                )
            })
            .collect(),
        _ => return Ok(Handled::Skipped),
    };
    once::<ExamOrder>(p, faults::EXAM_ORDER, event, commands).await
}

/// Examination performed or cancelled an exam: the treatment knows.
async fn record_outcome(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let (visit_id, status) = match event.decode::<exam::Event>()? {
        exam::Event::ExamPerformed { visit_id, .. } => (visit_id, ExamStatus::Performed),
        exam::Event::ExamCancelled { visit_id, .. } => (visit_id, ExamStatus::Cancelled),
        exam::Event::ExamOrdered { .. } => return Ok(Handled::Skipped),
    };
    let command = treatment::Command::Outcome {
        exam_id: event.aggregate_id.clone(),
        status,
    };
    once::<Treatment>(p, faults::EXAM_OUTCOME, event, vec![(visit_id, command)]).await
}

/// A doctor took the patient, completed or refused the treatment: reception's visit moves
/// by itself.
async fn follow_treatment(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let outcome = match event.decode::<treatment::Event>()? {
        treatment::Event::TreatmentStarted { doctor } => Outcome::Started { doctor },
        treatment::Event::TreatmentCompleted {} => Outcome::Completed,
        treatment::Event::TreatmentRefused { .. } => Outcome::Refused,
        _ => return Ok(Handled::Skipped),
    };
    once::<Visit>(
        p,
        faults::VISIT_FOLLOW,
        event,
        vec![(event.aggregate_id.clone(), visit::Command::Follow(outcome))],
    )
    .await
}
