//! The check-up flow's SMS, as data: one per status change a patient should hear about,
//! Korean by default and English on request, with no health detail beyond the status.
//! `{ref}` is the booking's short reference (its last 8 characters).

use crate::topology::{ContactFrom, Notification};

const STATUS: &str = "sms-on-checkup-status";
const REFUND: &str = "sms-on-payment-refund";
const CHECKUP: &str = "clinicflow.checkup";

/// Every SMS of the flow.
pub const NOTIFICATIONS: &[Notification] = &[
    Notification {
        rule: STATUS,
        source: CHECKUP,
        event_type: "CheckupBooked",
        contact: ContactFrom::Field("contact"),
        ko: "[clinicflow] 건강검진 예약이 접수되었습니다. 일자 {date}, 예약번호 {ref}. 센터 확정 후 다시 알려드립니다.",
        en: "[clinicflow] Your health check-up on {date} is booked (ref {ref}). We will text you when the centre confirms.",
    },
    Notification {
        rule: STATUS,
        source: CHECKUP,
        event_type: "CheckupConfirmed",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 건강검진 예약({ref})이 확정되었습니다.",
        en: "[clinicflow] Your health check-up booking {ref} is confirmed.",
    },
    Notification {
        rule: STATUS,
        source: CHECKUP,
        event_type: "CheckupRejected",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 건강검진 예약({ref})이 센터 사정으로 거절되었습니다. 결제는 환불됩니다.",
        en: "[clinicflow] The centre could not accept your check-up booking {ref}. Your payment will be refunded.",
    },
    Notification {
        rule: STATUS,
        source: CHECKUP,
        event_type: "CheckupCancelled",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 건강검진 예약({ref})이 취소되었습니다. 결제는 환불됩니다.",
        en: "[clinicflow] Your check-up booking {ref} is cancelled. Your payment will be refunded.",
    },
    Notification {
        rule: REFUND,
        source: "clinicflow.payment",
        event_type: "PaymentRefunded",
        contact: ContactFrom::Case,
        ko: "[clinicflow] 예약({ref}) 결제 {amount:won}이 환불되었습니다.",
        en: "[clinicflow] {amount:won} for booking {ref} has been refunded.",
    },
];

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::app::notifier::render;
    use crate::events::EventEnvelope;

    fn event(event_type: &str, data: serde_json::Value) -> EventEnvelope {
        EventEnvelope {
            id: "e1".into(),
            event_type: event_type.into(),
            source: CHECKUP.into(),
            aggregate_id: "0123456789".into(),
            version: 1,
            correlation_id: "0123456789".into(),
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
    fn sms_texts_are_korean_by_default_and_english_on_request() {
        let ko = text("CheckupConfirmed", false, serde_json::json!({}));
        let en = text("CheckupConfirmed", true, serde_json::json!({}));
        assert!(ko.contains("확정"));
        assert!(en.contains("confirmed"));
        assert!(ko.contains("23456789") && en.contains("23456789"));
    }

    #[test]
    fn a_booking_sms_states_the_date_and_a_refund_sms_the_amount() {
        assert_eq!(
            text("CheckupBooked", true, serde_json::json!({"date": "2027-06-01"})),
            "[clinicflow] Your health check-up on 2027-06-01 is booked (ref 23456789). We will text you when the centre confirms."
        );
        assert!(text("PaymentRefunded", true, serde_json::json!({"amount": 100_000})).contains("₩100,000"));
    }

    #[test]
    fn a_text_the_event_cannot_fill_is_an_error_naming_the_field() {
        let e = event("CheckupBooked", serde_json::json!({}));
        assert!(render(NOTIFICATIONS[0].en, &e).is_err_and(|m| m.contains("date")));
    }
}
