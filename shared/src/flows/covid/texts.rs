//! The COVID flow's SMS, as data: Korean by default, English on request. They say where the
//! citizen is in the process and nothing else: no result ("your result is ready", and where
//! to read it), no name. `{ref}` is the application's short reference (its last 8
//! characters).

use crate::topology::{ContactFrom, Notification};

const APPLICATION: &str = "sms-on-covid-application";
const TRANSFER: &str = "sms-on-covid-transfer";
const ISOLATION: &str = "sms-on-covid-isolation";
const HEALTH_CENTRE: &str = "clinicflow.healthcentre";
const TRANSFER_CENTRE: &str = "clinicflow.transfer";
const ISOLATION_CENTRE: &str = "clinicflow.isolation";

/// Every SMS of the flow.
pub const NOTIFICATIONS: &[Notification] = &[
    Notification {
        rule: APPLICATION,
        source: HEALTH_CENTRE,
        event_type: "ApplicationSubmitted",
        contact: ContactFrom::Field("contact"),
        ko: "[clinicflow] {site_name} 코로나19 검사 신청이 접수되었습니다(신청번호 {ref}). 검사소 운영 시간에 방문해 주세요.",
        en: "[clinicflow] Your COVID-19 test application for {site_name} is received (ref {ref}). Please visit during opening hours.",
    },
    // The same words whatever the result: the result is read in the app, never texted.
    Notification {
        rule: APPLICATION,
        source: HEALTH_CENTRE,
        event_type: "ResultHeard",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 코로나19 검사 결과가 나왔습니다(신청번호 {ref}). 앱의 /covid/applications 에서 확인해 주세요.",
        en: "[clinicflow] Your COVID-19 test result is ready (ref {ref}). Read it in the app at /covid/applications.",
    },
    Notification {
        rule: TRANSFER,
        source: TRANSFER_CENTRE,
        event_type: "TransferDispatched",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 격리 시설({centre})로 이송이 배정되었습니다(신청번호 {ref}). 이송 안내에 따라 주세요.",
        en: "[clinicflow] You are assigned to isolation centre {centre} (ref {ref}). Please follow the transfer team's directions.",
    },
    Notification {
        rule: ISOLATION,
        source: ISOLATION_CENTRE,
        event_type: "StayReleased",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 격리 조치가 종료되었습니다(신청번호 {ref}). 그동안 협조해 주셔서 감사합니다.",
        en: "[clinicflow] Your isolation has ended (ref {ref}). Thank you for your cooperation.",
    },
];
