//! A visit at the hospital's reception desk (seed 000): registered (`received`), followed
//! while the doctor treats the patient (`in-progress`, then `completed` or `refused`, moved
//! by diagnosis's events, never by asking diagnosis), and closed at the desk (`closed`), or
//! cancelled before a doctor has taken the patient (`cancelled`). The visit is FHIR's
//! Encounter; its `fhir_status` is given beside the clinic's word.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::domain::{Aggregate, Contact, DomainError, FieldError, parse_wire};

/// The bounded context's name: its table and event source (`clinicflow.reception`).
pub const CONTEXT: &str = "reception";

/// A visit's status, in the clinic's words.
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
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum VisitStatus {
    /// Registered at reception; waiting for a doctor.
    Received,
    /// A doctor has taken the patient.
    InProgress,
    /// The doctor completed the treatment.
    Completed,
    /// The doctor refused the treatment.
    Refused,
    /// Cancelled at reception before a doctor took the patient.
    Cancelled,
    /// Closed at the desk: paid, left.
    Closed,
}

impl VisitStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a wire name.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        parse_wire(field, raw)
    }

    /// FHIR Encounter's status for it (`planned` is never used: a visit is registered when
    /// the patient is at the desk).
    pub fn fhir(self) -> &'static str {
        match self {
            Self::Received => "arrived",
            Self::InProgress => "in-progress",
            Self::Completed | Self::Refused | Self::Closed => "finished",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The visit aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// Visit number.
    pub id: String,
    /// The patient's account, when they follow the visit.
    pub patient_sub: Option<String>,
    /// Department id.
    pub department: String,
    /// The Korean calendar date of registration.
    pub date: NaiveDate,
    /// Status.
    pub status: VisitStatus,
    /// The doctor who took the patient.
    pub doctor: Option<String>,
}

/// A validated registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVisit {
    /// The patient's account, if any.
    pub patient_sub: Option<String>,
    /// Department.
    pub department: String,
    /// Its name.
    pub department_name: String,
    /// Korean date of registration.
    pub date: NaiveDate,
    /// Whom to text.
    pub contact: Contact,
}

/// What diagnosis said happened to the treatment, as reception follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A doctor took the patient.
    Started {
        /// The doctor.
        doctor: String,
    },
    /// The treatment was completed.
    Completed,
    /// The treatment was refused.
    Refused,
}

/// The commands on a visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Register it.
    Register(NewVisit),
    /// Cancel it at the desk.
    Cancel,
    /// Close it at the desk.
    Close,
    /// Follow diagnosis.
    Follow(Outcome),
}

/// What happened to a visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// Reception registered the visit.
    VisitReceived {
        /// The patient's account (`sub`), when they follow the visit; the owner of the case.
        patient_sub: Option<String>,
        /// Department id.
        department: String,
        /// The department's name, for the SMS.
        department_name: String,
        /// The Korean calendar date of registration.
        date: NaiveDate,
        /// Whom to tell about the visit; kept by the SMS notifier in its own table.
        contact: Contact,
    },
    /// Cancelled at reception before a doctor took the patient.
    VisitCancelled {
        /// Department id.
        department: String,
    },
    /// A doctor took the patient (heard from diagnosis).
    VisitStarted {
        /// The doctor (`sub`).
        doctor: String,
    },
    /// The doctor completed the treatment (heard from diagnosis).
    VisitCompleted {},
    /// The doctor refused the treatment (heard from diagnosis).
    VisitRefused {},
    /// Closed at the desk.
    VisitClosed {},
}

fn illegal(status: VisitStatus, what: &str) -> DomainError {
    DomainError::IllegalTransition(format!("a {} visit cannot be {what}", status.as_str()))
}

impl Aggregate for Visit {
    const CONTEXT: &'static str = CONTEXT;
    type Command = Command;
    type Event = Event;
    type Error = DomainError;

    fn decide(state: Option<&Self>, command: Command) -> Result<Vec<Event>, DomainError> {
        use VisitStatus::*;
        let v = match (state, command) {
            (None, Command::Register(n)) => {
                return Ok(vec![Event::VisitReceived {
                    patient_sub: n.patient_sub,
                    department: n.department,
                    department_name: n.department_name,
                    date: n.date,
                    contact: n.contact,
                }]);
            }
            (Some(_), Command::Register(_)) => return Err(DomainError::IllegalTransition("the visit already exists".into())),
            (None, _) => return Err(DomainError::NotFound),
            (Some(v), command) => (v, command),
        };
        let (v, command) = v;
        match command {
            Command::Register(_) => Err(DomainError::IllegalTransition("the visit already exists".into())),
            Command::Cancel => match v.status {
                Received => Ok(vec![Event::VisitCancelled {
                    department: v.department.clone(),
                }]),
                Cancelled => Ok(vec![]),
                InProgress => Err(DomainError::IllegalTransition(
                    "a doctor has already taken this patient; the visit cannot be cancelled".into(),
                )),
                other => Err(illegal(other, "cancelled")),
            },
            Command::Close => match v.status {
                Completed | Refused => Ok(vec![Event::VisitClosed {}]),
                Closed => Ok(vec![]),
                Received | InProgress => Err(DomainError::IllegalTransition(
                    "the treatment is not over yet; the visit cannot be closed".into(),
                )),
                Cancelled => Err(illegal(Cancelled, "closed")),
            },
            // Diagnosis's events may arrive late, twice or out of order: a visit only moves
            // forward, and never out of `cancelled` or `closed`.
            Command::Follow(Outcome::Started { doctor }) => Ok(match v.status {
                Received => vec![Event::VisitStarted { doctor }],
                _ => vec![],
            }),
            Command::Follow(Outcome::Completed) => Ok(match v.status {
                Received | InProgress => vec![Event::VisitCompleted {}],
                _ => vec![],
            }),
            Command::Follow(Outcome::Refused) => Ok(match v.status {
                Received | InProgress => vec![Event::VisitRefused {}],
                _ => vec![],
            }),
        }
    }

    fn apply(state: Option<Self>, id: &str, event: &Event) -> Option<Self> {
        match (state, event) {
            (
                None,
                Event::VisitReceived {
                    patient_sub,
                    department,
                    date,
                    ..
                },
            ) => Some(Visit {
                id: id.to_owned(),
                patient_sub: patient_sub.clone(),
                department: department.clone(),
                date: *date,
                status: VisitStatus::Received,
                doctor: None,
            }),
            (None, _) => None,
            (Some(mut v), e) => {
                match e {
                    Event::VisitReceived { .. } => {}
                    Event::VisitCancelled { .. } => v.status = VisitStatus::Cancelled,
                    Event::VisitStarted { doctor } => {
                        v.status = VisitStatus::InProgress;
                        v.doctor = Some(doctor.clone());
                    }
                    Event::VisitCompleted {} => v.status = VisitStatus::Completed,
                    Event::VisitRefused {} => v.status = VisitStatus::Refused,
                    Event::VisitClosed {} => v.status = VisitStatus::Closed,
                }
                Some(v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Locale, PersonName, PhoneNumber};

    fn registered() -> Visit {
        let new = NewVisit {
            patient_sub: Some("p1".into()),
            department: "internal".into(),
            department_name: "내과".into(),
            date: NaiveDate::from_ymd_opt(2027, 1, 4).expect("date"),
            contact: Contact {
                name: PersonName::parse("홍길동").expect("name"),
                phone: PhoneNumber::parse("010-1234-5678").expect("phone"),
                locale: Locale::Ko,
            },
        };
        let events = Visit::decide(None, Command::Register(new)).expect("registered");
        events.iter().fold(None, |s, e| Visit::apply(s, "v1", e)).expect("a visit")
    }

    fn after(v: &Visit, command: Command) -> Result<Visit, DomainError> {
        let events = Visit::decide(Some(v), command)?;
        Ok(events
            .iter()
            .try_fold(v.clone(), |s, e| Visit::apply(Some(s), "v1", e))
            .expect("a visit"))
    }

    #[test]
    fn a_visit_follows_diagnosis_forward_only_and_closes_at_the_desk() {
        let v = registered();
        assert_eq!((v.status, v.status.fhir()), (VisitStatus::Received, "arrived"));
        let started = after(&v, Command::Follow(Outcome::Started { doctor: "d1".into() })).expect("started");
        assert_eq!((started.status, started.doctor.as_deref()), (VisitStatus::InProgress, Some("d1")));
        assert!(Visit::decide(Some(&started), Command::Cancel).is_err(), "taken: no cancellation");
        assert!(Visit::decide(Some(&started), Command::Close).is_err(), "not over: no closing");
        let done = after(&started, Command::Follow(Outcome::Completed)).expect("completed");
        assert_eq!(done.status.fhir(), "finished");
        // A late start, a duplicate outcome or the other outcome change nothing.
        for late in [Outcome::Started { doctor: "d2".into() }, Outcome::Completed, Outcome::Refused] {
            assert_eq!(Visit::decide(Some(&done), Command::Follow(late)), Ok(vec![]));
        }
        let closed = after(&done, Command::Close).expect("closed");
        assert_eq!(closed.status, VisitStatus::Closed);
        assert_eq!(Visit::decide(Some(&closed), Command::Close), Ok(vec![]));
    }

    #[test]
    fn an_outcome_that_overtakes_the_start_still_lands_and_a_cancelled_visit_stays_cancelled() {
        let v = registered();
        let refused = after(&v, Command::Follow(Outcome::Refused)).expect("refused");
        assert_eq!(refused.status, VisitStatus::Refused);
        let cancelled = after(&v, Command::Cancel).expect("cancelled");
        assert_eq!((cancelled.status, cancelled.status.fhir()), (VisitStatus::Cancelled, "cancelled"));
        assert_eq!(Visit::decide(Some(&cancelled), Command::Cancel), Ok(vec![]));
        assert_eq!(Visit::decide(Some(&cancelled), Command::Follow(Outcome::Completed)), Ok(vec![]));
        assert!(Visit::decide(Some(&cancelled), Command::Close).is_err());
        assert_eq!(Visit::decide(None, Command::Cancel), Err(DomainError::NotFound));
    }
}
