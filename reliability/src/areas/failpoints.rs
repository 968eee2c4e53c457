//! The `failpoints` area: every failure point of `clinicflow::catalog().failure_points` ×
//! every journey of every slice's fixture armed at it ([`Journey::armed_at`]). Each run
//! opens cases on a local stack over a temporary data dir, arms the point, lets the journey
//! hit it, recovers (a crash restarts the stack on the same data dir; a failure is left to
//! retries, redelivery and the sweeper), settles and checks the shared
//! [`invariants`](crate::invariants). A point no journey is armed at, or that never fires in
//! the whole run, is a violation too, so a renamed or unwired point, or a new slice's point
//! that no fixture reaches, cannot drop out silently.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use clinicflow::adapters::sandbox::SandboxGateway;
use clinicflow::app::Effect;
use clinicflow::app::faults;
use clinicflow_tests::{Client, LocalOptions, LocalStack, Reply, fast_options};
use futures::StreamExt;

use super::api::SOMEONE;
use crate::invariants;
use crate::slices::{self, Driver, Fixture, Journey, Request, Sent, Step};
use crate::{AreaReport, Mode};

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
    /// For every firing for a while from its first, then disarmed.
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

/// One (point, journey, effect) run.
#[derive(Clone, Copy)]
struct Plan {
    point: &'static str,
    fixture: &'static dyn Fixture,
    journey: &'static Journey,
    effect: Effect,
    arming: Arming,
    cases: usize,
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
    let cases = mode.pick(3, 1);
    let all: Vec<&'static str> = clinicflow::catalog().failure_points.iter().map(String::as_str).collect();
    for slice in slices::untested() {
        report.violation(format!(
            "slice {slice} has no fixture (reliability/src/slices/): none of its journeys is armed"
        ));
    }
    let mut plans = Vec::new();
    for point in all.iter().copied() {
        let through: Vec<(&'static dyn Fixture, &'static Journey)> = slices::all()
            .iter()
            .flat_map(|f| f.journeys().iter().map(move |j| (*f, j)))
            .filter(|(_, j)| (j.armed_at)(point))
            .collect();
        if through.is_empty() {
            report.violation(format!("{point}: no journey of any slice's fixture is armed at it"));
        }
        for (fixture, journey) in through {
            for &effect in effects(point) {
                for arming in armings(effect, mode) {
                    plans.push(Plan {
                        point,
                        fixture,
                        journey,
                        effect,
                        arming,
                        cases,
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
            "{} × {}: {} ({})",
            plan.point,
            plan.fixture.slice(),
            plan.journey.name,
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
    fired_before: u64,
    sends_before: u64,
}

impl Run {
    fn stack(&self) -> anyhow::Result<&LocalStack> {
        self.stack.as_ref().context("the stack is running")
    }

    /// A client of the running stack as `sub` in `groups` (a staff member with their site,
    /// [`slices::token`]).
    fn client(&self, sub: &str, groups: &[&str]) -> anyhow::Result<Client> {
        let stack = self.stack()?;
        Ok(Client::with_token(stack, &slices::token(stack, sub, groups)))
    }

    fn fired(&self) -> u64 {
        self.fired_before + self.stack.as_ref().map_or(0, |s| s.faults().fired(self.plan.point))
    }

    fn sends(&self) -> u64 {
        self.sends_before + self.stack.as_ref().map_or(0, |s| s.faults().reached(faults::SMS_AFTER_SEND))
    }

    /// After a crash fired, stops the stack as a dead process would stop and starts it
    /// again on the same data dir, armed for the crashes still to come.
    async fn recover(&mut self) -> anyhow::Result<()> {
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
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &mut self,
        sub: &str,
        groups: &[&str],
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        key: Option<&str>,
        accept: &[u16],
    ) -> anyhow::Result<(Reply, bool)> {
        let mut retried = false;
        for _ in 0..60 {
            let client = self.client(sub, groups)?;
            let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
            let reply = client.send(method, path, body, &headers).await;
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

async fn run_plan(plan: Plan) -> anyhow::Result<Outcomes> {
    let provider = SandboxGateway::default();
    provider.provide(run_inside(plan)).await
}

async fn run_inside(plan: Plan) -> anyhow::Result<Outcomes> {
    let dir = tempfile::tempdir()?;
    let mut options = fast_options();
    options.data_dir = Some(dir.path().to_owned());
    let stack = LocalStack::start(options.clone()).await?;
    let times = match plan.arming {
        Arming::Times(n) => Some(n),
        Arming::While(_) => None,
    };
    stack.faults().arm(plan.point, plan.effect, times);
    // A point armed for a while is disarmed when the while is over, on a timer, however
    // busy the run is. The while starts at the point's first firing: a point deep in a
    // journey (a refund after a booking and a rejection) is reached at a time that depends
    // on how loaded the machine is, and a window opened at arming could close before it.
    // Only crashes restart the stack, and they are armed for times.
    let timer = match plan.arming {
        Arming::While(d) => {
            let faults = stack.faults().clone();
            Some(tokio::spawn(async move {
                while faults.fired(plan.point) == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tokio::time::sleep(d).await;
                faults.disarm(plan.point);
            }))
        }
        Arming::Times(_) => None,
    };
    let mut run = Run {
        stack: Some(stack),
        options,
        plan,
        restarts: 0,
        fired_before: 0,
        sends_before: 0,
    };
    let result = drive(&mut run).await;
    if let Some(timer) = timer {
        timer.abort();
    }
    if let Some(stack) = run.stack.take() {
        stack.shutdown().await;
    }
    result
}

#[async_trait]
impl Driver for Run {
    async fn send(&mut self, sub: &str, groups: &[&str], r: Request<'_>) -> anyhow::Result<Sent> {
        let (reply, retried) = self.call(sub, groups, r.method, r.path, r.body, r.key, r.accept).await?;
        Ok(Sent {
            status: reply.status,
            body: reply.body,
            retried,
        })
    }

    async fn ready(&mut self, fixture: &'static dyn Fixture, id: &str, step: Option<&Step>) -> anyhow::Result<bool> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            self.recover().await?;
            if slices::is_ready(fixture, self.stack()?, id, step).await {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        Ok(false)
    }

    async fn platform(&mut self) -> anyhow::Result<&clinicflow::app::Platform> {
        self.recover().await?;
        Ok(&self.stack()?.platform)
    }
}

/// Walks the plan's journey on `run` for each of its cases, recovers, settles and checks
/// the invariants.
async fn drive(run: &mut Run) -> anyhow::Result<Outcomes> {
    let plan = run.plan;
    let mut out = Outcomes::default();
    let mut cases = Vec::new();
    for n in 0..plan.cases {
        let owner = format!("patient-{:016x}", fastrand::u64(..));
        let key = format!("key-{:016x}", fastrand::u64(..));
        let body = plan.fixture.open_body(30 + n as i64, &SOMEONE, plan.journey.card);
        let walked = slices::walk(plan.fixture, plan.journey, run, &owner, &body, Some(&key)).await?;
        out.violations.extend(walked.problems);
        cases.push(walked.case);
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
