//! One event that notifies many people (`ContactFrom::Cases`: every case its data lists):
//! each listed case's kept contact gets one SMS, in its own language and with its own
//! reference; a redelivery sends to nobody twice; a recipient the channel could not reach
//! is sent to by the next delivery, and the others are not sent to again; the event is
//! marked processed only when every recipient is settled.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::consumers::{self, ConsumerError, Handled};
use clinicflow::app::notifier::{CONTACTS, SmsRecord, sms_recipient_key};
use clinicflow::app::{Faults, Platform};
use clinicflow::config::Config;
use clinicflow::domain::{Contact, Locale, PersonName, PhoneNumber};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::checkup;
use clinicflow::ports::{AggregateKey, AggregateWrite, SmsError, SmsMessage, SmsSender, Transaction};
use clinicflow::topology::{Catalog, ContactFrom, Notification, SMS_NOTIFIER, Slice};
use clinicflow::wiring;
use serde_json::json;

const REOPENED: Notification = Notification {
    rule: "sms-on-reopened",
    source: "clinicflow.checkup",
    event_type: "SlotReopened",
    contact: ContactFrom::Cases("subscribers"),
    ko: "[clinicflow] {ref}: 자리가 났습니다.",
    en: "[clinicflow] {ref}: a place opened.",
};

fn catalog() -> &'static Catalog {
    let mut slice = checkup::SLICE;
    let mut notifications = slice.notifications.to_vec();
    notifications.push(REOPENED);
    slice.notifications = Box::leak(notifications.into_boxed_slice());
    let slice: &'static Slice = Box::leak(Box::new(slice));
    Box::leak(Box::new(Catalog::new(&[slice])))
}

/// Counts every send, and refuses the numbers in `down` (transiently) while they are there.
#[derive(Default)]
struct Channel {
    sent: Mutex<Vec<SmsMessage>>,
    down: Mutex<Vec<String>>,
}

#[async_trait]
impl SmsSender for Channel {
    async fn send(&self, message: &SmsMessage) -> Result<String, SmsError> {
        if self.down.lock().expect("lock").contains(&message.to.e164().to_owned()) {
            return Err(SmsError::Transient("carrier down".into()));
        }
        let mut sent = self.sent.lock().expect("lock");
        sent.push(message.clone());
        Ok(format!("m{}", sent.len()))
    }
}

fn platform() -> (Platform, Arc<Channel>) {
    let db = Embedded::in_memory().expect("a database");
    let (mut p, _parts) = wiring::embedded(catalog(), db, Config::default(), Faults::none());
    let channel = Arc::new(Channel::default());
    p.sms = channel.clone();
    (p, channel)
}

async fn subscribe(p: &Platform, case: &str, phone: &str, locale: Locale) {
    let contact = Contact {
        name: PersonName::parse("홍길동").expect("a name"),
        phone: PhoneNumber::parse(phone).expect("a phone"),
        locale,
    };
    let tx = Transaction {
        writes: vec![AggregateWrite {
            key: AggregateKey::new(CONTACTS, case),
            expected_version: 0,
            new_version: 1,
            state: serde_json::to_value(&contact).expect("json"),
        }],
        ..Default::default()
    };
    p.store.commit(tx).await.expect("contact kept");
}

fn reopened(subscribers: &[&str]) -> EventEnvelope {
    EventEnvelope {
        id: "01JD3M7Q00000000000000E777".into(),
        event_type: "SlotReopened".into(),
        source: "clinicflow.checkup".into(),
        aggregate_id: "slot-1".into(),
        version: 3,
        correlation_id: "slot-1".into(),
        causation_id: "r1".into(),
        occurred_at: Utc::now(),
        data: json!({"subscribers": subscribers}),
    }
}

const A: &str = "01JD3M7Q0000000000000000AA";
const B: &str = "01JD3M7Q0000000000000000BB";
const C: &str = "01JD3M7Q0000000000000000CC";

async fn people(p: &Platform) {
    subscribe(p, A, "010-1111-2222", Locale::Ko).await;
    subscribe(p, B, "010-3333-4444", Locale::En).await;
    subscribe(p, C, "+14155550123", Locale::En).await;
}

#[tokio::test]
async fn every_listed_case_gets_one_sms_in_its_language_with_its_reference() {
    let (p, channel) = platform();
    people(&p).await;
    let event = reopened(&[A, B, C, B]);
    assert_eq!(consumers::dispatch(&p, SMS_NOTIFIER, &event).await, Ok(Handled::Applied));
    let sent = channel.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 3, "one SMS per listed case, a case listed twice once: {sent:?}");
    let to_a = sent.iter().find(|m| m.to.e164() == "+821011112222").expect("A's SMS");
    assert_eq!(to_a.body, format!("[clinicflow] {}: 자리가 났습니다.", &A[A.len() - 8..]));
    let to_b = sent.iter().find(|m| m.to.e164() == "+821033334444").expect("B's SMS");
    assert_eq!(to_b.body, format!("[clinicflow] {}: a place opened.", &B[B.len() - 8..]));
    assert_ne!(to_a.key, to_b.key, "each recipient's send has its own channel key");

    assert_eq!(consumers::dispatch(&p, SMS_NOTIFIER, &event).await, Ok(Handled::Skipped));
    assert_eq!(channel.sent.lock().expect("lock").len(), 3, "a redelivery sends nothing");
}

#[tokio::test]
async fn a_recipient_the_channel_missed_is_sent_to_by_the_next_delivery_and_no_one_twice() {
    let (p, channel) = platform();
    people(&p).await;
    channel.down.lock().expect("lock").push("+821033334444".into());
    let event = reopened(&[A, B, C]);
    assert!(matches!(
        consumers::dispatch(&p, SMS_NOTIFIER, &event).await,
        Err(ConsumerError::Retryable(_))
    ));
    assert_eq!(channel.sent.lock().expect("lock").len(), 2, "A and C were reached");
    assert!(!p.store.is_processed(SMS_NOTIFIER, &event.id).await.expect("read"));

    channel.down.lock().expect("lock").clear();
    assert_eq!(consumers::dispatch(&p, SMS_NOTIFIER, &event).await, Ok(Handled::Applied));
    let sent = channel.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 3, "B now, A and C not again: {sent:?}");
    assert_eq!(sent[2].to.e164(), "+821033334444");
    assert!(p.store.is_processed(SMS_NOTIFIER, &event.id).await.expect("read"));
}

#[tokio::test]
async fn a_recipient_whose_contact_is_not_known_yet_waits_without_holding_back_the_others() {
    let (p, channel) = platform();
    subscribe(&p, A, "010-1111-2222", Locale::Ko).await;
    let event = reopened(&[A, B]);
    assert!(matches!(
        consumers::dispatch(&p, SMS_NOTIFIER, &event).await,
        Err(ConsumerError::Retryable(_))
    ));
    assert_eq!(channel.sent.lock().expect("lock").len(), 1, "A was told");
    subscribe(&p, B, "010-3333-4444", Locale::En).await;
    assert_eq!(consumers::dispatch(&p, SMS_NOTIFIER, &event).await, Ok(Handled::Applied));
    assert_eq!(channel.sent.lock().expect("lock").len(), 2);
}

#[tokio::test]
async fn a_recipient_left_in_doubt_is_not_sent_to_again_and_the_event_is_dead_lettered() {
    let (p, channel) = platform();
    people(&p).await;
    let event = reopened(&[A, B]);
    // A delivery claimed B's SMS long ago and died before recording the outcome.
    let claim = Transaction {
        writes: vec![AggregateWrite {
            key: sms_recipient_key(&event.id, B),
            expected_version: 0,
            new_version: 1,
            state: serde_json::to_value(SmsRecord::Sending {
                to: "+8210****4444".into(),
                since: Some(Utc::now() - chrono::Duration::hours(1)),
            })
            .expect("json"),
        }],
        ..Default::default()
    };
    p.store.commit(claim).await.expect("claimed");
    assert!(matches!(
        consumers::dispatch(&p, SMS_NOTIFIER, &event).await,
        Err(ConsumerError::Permanent(_))
    ));
    let sent = channel.sent.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1, "A told, B not a second time: {sent:?}");
    assert_eq!(sent[0].to.e164(), "+821011112222");
}

#[tokio::test]
async fn an_event_without_the_list_is_refused_for_good() {
    let (p, _channel) = platform();
    let mut event = reopened(&[]);
    event.data = json!({"subscribers": "everyone"});
    assert!(matches!(
        consumers::dispatch(&p, SMS_NOTIFIER, &event).await,
        Err(ConsumerError::Permanent(_))
    ));
    let empty = reopened(&[]);
    assert_eq!(consumers::dispatch(&p, SMS_NOTIFIER, &empty).await, Ok(Handled::Applied));
}
