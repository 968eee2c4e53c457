//! The invariants every area checks once a local stack has settled, read from its store,
//! its SMS outbox, its dead letters and the sandbox provider's ledger. The shared ones are
//! checked here, for every slice alike:
//! - a refund happened, exactly once, iff a payment was taken and the case did not
//!   complete (what each case owes comes from its slice's [`Fixture::dues`]); no money is
//!   kept for a case that does not exist;
//! - exactly one SMS per status change that notifies (per `clinicflow::catalog().rules`);
//! - every view equals a rebuild, by the projector, from the change feed;
//! - nothing is stuck: no unpublished event, no dead letter.
//!
//! Each slice's fixture adds its own ([`Fixture::check`]): each case reached exactly one
//! terminal state, the expected one; places taken agree with the active cases; its views
//! agree with its aggregates.
//!
//! One exception is counted, not reported: an SMS whose delivery crashed between its claim
//! and the record of its outcome is in doubt (sent or not, nobody knows); the notifier never
//! sends it twice, so it dead-letters it for an operator ([`Checked::sms_in_doubt`]).
//!
//! [`Fixture::dues`]: crate::slices::Fixture::dues
//! [`Fixture::check`]: crate::slices::Fixture::check

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::adapters::memory::{Memory, MemoryPublisher, MemorySms};
use clinicflow::adapters::sandbox::{LedgerStatus, SandboxGateway};
use clinicflow::app::notifier::{SmsRecord, sms_record_key};
use clinicflow::app::{Faults, Platform, projector};
use clinicflow::contexts::payment::{self, Payment, PaymentStatus};
use clinicflow::events::EventEnvelope;
use clinicflow::ports::Stored;
use clinicflow_local::LocalStack;
use serde::de::DeserializeOwned;

use crate::slices;

/// A case the harness expects, as it knows it from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The slice it belongs to.
    pub slice: &'static str,
    /// The case id, when the API answered with one.
    pub id: Option<String>,
    /// The owner's subject (a test pseudonym).
    pub owner: String,
    /// The state it must end in; `None`: no case at all (payment declined, provider down).
    pub outcome: Option<&'static str>,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// One line per broken invariant: the invariant, then what broke (ids only).
    pub violations: Vec<String>,
    /// SMS left in doubt by a crash between claim and record, dead-lettered for an operator.
    pub sms_in_doubt: u64,
}

/// Every aggregate of `context` in `db`, decoded, by id.
pub async fn aggregates<T: DeserializeOwned>(db: &Embedded, context: &'static str) -> anyhow::Result<BTreeMap<String, T>> {
    decode(context, db.all_aggregates(context).await?)
}

/// The aggregates among a context table's rows: their ids are ULIDs, while a context's own
/// records are `kind#…` (the payment context's `case#<id>`, the SMS records).
fn decode<T: DeserializeOwned>(context: &str, rows: Vec<(String, Stored)>) -> anyhow::Result<BTreeMap<String, T>> {
    rows.into_iter()
        .filter(|(id, _)| !id.contains('#'))
        .map(|(id, s)| {
            Ok((
                id,
                serde_json::from_value(s.state).with_context(|| format!("a {context} aggregate"))?,
            ))
        })
        .collect()
}

/// The whole change feed of `db`, in order.
pub async fn feed(db: &Embedded) -> anyhow::Result<Vec<EventEnvelope>> {
    Ok(db.changes_after(0, 1_000_000).await?.into_iter().map(|(_, e)| e).collect())
}

/// Checks every invariant on a settled SQLite stack: each slice's own for its cases, then
/// the shared ones. `sms_sends`, when known, is how many SMS were handed to the channel over
/// the whole run (the local outbox keeps one per key, so only this count shows a second send).
pub async fn check(stack: &LocalStack, cases: &[Case], sms_sends: Option<u64>) -> anyhow::Result<Checked> {
    let db = &stack.embedded().context("the invariants are read from the SQLite backend")?.db;
    let mut violations = Vec::new();
    let events = feed(db).await?;
    let mut dues = Vec::new();
    for f in slices::all() {
        let mine: Vec<&Case> = cases.iter().filter(|c| c.slice == f.slice()).collect();
        violations.extend(f.check(stack, &mine, &events).await?);
        dues.extend(f.dues(db).await?);
    }
    let mut broken = |invariant: &str, what: String| violations.push(format!("{invariant}: {what}"));

    let payments: BTreeMap<String, Payment> = aggregates(db, payment::CONTEXT).await?;
    let ledger = stack.sandbox.entries();
    let sms = stack.sms_sent().await?;
    let dead = stack.dead_letters().await?;
    let mut by_case: HashMap<&str, Vec<&EventEnvelope>> = HashMap::new();
    for e in &events {
        by_case.entry(e.correlation_id.as_str()).or_default().push(e);
    }

    // A refund iff a payment was taken and the case did not complete; exactly once.
    for due in &dues {
        let id = &due.case;
        let Some(pay) = payments.get(&due.payment_id) else {
            broken("refund", format!("case {id} has no payment"));
            continue;
        };
        let refunded_events = by_case
            .get(id.as_str())
            .map_or(0, |es| es.iter().filter(|e| e.event_type == "PaymentRefunded").count());
        let entry = ledger.iter().find(|e| e.provider_ref == pay.provider_ref);
        let (status, refunds) = entry.map_or((None, 0), |e| (Some(e.status), e.refunds));
        let ended = due.refunded;
        let expected = if ended { PaymentStatus::Refunded } else { PaymentStatus::Paid };
        let provider = if ended { LedgerStatus::Refunded } else { LedgerStatus::Captured };
        if pay.status != expected || status != Some(provider) || refunds != u32::from(ended) || refunded_events != usize::from(ended) {
            broken(
                "refund",
                format!(
                    "case {id} is {}: payment {:?}, provider {status:?} with {refunds} refund(s), {refunded_events} PaymentRefunded event(s)",
                    due.state, pay.status
                ),
            );
        }
    }
    let recorded: HashSet<&str> = payments.values().map(|p| p.provider_ref.as_str()).collect();
    for e in &ledger {
        if e.status != LedgerStatus::Voided && !recorded.contains(e.provider_ref.as_str()) {
            broken(
                "refund",
                format!(
                    "provider payment {} is {:?} for a case that does not exist",
                    e.provider_ref, e.status
                ),
            );
        }
        if e.refunds > 1 {
            broken(
                "refund",
                format!("provider payment {} refunded {} times", e.provider_ref, e.refunds),
            );
        }
    }

    // Exactly one SMS per status change that notifies.
    let notifies = |e: &EventEnvelope| {
        clinicflow::catalog()
            .rules
            .iter()
            .any(|r| r.target == "sms-notifier" && r.matches(&e.source, &e.event_type))
    };
    let sent_keys: HashMap<&str, usize> = sms.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.key.as_str()).or_default() += 1;
        m
    });
    let mut in_doubt: HashSet<&str> = HashSet::new();
    for d in dead.iter().filter(|d| d.target == "sms-notifier") {
        let record = stack.platform.store.load(&sms_record_key(&d.event.id)).await?;
        if record
            .and_then(|r| serde_json::from_value::<SmsRecord>(r.state).ok())
            .is_some_and(|r| matches!(r, SmsRecord::Sending { .. }))
        {
            in_doubt.insert(d.event.id.as_str());
        }
    }
    let sms_in_doubt = in_doubt.len() as u64;
    let mut notifying = HashSet::new();
    for e in events.iter().filter(|e| notifies(e)) {
        notifying.insert(e.id.as_str());
        match sent_keys.get(e.id.as_str()).copied().unwrap_or(0) {
            1 => {}
            0 if in_doubt.contains(e.id.as_str()) => {}
            0 => broken(
                "one sms per status change",
                format!("no SMS for {} of case {}", e.event_type, e.correlation_id),
            ),
            n => broken(
                "one sms per status change",
                format!("{n} SMS for {} of case {}", e.event_type, e.correlation_id),
            ),
        }
    }
    for s in &sms {
        if !notifying.contains(s.key.as_str()) {
            broken("one sms per status change", format!("an SMS (seq {}) for no status change", s.seq));
        }
    }
    if let Some(sends) = sms_sends
        && sends > sms.len() as u64
    {
        broken(
            "one sms per status change",
            format!("{sends} SMS handed to the channel for {} distinct messages", sms.len()),
        );
    }

    // Views equal a rebuild by the projector from the change feed.
    let rebuilt = rebuild(&events).await?;
    for f in slices::all() {
        for id in aggregates::<serde_json::Value>(db, f.context()).await?.keys() {
            let key = f.view_key(id);
            let stored = stack.platform.views.get(&key).await?;
            let again = rebuilt.views.get(&key).await?;
            match (&stored, &again) {
                (Some(s), Some(a)) if s.body == a.body => {}
                (None, None) => {}
                _ => broken(
                    "view equals rebuild",
                    format!("view {id} of {} differs from its rebuild", f.slice()),
                ),
            }
        }
    }

    // Nothing stuck.
    let unpublished = stack
        .platform
        .outbox
        .unpublished(chrono::Utc::now() + chrono::Duration::days(1), 100)
        .await?;
    if !unpublished.is_empty() {
        broken("nothing stuck", format!("{} event(s) never published", unpublished.len()));
    }
    for d in &dead {
        if !(d.target == "sms-notifier" && in_doubt.contains(d.event.id.as_str())) {
            broken(
                "nothing stuck",
                format!(
                    "{} of case {} dead-lettered at {}",
                    d.event.event_type, d.event.correlation_id, d.target
                ),
            );
        }
    }
    Ok(Checked { violations, sms_in_doubt })
}

/// An empty platform on the in-memory adapters, to rebuild views into.
pub fn scratch() -> Platform {
    clinicflow::wiring::platform(
        clinicflow::catalog(),
        Memory::new(),
        Arc::new(MemoryPublisher::new()),
        Arc::new(MemorySms::new()),
        Arc::new(SandboxGateway::default()),
        clinicflow::config::Config::default(),
        Faults::none(),
    )
}

/// The projector run again over `events`, in their order, into an in-memory store.
pub async fn rebuild(events: &[EventEnvelope]) -> anyhow::Result<Platform> {
    let platform = scratch();
    for e in events {
        projector::project(&platform, e).await.context("rebuilding the views")?;
    }
    Ok(platform)
}
