//! An exam order on the examiners' work list (seed 000): created by examination when it
//! hears a doctor prescribed the exam (`ordered`), then performed with a short result note
//! or cancelled with a reason, by an examiner, or revoked when the doctor refuses the
//! treatment. FHIR's ServiceRequest: `active`, `completed`, `revoked`.

use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, DomainError, FieldError, PersonName, parse_wire};

/// The bounded context's name: its table and event source (`clinicflow.examination`).
pub const CONTEXT: &str = "examination";

/// The most characters of a result note or a reason.
pub const MAX_TEXT: usize = 500;

/// An exam's status, in the clinic's words.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantNames,
    utoipa::ToSchema,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ExamStatus {
    /// Prescribed; on the examiners' work list.
    Ordered,
    /// Performed, with a result note.
    Performed,
    /// Cancelled by an examiner, or revoked with the treatment.
    Cancelled,
}

impl ExamStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        parse_wire(field, raw)
    }

    /// FHIR ServiceRequest's status for it.
    pub fn fhir(self) -> &'static str {
        match self {
            Self::Ordered => "active",
            Self::Performed => "completed",
            Self::Cancelled => "revoked",
        }
    }

    /// Performed or cancelled: nothing more will happen to it.
    pub fn ended(self) -> bool {
        self != Self::Ordered
    }
}

/// The exam order aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExamOrder {
    /// Exam order number (the doctor's prescription gave it).
    pub id: String,
    /// The visit.
    pub visit_id: String,
    /// Exam id.
    pub exam: String,
    /// Department id.
    pub department: String,
    /// Status.
    pub status: ExamStatus,
}

/// A prescription as examination hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prescription {
    /// The visit.
    pub visit_id: String,
    /// Exam id.
    pub exam: String,
    /// Department id.
    pub department: String,
    /// The patient's name, for the examiner to call them.
    pub patient_name: PersonName,
}

/// The commands on an exam order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Put the prescription on the work list.
    Order(Prescription),
    /// An examiner performed it.
    Perform {
        /// The short result note.
        note: String,
        /// The examiner.
        examiner: String,
    },
    /// An examiner cancelled it.
    Cancel {
        /// Why.
        reason: String,
        /// The examiner.
        examiner: String,
    },
    /// The doctor refused the treatment: an exam still to do is revoked (one not heard of
    /// yet is recorded revoked, so that its late prescription orders nothing).
    Revoke {
        /// The visit.
        visit_id: String,
    },
}

/// What happened to an exam order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// The exam is on the examiners' work list.
    ExamOrdered {
        /// The visit.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        visit_id: String,
        /// Exam id.
        exam: String,
        /// Department id.
        department: String,
        /// The patient's name, for the examiner to call them.
        patient_name: PersonName,
    },
    /// An examiner performed the exam.
    ExamPerformed {
        /// The visit.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        visit_id: String,
        /// The short result note (personal health data: never logged, never texted).
        #[schemars(length(min = 1, max = 500))]
        note: String,
        /// The examiner (`sub`).
        #[schemars(length(min = 1))]
        examiner: String,
    },
    /// An examiner cancelled the exam, or it was revoked with the treatment.
    ExamCancelled {
        /// The visit.
        #[schemars(regex(pattern = crate::events::schema::ULID_PATTERN))]
        visit_id: String,
        /// Why (never logged, never texted).
        #[schemars(length(min = 1, max = 500))]
        reason: String,
        /// Revoked because the doctor refused the treatment.
        revoked: bool,
        /// The examiner (`sub`) who cancelled it; none when it was revoked.
        examiner: Option<String>,
    },
}

/// Why an exam revoked with its treatment was cancelled.
pub const REVOKED: &str = "the treatment was refused";

impl Aggregate for ExamOrder {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use ExamStatus::*;
        match (state, command) {
            (None, Command::Order(p)) => Ok(vec![Event::ExamOrdered {
                visit_id: p.visit_id,
                exam: p.exam,
                department: p.department,
                patient_name: p.patient_name,
            }]),
            // Ordered already, or revoked before its prescription was heard of.
            (Some(_), Command::Order(_)) => Ok(vec![]),
            (None, Command::Revoke { visit_id }) => Ok(vec![Event::ExamCancelled {
                visit_id,
                reason: REVOKED.into(),
                revoked: true,
                examiner: None,
            }]),
            (None, _) => Err(DomainError::NotFound),
            (Some(o), Command::Perform { note, examiner }) => match o.status {
                Ordered => Ok(vec![Event::ExamPerformed {
                    visit_id: o.visit_id.clone(),
                    note,
                    examiner,
                }]),
                Performed => Ok(vec![]),
                Cancelled => Err(DomainError::IllegalTransition(
                    "the exam was cancelled; it cannot be performed".into(),
                )),
            },
            (Some(o), Command::Cancel { reason, examiner }) => match o.status {
                Ordered => Ok(vec![Event::ExamCancelled {
                    visit_id: o.visit_id.clone(),
                    reason,
                    revoked: false,
                    examiner: Some(examiner),
                }]),
                Cancelled => Ok(vec![]),
                Performed => Err(DomainError::IllegalTransition(
                    "the exam was performed; it cannot be cancelled".into(),
                )),
            },
            (Some(o), Command::Revoke { .. }) => Ok(match o.status {
                Ordered => vec![Event::ExamCancelled {
                    visit_id: o.visit_id.clone(),
                    reason: REVOKED.into(),
                    revoked: true,
                    examiner: None,
                }],
                Performed | Cancelled => vec![],
            }),
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (
                None,
                Event::ExamOrdered {
                    visit_id,
                    exam,
                    department,
                    ..
                },
            ) => Some(ExamOrder {
                id: id.to_owned(),
                visit_id: visit_id.clone(),
                exam: exam.clone(),
                department: department.clone(),
                status: ExamStatus::Ordered,
            }),
            (None, Event::ExamCancelled { visit_id, .. }) => Some(ExamOrder {
                id: id.to_owned(),
                visit_id: visit_id.clone(),
                exam: String::new(),
                department: String::new(),
                status: ExamStatus::Cancelled,
            }),
            (None, Event::ExamPerformed { .. }) => None,
            (Some(mut o), e) => {
                match e {
                    Event::ExamOrdered { .. } => {}
                    Event::ExamPerformed { .. } => o.status = ExamStatus::Performed,
                    Event::ExamCancelled { .. } => o.status = ExamStatus::Cancelled,
                }
                Some(o)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered() -> ExamOrder {
        let events = ExamOrder::decide(
            None,
            Command::Order(Prescription {
                visit_id: "v1".into(),
                exam: "blood".into(),
                department: "internal".into(),
                patient_name: PersonName::parse("홍길동").expect("name"),
            }),
        )
        .expect("ordered");
        events.iter().fold(None, |s, e| ExamOrder::apply(s, "e1", e)).expect("an order")
    }

    fn after(o: &ExamOrder, command: Command) -> Result<ExamOrder, DomainError> {
        let events = ExamOrder::decide(Some(o), command)?;
        Ok(events
            .iter()
            .try_fold(o.clone(), |s, e| ExamOrder::apply(Some(s), "e1", e))
            .expect("an order"))
    }

    #[test]
    fn an_exam_is_performed_or_cancelled_once() {
        let o = ordered();
        assert_eq!((o.status, o.status.fhir()), (ExamStatus::Ordered, "active"));
        let done = after(
            &o,
            Command::Perform {
                note: "normal".into(),
                examiner: "x1".into(),
            },
        )
        .expect("performed");
        assert_eq!(done.status.fhir(), "completed");
        assert_eq!(
            ExamOrder::decide(
                Some(&done),
                Command::Perform {
                    note: "again".into(),
                    examiner: "x1".into()
                }
            ),
            Ok(vec![])
        );
        assert!(
            ExamOrder::decide(
                Some(&done),
                Command::Cancel {
                    reason: "no".into(),
                    examiner: "x1".into()
                }
            )
            .is_err()
        );
        assert_eq!(
            ExamOrder::decide(Some(&done), Command::Revoke { visit_id: "v1".into() }),
            Ok(vec![])
        );
        let cancelled = after(
            &o,
            Command::Cancel {
                reason: "patient left".into(),
                examiner: "x2".into(),
            },
        )
        .expect("cancelled");
        assert_eq!(cancelled.status.fhir(), "revoked");
        assert!(
            ExamOrder::decide(
                Some(&cancelled),
                Command::Perform {
                    note: "x".into(),
                    examiner: "x1".into()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn a_revocation_heard_before_its_prescription_keeps_the_exam_off_the_list() {
        let events = ExamOrder::decide(None, Command::Revoke { visit_id: "v1".into() }).expect("revoked");
        let revoked = events.iter().fold(None, |s, e| ExamOrder::apply(s, "e1", e)).expect("recorded");
        assert_eq!(revoked.status, ExamStatus::Cancelled);
        let late = Command::Order(Prescription {
            visit_id: "v1".into(),
            exam: "blood".into(),
            department: "internal".into(),
            patient_name: PersonName::parse("홍길동").expect("name"),
        });
        assert_eq!(ExamOrder::decide(Some(&revoked), late), Ok(vec![]));
        assert_eq!(
            ExamOrder::decide(
                None,
                Command::Perform {
                    note: "x".into(),
                    examiner: "x1".into()
                }
            ),
            Err(DomainError::NotFound)
        );
    }
}
