//! The vaccine flow's SMS, as data: Korean by default, English on request, with no health
//! detail beyond the vaccine and the date the citizen chose. `{ref}` is the case's short
//! reference (its last 8 characters): the reservation number, or the subscription's.

use crate::topology::{ContactFrom, Notification};

const RESERVATION: &str = "sms-on-vaccine-reservation";
const SLOT: &str = "sms-on-vaccine-slot";
const ALERT: &str = "sms-on-vaccine-alert";
const VACCINATION: &str = "clinicflow.vaccination";

/// Every SMS of the flow.
pub const NOTIFICATIONS: &[Notification] = &[
    Notification {
        rule: ALERT,
        source: "clinicflow.vaccinealert",
        event_type: "AlertSubscribed",
        contact: ContactFrom::Field("contact"),
        ko: "[clinicflow] 백신 접종 일정 알림을 신청했습니다({ref}). 새 일정이 열리면 알려드립니다.",
        en: "[clinicflow] You are subscribed ({ref}): we will text you when new vaccination slots open.",
    },
    Notification {
        rule: SLOT,
        source: "clinicflow.vaccine",
        event_type: "SlotAnnounced",
        contact: ContactFrom::Cases("subscribers"),
        ko: "[clinicflow] {hospital_name} {vaccine} 접종 일정({date})이 열렸습니다. 앱에서 예약하세요. 알림 해지: {ref}",
        en: "[clinicflow] {vaccine} vaccination on {date} at {hospital_name} is open for reservation. Unsubscribe: {ref}",
    },
    Notification {
        rule: RESERVATION,
        source: VACCINATION,
        event_type: "ReservationBooked",
        contact: ContactFrom::Field("contact"),
        ko: "[clinicflow] 백신 접종이 예약되었습니다. 일자 {date}, 예약번호 {ref}.",
        en: "[clinicflow] Your vaccination on {date} is reserved (ref {ref}).",
    },
    Notification {
        rule: RESERVATION,
        source: VACCINATION,
        event_type: "WaitlistJoined",
        contact: ContactFrom::Field("contact"),
        ko: "[clinicflow] {date} 접종 대기자 명단에 등록되었습니다({ref}). 자리가 나면 알려드립니다.",
        en: "[clinicflow] You are on the waiting list for {date} ({ref}). We will text you if a dose frees up.",
    },
    Notification {
        rule: RESERVATION,
        source: VACCINATION,
        event_type: "DoseOffered",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 대기하신 접종({ref})에 1회분이 배정되었습니다. 기한 안에 앱에서 수락하지 않으면 다음 분께 넘어갑니다.",
        en: "[clinicflow] A dose is held for you ({ref}). Accept it in the app before the hold ends, or it passes to the next in line.",
    },
    Notification {
        rule: RESERVATION,
        source: VACCINATION,
        event_type: "OfferAccepted",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 백신 접종이 예약되었습니다. 예약번호 {ref}.",
        en: "[clinicflow] Your vaccination is reserved (ref {ref}).",
    },
    Notification {
        rule: RESERVATION,
        source: VACCINATION,
        event_type: "OfferLapsed",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 배정된 1회분({ref})의 수락 기한이 지나 다음 대기자에게 넘어갔습니다.",
        en: "[clinicflow] The hold on your dose ({ref}) ended; it passed to the next in line.",
    },
    Notification {
        rule: RESERVATION,
        source: VACCINATION,
        event_type: "ReservationCancelled",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 백신 접종 예약({ref})이 취소되었습니다.",
        en: "[clinicflow] Your vaccination reservation {ref} is cancelled.",
    },
    Notification {
        rule: RESERVATION,
        source: VACCINATION,
        event_type: "ReservationReminded",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 내일({date}) 백신 접종 예약이 있습니다. 예약번호 {ref}.",
        en: "[clinicflow] Reminder: your vaccination is tomorrow, {date} (ref {ref}).",
    },
];

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::app::notifier::{render, render_for};
    use crate::events::EventEnvelope;

    fn event(event_type: &str, data: serde_json::Value) -> EventEnvelope {
        let n = NOTIFICATIONS.iter().find(|n| n.event_type == event_type).expect("declared");
        EventEnvelope {
            id: "e1".into(),
            event_type: event_type.into(),
            source: n.source.into(),
            aggregate_id: "01JRESERVATION0000000000AB".into(),
            version: 1,
            correlation_id: "01JRESERVATION0000000000AB".into(),
            causation_id: "r1".into(),
            occurred_at: Utc::now(),
            data,
        }
    }

    fn text(event_type: &str, english: bool, data: serde_json::Value) -> String {
        let n = NOTIFICATIONS.iter().find(|n| n.event_type == event_type).expect("declared");
        render(if english { n.en } else { n.ko }, &event(event_type, data)).expect("rendered")
    }

    #[test]
    fn every_text_renders_in_both_languages_from_its_event() {
        let data = serde_json::json!({"date": "2027-03-02", "hospital_name": "서울중앙병원", "vaccine": "pfizer", "subscribers": []});
        for n in NOTIFICATIONS {
            for template in [n.ko, n.en] {
                let e = event(n.event_type, data.clone());
                assert!(render_for(template, &e, "01JSUBSCRIPTION000000000CD").is_ok(), "{}", n.event_type);
            }
        }
        assert!(text("ReservationBooked", false, data.clone()).contains("2027-03-02"));
        assert!(text("ReservationReminded", true, data).contains("tomorrow"));
    }

    #[test]
    fn a_slot_notice_names_each_subscription_so_it_can_be_cancelled() {
        let e = event(
            "SlotAnnounced",
            serde_json::json!({"date": "2027-03-02", "hospital_name": "부산시립병원", "vaccine": "moderna", "subscribers": ["x"]}),
        );
        let n = NOTIFICATIONS.iter().find(|n| n.event_type == "SlotAnnounced").expect("declared");
        let sms = render_for(n.en, &e, "01JSUBSCRIPTION000000000CD").expect("rendered");
        assert!(
            sms.ends_with("00000CD") && sms.contains("moderna") && sms.contains("부산시립병원"),
            "{sms}"
        );
    }
}
