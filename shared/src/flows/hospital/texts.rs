//! The hospital flow's SMS, as data: Korean by default, English on request. They say where
//! the patient is in the visit and nothing else: no exam, no result, no reason, no
//! diagnosis. `{ref}` is the visit's short reference (its last 8 characters).

use crate::topology::{ContactFrom, Notification};

const VISIT: &str = "sms-on-hospital-visit";
const TREATMENT: &str = "sms-on-hospital-treatment";
const RECEPTION: &str = "clinicflow.reception";
const DIAGNOSIS: &str = "clinicflow.diagnosis";

/// Every SMS of the flow.
pub const NOTIFICATIONS: &[Notification] = &[
    Notification {
        rule: VISIT,
        source: RECEPTION,
        event_type: "VisitReceived",
        contact: ContactFrom::Field("contact"),
        ko: "[clinicflow] {department_name} 접수가 완료되었습니다(접수번호 {ref}). 진료 순서가 되면 문자로 알려드립니다.",
        en: "[clinicflow] You are registered at {department_name} (ref {ref}). We will text you when the doctor calls you in.",
    },
    Notification {
        rule: VISIT,
        source: RECEPTION,
        event_type: "VisitCancelled",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 접수가 취소되었습니다(접수번호 {ref}).",
        en: "[clinicflow] Your registration was cancelled (ref {ref}).",
    },
    Notification {
        rule: TREATMENT,
        source: DIAGNOSIS,
        event_type: "TreatmentStarted",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 진료 순서입니다. 진료실로 들어와 주세요(접수번호 {ref}).",
        en: "[clinicflow] The doctor will see you now: please come in (ref {ref}).",
    },
    Notification {
        rule: TREATMENT,
        source: DIAGNOSIS,
        event_type: "TreatmentCompleted",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 진료가 끝났습니다. 수납 창구로 와 주세요(접수번호 {ref}).",
        en: "[clinicflow] Your consultation is over: please come to the front desk (ref {ref}).",
    },
    // The same words whether the doctor completed or refused the treatment: why is said in
    // person, never by SMS.
    Notification {
        rule: TREATMENT,
        source: DIAGNOSIS,
        event_type: "TreatmentRefused",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 진료가 종료되었습니다. 수납 창구로 와 주세요(접수번호 {ref}).",
        en: "[clinicflow] Your consultation has ended: please come to the front desk (ref {ref}).",
    },
];
