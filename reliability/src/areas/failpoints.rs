//! The `failpoints` area: every failure point of `clinicflow::app::faults` × every check-up
//! scenario that passes through it. Each run books on a local stack over a temporary data
//! dir, arms the point, lets the flow hit it, recovers (a crash restarts the stack on the
//! same data dir; a failure is left to retries, redelivery and the sweeper), settles and
//! checks the shared [`invariants`](crate::invariants). A point that never fires in the
//! whole run is a violation too, so a renamed or unwired point cannot drop out silently.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use clinicflow::adapters::sandbox::SandboxGateway;
use clinicflow::app::Effect;
use clinicflow::app::faults;
use clinicflow::flows::checkup::faults::*;
use clinicflow_tests::{Client, LocalOptions, LocalStack, Reply, booking, fast_options, future_date};
use futures::StreamExt;
use serde_json::json;

use crate::invariants::{self, Case, Outcome};
use crate::{AreaReport, Mode};

/// A check-up flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Confirm,
    Cancel,
    Reject,
    Declined,
    ProviderDown,
}

impl Scenario {
    const ALL: [Scenario; 5] = [Self::Confirm, Self::Cancel, Self::Reject, Self::Declined, Self::ProviderDown];

    fn name(self) -> &'static str {
        match self {
            Self::Confirm => "book→confirm",
            Self::Cancel => "book→cancel",
            Self::Reject => "book→centre reject",
            Self::Declined => "book, payment declined",
            Self::ProviderDown => "book, payment provider down",
        }
    }

    fn card(self) -> &'static str {
        match self {
            Self::Declined => "tok_declined",
            Self::ProviderDown => "tok_down",
            _ => "tok_ok",
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            Self::Confirm => Outcome::Confirmed,
            Self::Cancel => Outcome::Cancelled,
            Self::Reject => Outcome::Rejected,
            Self::Declined | Self::ProviderDown => Outcome::NotBooked,
        }
    }

    /// Does the flow pass through `point`?
    fn passes(self, point: &str) -> bool {
        use faults::{
            AFTER_COMMIT, PAYMENT_CHARGE, PAYMENT_REFUND_CALL, PROJECTOR, PROJECTOR_AFTER_WRITE, SMS_AFTER_SEND, SMS_BEFORE_SEND,
        };
        let booked = [
            PAYMENT_CHARGE,
            AFTER_COMMIT,
            BOOK_AFTER_COMMIT,
            CENTRE_WORKLIST,
            CENTRE_WORKLIST_BEFORE_WRITE,
            CENTRE_WORKLIST_AFTER_WRITE,
            SMS_NOTIFIER,
            SMS_NOTIFIER_BEFORE_WRITE,
            SMS_BEFORE_SEND,
            SMS_AFTER_SEND,
            SMS_NOTIFIER_AFTER_WRITE,
            PROJECTOR,
            PROJECTOR_AFTER_WRITE,
        ];
        let ended = [
            AVAILABILITY_RELEASE,
            AVAILABILITY_RELEASE_BEFORE_WRITE,
            AVAILABILITY_RELEASE_AFTER_WRITE,
            PAYMENT_REFUND,
            PAYMENT_REFUND_BEFORE_WRITE,
            PAYMENT_REFUND_CALL,
            PAYMENT_REFUND_AFTER_WRITE,
        ];
        match self {
            Self::Declined | Self::ProviderDown => point == PAYMENT_CHARGE,
            Self::Confirm => booked.contains(&point) || point == CONFIRM_AFTER_COMMIT,
            Self::Cancel => booked.contains(&point) || ended.contains(&point) || point == CANCEL_AFTER_COMMIT,
            Self::Reject => booked.contains(&point) || ended.contains(&point) || point == REJECT_AFTER_COMMIT,
        }
    }
}

/// Runs at once, each on its own stack.
const PARALLEL: usize = 6;

/// Longer than the payment timeout of [`fast_options`]: the provider is slow.
const SLOW: Duration = Duration::from_millis(800);

/// What a point can do: payment points fail (down), delay (slow) or lose the answer;
/// the others crash or fail.
fn effects(point: &str) -> &'static [Effect] {
    if point == faults::PAYMENT_CHARGE || point == faults::PAYMENT_REFUND_CALL {
        &[Effect::Fail, Effect::Delay(SLOW), Effect::Crash]
    } else {
        &[Effect::Crash, Effect::Fail]
    }
}

/// How long a point stays armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arming {
    /// For its first firings.
    Times(u64),
    /// For every firing for a while, then disarmed.
    While(Duration),
}

/// How each effect is armed: quick runs once each; full runs adds repeated crashes and
/// failures that last a while.
fn armings(effect: Effect, mode: Mode) -> Vec<Arming> {
    let while_ = Arming::While(Duration::from_millis(400));
    match (effect, mode) {
        (Effect::Crash, Mode::Quick) | (Effect::Delay(_), Mode::Quick) => vec![Arming::Times(1)],
        (Effect::Fail, Mode::Quick) => vec![Arming::Times(3)],
        (Effect::Crash, Mode::Full) => vec![Arming::Times(1), Arming::Times(2)],
        (Effect::Fail, Mode::Full) => vec![Arming::Times(3), while_],
        (Effect::Delay(_), Mode::Full) => vec![Arming::Times(1), while_],
    }
}

fn effect_name(e: Effect, arming: Arming) -> String {
    let name = match e {
        Effect::Fail => "fail",
        Effect::Crash => "crash",
        Effect::Delay(_) => "slow",
    };
    match arming {
        Arming::Times(1) => name.to_owned(),
        Arming::Times(n) => format!("{name} ×{n}"),
        Arming::While(d) => format!("{name} for {} ms", d.as_millis()),
    }
}

/// One (point, scenario, effect) run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    point: &'static str,
    scenario: Scenario,
    effect: Effect,
    arming: Arming,
    bookings: usize,
}

/// What one run found.
#[derive(Debug, Default)]
struct Outcomes {
    fired: u64,
    violations: Vec<String>,
    sms_in_doubt: u64,
}

/// Runs the area.
pub async fn run(mode: Mode) -> anyhow::Result<AreaReport> {
    let mut report = AreaReport::new("failpoints");
    let bookings = mode.pick(3, 1);
    let all: Vec<&'static str> = clinicflow::catalog().failure_points.iter().map(String::as_str).collect();
    let mut plans = Vec::new();
    for point in all.iter().copied() {
        let through: Vec<Scenario> = Scenario::ALL.into_iter().filter(|s| s.passes(point)).collect();
        if through.is_empty() {
            report.violation(format!("{point}: no scenario passes through it"));
        }
        for scenario in through {
            for &effect in effects(point) {
                for arming in armings(effect, mode) {
                    plans.push(Plan {
                        point,
                        scenario,
                        effect,
                        arming,
                        bookings,
                    });
                }
            }
        }
    }

    let results: Vec<(Plan, anyhow::Result<Outcomes>)> = futures::stream::iter(plans)
        .map(|plan| async move { (plan, run_plan(plan).await) })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;

    let mut fired: BTreeMap<&str, u64> = all.iter().map(|p| (*p, 0)).collect();
    let (mut recovered, mut in_doubt) = (0, 0);
    for (plan, result) in results {
        let label = format!(
            "{} × {} ({})",
            plan.point,
            plan.scenario.name(),
            effect_name(plan.effect, plan.arming)
        );
        match result {
            Ok(o) => {
                *fired.entry(plan.point).or_default() += o.fired;
                in_doubt += o.sms_in_doubt;
                if o.fired == 0 {
                    report.case(Some(format!("{label}: the point never fired")));
                    for v in o.violations {
                        report.violation(format!("{label}: {v}"));
                    }
                    continue;
                }
                if o.violations.is_empty() {
                    recovered += 1;
                    report.case(None);
                    continue;
                }
                report.cases += 1;
                for v in o.violations {
                    report.violation(format!("{label}: {v}"));
                }
            }
            Err(e) => report.case(Some(format!("{label}: the run failed: {e:#}"))),
        }
    }
    for (point, n) in &fired {
        if *n == 0 {
            report.violation(format!("{point}: never fired in the whole run"));
        }
    }
    report.figure("failpoints exercised", fired.values().filter(|n| **n > 0).count() as u64);
    report.figure("failpoints listed", all.len() as u64);
    report.figure("recovered", recovered);
    report.figure("sms in doubt (dead-lettered, not resent)", in_doubt);
    Ok(report)
}

/// A stack that a crash restarts on the same data dir, with what the stacks before it saw.
struct Run {
    stack: Option<LocalStack>,
    options: LocalOptions,
    plan: Plan,
    restarts: u64,
    disarm_at: Option<Instant>,
    fired_before: u64,
    sends_before: u64,
}

impl Run {
    fn stack(&self) -> anyhow::Result<&LocalStack> {
        self.stack.as_ref().context("the stack is running")
    }

    fn client(&self, sub: &str, groups: &[&str]) -> anyhow::Result<Client> {
        Ok(Client::new(self.stack()?, sub, groups))
    }

    fn fired(&self) -> u64 {
        self.fired_before + self.stack.as_ref().map_or(0, |s| s.faults().fired(self.plan.point))
    }

    fn sends(&self) -> u64 {
        self.sends_before + self.stack.as_ref().map_or(0, |s| s.faults().reached(faults::SMS_AFTER_SEND))
    }

    /// Disarms a point armed for a while once the while is over; after a crash fired,
    /// stops the stack as a dead process would stop and starts it again on the same data
    /// dir, armed for the crashes still to come.
    async fn recover(&mut self) -> anyhow::Result<()> {
        if self.disarm_at.is_some_and(|at| Instant::now() >= at) {
            self.stack()?.faults().disarm(self.plan.point);
            self.disarm_at = None;
        }
        if self.plan.effect != Effect::Crash || self.fired() <= self.restarts {
            return Ok(());
        }
        let old = self.stack.take().context("the stack is running")?;
        self.fired_before += old.faults().fired(self.plan.point);
        self.sends_before += old.faults().reached(faults::SMS_AFTER_SEND);
        old.shutdown().await;
        let stack = LocalStack::start(self.options.clone()).await.context("restart")?;
        if let Arming::Times(n) = self.plan.arming
            && n > self.fired_before
        {
            stack.faults().arm(self.plan.point, Effect::Crash, Some(n - self.fired_before));
        }
        self.stack = Some(stack);
        self.restarts += 1;
        Ok(())
    }

    /// Sends a request until it is answered without a 5xx (`accept` may take a 5xx as the
    /// answer), recovering from crashes between attempts.
    async fn call(
        &mut self,
        sub: &str,
        groups: &[&str],
        path: &str,
        body: Option<&serde_json::Value>,
        key: Option<&str>,
        accept: &[u16],
    ) -> anyhow::Result<(Reply, bool)> {
        let mut retried = false;
        for _ in 0..60 {
            let client = self.client(sub, groups)?;
            let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
            let reply = client.send("POST", path, body, &headers).await;
            if reply.status < 500 || accept.contains(&reply.status) {
                return Ok((reply, retried));
            }
            retried = true;
            self.recover().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("{path} never answered without a 5xx")
    }

    /// Polls until `done` or `within` passes, recovering from crashes meanwhile.
    async fn until(&mut self, within: Duration, done: impl AsyncFn(&LocalStack) -> bool) -> anyhow::Result<bool> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            self.recover().await?;
            if done(self.stack()?).await {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        Ok(false)
    }
}

async fn reservation_received(stack: &LocalStack, id: &str) -> bool {
    stack
        .platform
        .views
        .get(&clinicflow::flows::checkup::view::view_key(id))
        .await
        .ok()
        .flatten()
        .and_then(|v| v.body.get("reservation_status").and_then(|s| s.as_str()).map(|s| s == "received"))
        .unwrap_or(false)
}

async fn run_plan(plan: Plan) -> anyhow::Result<Outcomes> {
    let provider = SandboxGateway::default();
    provider.provide(run_inside(plan)).await
}

async fn run_inside(plan: Plan) -> anyhow::Result<Outcomes> {
    let dir = tempfile::tempdir()?;
    let mut options = fast_options();
    options.data_dir = Some(dir.path().to_owned());
    let stack = LocalStack::start(options.clone()).await?;
    let (times, disarm_at) = match plan.arming {
        Arming::Times(n) => (Some(n), None),
        Arming::While(d) => (None, Some(Instant::now() + d)),
    };
    stack.faults().arm(plan.point, plan.effect, times);
    let mut run = Run {
        stack: Some(stack),
        options,
        plan,
        restarts: 0,
        disarm_at,
        fired_before: 0,
        sends_before: 0,
    };
    let result = drive(&mut run).await;
    if let Some(stack) = run.stack.take() {
        stack.shutdown().await;
    }
    result
}

/// Runs the plan's flows on `run`, recovers, settles and checks the invariants.
async fn drive(run: &mut Run) -> anyhow::Result<Outcomes> {
    let plan = run.plan;
    let mut out = Outcomes::default();
    let mut cases = Vec::new();
    let scenario = plan.scenario;
    let staff = "centre-staff";
    for n in 0..plan.bookings {
        let patient = format!("patient-{:016x}", fastrand::u64(..));
        let key = format!("key-{:016x}", fastrand::u64(..));
        let body = booking(&future_date(30 + n as i64), "basic", scenario.card());
        let down = if scenario == Scenario::ProviderDown { &[503][..] } else { &[] };
        let (reply, _) = run.call(&patient, &["patient"], "/checkups", Some(&body), Some(&key), down).await?;
        let expected = match (scenario, reply.status) {
            (Scenario::Declined, 402) | (Scenario::ProviderDown, 503) => None,
            (Scenario::Confirm | Scenario::Cancel | Scenario::Reject, 201) => reply.body["id"].as_str().map(str::to_owned),
            (_, status) => {
                out.violations.push(format!("booking answered {status}"));
                None
            }
        };
        cases.push(Case {
            id: expected.clone(),
            patient: patient.clone(),
            outcome: if expected.is_none() {
                Outcome::NotBooked
            } else {
                scenario.outcome()
            },
            paid: expected.is_some(),
        });
        let Some(id) = expected else { continue };
        let received = run
            .until(Duration::from_secs(15), async |s: &LocalStack| reservation_received(s, &id).await)
            .await?;
        if !received {
            out.violations.push(format!("booking {id} never reached the centre's work list"));
            continue;
        }
        let (path, who, groups, body) = match scenario {
            Scenario::Confirm => (format!("/centre/checkups/{id}/confirm"), staff, ["centre"], None),
            Scenario::Reject => (
                format!("/centre/checkups/{id}/reject"),
                staff,
                ["centre"],
                Some(json!({"reason": "doctor unavailable"})),
            ),
            _ => (format!("/checkups/{id}/cancel"), patient.as_str(), ["patient"], None),
        };
        let (reply, retried) = run.call(who, &groups, &path, body.as_ref(), None, &[]).await?;
        let fine = matches!(reply.status, 200 | 202) || (retried && reply.status == 409);
        if !fine {
            let title = reply.body["title"].as_str().unwrap_or_default();
            out.violations.push(format!("{path} answered {} {title}", reply.status));
        }
    }

    let mut settled = false;
    for _ in 0..2 {
        settled = run
            .until(Duration::from_secs(20), async |s: &LocalStack| {
                s.settle(Duration::from_millis(150)).await
            })
            .await?;
        run.recover().await?;
    }
    let stack = run.stack()?;
    stack.faults().disarm(plan.point);
    if !settled || !stack.settle(Duration::from_secs(10)).await {
        out.violations.push("the stack never settled".into());
    }
    out.fired = run.fired();
    let checked = invariants::check(stack, &cases, Some(run.sends())).await?;
    out.violations.extend(checked.violations);
    out.sms_in_doubt = checked.sms_in_doubt;
    Ok(out)
}
