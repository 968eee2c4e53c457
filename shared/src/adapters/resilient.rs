//! Timeout and circuit breaker around a payment provider (the seeds' Feign + Hystrix):
//! a slow or failing provider turns into fast `CircuitOpen` errors for a cool-down, then
//! one trial call decides whether the circuit closes again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::app::faults::{self, Faults};
use crate::domain::Won;
use crate::ports::{ChargeRequest, PaymentError, PaymentGateway};

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Longest wait for the provider.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// One trial call is in flight.
    HalfOpen,
}

/// A payment provider behind a timeout and a circuit breaker.
pub struct ResilientGateway {
    inner: Arc<dyn PaymentGateway>,
    config: BreakerConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for ResilientGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientGateway")
            .field("config", &self.config)
            .field("state", &self.state())
            .finish()
    }
}

impl ResilientGateway {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn PaymentGateway>, config: BreakerConfig) -> Self {
        Self {
            inner,
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
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

    /// Admits a call, or says how long until the circuit may close.
    fn admit(&self) -> Result<(), PaymentError> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    *state = State::HalfOpen;
                    Ok(())
                } else {
                    Err(PaymentError::CircuitOpen { retry_after: until - now })
                }
            }
            State::HalfOpen => Err(PaymentError::CircuitOpen {
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    fn record(&self, healthy: bool) {
        let mut state = self.lock();
        *state = match (*state, healthy) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.config.failure_threshold => State::Closed { failures: failures + 1 },
            (_, false) => State::Open {
                until: Instant::now() + self.config.cool_down,
            },
        };
    }

    async fn call<T, F>(&self, f: F) -> Result<T, PaymentError>
    where
        F: std::future::Future<Output = Result<T, PaymentError>> + Send,
    {
        self.admit()?;
        let result = match tokio::time::timeout(self.config.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(PaymentError::Timeout),
        };
        // A decline is the provider working as it should.
        self.record(matches!(result, Ok(_) | Err(PaymentError::Declined(_))));
        match result {
            Err(PaymentError::Timeout | PaymentError::Unavailable(_)) if matches!(*self.lock(), State::Open { .. }) => {
                Err(PaymentError::CircuitOpen {
                    retry_after: self.config.cool_down,
                })
            }
            other => other,
        }
    }
}

impl ResilientGateway {
    /// [`PaymentGateway::charge`], with the [`faults::PAYMENT_CHARGE`] point acting where
    /// the provider would: inside the timeout and counted by the breaker.
    pub async fn charge_with_faults(&self, faults: &Faults, request: &ChargeRequest) -> Result<String, PaymentError> {
        self.call(provider(faults, faults::PAYMENT_CHARGE, self.inner.charge(request)))
            .await
    }

    /// [`PaymentGateway::refund`], with the [`faults::PAYMENT_REFUND_CALL`] point acting
    /// where the provider would.
    pub async fn refund_with_faults(&self, faults: &Faults, provider_ref: &str, amount: Won, key: &str) -> Result<(), PaymentError> {
        self.compensate(provider(
            faults,
            faults::PAYMENT_REFUND_CALL,
            self.inner.refund(provider_ref, amount, key),
        ))
        .await
    }

    /// A compensation (void, refund) is not refused by the breaker, nor does it move it: it
    /// must be tried, and its caller retries it; an open circuit would only exhaust the
    /// retries of a refund while the provider is already back.
    async fn compensate<F>(&self, f: F) -> Result<(), PaymentError>
    where
        F: std::future::Future<Output = Result<(), PaymentError>> + Send,
    {
        match tokio::time::timeout(self.config.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(PaymentError::Timeout),
        }
    }
}

/// A provider call through a failure point: failing is the provider down; crashing is the
/// call done and its answer lost; a delay is the provider slow.
async fn provider<T>(
    faults: &Faults,
    point: &'static str,
    call: impl std::future::Future<Output = Result<T, PaymentError>> + Send,
) -> Result<T, PaymentError> {
    match faults.check(point).await {
        Ok(()) => call.await,
        Err(injected) if injected.crash => {
            call.await?;
            Err(PaymentError::Timeout)
        }
        Err(injected) => Err(PaymentError::Unavailable(injected.to_string())),
    }
}

#[async_trait]
impl PaymentGateway for ResilientGateway {
    async fn charge(&self, request: &ChargeRequest) -> Result<String, PaymentError> {
        self.call(self.inner.charge(request)).await
    }

    async fn void(&self, provider_ref: &str, key: &str) -> Result<(), PaymentError> {
        self.compensate(self.inner.void(provider_ref, key)).await
    }

    async fn refund(&self, provider_ref: &str, amount: Won, key: &str) -> Result<(), PaymentError> {
        self.compensate(self.inner.refund(provider_ref, amount, key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sandbox::SandboxGateway;
    use crate::ports::CardToken;

    fn req(token: &str) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: ulid::Ulid::new().to_string(),
            card_token: CardToken(token.into()),
            amount: Won(1),
            reference: "b".into(),
        }
    }

    fn breaker(cool_down_ms: u64) -> ResilientGateway {
        ResilientGateway::new(
            Arc::new(SandboxGateway::new(Duration::from_secs(5))),
            BreakerConfig {
                timeout: Duration::from_millis(50),
                failure_threshold: 2,
                cool_down: Duration::from_millis(cool_down_ms),
            },
        )
    }

    #[tokio::test]
    async fn a_slow_provider_times_out_then_the_circuit_opens_and_fails_fast() {
        let g = breaker(10_000);
        assert_eq!(g.charge(&req("tok_slow")).await, Err(PaymentError::Timeout));
        assert!(matches!(g.charge(&req("tok_slow")).await, Err(PaymentError::CircuitOpen { .. })));
        assert_eq!(g.state(), BreakerState::Open);
        assert!(matches!(g.charge(&req("tok_ok")).await, Err(PaymentError::CircuitOpen { .. })));
    }

    #[tokio::test]
    async fn the_circuit_closes_again_after_a_successful_trial() {
        let g = breaker(20);
        let _ = g.charge(&req("tok_down")).await;
        let _ = g.charge(&req("tok_down")).await;
        assert_eq!(g.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(g.charge(&req("tok_ok")).await.is_ok());
        assert_eq!(g.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn a_refund_is_tried_while_the_circuit_is_open_and_leaves_it_as_it_was() {
        let g = breaker(10_000);
        let paid = g.charge(&req("tok_ok")).await.expect("charged");
        let _ = g.charge(&req("tok_down")).await;
        let _ = g.charge(&req("tok_down")).await;
        assert_eq!(g.state(), BreakerState::Open);
        assert_eq!(g.refund(&paid, Won(1), "r1").await, Ok(()));
        assert_eq!(g.state(), BreakerState::Open);
    }

    #[tokio::test]
    async fn declines_do_not_open_the_circuit() {
        let g = breaker(10_000);
        for _ in 0..5 {
            assert!(matches!(g.charge(&req("tok_declined")).await, Err(PaymentError::Declined(_))));
        }
        assert_eq!(g.state(), BreakerState::Closed);
    }
}
