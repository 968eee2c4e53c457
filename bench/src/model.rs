//! Models built on the measured figures: the latency of each fixture's saga on AWS, and what
//! the platform costs there. Both are stated with their sources in `BENCHMARKS.md`; the
//! constants below and each fixture's [`AwsModel`] (what its saga does, counted from the code
//! paths) are the only inputs that are not measured in the run.

use std::collections::HashMap;

use clinicflow::topology;

use crate::Metric;
use crate::slices::{self, AwsModel};

/// EventBridge rule → Lambda target, p50 (published figure; see BENCHMARKS.md).
pub const EVENTBRIDGE_TO_LAMBDA_MS: f64 = 148.0;
/// DynamoDB Streams → Lambda, p50 (published figure; see BENCHMARKS.md).
pub const STREAM_TO_LAMBDA_MS: f64 = 213.0;
/// Log bytes per invocation (structured lines and the platform's REPORT line).
pub const LOG_BYTES_PER_INVOCATION: f64 = 2500.0;

/// Public prices, us-east-1, on-demand, as of 2026-11 (see BENCHMARKS.md).
pub mod price {
    /// Lambda requests, per request.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// Lambda arm64 compute, per GB-second.
    pub const LAMBDA_ARM_GB_S: f64 = 0.000_013_333_4;
    /// HTTP API requests, per request.
    pub const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
    /// EventBridge custom events, per event (64 KB chunk).
    pub const EVENTBRIDGE_EVENT: f64 = 1.00 / 1e6;
    /// DynamoDB on-demand write request unit.
    pub const DYNAMODB_WRU: f64 = 0.625 / 1e6;
    /// DynamoDB on-demand read request unit.
    pub const DYNAMODB_RRU: f64 = 0.125 / 1e6;
    /// CloudWatch Logs ingestion, per GB.
    pub const LOGS_GB: f64 = 0.50;
    /// A CloudWatch standard-resolution alarm, per month.
    pub const ALARM_MONTH: f64 = 0.10;
}

/// The rollback alarms the templates give the catalog's functions (the template test holds
/// them to exactly these): `Errors` and `Throttles` of each, the depth of each consumer's
/// dead-letter queue (one per consumer, whatever its rules) and of each failure queue, and
/// the projector's iterator age.
pub fn rollback_alarms(catalog: &topology::Catalog) -> usize {
    catalog
        .functions
        .iter()
        .map(|f| {
            let dlq = catalog.rules.iter().any(|r| r.target == f.name);
            let failure_queue = matches!(f.trigger, topology::Trigger::Events | topology::Trigger::Stream);
            let iterator_age = f.trigger == topology::Trigger::Stream;
            2 + usize::from(dlq) + usize::from(failure_queue) + usize::from(iterator_age)
        })
        .sum()
}

/// The stack's fixed monthly cost at idle: the rollback alarms ([`rollback_alarms`], at
/// list price; the first 10 are in the free tier) and the sweeper's schedule (one invocation
/// a minute, which queries every context table's outbox index).
pub fn idle_usd_per_month(sweeper_ms: f64, sweeper_memory_mb: f64) -> f64 {
    let catalog = clinicflow::catalog();
    let alarms = rollback_alarms(catalog) as f64 * price::ALARM_MONTH;
    let outbox_indexes = catalog.context_tables().count() as f64;
    let ticks = 60.0 * 24.0 * 30.0;
    let sweeper = ticks
        * (price::LAMBDA_REQUEST
            + billed_s(sweeper_ms) * sweeper_memory_mb / 1024.0 * price::LAMBDA_ARM_GB_S
            + outbox_indexes * 0.5 * price::DYNAMODB_RRU
            + LOG_BYTES_PER_INVOCATION / 1e9 * price::LOGS_GB);
    alarms + sweeper
}

/// Lambda bills whole milliseconds.
fn billed_s(ms: f64) -> f64 {
    ms.max(1.0).ceil() / 1e3
}

/// The cost of 1,000 of `model`'s sagas on AWS, with each invocation lasting
/// `duration_ms(function)`.
pub fn usd_per_1000_sagas(model: &AwsModel, duration_ms: impl Fn(&str) -> f64) -> f64 {
    let lambda: f64 = model
        .invocations
        .iter()
        .map(|(f, n)| {
            let memory_gb = clinicflow::catalog().function(f).map_or(128.0, |f| f64::from(f.memory_mb)) / 1024.0;
            n * (price::LAMBDA_REQUEST + billed_s(duration_ms(f)) * memory_gb * price::LAMBDA_ARM_GB_S)
        })
        .sum();
    let invocations: f64 = model.invocations.iter().map(|(_, n)| n).sum();
    let rest = model.http_requests * price::HTTP_API_REQUEST
        + model.events * price::EVENTBRIDGE_EVENT
        + model.wru * price::DYNAMODB_WRU
        + model.rru * price::DYNAMODB_RRU
        + invocations * LOG_BYTES_PER_INVOCATION / 1e9 * price::LOGS_GB;
    1000.0 * (lambda + rest)
}

/// The hops of `model`'s critical path, for the note: `EventBridge→Lambda 148 ms`, with a
/// count when there are several.
fn hops_note(model: &AwsModel) -> String {
    let hop = |n: f64, what: &str, ms: f64| {
        if n <= 0.0 {
            None
        } else if (n - 1.0).abs() < f64::EPSILON {
            Some(format!("{what} {ms} ms"))
        } else {
            Some(format!("{n} × {what} {ms} ms"))
        }
    };
    [
        hop(model.eventbridge_hops, "EventBridge→Lambda", EVENTBRIDGE_TO_LAMBDA_MS),
        hop(model.stream_hops, "Streams→Lambda", STREAM_TO_LAMBDA_MS),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" + ")
}

/// Each fixture's projected saga latency and cost, and the idle cost, from the metrics
/// measured so far (whichever are present).
pub fn metrics(measured: &[Metric]) -> Vec<Metric> {
    let by_name: HashMap<&str, &Metric> = measured.iter().map(|m| (m.name.as_str(), m)).collect();
    let value = |name: &str| by_name.get(name).map(|m| m.value);
    let mut out = Vec::new();
    let warm = |f: &str| value(&format!("warm_ms.{f}"));
    let floor_ms = value(&format!("warm_ms.{}", crate::lambda::FLOOR));
    let mut every_saga_costed = true;

    for model in slices::all().iter().map(|f| f.model()) {
        // The saga's critical path on AWS: the compute of its steps (the decisions of
        // people on it are human time, not counted) and its hops (where a step's event
        // reaches the projector through the stream while EventBridge delivers it to the
        // notifier in parallel, the stream is the slower hop, counted alone).
        let compute_us: Option<f64> = model.critical_path.iter().map(|s| value(&format!("handler_us.{s}"))).sum();
        if let Some(compute_us) = compute_us {
            let hops = model.eventbridge_hops * EVENTBRIDGE_TO_LAMBDA_MS + model.stream_hops * STREAM_TO_LAMBDA_MS;
            out.push(Metric::new(model.projected, hops + compute_us / 1e3, "ms", hops).note(format!(
                "model: compute of {} ({:.3} ms, criterion) + {} (p50); floor: the hops alone",
                model.critical_path.join(" + "),
                compute_us / 1e3,
                hops_note(model),
            )));
        }

        // Cost: each invocation lasts what it lasted warm against the emulator (its
        // requests to DynamoDB, EventBridge and SNS included); the floor lasts what the
        // hello-world function lasted.
        let all_measured = model.invocations.iter().all(|(f, _)| warm(f).is_some());
        match (all_measured, floor_ms) {
            (true, Some(floor_ms)) => {
                let cost = usd_per_1000_sagas(model, |f| warm(f).unwrap_or(floor_ms));
                let floor = usd_per_1000_sagas(model, |_| floor_ms);
                out.push(
                    Metric::new(model.cost, cost, "USD", floor)
                        .note("model: Lambda (measured warm durations, arm64), HTTP API, EventBridge, DynamoDB on demand, logs; SMS excluded; floor: the same requests at the hello-world duration"),
                );
            }
            _ => every_saga_costed = false,
        }
    }

    if let (true, Some(floor_ms)) = (every_saga_costed, floor_ms) {
        let sweeper = warm(topology::OUTBOX_SWEEPER).unwrap_or(floor_ms);
        out.push(
            Metric::new(
                "aws_usd_per_month_idle",
                idle_usd_per_month(sweeper, 128.0),
                "USD",
                idle_usd_per_month(floor_ms, 128.0),
            )
            .note(format!(
                "model: {} alarms at list price + the sweeper's schedule; floor: the same at the hello-world duration",
                rollback_alarms(clinicflow::catalog())
            )),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projection_adds_compute_to_the_hops() {
        for model in slices::all().iter().map(|f| f.model()) {
            let measured: Vec<Metric> = model
                .critical_path
                .iter()
                .map(|s| Metric::new(format!("handler_us.{s}"), 100.0, "us", 1.0))
                .collect();
            let out = metrics(&measured);
            let p = out.iter().find(|m| m.name == model.projected).expect("projected");
            let hops = model.eventbridge_hops * 148.0 + model.stream_hops * 213.0;
            let compute_ms = 0.1 * model.critical_path.len() as f64;
            assert!((p.value - (hops + compute_ms)).abs() < 1e-9, "{p:?}");
            assert!((p.floor - hops).abs() < 1e-9);
        }
    }

    #[test]
    fn longer_invocations_cost_more_and_idle_is_mostly_alarms() {
        for model in slices::all().iter().map(|f| f.model()) {
            let fast = usd_per_1000_sagas(model, |_| 1.0);
            let slow = usd_per_1000_sagas(model, |_| 50.0);
            assert!(slow > fast && fast > 0.0);
        }
        let idle = idle_usd_per_month(5.0, 128.0);
        let alarms = rollback_alarms(clinicflow::catalog()) as f64 * price::ALARM_MONTH;
        assert!(idle > alarms && idle < alarms + 0.2, "{idle}");
    }

    #[test]
    fn no_figures_no_model() {
        assert!(metrics(&[]).is_empty());
    }

    #[test]
    fn every_function_of_a_saga_is_in_the_catalog() {
        for model in slices::all().iter().map(|f| f.model()) {
            for (f, _) in model.invocations {
                assert!(clinicflow::catalog().function(f).is_some(), "{f}");
            }
        }
    }
}
