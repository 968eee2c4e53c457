//! The hospital slice's samples: reception registers a visit for a patient with an account,
//! a doctor takes them, prescribes a blood test and an x-ray, and the examiner performs the
//! blood test; a walk-in patient is registered, taken and completed; a third patient waits in
//! the internal medicine queue (the seeds, in that order, each settled: diagnosis has queued
//! every patient before the next seed runs). What each sample gets; every domain event of the
//! three desks (reception, diagnosis, examination) and what their schemas must refuse.

use chrono::{DateTime, NaiveDate, Utc};
use clinicflow::domain::{Contact, Locale, PersonName, PhoneNumber};
use clinicflow::events::{Causality, EventEnvelope};
use clinicflow::flows::hospital::exam::{self, ExamStatus};
use clinicflow::flows::hospital::{treatment, visit};
use serde_json::{Value, json};

use super::{Edit, Fixture, Schemas, remove};

/// The hospital slice's samples.
pub const FIXTURE: Fixture = Fixture {
    slice: "hospital",
    // A Monday morning in Korea (09:30): the visits are registered on 2027-01-04.
    now: "2027-01-04T00:30:00Z",
    // The ids the seeds take, in order (cases, exam orders and event ids): the first visit is
    // the first, its blood test the sixth, its x-ray the ninth, the walk-in visit the
    // fourteenth, the waiting visit the twenty-first.
    ids: &[
        SAMPLE_VISIT,                 // the visit, registered
        "01KHSP00000000000000000001", // VisitReceived
        "01KHSP00000000000000000002", // TreatmentQueued (hospital-queue)
        "01KHSP00000000000000000003", // TreatmentStarted
        "01KHSP00000000000000000004", // VisitStarted (hospital-visit-follow)
        BLOOD_TEST,                   // the blood test's order
        "01KHSP00000000000000000006", // ExamPrescribed
        "01KHSP00000000000000000007", // ExamOrdered (hospital-exam-order)
        XRAY,                         // the x-ray's order
        "01KHSP00000000000000000009", // ExamPrescribed
        "01KHSP00000000000000000010", // ExamOrdered (hospital-exam-order)
        "01KHSP00000000000000000011", // ExamPerformed
        "01KHSP00000000000000000012", // ExamOutcomeRecorded (hospital-exam-outcome)
        WALK_IN,                      // the walk-in visit, registered
        "01KHSP00000000000000000014", // VisitReceived
        "01KHSP00000000000000000015", // TreatmentQueued
        "01KHSP00000000000000000016", // TreatmentStarted
        "01KHSP00000000000000000017", // VisitStarted
        "01KHSP00000000000000000018", // TreatmentCompleted
        "01KHSP00000000000000000019", // VisitCompleted
        WAITING,                      // the waiting visit, registered
        "01KHSP00000000000000000021", // VisitReceived
        "01KHSP00000000000000000022", // TreatmentQueued
        "01KHSP00000000000000000023",
        "01KHSP00000000000000000024",
        "01KHSP00000000000000000025",
    ],
    seeds: &[
        "hospital-visit-register/register.json",
        "hospital-treatment-start/start.json",
        "hospital-exam-prescribe/prescribe.json",
        "hospital-exam-prescribe/prescribe-xray.json",
        "hospital-exam-perform/perform.json",
        "hospital-visit-register/register-walk-in.json",
        "hospital-treatment-start/start-walk-in.json",
        "hospital-treatment-complete/complete.json",
        "hospital-visit-register/register-waiting.json",
    ],
    case: SAMPLE_VISIT,
    view_id: |id| clinicflow::app::projector::view_id(clinicflow::flows::hospital::view::VISITS, id),
    // On the seeded platform: the first visit is in progress with its blood test performed
    // (not reviewed yet) and its x-ray ordered; the walk-in visit is completed; the third
    // patient waits in the internal medicine queue.
    expected: &[
        ("hospital-visit-register/register.json", 201),
        ("hospital-visit-register/register-walk-in.json", 201),
        ("hospital-visit-register/register-waiting.json", 201),
        ("hospital-visit-register/unknown-department.json", 422),
        ("hospital-visit-register/missing-phone.json", 422),
        ("hospital-visit-cancel/cancel.json", 200),
        ("hospital-visit-cancel/taken.json", 409),
        ("hospital-visit-close/close.json", 200),
        ("hospital-visit-close/not-over.json", 409),
        ("hospital-treatment-start/start.json", 200),
        ("hospital-treatment-start/start-walk-in.json", 200),
        ("hospital-treatment-start/start-waiting.json", 200),
        ("hospital-treatment-start/taken-by-another.json", 409),
        ("hospital-exam-prescribe/prescribe.json", 201),
        ("hospital-exam-prescribe/prescribe-xray.json", 201),
        ("hospital-exam-prescribe/unknown-exam.json", 422),
        ("hospital-exam-prescribe/already-ordered.json", 409),
        ("hospital-exam-prescribe/another-doctors-patient.json", 403),
        ("hospital-exam-review/review.json", 200),
        ("hospital-exam-review/not-performed.json", 409),
        ("hospital-exam-review/unknown-exam.json", 422),
        ("hospital-treatment-complete/complete.json", 200),
        ("hospital-treatment-complete/exam-pending.json", 409),
        ("hospital-treatment-refuse/refuse.json", 200),
        ("hospital-treatment-refuse/missing-reason.json", 422),
        ("hospital-exam-perform/perform.json", 200),
        ("hospital-exam-perform/perform-xray.json", 200),
        ("hospital-exam-perform/missing-note.json", 422),
        ("hospital-exam-cancel/cancel.json", 200),
        ("hospital-exam-cancel/performed.json", 409),
        ("hospital-query/visit.json", 200),
        ("hospital-query/visit-as-patient.json", 200),
        ("hospital-query/visit-as-doctor.json", 200),
        ("hospital-query/visit-of-another-patient.json", 404),
        ("hospital-query/my-visits.json", 200),
        ("hospital-query/board.json", 200),
        ("hospital-query/board-unknown-status.json", 422),
        ("hospital-query/doctor-queue.json", 200),
        ("hospital-query/doctor-queue-unknown-department.json", 422),
        ("hospital-query/work-list.json", 200),
        ("hospital-query/exam.json", 200),
    ],
    jobs: &[],
    envelopes,
    refusals,
    stream_view,
};

const SAMPLE_VISIT: &str = "01KHSP00000000000000000000";
const BLOOD_TEST: &str = "01KHSP00000000000000000005";
const XRAY: &str = "01KHSP00000000000000000008";
const WALK_IN: &str = "01KHSP00000000000000000013";
const WAITING: &str = "01KHSP00000000000000000020";

/// What a stream sample leaves in the visit's view.
fn stream_view(rel: &str, view: &Value) {
    let want = [
        ("hospital-exam-performed", "in-progress"),
        ("hospital-completed-closed", "closed"),
        ("hospital-cancelled", "cancelled"),
        ("hospital-refused", "refused"),
        ("hospital-desks-interleaved", "in-progress"),
    ]
    .into_iter()
    .find(|(sample, _)| rel.contains(sample))
    .map(|(_, status)| status)
    .unwrap_or_else(|| panic!("{rel}: say what it leaves in the view"));
    assert_eq!(view["status"], want, "{rel}: {view:#}");
    assert_eq!(view["department"], "internal", "{rel}");
    assert_eq!(view["name"], "홍길동", "{rel}");
    assert!(view["timeline"].as_array().is_some_and(|t| !t.is_empty()), "{rel}: a timeline");
    // Taken by a doctor, or withdrawn: no longer waiting in the queue.
    assert_eq!(view["queued"], false, "{rel}: {view:#}");
    let exam = |field: &str| view["exams"][0][field].clone();
    if rel.contains("hospital-exam-performed") {
        assert_eq!(
            (exam("status"), exam("note")),
            (json!("performed"), json!("within normal limits")),
            "{rel}"
        );
    }
    if rel.contains("hospital-completed-closed") {
        assert_eq!((exam("status"), exam("reviewed")), (json!("performed"), json!(true)), "{rel}");
    }
    if rel.contains("hospital-refused") {
        assert_eq!(view["reason"], "the patient declined the treatment", "{rel}");
        assert_eq!(exam("status"), "cancelled", "{rel}: the open exam is revoked");
    }
    if rel.contains("hospital-desks-interleaved") {
        assert_eq!((exam("exam"), exam("status")), (json!("blood"), json!("cancelled")), "{rel}");
    }
}

fn contact(name: &str, phone: &str, locale: Locale) -> Contact {
    Contact {
        name: PersonName::parse(name).expect("a valid name"),
        phone: PhoneNumber::parse(phone).expect("a valid phone"),
        locale,
    }
}

fn name(s: &str) -> PersonName {
    PersonName::parse(s).expect("a valid name")
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a valid date")
}

fn ulid() -> String {
    ulid::Ulid::new().to_string()
}

/// Every reception event, several shapes of some; the `match` breaks the build when a
/// variant is added without a case here.
fn visit_events() -> Vec<visit::Event> {
    let all = vec![
        visit::Event::VisitReceived {
            patient_sub: Some("5d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into()),
            department: "internal".into(),
            department_name: "내과".into(),
            date: date("2027-01-04"),
            contact: contact("홍길동", "010-1234-5678", Locale::Ko),
        },
        // A walk-in patient without an account, texted in English.
        visit::Event::VisitReceived {
            patient_sub: None,
            department: "surgery".into(),
            department_name: "외과".into(),
            date: date("2027-12-31"),
            contact: contact(&"가".repeat(50), "+14155550123", Locale::En),
        },
        visit::Event::VisitCancelled {
            department: "internal".into(),
        },
        visit::Event::VisitStarted {
            doctor: "8f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e1f".into(),
        },
        visit::Event::VisitCompleted {},
        visit::Event::VisitRefused {},
        visit::Event::VisitClosed {},
    ];
    for e in &all {
        match e {
            visit::Event::VisitReceived { .. }
            | visit::Event::VisitCancelled { .. }
            | visit::Event::VisitStarted { .. }
            | visit::Event::VisitCompleted {}
            | visit::Event::VisitRefused {}
            | visit::Event::VisitClosed {} => {}
        }
    }
    all
}

fn treatment_events() -> Vec<treatment::Event> {
    let (blood, xray) = (ulid(), ulid());
    let all = vec![
        treatment::Event::TreatmentQueued {
            department: "internal".into(),
            patient_name: name("홍길동"),
        },
        treatment::Event::TreatmentQueued {
            department: "paediatrics".into(),
            patient_name: name(&"J".repeat(50)),
        },
        treatment::Event::TreatmentWithdrawn {
            department: "internal".into(),
        },
        // Withdrawn before reception's registration was heard of.
        treatment::Event::TreatmentWithdrawn { department: String::new() },
        treatment::Event::TreatmentStarted {
            doctor: "8f3e2d1c-0b9a-4c8d-9e7f-6a5b4c3d2e1f".into(),
        },
        treatment::Event::ExamPrescribed {
            exam_id: blood.clone(),
            exam: "blood".into(),
            department: "internal".into(),
            patient_name: name("홍길동"),
        },
        treatment::Event::ExamPrescribed {
            exam_id: xray.clone(),
            exam: "xray".into(),
            department: "surgery".into(),
            patient_name: name("Jane Doe"),
        },
        treatment::Event::ExamOutcomeRecorded {
            exam_id: blood.clone(),
            status: ExamStatus::Performed,
        },
        treatment::Event::ExamOutcomeRecorded {
            exam_id: xray.clone(),
            status: ExamStatus::Cancelled,
        },
        treatment::Event::ExamReviewed { exam_id: blood },
        treatment::Event::TreatmentCompleted {},
        treatment::Event::TreatmentRefused {
            reason: "the patient declined the treatment".into(),
            open_exams: vec![xray, ulid()],
        },
        treatment::Event::TreatmentRefused {
            reason: "x".repeat(exam::MAX_TEXT),
            open_exams: vec![],
        },
    ];
    for e in &all {
        match e {
            treatment::Event::TreatmentQueued { .. }
            | treatment::Event::TreatmentWithdrawn { .. }
            | treatment::Event::TreatmentStarted { .. }
            | treatment::Event::ExamPrescribed { .. }
            | treatment::Event::ExamOutcomeRecorded { .. }
            | treatment::Event::ExamReviewed { .. }
            | treatment::Event::TreatmentCompleted {}
            | treatment::Event::TreatmentRefused { .. } => {}
        }
    }
    all
}

fn exam_events() -> Vec<exam::Event> {
    let all = vec![
        exam::Event::ExamOrdered {
            visit_id: ulid(),
            exam: "blood".into(),
            department: "internal".into(),
            patient_name: name("홍길동"),
        },
        exam::Event::ExamPerformed {
            visit_id: ulid(),
            note: "within normal limits".into(),
            examiner: "6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f".into(),
        },
        exam::Event::ExamPerformed {
            visit_id: ulid(),
            note: "n".repeat(exam::MAX_TEXT),
            examiner: "x".into(),
        },
        exam::Event::ExamCancelled {
            visit_id: ulid(),
            reason: "the patient could not fast".into(),
            revoked: false,
            examiner: Some("6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f".into()),
        },
        // Revoked with a refused treatment: no examiner.
        exam::Event::ExamCancelled {
            visit_id: ulid(),
            reason: exam::REVOKED.into(),
            revoked: true,
            examiner: None,
        },
    ];
    for e in &all {
        match e {
            exam::Event::ExamOrdered { .. } | exam::Event::ExamPerformed { .. } | exam::Event::ExamCancelled { .. } => {}
        }
    }
    all
}

fn wrap<E: serde::Serialize>(context: &str, version: u64, causation_id: &str, at: DateTime<Utc>, event: &E) -> Value {
    let case = ulid();
    let causality = Causality {
        correlation_id: case.clone(),
        causation_id: causation_id.to_owned(),
    };
    let envelope = EventEnvelope::wrap(ulid(), context, &case, version, &causality, at, event).expect("wraps");
    serde_json::to_value(&envelope).expect("serializes")
}

/// Envelopes of every domain event of the slice, as the commands and the consumers build
/// them: request ids and event ids as causes.
fn envelopes() -> Vec<Value> {
    let whole = DateTime::parse_from_rfc3339("2027-01-04T00:30:00Z")
        .expect("ts")
        .with_timezone(&Utc);
    let mut out = Vec::new();
    for (i, e) in visit_events().iter().enumerate() {
        out.push(wrap(visit::CONTEXT, 1 + i as u64, "Hs9pQrAbIE0EJbA=", whole, e));
    }
    for (i, e) in treatment_events().iter().enumerate() {
        out.push(wrap(treatment::CONTEXT, 1 + i as u64, &ulid(), Utc::now(), e));
    }
    for (i, e) in exam_events().iter().enumerate() {
        out.push(wrap(exam::CONTEXT, 1 + i as u64, &ulid(), Utc::now(), e));
    }
    out
}

fn first(envelopes: &[Value], t: &str) -> Value {
    envelopes.iter().find(|e| e["type"] == t).unwrap_or_else(|| panic!("a {t}")).clone()
}

/// Envelopes edited into what the Rust types would not produce: each must be refused.
fn refusals(schemas: &Schemas, envelopes: &[Value]) {
    let cases: &[(&str, &str, Edit)] = &[
        ("VisitReceived", "an unknown data field", |e| e["data"]["extra"] = json!(1)),
        ("VisitReceived", "another source", |e| e["source"] = json!("clinicflow.diagnosis")),
        ("VisitReceived", "a national phone number", |e| {
            e["data"]["contact"]["phone"] = json!("010-1234-5678")
        }),
        ("VisitReceived", "an unknown locale", |e| {
            e["data"]["contact"]["locale"] = json!("ja")
        }),
        ("VisitReceived", "a name over 50 characters", |e| {
            e["data"]["contact"]["name"] = json!("가".repeat(51))
        }),
        ("VisitReceived", "no contact", |e| remove(&mut e["data"], "contact")),
        ("VisitReceived", "no department", |e| remove(&mut e["data"], "department")),
        ("VisitReceived", "an impossible date", |e| e["data"]["date"] = json!("2027-02-30")),
        ("VisitReceived", "a patient that is not a string", |e| {
            e["data"]["patient_sub"] = json!(7)
        }),
        ("VisitReceived", "another type", |e| e["type"] = json!("VisitCancelled")),
        ("VisitReceived", "version 0", |e| e["version"] = json!(0)),
        ("VisitReceived", "an id that is not a ULID", |e| e["id"] = json!("visit-1")),
        ("VisitCancelled", "no department", |e| remove(&mut e["data"], "department")),
        ("VisitStarted", "a doctor that is not a string", |e| e["data"]["doctor"] = json!(7)),
        ("VisitCompleted", "a field", |e| e["data"]["by"] = json!("someone")),
        ("VisitClosed", "an unknown envelope field", |e| e["extra"] = json!(1)),
        ("TreatmentQueued", "an empty patient name", |e| {
            e["data"]["patient_name"] = json!("")
        }),
        ("TreatmentQueued", "another source", |e| e["source"] = json!("clinicflow.reception")),
        ("TreatmentStarted", "no doctor", |e| remove(&mut e["data"], "doctor")),
        ("ExamPrescribed", "an exam order that is not a ULID", |e| {
            e["data"]["exam_id"] = json!("exam-1")
        }),
        ("ExamPrescribed", "no exam", |e| remove(&mut e["data"], "exam")),
        ("ExamOutcomeRecorded", "an unknown status", |e| e["data"]["status"] = json!("done")),
        ("ExamOutcomeRecorded", "no exam order", |e| remove(&mut e["data"], "exam_id")),
        ("ExamReviewed", "an exam order that is not a ULID", |e| {
            e["data"]["exam_id"] = json!("blood")
        }),
        ("TreatmentCompleted", "a field", |e| e["data"]["note"] = json!("fine")),
        ("TreatmentRefused", "an empty reason", |e| e["data"]["reason"] = json!("")),
        ("TreatmentRefused", "a reason over 500 characters", |e| {
            e["data"]["reason"] = json!("x".repeat(501))
        }),
        ("TreatmentRefused", "open exams that are not a list", |e| {
            e["data"]["open_exams"] = json!("all")
        }),
        ("ExamOrdered", "a visit that is not a ULID", |e| {
            e["data"]["visit_id"] = json!("visit-1")
        }),
        ("ExamOrdered", "a patient name over 50 characters", |e| {
            e["data"]["patient_name"] = json!("J".repeat(51))
        }),
        ("ExamOrdered", "another source", |e| e["source"] = json!("clinicflow.diagnosis")),
        ("ExamPerformed", "an empty note", |e| e["data"]["note"] = json!("")),
        ("ExamPerformed", "a note over 500 characters", |e| {
            e["data"]["note"] = json!("n".repeat(501))
        }),
        ("ExamPerformed", "an empty examiner", |e| e["data"]["examiner"] = json!("")),
        ("ExamCancelled", "no reason", |e| remove(&mut e["data"], "reason")),
        ("ExamCancelled", "a revocation that is not a boolean", |e| {
            e["data"]["revoked"] = json!("yes")
        }),
        ("ExamCancelled", "an examiner that is not a string", |e| {
            e["data"]["examiner"] = json!(7)
        }),
    ];
    for (t, what, edit) in cases {
        let mut e = first(envelopes, t);
        edit(&mut e);
        schemas.assert_invalid(&format!("{t} with {what}"), &e);
    }
}
