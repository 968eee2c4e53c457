//! The hospital flow's status views: a visit with its treatment and exams (what its patient,
//! reception, the doctors and the customer team's board read; the doctors' queue is the
//! visits waiting at their department), and an exam order (the examiners' work list). Each
//! desk's events fold into them as they come, in whatever order the three tables' streams
//! deliver them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::exam::{self, ExamStatus};
use super::treatment;
use super::visit::{self, VisitStatus};
use crate::app::projector::{Indexed, Versions, View};
use crate::events::{EventEnvelope, source_of};

/// The visits' view.
pub const VISITS: &str = "hospital";
/// The exam orders' view.
pub const EXAMS: &str = "hospitalexam";

/// One step of a visit's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = VisitTimelineEntry)]
pub struct TimelineEntry {
    /// Status reached, or what happened (`queued`, `exam-ordered`, `exam-performed`,
    /// `exam-cancelled`, `exam-reviewed`).
    pub status: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// One exam of a visit, as the visit's view keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExamEntry {
    /// Exam order number.
    pub id: String,
    /// Exam id.
    pub exam: Option<String>,
    /// What examination says of it (absent until heard of).
    pub status: Option<ExamStatus>,
    /// The result note.
    pub note: Option<String>,
    /// Why it was cancelled.
    pub reason: Option<String>,
    /// The doctor reviewed its result.
    pub reviewed: bool,
}

/// A visit, as its view keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitView {
    /// Visit number.
    pub id: String,
    /// The patient's account, when they follow the visit ("" otherwise).
    #[serde(default)]
    pub patient_sub: String,
    /// The patient's name.
    pub name: Option<String>,
    /// Reception's status (absent until reception's first event).
    pub status: Option<VisitStatus>,
    /// Department id.
    pub department: Option<String>,
    /// Korean date of registration.
    pub date: Option<NaiveDate>,
    /// Diagnosis holds the patient in the doctors' queue.
    pub queued: bool,
    /// The doctor who took the patient.
    pub doctor: Option<String>,
    /// The exams.
    pub exams: Vec<ExamEntry>,
    /// Why the doctor refused the treatment.
    pub reason: Option<String>,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// When registered.
    pub created_at: Option<DateTime<Utc>>,
    /// Versions applied.
    pub versions: Versions,
}

impl VisitView {
    /// Records a step in time order: the three desks' events arrive in any order, and
    /// the view must be the same whatever it was (ties by name, so that it is).
    fn step(&mut self, status: &str, at: DateTime<Utc>) {
        let entry = TimelineEntry {
            status: status.to_owned(),
            at,
        };
        let key = |e: &TimelineEntry| (e.at, e.status.clone());
        let place = self.timeline.partition_point(|e| key(e) <= key(&entry));
        self.timeline.insert(place, entry);
    }

    fn set(&mut self, status: VisitStatus, at: DateTime<Utc>) {
        self.status = Some(status);
        self.step(status.as_str(), at);
    }

    /// In the doctors' queue now: diagnosis holds the patient for a doctor, and reception
    /// has not cancelled the visit (diagnosis may hear of that later).
    fn waiting(&self) -> bool {
        self.queued && self.status.is_none_or(|s| s == VisitStatus::Received)
    }

    fn exam(&mut self, id: &str) -> &mut ExamEntry {
        let at = match self.exams.iter().position(|e| e.id == id) {
            Some(at) => at,
            None => {
                self.exams.push(ExamEntry {
                    id: id.to_owned(),
                    ..ExamEntry::default()
                });
                self.exams.len() - 1
            }
        };
        &mut self.exams[at]
    }

    fn fold_reception(&mut self, e: &EventEnvelope) -> bool {
        use visit::Event::*;
        let Ok(event) = e.decode::<visit::Event>() else {
            return false;
        };
        let at = e.occurred_at;
        match event {
            VisitReceived {
                patient_sub,
                department,
                date,
                contact,
                ..
            } => {
                self.patient_sub = patient_sub.unwrap_or_default();
                self.name = Some(contact.name.as_str().to_owned());
                self.department = Some(department);
                self.date = Some(date);
                self.created_at = Some(at);
                self.set(VisitStatus::Received, at);
            }
            VisitCancelled { .. } => self.set(VisitStatus::Cancelled, at),
            VisitStarted { doctor } => {
                self.doctor = Some(doctor);
                self.set(VisitStatus::InProgress, at);
            }
            VisitCompleted {} => self.set(VisitStatus::Completed, at),
            VisitRefused {} => self.set(VisitStatus::Refused, at),
            VisitClosed {} => self.set(VisitStatus::Closed, at),
        }
        true
    }

    fn fold_diagnosis(&mut self, e: &EventEnvelope) -> bool {
        use treatment::Event::*;
        let Ok(event) = e.decode::<treatment::Event>() else {
            return false;
        };
        let at = e.occurred_at;
        match event {
            TreatmentQueued { department, .. } => {
                self.department.get_or_insert(department);
                self.queued = true;
                self.step("queued", at);
            }
            TreatmentWithdrawn { .. } => self.queued = false,
            TreatmentStarted { doctor } => {
                self.queued = false;
                self.doctor = Some(doctor);
            }
            ExamPrescribed { exam_id, exam, .. } => {
                let entry = self.exam(&exam_id);
                entry.exam = Some(exam);
                entry.status.get_or_insert(ExamStatus::Ordered);
                self.step("exam-ordered", at);
            }
            ExamReviewed { exam_id } => {
                self.exam(&exam_id).reviewed = true;
                self.step("exam-reviewed", at);
            }
            TreatmentRefused { reason, .. } => self.reason = Some(reason),
            // Reception's own events say when the visit moved, examination's what happened
            // to an exam: nothing to show, but the treatment's version moves on (an event
            // of a folded aggregate the view passed over would hold back the next).
            ExamOutcomeRecorded { .. } | TreatmentCompleted {} => {}
        }
        true
    }

    fn fold_examination(&mut self, e: &EventEnvelope) -> bool {
        use exam::Event::*;
        let Ok(event) = e.decode::<exam::Event>() else {
            return false;
        };
        let at = e.occurred_at;
        let entry = self.exam(&e.aggregate_id);
        match event {
            ExamOrdered { exam, .. } => {
                entry.exam = Some(exam);
                entry.status.get_or_insert(ExamStatus::Ordered);
                return true;
            }
            ExamPerformed { note, .. } => {
                entry.status = Some(ExamStatus::Performed);
                entry.note = Some(note);
                self.step("exam-performed", at);
            }
            ExamCancelled { reason, .. } => {
                entry.status = Some(ExamStatus::Cancelled);
                entry.reason = Some(reason);
                self.step("exam-cancelled", at);
            }
        }
        true
    }
}

impl View for VisitView {
    const NAME: &'static str = VISITS;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        if e.source == source_of(visit::CONTEXT) {
            self.fold_reception(e)
        } else if e.source == source_of(treatment::CONTEXT) {
            self.fold_diagnosis(e)
        } else if e.source == source_of(exam::CONTEXT) {
            self.fold_examination(e)
        } else {
            false
        }
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        Indexed {
            owner: self.patient_sub.clone(),
            date: self.date.map(|d| d.to_string()),
            status: self.status.map(|s| s.as_str().to_owned()),
            // The doctors' queue: the department's patients diagnosis holds for a doctor, as
            // long as reception has not cancelled the visit (diagnosis may hear of it later).
            queue: self.waiting().then(|| self.department.clone()).flatten(),
            category: self.department.clone(),
            created_at: self.created_at,
        }
    }
}

/// An exam order, as the work list's view keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExamView {
    /// Exam order number.
    pub id: String,
    /// The visit.
    pub visit_id: Option<String>,
    /// Exam id.
    pub exam: Option<String>,
    /// Department id.
    pub department: Option<String>,
    /// The patient's name.
    pub patient_name: Option<String>,
    /// Status.
    pub status: Option<ExamStatus>,
    /// The result note.
    pub note: Option<String>,
    /// Why it was cancelled.
    pub reason: Option<String>,
    /// Revoked with its treatment.
    pub revoked: bool,
    /// The examiner who performed or cancelled it.
    pub examiner: Option<String>,
    /// When it was ordered.
    pub created_at: Option<DateTime<Utc>>,
    /// Versions applied.
    pub versions: Versions,
}

impl View for ExamView {
    const NAME: &'static str = EXAMS;

    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Default::default()
        }
    }

    /// One view per exam order, not per visit.
    fn key(event: &EventEnvelope) -> String {
        event.aggregate_id.clone()
    }

    fn apply(&mut self, e: &EventEnvelope) -> bool {
        use exam::Event::*;
        let Ok(event) = e.decode::<exam::Event>() else {
            return false;
        };
        match event {
            ExamOrdered {
                visit_id,
                exam,
                department,
                patient_name,
            } => {
                self.visit_id = Some(visit_id);
                self.exam = Some(exam);
                self.department = Some(department);
                self.patient_name = Some(patient_name.as_str().to_owned());
                self.status = Some(ExamStatus::Ordered);
                self.created_at = Some(e.occurred_at);
            }
            ExamPerformed { visit_id, note, examiner } => {
                self.visit_id = Some(visit_id);
                self.status = Some(ExamStatus::Performed);
                self.note = Some(note);
                self.examiner = Some(examiner);
            }
            ExamCancelled {
                visit_id,
                reason,
                revoked,
                examiner,
            } => {
                self.examiner = examiner;
                self.visit_id = Some(visit_id);
                self.status = Some(ExamStatus::Cancelled);
                self.reason = Some(reason);
                self.revoked = revoked;
                self.created_at.get_or_insert(e.occurred_at);
            }
        }
        true
    }

    fn versions(&mut self) -> &mut Versions {
        &mut self.versions
    }

    fn index(&self) -> Indexed {
        Indexed {
            owner: String::new(),
            date: None,
            status: self.status.map(|s| s.as_str().to_owned()),
            queue: None,
            category: self.department.clone(),
            created_at: self.created_at,
        }
    }
}

/// What a reader of a visit may see of its clinical detail: exam notes, why an exam was
/// cancelled and why the treatment was refused are for the patient and the clinicians.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Everything (the patient, doctors, examiners).
    Clinical,
    /// Statuses only (reception, the customer team).
    Administrative,
}

/// One exam of a visit as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = VisitExam)]
pub struct VisitExamResponse {
    /// Exam order number.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// Exam id (`VISIT_EXAMS`).
    pub exam: String,
    /// `ordered`, `performed` or `cancelled`.
    pub status: ExamStatus,
    /// FHIR ServiceRequest status: `active`, `completed` or `revoked`.
    #[schema(example = "active")]
    pub fhir_status: String,
    /// The result note (clinical readers only); null otherwise.
    #[schema(required = true)]
    pub note: Option<String>,
    /// Why it was cancelled (clinical readers only); null otherwise.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The doctor reviewed the result.
    pub reviewed: bool,
}

/// A visit as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(
    as = Visit,
    description = "A hospital visit: reception's status with FHIR Encounter's beside it, the department, the doctor, each exam \
                   with its status (FHIR ServiceRequest's beside it), and the timeline."
)]
pub struct VisitResponse {
    /// Visit number.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// `received`, `in-progress`, `completed`, `refused`, `cancelled` or `closed`.
    pub status: VisitStatus,
    /// FHIR Encounter status: `arrived`, `in-progress`, `finished` or `cancelled`.
    #[schema(example = "arrived")]
    pub fhir_status: String,
    /// The patient's name.
    pub name: String,
    /// Department id (`VISIT_DEPARTMENTS`).
    pub department: String,
    /// The Korean calendar date of registration.
    pub date: NaiveDate,
    /// Waiting in the doctors' queue now.
    pub queued: bool,
    /// The doctor who took the patient; null before.
    #[schema(required = true)]
    pub doctor: Option<String>,
    /// The exams, in the order they were prescribed.
    pub exams: Vec<VisitExamResponse>,
    /// Why the doctor refused the treatment (clinical readers only); null otherwise.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// History.
    pub timeline: Vec<TimelineEntry>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

impl VisitView {
    /// The API's view, once reception's first event is in, with what `detail` allows.
    pub fn into_response(self, detail: Detail) -> Option<VisitResponse> {
        let clinical = detail == Detail::Clinical;
        let queued = self.waiting();
        let status = self.status?;
        let mut exams = self.exams;
        // Exam order numbers are ULIDs, made at prescription: in id order, as prescribed,
        // whichever desk's event about each was folded first.
        exams.sort_by(|a, b| a.id.cmp(&b.id));
        Some(VisitResponse {
            fhir_status: status.fhir().to_owned(),
            status,
            name: self.name?,
            department: self.department?,
            date: self.date?,
            queued,
            doctor: self.doctor,
            exams: exams
                .into_iter()
                .filter_map(|e| {
                    let status = e.status?;
                    Some(VisitExamResponse {
                        exam: e.exam?,
                        fhir_status: status.fhir().to_owned(),
                        status,
                        note: e.note.filter(|_| clinical),
                        reason: e.reason.filter(|_| clinical),
                        reviewed: e.reviewed,
                        id: e.id,
                    })
                })
                .collect(),
            reason: self.reason.filter(|_| clinical),
            timeline: self.timeline,
            created_at: self.created_at?,
            id: self.id,
        })
    }
}

/// An exam order as the work list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = ExamOrder, description = "An exam order on the examiners' work list.")]
pub struct ExamResponse {
    /// Exam order number.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub id: String,
    /// The visit.
    #[schema(pattern = "^[0-9A-Za-z]{26}$", min_length = 26, max_length = 26)]
    pub visit_id: String,
    /// Exam id.
    pub exam: String,
    /// Department id.
    pub department: String,
    /// The patient to call.
    pub patient_name: String,
    /// `ordered`, `performed` or `cancelled`.
    pub status: ExamStatus,
    /// FHIR ServiceRequest status.
    #[schema(example = "active")]
    pub fhir_status: String,
    /// The result note; null before.
    #[schema(required = true)]
    pub note: Option<String>,
    /// Why it was cancelled; null otherwise.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The examiner (`sub`) who performed or cancelled it; null before, and for an exam
    /// revoked with its treatment.
    #[schema(required = true)]
    pub examiner: Option<String>,
    /// When it was ordered.
    pub created_at: DateTime<Utc>,
}

impl ExamView {
    /// The API's view, once it is on the work list (a revocation heard before its
    /// prescription is not shown).
    pub fn into_response(self) -> Option<ExamResponse> {
        let status = self.status?;
        Some(ExamResponse {
            fhir_status: status.fhir().to_owned(),
            status,
            visit_id: self.visit_id?,
            exam: self.exam?,
            department: self.department?,
            patient_name: self.patient_name?,
            note: self.note,
            reason: self.reason,
            examiner: self.examiner,
            created_at: self.created_at?,
            id: self.id,
        })
    }
}
