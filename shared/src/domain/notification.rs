//! SMS texts: one per status change a person should hear about, Korean by default and
//! English on request, carrying no health detail beyond the status itself.

use chrono::NaiveDate;

use super::{Locale, Won};

/// A status change worth an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckupNotice {
    /// Booked and paid.
    Booked {
        /// Date.
        date: NaiveDate,
    },
    /// Confirmed by the centre.
    Confirmed,
    /// Rejected by the centre.
    Rejected,
    /// Cancelled by the patient.
    Cancelled,
    /// Payment refunded.
    Refunded {
        /// Amount.
        amount: Won,
    },
}

/// The short reference a person can quote on the phone: the last 8 characters of the id.
pub fn short_ref(id: &str) -> &str {
    let start = id.char_indices().rev().nth(7).map_or(0, |(i, _)| i);
    &id[start..]
}

/// The SMS body for a check-up notice.
pub fn checkup_sms(locale: Locale, booking_id: &str, notice: CheckupNotice) -> String {
    let r = short_ref(booking_id);
    match (locale, notice) {
        (Locale::Ko, CheckupNotice::Booked { date }) => {
            format!("[clinicflow] 건강검진 예약이 접수되었습니다. 일자 {date}, 예약번호 {r}. 센터 확정 후 다시 알려드립니다.")
        }
        (Locale::En, CheckupNotice::Booked { date }) => {
            format!("[clinicflow] Your health check-up on {date} is booked (ref {r}). We will text you when the centre confirms.")
        }
        (Locale::Ko, CheckupNotice::Confirmed) => format!("[clinicflow] 건강검진 예약({r})이 확정되었습니다."),
        (Locale::En, CheckupNotice::Confirmed) => format!("[clinicflow] Your health check-up booking {r} is confirmed."),
        (Locale::Ko, CheckupNotice::Rejected) => {
            format!("[clinicflow] 건강검진 예약({r})이 센터 사정으로 거절되었습니다. 결제는 환불됩니다.")
        }
        (Locale::En, CheckupNotice::Rejected) => {
            format!("[clinicflow] The centre could not accept your check-up booking {r}. Your payment will be refunded.")
        }
        (Locale::Ko, CheckupNotice::Cancelled) => format!("[clinicflow] 건강검진 예약({r})이 취소되었습니다. 결제는 환불됩니다."),
        (Locale::En, CheckupNotice::Cancelled) => {
            format!("[clinicflow] Your check-up booking {r} is cancelled. Your payment will be refunded.")
        }
        (Locale::Ko, CheckupNotice::Refunded { amount }) => format!("[clinicflow] 예약({r}) 결제 {amount}이 환불되었습니다."),
        (Locale::En, CheckupNotice::Refunded { amount }) => format!("[clinicflow] {amount} for booking {r} has been refunded."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_reference_is_the_last_eight_characters() {
        assert_eq!(short_ref("01JABCDEFGHJKMNPQRSTVWXYZ0"), "STVWXYZ0");
        assert_eq!(short_ref("abc"), "abc");
        assert_eq!(short_ref("0123456789"), "23456789");
    }

    #[test]
    fn sms_texts_are_korean_by_default_and_english_on_request() {
        let ko = checkup_sms(Locale::Ko, "0123456789", CheckupNotice::Confirmed);
        let en = checkup_sms(Locale::En, "0123456789", CheckupNotice::Confirmed);
        assert!(ko.contains("확정"));
        assert!(en.contains("confirmed"));
        assert!(ko.contains("23456789") && en.contains("23456789"));
    }

    #[test]
    fn a_refund_sms_states_the_amount() {
        let text = checkup_sms(Locale::En, "x", CheckupNotice::Refunded { amount: Won(100_000) });
        assert!(text.contains("₩100,000"));
    }
}
