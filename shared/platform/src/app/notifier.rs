//! The SMS notifier: one SMS per status change to the person it concerns, for every slice.
//! A slice declares its [`Notification`]s as data (the event, whose contact, the text in
//! Korean and English); the notifier keeps each case's contact in its own table, renders
//! the text in the person's language and sends it at most once per event and recipient. One
//! event may notify many people ([`ContactFrom::Cases`]): each recipient has its own record,
//! and the event is marked processed once all of them are settled.

use super::consumers::{ConsumerError, ConsumerFuture, Handled, commit_once, mark};
use super::{Platform, faults};
use crate::domain::{Contact, Locale, Won, short_ref};
use crate::events::EventEnvelope;
use crate::ports::{AggregateKey, AggregateWrite, SmsError, SmsMessage, StoreError, Transaction};
use crate::topology::{ContactFrom, NOTIFICATION, Notification, SMS_NOTIFIER};

/// The notifier's own table of whom to tell about a case.
pub const CONTACTS: &str = NOTIFICATION;

/// The notifier's handler, as the catalog registers it.
pub fn handle<'a>(p: &'a Platform, _consumer: &'a str, event: &'a EventEnvelope) -> ConsumerFuture<'a> {
    Box::pin(notify(p, event))
}

/// The notification the catalog declares for an event, if any.
pub fn notification_of<'a>(p: &'a Platform, event: &EventEnvelope) -> Option<&'a Notification> {
    p.catalog
        .notifications
        .iter()
        .find(|n| n.source == event.source && n.event_type == event.event_type)
}

/// Sends the SMS of one event. A contact the event carries is kept for the case; a later
/// event that overtakes it is retried until the contact is known.
async fn notify(p: &Platform, event: &EventEnvelope) -> Result<Handled, ConsumerError> {
    let Some(notification) = notification_of(p, event) else {
        return Ok(Handled::Skipped);
    };
    if p.store.is_processed(SMS_NOTIFIER, &event.id).await? {
        return Ok(Handled::Skipped);
    }
    let case = event.correlation_id.clone();
    let contact_key = AggregateKey::new(CONTACTS, &case);
    let mut contact_write = None;
    let contact = match notification.contact {
        ContactFrom::Field(field) => {
            let carried: Contact = serde_json::from_value(event.data.get(field).cloned().unwrap_or_default())
                .map_err(|e| ConsumerError::Permanent(format!("event {} carries no contact in `{field}`: {e}", event.id)))?;
            let (known, version) = super::load::<Contact>(p, &contact_key).await?;
            if known.is_none() {
                contact_write = Some(AggregateWrite {
                    key: contact_key.clone(),
                    expected_version: version,
                    new_version: 1,
                    state: serde_json::to_value(&carried)?,
                });
            }
            carried
        }
        ContactFrom::Case => known_contact(p, &contact_key).await?,
        ContactFrom::Cases(field) => return notify_many(p, event, notification, field).await,
    };
    let template = match contact.locale {
        Locale::Ko => notification.ko,
        Locale::En => notification.en,
    };
    let body = render(template, event).map_err(ConsumerError::Permanent)?;
    let message = SmsMessage {
        key: event.id.clone(),
        to: contact.phone.clone(),
        body,
    };
    let record = Recorded::read(p, sms_record_key(&event.id)).await?;
    send_once(p, SMS_NOTIFIER, event, record, &message, contact_write, true).await
}

/// Sends one event's SMS to every case its data lists in `field`, paced at the platform's
/// `sms_send_rate`, each with its own record
/// (`sms#<event id>#<case>`), so that a redelivery skips the recipients already settled and
/// sends to the rest. The event is marked processed only when every recipient is settled:
/// a recipient that cannot be reached yet (its contact unknown, the channel down) makes the
/// delivery retry; one left in doubt by a delivery that died mid-send is not sent to again,
/// and once the others are settled the event is dead-lettered for it.
async fn notify_many(p: &Platform, event: &EventEnvelope, notification: &Notification, field: &str) -> Result<Handled, ConsumerError> {
    let listed: Vec<String> = serde_json::from_value(event.data.get(field).cloned().unwrap_or_default())
        .map_err(|e| ConsumerError::Permanent(format!("event {} lists no cases in `{field}`: {e}", event.id)))?;
    let mut cases: Vec<String> = Vec::with_capacity(listed.len());
    for case in listed {
        if !cases.contains(&case) {
            cases.push(case);
        }
    }
    let mut retry = None;
    let mut doubt = None;
    // Paced: at most `sms_send_rate` sends a second, each send starting one period after
    // the one before it (a recipient already settled costs no period).
    let period = std::time::Duration::from_secs(1) / p.config.sms_send_rate.max(1);
    let mut next_send = tokio::time::Instant::now();
    for case in &cases {
        // A recipient settled by an earlier delivery costs this one read, and no period.
        let record = Recorded::read(p, sms_recipient_key(&event.id, case)).await?;
        if record.settled() {
            continue;
        }
        let contact = match known_contact(p, &AggregateKey::new(CONTACTS, case)).await {
            Ok(contact) => contact,
            Err(e) => {
                retry.get_or_insert(e);
                continue;
            }
        };
        let template = match contact.locale {
            Locale::Ko => notification.ko,
            Locale::En => notification.en,
        };
        let message = SmsMessage {
            key: format!("{}#{case}", event.id),
            to: contact.phone.clone(),
            body: render_for(template, event, case).map_err(ConsumerError::Permanent)?,
        };
        tokio::time::sleep_until(next_send).await;
        next_send = tokio::time::Instant::now() + period;
        match send_once(p, SMS_NOTIFIER, event, record, &message, None, false).await {
            Ok(_) => {}
            Err(e @ ConsumerError::Retryable(_)) => {
                retry.get_or_insert(e);
            }
            Err(e @ ConsumerError::Permanent(_)) => {
                doubt.get_or_insert(e);
            }
        }
    }
    if let Some(e) = retry.or(doubt) {
        return Err(e);
    }
    let tx = Transaction {
        processed: mark(SMS_NOTIFIER, event),
        ..Default::default()
    };
    commit_once(p, &faults::after_write(SMS_NOTIFIER), tx).await
}

/// Fills a notification's text: `{ref}` is the case's short reference, `{field}` an event
/// data field as it is, `{field:won}` a number of won. A placeholder the event cannot fill
/// is an error naming it.
pub fn render(template: &str, event: &EventEnvelope) -> Result<String, String> {
    render_for(template, event, &event.correlation_id)
}

/// [`render`] for the recipient of case `case`: `{ref}` is that case's short reference.
pub fn render_for(template: &str, event: &EventEnvelope, case: &str) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in the text of {}", event.event_type))?;
        let (name, format) = match after[..close].split_once(':') {
            Some((name, format)) => (name, Some(format)),
            None => (&after[..close], None),
        };
        let value = if name == "ref" {
            short_ref(case).to_owned()
        } else {
            let field = event
                .data
                .get(name)
                .ok_or_else(|| format!("{} has no field `{name}` for its SMS", event.event_type))?;
            match (format, field) {
                (Some("won"), v) => Won(v.as_u64().ok_or_else(|| format!("`{name}` of {} is not won", event.event_type))?).to_string(),
                (Some(other), _) => return Err(format!("unknown format `{other}` in the text of {}", event.event_type)),
                (None, serde_json::Value::String(s)) => s.clone(),
                (None, v) => v.to_string(),
            }
        };
        out.push_str(&value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where one SMS stands, kept in the notifier's table under `sms#<event id>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SmsRecord {
    /// Claimed and handed to the channel; the outcome is not recorded yet.
    Sending {
        /// The recipient, masked.
        to: String,
        /// When it was claimed (absent in claims written before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The channel accepted it.
    Sent {
        /// The recipient, masked.
        to: String,
        /// The channel's message id.
        message_id: String,
    },
    /// The channel refused it (opted out, invalid number): not retried.
    Refused {
        /// The recipient, masked.
        to: String,
        /// Why.
        reason: String,
    },
    /// A passing failure; the next delivery may claim it again.
    Failed {
        /// The recipient, masked.
        to: String,
        /// Why.
        reason: String,
    },
}

/// The key of the SMS record of an event.
pub fn sms_record_key(event_id: &str) -> AggregateKey {
    AggregateKey::new(CONTACTS, format!("sms#{event_id}"))
}

/// The key of the SMS record of one recipient (the case `case`) of an event that notifies
/// many ([`ContactFrom::Cases`]).
pub fn sms_recipient_key(event_id: &str, case: &str) -> AggregateKey {
    AggregateKey::new(CONTACTS, format!("sms#{event_id}#{case}"))
}

/// How long a claim may belong to a delivery still running: the notifier's timeout, after
/// which its invocation is dead.
fn claim_lease(p: &Platform) -> chrono::Duration {
    let seconds = p.catalog.function(SMS_NOTIFIER).map_or(30, |f| f.timeout_s);
    chrono::Duration::seconds(i64::from(seconds))
}

/// An SMS record as read, with its version.
pub(crate) struct Recorded {
    key: AggregateKey,
    record: Option<SmsRecord>,
    version: u64,
}

impl Recorded {
    /// Reads the record at `key`.
    pub(crate) async fn read(p: &Platform, key: AggregateKey) -> Result<Self, ConsumerError> {
        let (record, version) = super::load::<SmsRecord>(p, &key).await?;
        Ok(Self { key, record, version })
    }

    /// Sent, or refused by the channel: nothing more to do for it.
    fn settled(&self) -> bool {
        matches!(self.record, Some(SmsRecord::Sent { .. } | SmsRecord::Refused { .. }))
    }
}

/// Sends an event's SMS at most once, even on a channel without deduplication (SNS): the
/// record is claimed (`sending`) before the send and settled (`sent`, `refused`) with the
/// processed mark after it. A redelivery that finds a claim younger than the notifier's
/// timeout retries later: a concurrent duplicate may be sending. One that finds an older
/// claim cannot know whether the channel got the message, so it does not send again: it
/// fails permanently and the event lands in the dead-letter queue, where an alarm shows
/// it. A new contact is stored with the claim, so that a booking SMS left in doubt does not
/// silence the case's later ones.
///
/// `record` is the SMS record as read; `settles_event` says whether settling it also marks the event
/// processed (one recipient), or leaves that to the caller (one of many).
pub(crate) async fn send_once(
    p: &Platform,
    consumer: &str,
    event: &EventEnvelope,
    record: Recorded,
    message: &SmsMessage,
    contact_write: Option<AggregateWrite>,
    settles_event: bool,
) -> Result<Handled, ConsumerError> {
    let to = message.to.masked();
    let processed = || if settles_event { mark(consumer, event) } else { None };
    let Recorded { key, record, version } = record;
    let write = |version: u64, record: &SmsRecord| -> Result<AggregateWrite, ConsumerError> {
        Ok(AggregateWrite {
            key: key.clone(),
            expected_version: version,
            new_version: version + 1,
            state: serde_json::to_value(record)?,
        })
    };
    let settle = |version: u64, record: SmsRecord| -> Result<Transaction, ConsumerError> {
        Ok(Transaction {
            writes: vec![write(version, &record)?],
            processed: processed(),
            ..Default::default()
        })
    };
    match record {
        Some(SmsRecord::Sent { .. } | SmsRecord::Refused { .. }) => {
            // Settled by an earlier delivery whose processed mark was then lost: mark now.
            let tx = Transaction {
                writes: contact_write.into_iter().collect(),
                processed: processed(),
                ..Default::default()
            };
            if tx.is_empty() {
                return Ok(Handled::Skipped);
            }
            return commit_once(p, &faults::after_write(consumer), tx).await.map(|_| Handled::Skipped);
        }
        // Another delivery of the same event may be sending it right now (at-least-once
        // delivery runs duplicates concurrently): wait for it while it may still be alive.
        Some(SmsRecord::Sending { since: Some(since), .. }) if p.clock.now() - since < claim_lease(p) => {
            return Err(ConsumerError::Retryable("another delivery is sending this SMS".into()));
        }
        Some(SmsRecord::Sending { .. }) => {
            return Err(ConsumerError::Permanent(format!(
                "the SMS of event {} was handed to the channel by a delivery that did not finish; not sending it again",
                event.id
            )));
        }
        Some(SmsRecord::Failed { .. }) | None => {}
    }
    let claim = Transaction {
        writes: std::iter::once(write(
            version,
            &SmsRecord::Sending {
                to: to.clone(),
                since: Some(p.clock.now()),
            },
        )?)
        .chain(contact_write)
        .collect(),
        ..Default::default()
    };
    p.faults.check(&faults::before_write(consumer)).await?;
    match p.store.commit(claim).await {
        Ok(()) => {}
        Err(StoreError::VersionConflict(_)) => return Err(ConsumerError::Retryable("another delivery is sending this SMS".into())),
        Err(e) => return Err(e.into()),
    }
    let claimed = version + 1;
    let sent = match p.faults.check(faults::SMS_BEFORE_SEND).await {
        Ok(()) => p.sms.send(message).await,
        Err(injected) if injected.crash => return Err(injected.into()),
        Err(injected) => Err(SmsError::Transient(injected.to_string())),
    };
    let outcome = match sent {
        Ok(message_id) => {
            tracing::info!(to = %to, message_id = %message_id, "sms sent");
            p.faults.check(faults::SMS_AFTER_SEND).await?;
            SmsRecord::Sent { to, message_id }
        }
        // An opted-out or invalid number will not become valid by retrying: record and move on.
        Err(SmsError::Refused(reason)) => {
            tracing::warn!(to = %to, reason = %reason, "sms refused by the channel");
            SmsRecord::Refused { to, reason }
        }
        Err(SmsError::Transient(reason)) => {
            let failed = Transaction {
                writes: vec![write(
                    claimed,
                    &SmsRecord::Failed {
                        to,
                        reason: reason.clone(),
                    },
                )?],
                ..Default::default()
            };
            if let Err(e) = p.store.commit(failed).await {
                tracing::warn!(error = %e, "could not release the SMS claim");
            }
            return Err(ConsumerError::Retryable(reason));
        }
    };
    commit_once(p, &faults::after_write(consumer), settle(claimed, outcome)?).await
}

async fn known_contact(p: &Platform, key: &AggregateKey) -> Result<Contact, ConsumerError> {
    let (contact, _) = super::load::<Contact>(p, key).await?;
    contact.ok_or_else(|| ConsumerError::Retryable(format!("contact for case {} not known yet", key.id)))
}
