//! The platform's SMS notifier on the check-up slice's notifications: one SMS per event even
//! when duplicate deliveries race, and never a second send of an SMS left in doubt.

use chrono::Utc;

use crate::app::Platform;
use crate::app::consumers::{ConsumerError, dispatch};
use crate::app::notifier::{SmsRecord, sms_record_key};
use crate::events::EventEnvelope;
use crate::flows::checkup::test_support::{event, platform};
use crate::ports::{AggregateWrite, Transaction};

fn booked() -> EventEnvelope {
    event(
        "e1",
        "CheckupBooked",
        1,
        serde_json::json!({
            "patient_sub": "p1", "date": "2027-06-01", "package": "basic", "price": 100000,
            "payment_id": "pay1", "contact": {"name": "홍길동", "phone": "+821012345678", "locale": "ko"}
        }),
    )
}

async fn claimed(p: &Platform, event_id: &str, since: Option<chrono::DateTime<Utc>>) {
    let state = serde_json::to_value(SmsRecord::Sending {
        to: "+8210****5678".into(),
        since,
    })
    .expect("json");
    let write = AggregateWrite {
        key: sms_record_key(event_id),
        expected_version: 0,
        new_version: 1,
        state,
    };
    p.store
        .commit(Transaction {
            writes: vec![write],
            ..Default::default()
        })
        .await
        .expect("claimed");
}

#[tokio::test]
async fn a_duplicate_that_finds_a_fresh_claim_waits_and_one_that_finds_an_old_claim_is_dead_lettered() {
    let (p, sms) = platform();
    claimed(&p, "e1", Some(Utc::now())).await;
    assert!(matches!(
        dispatch(&p, "sms-notifier", &booked()).await,
        Err(ConsumerError::Retryable(_))
    ));

    let (p, _) = platform();
    claimed(&p, "e1", Some(Utc::now() - chrono::Duration::hours(1))).await;
    assert!(matches!(
        dispatch(&p, "sms-notifier", &booked()).await,
        Err(ConsumerError::Permanent(_))
    ));

    let (p, _) = platform();
    claimed(&p, "e1", None).await;
    assert!(matches!(
        dispatch(&p, "sms-notifier", &booked()).await,
        Err(ConsumerError::Permanent(_))
    ));
    assert!(sms.sent().is_empty(), "a claim is never sent again");
}

#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_booking_sms_left_in_doubt_does_not_silence_the_later_ones() {
    use crate::app::consumers::Handled;
    use crate::app::faults;

    let (p, sms) = platform();
    p.faults.arm(faults::SMS_BEFORE_SEND, crate::app::Effect::Crash, Some(1));
    assert!(dispatch(&p, "sms-notifier", &booked()).await.is_err());
    let confirmed = event("e2", "CheckupConfirmed", 2, serde_json::json!({}));
    assert_eq!(dispatch(&p, "sms-notifier", &confirmed).await, Ok(Handled::Applied));
    assert_eq!(sms.sent().len(), 1);
}
