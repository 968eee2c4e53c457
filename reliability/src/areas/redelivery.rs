//! The `redelivery` area: a mix of every slice's journeys (all but those that trip
//! breakers by design, [`Opens::Unavailable`]) on a stack whose bus delivers every event
//! twice, raced by a second deliverer that sends every new event, twice more and at once,
//! to every consumer its rules name, in a shuffled order; then, settled, every event of the
//! change feed is delivered again, twice, to every consumer its rules name, and every change
//! record replayed into the projector, all in a shuffled order (the seed is printed).
//! Nothing may change: SMS, counters (each fixture's [`Fixture::counters`]), payments and
//! refunds, the aggregates of every table, views, outbox; and the
//! [`invariants`](crate::invariants) hold. The whole feed, shuffled, is also projected
//! afresh, and must give the same views.
//!
//! [`Fixture::counters`]: crate::slices::Fixture::counters

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use clinicflow::app::consumers::{self, Handled};
use clinicflow::app::{AppError, faults, projector};
use clinicflow::events::EventEnvelope;
use clinicflow::topology::{PROCESSED, VIEWS};
use clinicflow_tests::{Client, LocalStack, fast_options};

use super::api::SOMEONE;
use crate::invariants::{self, Case};
use crate::slices::{self, Driver, Fixture, Journey, Opens, Request, Sent, Step};
use crate::{AreaReport, Mode};

/// Every journey the area mixes, with its fixture, in the fixtures' order.
fn journeys() -> Vec<(&'static dyn Fixture, &'static Journey)> {
    slices::all()
        .iter()
        .flat_map(|f| f.journeys().iter().map(move |j| (*f, j)))
        .filter(|(_, j)| !matches!(j.opens, Opens::Unavailable(_)))
        .collect()
}

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

/// The view rows of `cases`, through their fixtures.
fn view_keys(cases: &[Case]) -> Vec<String> {
    cases
        .iter()
        .filter_map(|c| Some(slices::of(c.slice)?.view_key(c.id.as_deref()?)))
        .collect()
}

async fn snapshot(stack: &LocalStack, views: &[String]) -> anyhow::Result<Snapshot> {
    let db = &stack.embedded().context("on SQLite")?.db;
    let mut aggregates = Vec::new();
    // Every table that holds aggregates: the contexts' and the notifier's.
    for table in clinicflow::catalog()
        .tables
        .iter()
        .filter(|t| t.name != VIEWS && t.name != PROCESSED)
    {
        for (id, s) in db.all_aggregates(table.name).await? {
            aggregates.push((table.name.to_owned(), id, s.version, s.state));
        }
    }
    let mut counters = Vec::new();
    for f in slices::all() {
        counters.extend(f.counters(stack).await?);
    }
    counters.sort();
    counters.dedup();
    let mut rows = Vec::new();
    for key in views {
        rows.push(stack.platform.views.get(key).await?);
    }
    Ok(Snapshot {
        sms: stack.sms_sent().await?,
        sms_sends: stack.faults().reached(faults::SMS_AFTER_SEND),
        counters,
        ledger: stack.sandbox.entries(),
        aggregates,
        views: rows,
        events: db.changes_after(0, 1_000_000).await?.into_iter().map(|(_, e)| e.id).collect(),
        unpublished: stack
            .platform
            .outbox
            .unpublished(chrono::Utc::now() + chrono::Duration::days(1), 1000)
            .await?
            .len(),
    })
}

/// Sends a journey's requests over HTTP, once each.
struct Http<'a> {
    stack: &'a LocalStack,
}

#[async_trait]
impl Driver for Http<'_> {
    async fn send(&mut self, sub: &str, groups: &[&str], r: Request<'_>) -> anyhow::Result<Sent> {
        let client = Client::with_token(self.stack, &slices::token(self.stack, sub, groups));
        let headers: Vec<(&str, &str)> = r.key.map(|k| ("idempotency-key", k)).into_iter().collect();
        let reply = client.send(r.method, r.path, r.body, &headers).await;
        Ok(Sent {
            status: reply.status,
            body: reply.body,
            retried: false,
        })
    }

    async fn ready(&mut self, fixture: &'static dyn Fixture, id: &str, step: Option<&Step>) -> anyhow::Result<bool> {
        Ok(slices::wait_ready_for(fixture, self.stack, id, step, Duration::from_secs(10)).await)
    }
    async fn platform(&mut self) -> anyhow::Result<&clinicflow::app::Platform> {
        Ok(&self.stack.platform)
    }
}

/// Runs the `n`-th flow, the `round`-th of its journey, through the API; returns the case and
/// what went wrong. Flows of different journeys share slots (five days); the rounds of one
/// journey never do, so that a journey's case cannot wait on what another round of it took
/// (the one dose a full slot gives back).
async fn run_flow(
    stack: &LocalStack,
    f: &'static dyn Fixture,
    journey: &'static Journey,
    n: usize,
    round: usize,
) -> anyhow::Result<(Case, Vec<String>)> {
    let owner = format!("patient-{n}");
    let body = f.open_body(30 + (n % 5) as i64 + 5 * round as i64, &SOMEONE, journey.card);
    let walked = slices::walk(f, journey, &mut Http { stack }, &owner, &body, None).await?;
    let problems = walked.problems.into_iter().map(|p| format!("{}: {p}", f.slice())).collect();
    Ok((walked.case, problems))
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
    let seed = fastrand::u64(..);
    eprintln!("    redelivery shuffle seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mix = journeys();
    anyhow::ensure!(!mix.is_empty(), "no fixture has a journey the redelivery area can run");
    // Every journey of every slice at least once, even in a bounded run.
    let flows = mode.pick(36, 12).max(mix.len());
    let runs = (0..flows).map(|n| {
        let (f, journey) = mix[n % mix.len()];
        run_flow(&stack, f, journey, n, n / mix.len())
    });
    let flows_done = AtomicBool::new(false);
    let flowing = async {
        let done = futures::future::join_all(runs).await;
        flows_done.store(true, Ordering::SeqCst);
        done
    };
    let (done, raced) = tokio::join!(flowing, race(&stack, &flows_done, rng.u64(..)));
    let mut cases = Vec::new();
    for flow in done {
        let (case, problems) = flow?;
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

    let views = view_keys(&cases);
    let before = snapshot(&stack, &views).await?;
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
    for key in &views {
        let stored = p.views.get(key).await?.map(|v| v.body);
        if fresh.views.get(key).await?.map(|v| v.body) != stored {
            report.violation(format!("the view {key} differs when its records arrive out of order"));
        }
    }
    if !stack.settle(Duration::from_secs(20)).await {
        report.violation("the stack never settled after the redeliveries".into());
    }
    let after = snapshot(&stack, &views).await?;
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
