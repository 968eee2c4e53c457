//! A visit's treatment at its department's doctors (seed 000): the patient waits in the
//! doctors' queue (`queued`, from reception's event), a doctor takes them (`in-progress`),
//! prescribes exams, sees each exam's outcome (from examination's events) and reviews the
//! results, then completes or refuses the treatment. A visit cancelled at reception before
//! a doctor took it is `withdrawn` from the queue.
//!
//! Taking the patient and cancelling the visit race across two desks: each takes the
//! visit's *claim* (a counter of one place, [`claim_key`]) in the transaction that records
//! it, so exactly one of them happens.

use serde::{Deserialize, Serialize};

use super::exam::ExamStatus;
use crate::domain::{Aggregate, DomainError, PersonName};

/// The bounded context's name: its table and event source (`clinicflow.diagnosis`).
pub const CONTEXT: &str = "diagnosis";

/// The most exams one visit may have.
pub const MAX_EXAMS: usize = 20;

/// The key of a visit's claim: taken once, by the doctor who takes the patient or by the
/// reception that cancels the visit, whichever commits first.
pub fn claim_key(visit_id: &str) -> String {
    format!("{CONTEXT}#claim#{visit_id}")
}

/// A treatment's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TreatmentStatus {
    /// In the doctors' queue.
    Queued,
    /// A doctor took the patient.
    InProgress,
    /// Completed.
    Completed,
    /// Refused.
    Refused,
    /// The visit was cancelled at reception before a doctor took the patient.
    Withdrawn,
}

/// One exam of a treatment, as diagnosis knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExamLine {
    /// Exam order number.
    pub id: String,
    /// Exam id.
    pub exam: String,
    /// What examination said of it.
    pub status: ExamStatus,
    /// The doctor reviewed its result.
    pub reviewed: bool,
}

/// The treatment aggregate; its id is the visit's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Treatment {
    /// The visit.
    pub id: String,
    /// Department id (empty for a visit withdrawn before it was queued).
    pub department: String,
    /// The patient's name, for the exam orders.
    pub patient_name: Option<PersonName>,
    /// Status.
    pub status: TreatmentStatus,
    /// The doctor who took the patient.
    pub doctor: Option<String>,
    /// The exams prescribed.
    pub exams: Vec<ExamLine>,
}

impl Treatment {
    /// The exam `exam_id` of this treatment.
    pub fn exam(&self, exam_id: &str) -> Option<&ExamLine> {
        self.exams.iter().find(|e| e.id == exam_id)
    }
}

/// The commands on a treatment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Queue the patient (reception registered the visit).
    Queue {
        /// Department id.
        department: String,
        /// The patient's name.
        patient_name: PersonName,
    },
    /// Withdraw the patient (reception cancelled the visit).
    Withdraw {
        /// Department id.
        department: String,
    },
    /// A doctor takes the patient.
    Start {
        /// The doctor.
        doctor: String,
    },
    /// The doctor prescribes an exam.
    Prescribe {
        /// The exam order's new number.
        exam_id: String,
        /// Exam id.
        exam: String,
    },
    /// Examination performed or cancelled an exam.
    Outcome {
        /// Exam order number.
        exam_id: String,
        /// Performed or cancelled.
        status: ExamStatus,
    },
    /// The doctor reviewed an exam's result.
    Review {
        /// Exam order number.
        exam_id: String,
    },
    /// The doctor completes the treatment.
    Complete,
    /// The doctor refuses the treatment.
    Refuse {
        /// Why.
        reason: String,
    },
}

/// What happened to a treatment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The patient is in the department's doctors' queue.
    TreatmentQueued {
        /// Department id.
        department: String,
        /// The patient's name.
        patient_name: PersonName,
    },
    /// The visit was cancelled at reception: out of the queue.
    TreatmentWithdrawn {
        /// Department id.
        department: String,
    },
    /// A doctor took the patient (their claim taken in the same write).
    TreatmentStarted {
        /// The doctor (`sub`).
        doctor: String,
    },
    /// The doctor prescribed an exam.
    ExamPrescribed {
        /// The exam order's number.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        exam_id: String,
        /// Exam id.
        exam: String,
        /// Department id.
        department: String,
        /// The patient's name, for the examiner to call them.
        patient_name: PersonName,
    },
    /// Examination performed or cancelled an exam.
    ExamOutcomeRecorded {
        /// The exam order's number.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        exam_id: String,
        /// `performed` or `cancelled`.
        status: ExamStatus,
    },
    /// The doctor reviewed an exam's result.
    ExamReviewed {
        /// The exam order's number.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        exam_id: String,
    },
    /// The doctor completed the treatment.
    TreatmentCompleted {},
    /// The doctor refused the treatment; the exams still to do are revoked.
    TreatmentRefused {
        /// Why (never logged, never texted).
        #[schemars(length(min = 1, max = 500))]
        reason: String,
        /// The exam orders still to do.
        #[schemars(inner(regex(pattern = crate::events::schema::ULID_PATTERN)))]
        open_exams: Vec<String>,
    },
}

fn conflict(why: impl Into<String>) -> DomainError {
    DomainError::IllegalTransition(why.into())
}

fn not_taken(status: TreatmentStatus) -> DomainError {
    match status {
        TreatmentStatus::Queued => conflict("no doctor has taken this patient yet"),
        TreatmentStatus::Withdrawn => conflict("the visit was cancelled at reception"),
        TreatmentStatus::Completed | TreatmentStatus::Refused => conflict("the treatment is over"),
        TreatmentStatus::InProgress => conflict("the treatment is under way"),
    }
}

impl Aggregate for Treatment {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use TreatmentStatus::*;
        let t = match (state, command) {
            (None, Command::Queue { department, patient_name }) => {
                return Ok(vec![Event::TreatmentQueued { department, patient_name }]);
            }
            // Queued already, or withdrawn before reception's registration was heard of.
            (Some(_), Command::Queue { .. }) => return Ok(vec![]),
            (None, Command::Withdraw { department }) => return Ok(vec![Event::TreatmentWithdrawn { department }]),
            (None, Command::Start { .. }) => return Err(conflict("the patient is not in the doctors' queue yet")),
            (None, _) => return Err(DomainError::NotFound),
            (Some(t), command) => (t, command),
        };
        let (t, command) = t;
        match command {
            Command::Queue { .. } => Ok(vec![]),
            Command::Withdraw { department } => Ok(match t.status {
                Queued => vec![Event::TreatmentWithdrawn { department }],
                // The claim lets no cancellation through once a doctor took the patient.
                _ => vec![],
            }),
            Command::Start { doctor } => match (t.status, &t.doctor) {
                (Queued, _) => Ok(vec![Event::TreatmentStarted { doctor }]),
                (InProgress, Some(d)) if *d == doctor => Ok(vec![]),
                (InProgress, _) => Err(conflict("another doctor has already taken this patient")),
                (other, _) => Err(not_taken(other)),
            },
            Command::Prescribe { exam_id, exam } => {
                if t.status != InProgress {
                    return Err(not_taken(t.status));
                }
                if t.exam(&exam_id).is_some() {
                    return Ok(vec![]);
                }
                if t.exams.iter().any(|e| e.exam == exam && e.status == ExamStatus::Ordered) {
                    return Err(conflict(format!("a {exam} exam is already ordered for this visit")));
                }
                if t.exams.len() >= MAX_EXAMS {
                    return Err(conflict(format!("a visit has at most {MAX_EXAMS} exams")));
                }
                let patient_name = t
                    .patient_name
                    .clone()
                    .ok_or_else(|| conflict("the patient is not in the doctors' queue yet"))?;
                Ok(vec![Event::ExamPrescribed {
                    exam_id,
                    exam,
                    department: t.department.clone(),
                    patient_name,
                }])
            }
            Command::Outcome { exam_id, status } => Ok(match t.exam(&exam_id) {
                Some(line) if line.status == ExamStatus::Ordered && status.ended() => {
                    vec![Event::ExamOutcomeRecorded { exam_id, status }]
                }
                _ => vec![],
            }),
            Command::Review { exam_id } => {
                if t.status != InProgress {
                    return Err(not_taken(t.status));
                }
                match t.exam(&exam_id) {
                    None => Err(DomainError::NotFound),
                    Some(line) => match line.status {
                        ExamStatus::Performed if line.reviewed => Ok(vec![]),
                        ExamStatus::Performed => Ok(vec![Event::ExamReviewed { exam_id }]),
                        ExamStatus::Ordered => Err(conflict(format!("the {} exam is not performed yet", line.exam))),
                        ExamStatus::Cancelled => Err(conflict(format!("the {} exam was cancelled: there is no result", line.exam))),
                    },
                }
            }
            Command::Complete => match t.status {
                InProgress => {
                    if let Some(pending) = t.exams.iter().find(|e| e.status == ExamStatus::Ordered) {
                        return Err(conflict(format!("the {} exam is still pending", pending.exam)));
                    }
                    if let Some(unread) = t.exams.iter().find(|e| e.status == ExamStatus::Performed && !e.reviewed) {
                        return Err(conflict(format!("the result of the {} exam is not reviewed yet", unread.exam)));
                    }
                    Ok(vec![Event::TreatmentCompleted {}])
                }
                Completed => Ok(vec![]),
                other => Err(not_taken(other)),
            },
            Command::Refuse { reason } => match t.status {
                InProgress => Ok(vec![Event::TreatmentRefused {
                    reason,
                    open_exams: t
                        .exams
                        .iter()
                        .filter(|e| e.status == ExamStatus::Ordered)
                        .map(|e| e.id.clone())
                        .collect(),
                }]),
                Refused => Ok(vec![]),
                other => Err(not_taken(other)),
            },
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        let fresh = |department: &str, patient_name: Option<PersonName>, status| Treatment {
            id: id.to_owned(),
            department: department.to_owned(),
            patient_name,
            status,
            doctor: None,
            exams: Vec::new(),
        };
        match (state, event) {
            (None, Event::TreatmentQueued { department, patient_name }) => {
                Some(fresh(department, Some(patient_name.clone()), TreatmentStatus::Queued))
            }
            (None, Event::TreatmentWithdrawn { department }) => Some(fresh(department, None, TreatmentStatus::Withdrawn)),
            (None, _) => None,
            (Some(mut t), e) => {
                match e {
                    Event::TreatmentQueued { .. } => {}
                    Event::TreatmentWithdrawn { .. } => t.status = TreatmentStatus::Withdrawn,
                    Event::TreatmentStarted { doctor } => {
                        t.status = TreatmentStatus::InProgress;
                        t.doctor = Some(doctor.clone());
                    }
                    Event::ExamPrescribed { exam_id, exam, .. } => t.exams.push(ExamLine {
                        id: exam_id.clone(),
                        exam: exam.clone(),
                        status: ExamStatus::Ordered,
                        reviewed: false,
                    }),
                    Event::ExamOutcomeRecorded { exam_id, status } => {
                        if let Some(line) = t.exams.iter_mut().find(|l| l.id == *exam_id) {
                            line.status = *status;
                        }
                    }
                    Event::ExamReviewed { exam_id } => {
                        if let Some(line) = t.exams.iter_mut().find(|l| l.id == *exam_id) {
                            line.reviewed = true;
                        }
                    }
                    Event::TreatmentCompleted {} => t.status = TreatmentStatus::Completed,
                    Event::TreatmentRefused { .. } => t.status = TreatmentStatus::Refused,
                }
                Some(t)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: Option<Treatment>, command: Command) -> Result<Option<Treatment>, DomainError> {
        let events = Treatment::decide(state.as_ref(), command)?;
        Ok(events.iter().fold(state, |s, e| Treatment::apply(s, "v1", e)))
    }

    fn taken() -> Treatment {
        let queued = run(
            None,
            Command::Queue {
                department: "internal".into(),
                patient_name: PersonName::parse("홍길동").expect("name"),
            },
        )
        .expect("queued");
        run(queued, Command::Start { doctor: "d1".into() })
            .expect("started")
            .expect("a treatment")
    }

    fn prescribed(t: Treatment, exam_id: &str, exam: &str) -> Treatment {
        run(
            Some(t),
            Command::Prescribe {
                exam_id: exam_id.into(),
                exam: exam.into(),
            },
        )
        .expect("prescribed")
        .expect("a treatment")
    }

    #[test]
    fn one_doctor_takes_the_patient_and_a_second_is_refused() {
        let t = taken();
        assert_eq!((t.status, t.doctor.as_deref()), (TreatmentStatus::InProgress, Some("d1")));
        assert_eq!(Treatment::decide(Some(&t), Command::Start { doctor: "d1".into() }), Ok(vec![]));
        assert!(Treatment::decide(Some(&t), Command::Start { doctor: "d2".into() }).is_err());
        assert!(Treatment::decide(None, Command::Start { doctor: "d1".into() }).is_err());
    }

    #[test]
    fn completion_waits_for_every_exam_to_end_and_every_result_to_be_reviewed() {
        let t = prescribed(prescribed(taken(), "e1", "blood"), "e2", "xray");
        assert!(
            Treatment::decide(
                Some(&t),
                Command::Prescribe {
                    exam_id: "e3".into(),
                    exam: "blood".into()
                }
            )
            .is_err(),
            "blood is already ordered"
        );
        assert!(Treatment::decide(Some(&t), Command::Complete).is_err(), "two exams pending");
        assert!(
            Treatment::decide(Some(&t), Command::Review { exam_id: "e1".into() }).is_err(),
            "not performed"
        );
        let t = run(
            Some(t),
            Command::Outcome {
                exam_id: "e1".into(),
                status: ExamStatus::Performed,
            },
        )
        .expect("performed")
        .expect("t");
        let t = run(
            Some(t),
            Command::Outcome {
                exam_id: "e2".into(),
                status: ExamStatus::Cancelled,
            },
        )
        .expect("cancelled")
        .expect("t");
        // An outcome heard twice changes nothing.
        assert_eq!(
            Treatment::decide(
                Some(&t),
                Command::Outcome {
                    exam_id: "e2".into(),
                    status: ExamStatus::Performed
                }
            ),
            Ok(vec![])
        );
        assert!(Treatment::decide(Some(&t), Command::Complete).is_err(), "e1 not reviewed");
        assert!(
            Treatment::decide(Some(&t), Command::Review { exam_id: "e2".into() }).is_err(),
            "cancelled"
        );
        let t = run(Some(t), Command::Review { exam_id: "e1".into() })
            .expect("reviewed")
            .expect("t");
        let done = run(Some(t), Command::Complete).expect("completed").expect("t");
        assert_eq!(done.status, TreatmentStatus::Completed);
        assert_eq!(Treatment::decide(Some(&done), Command::Complete), Ok(vec![]));
    }

    #[test]
    fn a_refusal_names_the_exams_still_to_do_and_a_withdrawal_stops_the_queue() {
        let t = prescribed(prescribed(taken(), "e1", "blood"), "e2", "ct");
        let t = run(
            Some(t),
            Command::Outcome {
                exam_id: "e1".into(),
                status: ExamStatus::Performed,
            },
        )
        .expect("ok")
        .expect("t");
        let events = Treatment::decide(Some(&t), Command::Refuse { reason: "r".into() }).expect("refused");
        assert_eq!(
            events,
            vec![Event::TreatmentRefused {
                reason: "r".into(),
                open_exams: vec!["e2".into()]
            }]
        );
        let withdrawn = run(
            None,
            Command::Withdraw {
                department: "internal".into(),
            },
        )
        .expect("withdrawn");
        let late = run(
            withdrawn.clone(),
            Command::Queue {
                department: "internal".into(),
                patient_name: PersonName::parse("홍길동").expect("name"),
            },
        )
        .expect("nothing");
        assert_eq!(late, withdrawn);
        assert!(Treatment::decide(late.as_ref(), Command::Start { doctor: "d1".into() }).is_err());
    }
}
