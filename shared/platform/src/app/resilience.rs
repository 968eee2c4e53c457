//! One resilience helper for any outbound call or shared resource (the seeds' Hystrix): a
//! timeout, and a circuit breaker that turns a slow or failing dependency into fast
//! refusals for a cool-down, then lets one trial call (half-open) decide whether it closes
//! again. A refusal carries the time to wait, which the HTTP edge sends as `503` with
//! `Retry-After`.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Longest wait for one call.
    pub timeout: Duration,
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a trial call.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(2000),
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// A breaker's state as seen from outside, for health checks and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(
    description = "A circuit breaker's state: `closed` (calls go through), `open` (calls fail fast) or `halfopen` (a trial call \
                        decides)."
)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// One trial call is in flight (or may be made).
    HalfOpen,
}

/// Why a guarded call did not give its own answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded<E> {
    /// The circuit is open: the call was not made. Retry after this long.
    Open {
        /// When to retry.
        retry_after: Duration,
    },
    /// The call did not answer within the timeout.
    TimedOut,
    /// The call answered with its own error.
    Failed(E),
}

/// A timeout and a circuit breaker, shared by every call to one dependency.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Its settings.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The breaker's state now.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// Admits a call, or says how long until the circuit may close. Past the cool-down,
    /// one caller is admitted as the trial; the others are refused until it answers.
    pub fn admit(&self) -> Result<(), Duration> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::HalfOpen;
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            State::HalfOpen => Err(Duration::from_secs(1)),
        }
    }

    /// Records an admitted call's outcome: a healthy one closes the circuit, the
    /// threshold's failure (or a failed trial) opens it for the cool-down.
    pub fn record(&self, healthy: bool) {
        let mut state = self.lock();
        *state = match (*state, healthy) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.config.failure_threshold => State::Closed { failures: failures + 1 },
            (_, false) => State::Open {
                until: Instant::now() + self.config.cool_down,
            },
        };
    }

    /// Is the circuit open now (after a failure just recorded, say)?
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { .. })
    }

    /// Runs `call` if the circuit admits it, within the timeout; `healthy` says which of its
    /// answers show the dependency working (a card declined is the provider working).
    pub async fn call<T, E, F>(&self, call: F, healthy: impl Fn(&Result<T, E>) -> bool) -> Result<T, Guarded<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.admit().map_err(|retry_after| Guarded::Open { retry_after })?;
        match tokio::time::timeout(self.config.timeout, call).await {
            Ok(result) => {
                self.record(healthy(&result));
                result.map_err(Guarded::Failed)
            }
            Err(_) => {
                self.record(false);
                Err(Guarded::TimedOut)
            }
        }
    }

    /// Runs `call` within the timeout only: neither refused by the breaker nor moving it.
    /// For compensations (a refund, a void), which must be tried whatever the circuit says
    /// and which their callers retry.
    pub async fn timed<T, E, F>(&self, call: F) -> Result<T, Guarded<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        match tokio::time::timeout(self.config.timeout, call).await {
            Ok(result) => result.map_err(Guarded::Failed),
            Err(_) => Err(Guarded::TimedOut),
        }
    }
}

/// A load-shedding gate: at most `limit` calls at once; the others are refused at once with
/// a retry delay rather than queued without bound.
#[derive(Debug)]
pub struct Bulkhead {
    permits: tokio::sync::Semaphore,
    retry_after: Duration,
}

impl Bulkhead {
    /// A gate of `limit` concurrent calls, refusing with `retry_after`.
    pub fn new(limit: usize, retry_after: Duration) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(limit),
            retry_after,
        }
    }

    /// Runs `call` if a place is free, or refuses with the retry delay.
    pub async fn run<T, F: Future<Output = T>>(&self, call: F) -> Result<T, Duration> {
        let Ok(_permit) = self.permits.try_acquire() else {
            return Err(self.retry_after);
        };
        Ok(call.await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(cool_down_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig {
            timeout: Duration::from_millis(30),
            failure_threshold: 2,
            cool_down: Duration::from_millis(cool_down_ms),
        })
    }

    async fn fails() -> Result<(), &'static str> {
        Err("down")
    }

    async fn works() -> Result<u8, &'static str> {
        Ok(7)
    }

    #[tokio::test]
    async fn failures_open_the_circuit_and_an_open_circuit_refuses_with_the_time_left() {
        let b = breaker(10_000);
        assert_eq!(b.call(fails(), Result::is_ok).await, Err(Guarded::Failed("down")));
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.call(fails(), Result::is_ok).await, Err(Guarded::Failed("down")));
        assert_eq!(b.state(), BreakerState::Open);
        match b.call(works(), Result::is_ok).await {
            Err(Guarded::Open { retry_after }) => assert!(retry_after <= Duration::from_secs(10)),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_slow_call_times_out_and_counts_as_a_failure() {
        let b = breaker(10_000);
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<(), &str>(())
        };
        assert_eq!(b.call(slow, Result::is_ok).await, Err(Guarded::TimedOut));
        assert_eq!(b.call(fails(), Result::is_ok).await, Err(Guarded::Failed("down")));
        assert!(b.is_open());
    }

    #[tokio::test]
    async fn one_trial_after_the_cool_down_closes_the_circuit_or_opens_it_again() {
        let b = breaker(20);
        let _ = b.call(fails(), Result::is_ok).await;
        let _ = b.call(fails(), Result::is_ok).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.admit().is_ok(), "the trial is admitted");
        assert!(b.admit().is_err(), "a second caller waits for the trial");
        b.record(false);
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(b.call(works(), Result::is_ok).await, Ok(7));
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_timed_call_neither_waits_for_the_circuit_nor_moves_it() {
        let b = breaker(10_000);
        let _ = b.call(fails(), Result::is_ok).await;
        let _ = b.call(fails(), Result::is_ok).await;
        assert_eq!(b.timed(works()).await, Ok(7));
        assert_eq!(b.timed(fails()).await, Err(Guarded::Failed("down")));
        assert!(b.is_open());
    }

    #[tokio::test]
    async fn a_full_bulkhead_refuses_at_once() {
        let gate = std::sync::Arc::new(Bulkhead::new(1, Duration::from_secs(2)));
        let (hold, release) = tokio::sync::oneshot::channel::<()>();
        let inside = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.run(async { release.await.ok() }).await })
        };
        tokio::task::yield_now().await;
        while gate.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.run(async { 1 }).await, Err(Duration::from_secs(2)));
        let _ = hold.send(());
        assert!(inside.await.is_ok());
        assert_eq!(gate.run(async { 1 }).await, Ok(1));
    }
}
