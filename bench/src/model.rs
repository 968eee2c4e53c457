//! Models built on the measured figures: the latency of a check-up saga on AWS, and what
//! the platform costs there. Both are stated with their sources in `BENCHMARKS.md`; the
//! constants below are the only inputs that are not measured in the run.

use std::collections::HashMap;

use crate::Metric;

/// EventBridge rule → Lambda target, p50 (published figure; see BENCHMARKS.md).
pub const EVENTBRIDGE_TO_LAMBDA_MS: f64 = 148.0;
/// DynamoDB Streams → Lambda, p50 (published figure; see BENCHMARKS.md).
pub const STREAM_TO_LAMBDA_MS: f64 = 213.0;

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

/// What one booking saga (book → the centre confirms → view confirmed → two SMS; the
/// patient reads the status once) does on AWS, counted from the code paths (the same
/// counts as the README's cost table).
pub mod saga {
    /// Lambda invocations per function.
    pub const INVOCATIONS: &[(&str, f64)] = &[
        ("checkup-book", 1.0),
        ("centre-worklist", 1.0),
        ("centre-confirm", 1.0),
        ("sms-notifier", 2.0),
        ("checkup-query", 1.0),
        // Stream batches of the check-up, payment and centre tables: the booking's, the
        // worklist's and the confirmation's commits, and the publish marks after them.
        ("status-projector", 6.0),
    ];
    /// HTTP API requests: book, confirm, one status read.
    pub const HTTP_REQUESTS: f64 = 3.0;
    /// Events put on the bus.
    pub const EVENTS: f64 = 4.0;
    /// Write request units: items written in transactions count twice (booking, payment,
    /// place, outbox events, contact, idempotency; worklist entry, mark and event;
    /// confirmation, centre decision and event), plus the projector's view puts, the
    /// notifier's records and marks, and the publish marks.
    pub const WRU: f64 = 60.0;
    /// Read request units (strongly consistent reads of aggregates, views, marks).
    pub const RRU: f64 = 20.0;
    /// Log bytes per invocation (structured lines and the platform's REPORT line).
    pub const LOG_BYTES_PER_INVOCATION: f64 = 2500.0;
}

/// The stack's fixed monthly cost at idle: the rollback alarms (33; the first 10 are in
/// the free tier) and the sweeper's schedule (one invocation a minute, which queries
/// three outbox indexes).
pub fn idle_usd_per_month(sweeper_ms: f64, sweeper_memory_mb: f64) -> f64 {
    let alarms = 33.0 * price::ALARM_MONTH;
    let ticks = 60.0 * 24.0 * 30.0;
    let sweeper = ticks
        * (price::LAMBDA_REQUEST
            + billed_s(sweeper_ms) * sweeper_memory_mb / 1024.0 * price::LAMBDA_ARM_GB_S
            + 3.0 * 0.5 * price::DYNAMODB_RRU
            + saga::LOG_BYTES_PER_INVOCATION / 1e9 * price::LOGS_GB);
    alarms + sweeper
}

/// Lambda bills whole milliseconds.
fn billed_s(ms: f64) -> f64 {
    ms.max(1.0).ceil() / 1e3
}

/// The saga's cost on AWS, with each invocation lasting `duration_ms(function)`.
pub fn usd_per_1000_bookings(duration_ms: impl Fn(&str) -> f64) -> f64 {
    let lambda: f64 = saga::INVOCATIONS
        .iter()
        .map(|(f, n)| {
            let memory_gb = clinicflow::catalog().function(f).map_or(128.0, |f| f64::from(f.memory_mb)) / 1024.0;
            n * (price::LAMBDA_REQUEST + billed_s(duration_ms(f)) * memory_gb * price::LAMBDA_ARM_GB_S)
        })
        .sum();
    let invocations: f64 = saga::INVOCATIONS.iter().map(|(_, n)| n).sum();
    let rest = saga::HTTP_REQUESTS * price::HTTP_API_REQUEST
        + saga::EVENTS * price::EVENTBRIDGE_EVENT
        + saga::WRU * price::DYNAMODB_WRU
        + saga::RRU * price::DYNAMODB_RRU
        + invocations * saga::LOG_BYTES_PER_INVOCATION / 1e9 * price::LOGS_GB;
    1000.0 * (lambda + rest)
}

/// `projected_aws_saga_ms` and the cost figures, from the metrics measured so far
/// (whichever are present).
pub fn metrics(measured: &[Metric]) -> Vec<Metric> {
    let by_name: HashMap<&str, &Metric> = measured.iter().map(|m| (m.name.as_str(), m)).collect();
    let value = |name: &str| by_name.get(name).map(|m| m.value);
    let mut out = Vec::new();

    // The saga's critical path on AWS: book; EventBridge delivers CheckupBooked to the
    // centre's worklist; (the centre decides — human time, not counted); confirm; the
    // stream delivers the confirmation to the projector while EventBridge delivers it to
    // the notifier, in parallel (the stream is the slower hop).
    let steps = ["book", "centre-worklist", "confirm", "status-projector", "sms-notifier"];
    let compute_us: Option<f64> = steps.iter().map(|s| value(&format!("handler_us.{s}"))).sum();
    if let Some(compute_us) = compute_us {
        let hops = EVENTBRIDGE_TO_LAMBDA_MS + STREAM_TO_LAMBDA_MS;
        out.push(
            Metric::new("projected_aws_saga_ms", hops + compute_us / 1e3, "ms", hops).note(format!(
                "model: compute of {} ({:.3} ms, criterion) + EventBridge→Lambda {EVENTBRIDGE_TO_LAMBDA_MS} ms + Streams→Lambda {STREAM_TO_LAMBDA_MS} ms (p50); floor: the hops alone",
                steps.join(" + "),
                compute_us / 1e3
            )),
        );
    }

    // Cost: each invocation lasts what it lasted warm against the emulator (its requests
    // to DynamoDB, EventBridge and SNS included); the floor lasts what the hello-world
    // function lasted.
    let warm = |f: &str| value(&format!("warm_ms.{f}"));
    let all_measured = saga::INVOCATIONS.iter().all(|(f, _)| warm(f).is_some());
    if let (true, Some(floor_ms)) = (all_measured, value("warm_ms.hello-floor")) {
        let cost = usd_per_1000_bookings(|f| warm(f).unwrap_or(floor_ms));
        let floor = usd_per_1000_bookings(|_| floor_ms);
        out.push(
            Metric::new("aws_usd_per_1000_bookings", cost, "USD", floor)
                .note("model: Lambda (measured warm durations, arm64), HTTP API, EventBridge, DynamoDB on demand, logs; SMS excluded; floor: the same requests at the hello-world duration"),
        );
        let sweeper = warm("outbox-sweeper").unwrap_or(floor_ms);
        out.push(
            Metric::new(
                "aws_usd_per_month_idle",
                idle_usd_per_month(sweeper, 128.0),
                "USD",
                idle_usd_per_month(floor_ms, 128.0),
            )
            .note("model: 33 alarms at list price + the sweeper's schedule; floor: the same at the hello-world duration"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projection_adds_compute_to_the_hops() {
        let measured: Vec<Metric> = ["book", "centre-worklist", "confirm", "status-projector", "sms-notifier"]
            .iter()
            .map(|s| Metric::new(format!("handler_us.{s}"), 100.0, "us", 1.0))
            .collect();
        let out = metrics(&measured);
        let p = out.iter().find(|m| m.name == "projected_aws_saga_ms").expect("projected");
        assert!((p.value - (148.0 + 213.0 + 0.5)).abs() < 1e-9);
        assert!((p.floor - 361.0).abs() < 1e-9);
    }

    #[test]
    fn longer_invocations_cost_more_and_idle_is_mostly_alarms() {
        let fast = usd_per_1000_bookings(|_| 1.0);
        let slow = usd_per_1000_bookings(|_| 50.0);
        assert!(slow > fast && fast > 0.0);
        let idle = idle_usd_per_month(5.0, 128.0);
        assert!(idle > 3.3 && idle < 3.5, "{idle}");
    }

    #[test]
    fn no_figures_no_model() {
        assert!(metrics(&[]).is_empty());
    }
}
