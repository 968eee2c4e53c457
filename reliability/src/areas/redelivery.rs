//! The `redelivery` area: a mix of check-up flows on a stack whose bus delivers every event
//! twice, raced by a second deliverer that sends every new event, twice more and at once,
//! to every consumer its rules name, in a shuffled order; then, settled, every event of the change feed is delivered again, twice, to every
//! consumer its rules name, and every change record replayed into the projector, all in a
//! shuffled order (the seed is printed). Nothing may change: SMS, counters, payments and
//! refunds, aggregates, views, outbox; and the [`invariants`](crate::invariants) hold. The
//! whole feed, shuffled, is also projected afresh, and must give the same views.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clinicflow::app::consumers::{self, Handled};
use clinicflow::app::{AppError, faults, projector};
use clinicflow::contexts::payment;
use clinicflow::events::EventEnvelope;
use clinicflow::flows::checkup::{availability, centre, domain as checkup};
use clinicflow::topology::NOTIFICATION;
use clinicflow_tests::{Client, LocalStack, booking, fast_options, future_date};
use serde_json::json;

use crate::invariants::{self, Case, Outcome};
use crate::{AreaReport, Mode};

/// What a flow does after booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Confirm,
    Cancel,
    Reject,
    ConfirmThenCancel,
    LeaveBooked,
    Declined,
}

const FLOWS: [Flow; 6] = [
    Flow::Confirm,
    Flow::Cancel,
    Flow::Reject,
    Flow::ConfirmThenCancel,
    Flow::LeaveBooked,
    Flow::Declined,
];

/// Everything a redelivery must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    sms: Vec<clinicflow_local::SentSms>,
    sms_sends: u64,
    counters: Vec<(String, i64)>,
    ledger: Vec<clinicflow::adapters::sandbox::LedgerEntry>,
    aggregates: Vec<(String, String, u64, serde_json::Value)>,
    views: Vec<Option<clinicflow::ports::ViewRecord>>,
    events: Vec<String>,
    unpublished: usize,
}

async fn snapshot(stack: &LocalStack, ids: &[String]) -> anyhow::Result<Snapshot> {
    let db = &stack.embedded().context("on SQLite")?.db;
    let mut aggregates = Vec::new();
    for context in [checkup::CONTEXT, payment::CONTEXT, centre::CONTEXT, NOTIFICATION] {
        for (id, s) in db.all_aggregates(context).await? {
            aggregates.push((context.to_owned(), id, s.version, s.state));
        }
    }
    let mut counters = Vec::new();
    let mut views = Vec::new();
    for (_, stored) in db.all_aggregates(checkup::CONTEXT).await? {
        let b: checkup::Booking = serde_json::from_value(stored.state)?;
        let slot = availability::slot_key(b.date, b.package);
        counters.push((slot.clone(), stack.platform.store.counter(&slot).await?));
    }
    counters.sort();
    counters.dedup();
    for id in ids {
        views.push(stack.platform.views.get(&clinicflow::flows::checkup::view::view_key(id)).await?);
    }
    Ok(Snapshot {
        sms: stack.sms_sent().await?,
        sms_sends: stack.faults().reached(faults::SMS_AFTER_SEND),
        counters,
        ledger: stack.sandbox.entries(),
        aggregates,
        views,
        events: db.changes_after(0, 1_000_000).await?.into_iter().map(|(_, e)| e.id).collect(),
        unpublished: stack
            .platform
            .outbox
            .unpublished(chrono::Utc::now() + chrono::Duration::days(1), 1000)
            .await?
            .len(),
    })
}

async fn received(stack: &LocalStack, id: &str) -> bool {
    for _ in 0..400 {
        let status = stack
            .platform
            .views
            .get(&clinicflow::flows::checkup::view::view_key(id))
            .await
            .ok()
            .flatten()
            .and_then(|v| v.body.get("reservation_status").and_then(|s| s.as_str()).map(str::to_owned));
        if status.as_deref() == Some("received") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Runs one flow through the API; returns the case and what went wrong.
async fn run_flow(stack: &LocalStack, flow: Flow, n: usize) -> (Case, Vec<String>) {
    let patient_sub = format!("patient-{n}");
    let patient = Client::new(stack, &patient_sub, &["patient"]);
    let staff = Client::new(stack, "centre-staff", &["centre"]);
    let card = if flow == Flow::Declined { "tok_declined" } else { "tok_ok" };
    let reply = patient
        .post("/checkups", &booking(&future_date(30 + (n % 5) as i64), "basic", card))
        .await;
    let mut problems = Vec::new();
    let id = match (flow, reply.status) {
        (Flow::Declined, 402) => None,
        (_, 201) => reply.body["id"].as_str().map(str::to_owned),
        (_, s) => {
            problems.push(format!("{flow:?}: booking answered {s}"));
            None
        }
    };
    let outcome = match (flow, &id) {
        (_, None) => Outcome::NotBooked,
        (Flow::Confirm, _) => Outcome::Confirmed,
        (Flow::Cancel | Flow::ConfirmThenCancel, _) => Outcome::Cancelled,
        (Flow::Reject, _) => Outcome::Rejected,
        (Flow::LeaveBooked | Flow::Declined, _) => Outcome::Booked,
    };
    let case = Case {
        id: id.clone(),
        patient: patient_sub,
        outcome,
        paid: id.is_some(),
    };
    let Some(id) = id else { return (case, problems) };
    if !received(stack, &id).await {
        problems.push(format!("{flow:?}: booking {id} never reached the work list"));
        return (case, problems);
    }
    let steps: Vec<(&Client, String, Option<serde_json::Value>)> = match flow {
        Flow::Confirm => vec![(&staff, format!("/centre/checkups/{id}/confirm"), None)],
        Flow::Reject => vec![(
            &staff,
            format!("/centre/checkups/{id}/reject"),
            Some(json!({"reason": "doctor unavailable"})),
        )],
        Flow::Cancel => vec![(&patient, format!("/checkups/{id}/cancel"), None)],
        Flow::ConfirmThenCancel => vec![
            (&staff, format!("/centre/checkups/{id}/confirm"), None),
            (&patient, format!("/checkups/{id}/cancel"), None),
        ],
        Flow::LeaveBooked | Flow::Declined => vec![],
    };
    for (client, path, body) in steps {
        let r = client.send("POST", &path, body.as_ref(), &[]).await;
        if !matches!(r.status, 200 | 202) {
            problems.push(format!("{flow:?}: {path} answered {}", r.status));
        }
    }
    (case, problems)
}

/// What the racing redeliverer did.
struct Raced {
    deliveries: u64,
    broken: Vec<String>,
}

/// While the flows run, delivers every new event of the change feed again, twice and at
/// once, to every consumer its rules name, in a shuffled order, racing the bus (which
/// delivers everything twice itself). A retryable failure is retried as the bus would.
async fn race(stack: &LocalStack, flows_done: &AtomicBool, seed: u64) -> anyhow::Result<Raced> {
    let db = &stack.embedded().context("on SQLite")?.db;
    let p = &stack.platform;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut raced = Raced {
        deliveries: 0,
        broken: Vec::new(),
    };
    let mut seq = 0;
    let mut retry: Vec<(&'static str, EventEnvelope, u32)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let finished = flows_done.load(Ordering::SeqCst);
        let batch = db.changes_after(seq, 200).await?;
        let mut round: Vec<(&'static str, EventEnvelope, u32)> = std::mem::take(&mut retry);
        for (next, e) in batch {
            seq = next;
            for rule in clinicflow::catalog().rules.iter().filter(|r| r.matches(&e.source, &e.event_type)) {
                round.push((rule.target, e.clone(), 0));
                round.push((rule.target, e.clone(), 0));
            }
        }
        if round.is_empty() {
            if finished || tokio::time::Instant::now() > deadline {
                return Ok(raced);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        rng.shuffle(&mut round);
        let outcomes = futures::future::join_all(round.into_iter().map(|(target, e, attempts)| async move {
            let result = consumers::dispatch(p, target, &e).await;
            (target, e, attempts, result)
        }))
        .await;
        for (target, e, attempts, result) in outcomes {
            raced.deliveries += 1;
            match result {
                Ok(_) => {}
                Err(consumers::ConsumerError::Retryable(_)) if attempts < 50 => retry.push((target, e, attempts + 1)),
                Err(err) => raced.broken.push(format!(
                    "{target} failed on a racing duplicate of {} of case {}: {err}",
                    e.event_type, e.correlation_id
                )),
            }
        }
        if !retry.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs the area.
pub async fn run(mode: Mode) -> anyhow::Result<AreaReport> {
    let mut report = AreaReport::new("redelivery");
    let mut options = fast_options();
    options.bus.duplicate_every_delivery = true;
    let stack = LocalStack::start(options).await?;
    let flows = mode.pick(36, 12);
    let seed = fastrand::u64(..);
    eprintln!("    redelivery shuffle seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let runs = (0..flows).map(|n| run_flow(&stack, FLOWS[n % FLOWS.len()], n));
    let flows_done = AtomicBool::new(false);
    let flowing = async {
        let done = futures::future::join_all(runs).await;
        flows_done.store(true, Ordering::SeqCst);
        done
    };
    let (done, raced) = tokio::join!(flowing, race(&stack, &flows_done, rng.u64(..)));
    let mut cases = Vec::new();
    for (case, problems) in done {
        for p in problems {
            report.violation(p);
        }
        cases.push(case);
    }
    let raced = raced?;
    for broken in raced.broken {
        report.case(Some(broken));
    }
    report.cases += raced.deliveries;
    if !stack.settle(Duration::from_secs(20)).await {
        report.violation("the stack never settled after the flows".into());
    }
    let first = invariants::check(&stack, &cases, Some(stack.faults().reached(faults::SMS_AFTER_SEND))).await?;
    for v in first.violations {
        report.violation(format!("after the flows: {v}"));
    }

    let ids: Vec<String> = cases.iter().filter_map(|c| c.id.clone()).collect();
    let before = snapshot(&stack, &ids).await?;
    let history: Vec<EventEnvelope> = stack
        .embedded()
        .context("on SQLite")?
        .db
        .changes_after(0, 1_000_000)
        .await?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let mut deliveries: Vec<(&str, &EventEnvelope)> = Vec::new();
    for e in &history {
        for rule in clinicflow::catalog().rules.iter().filter(|r| r.matches(&e.source, &e.event_type)) {
            deliveries.push((rule.target, e));
            deliveries.push((rule.target, e));
        }
    }
    rng.shuffle(&mut deliveries);
    let mut replays: Vec<&EventEnvelope> = history.iter().collect();
    rng.shuffle(&mut replays);

    let p = &stack.platform;
    let mut double = 0;
    for (target, e) in &deliveries {
        let broken = match consumers::dispatch(p, target, e).await {
            Ok(Handled::Skipped) => None,
            Ok(Handled::Applied) => {
                double += 1;
                Some(format!("{target} applied {} of case {} again", e.event_type, e.correlation_id))
            }
            Err(err) => Some(format!("{target} failed on a redelivered {}: {err}", e.event_type)),
        };
        report.case(broken);
    }
    for e in &replays {
        let broken = match projector::project(p, e).await {
            Ok(false) => None,
            Ok(true) => {
                double += 1;
                Some(format!("a replayed {} changed the view of case {}", e.event_type, e.correlation_id))
            }
            Err(err) => Some(format!("the projector failed on a replayed {}: {err}", e.event_type)),
        };
        report.case(broken);
    }
    // Out of order: the whole feed, shuffled, into a fresh projector. A record that overtakes
    // an earlier one of its aggregate is refused and retried later, as a stream retries it.
    let fresh = invariants::scratch();
    let mut pending: Vec<&EventEnvelope> = history.iter().collect();
    rng.shuffle(&mut pending);
    let mut overtaken = 0u64;
    while !pending.is_empty() {
        let mut later = Vec::new();
        for e in &pending {
            match projector::project(&fresh, e).await {
                Ok(_) => report.case(None),
                Err(AppError::Conflict(_)) => later.push(*e),
                Err(err) => report.case(Some(format!("the projector failed on a shuffled {}: {err}", e.event_type))),
            }
        }
        if later.len() == pending.len() {
            report.violation(format!("{} shuffled record(s) could never be projected", later.len()));
            break;
        }
        overtaken += later.len() as u64;
        pending = later;
    }
    for id in &ids {
        let stored = p.views.get(&clinicflow::flows::checkup::view::view_key(id)).await?.map(|v| v.body);
        if fresh
            .views
            .get(&clinicflow::flows::checkup::view::view_key(id))
            .await?
            .map(|v| v.body)
            != stored
        {
            report.violation(format!("the view of case {id} differs when its records arrive out of order"));
        }
    }
    if !stack.settle(Duration::from_secs(20)).await {
        report.violation("the stack never settled after the redeliveries".into());
    }
    let after = snapshot(&stack, &ids).await?;
    let changed: Vec<&str> = [
        ("SMS", before.sms != after.sms || before.sms_sends != after.sms_sends),
        ("counters", before.counters != after.counters),
        ("payments and refunds", before.ledger != after.ledger),
        ("aggregates", before.aggregates != after.aggregates),
        ("views", before.views != after.views),
        ("outbox", before.events != after.events || before.unpublished != after.unpublished),
    ]
    .into_iter()
    .filter_map(|(what, changed)| changed.then_some(what))
    .collect();
    for what in &changed {
        double += 1;
        report.violation(format!("the redeliveries changed the {what}"));
    }
    let last = invariants::check(&stack, &cases, Some(after.sms_sends)).await?;
    for v in last.violations {
        report.violation(format!("after the redeliveries: {v}"));
    }
    report.figure("flows", flows as u64);
    report.figure("duplicates delivered", raced.deliveries + deliveries.len() as u64);
    report.figure("records replayed", replays.len() as u64);
    report.figure("records overtaken and retried", overtaken);
    report.figure("double effects", double);
    report.figure("shuffle seed", seed);
    stack.shutdown().await;
    Ok(report)
}
