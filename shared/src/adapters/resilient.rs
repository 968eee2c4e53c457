//! Timeout and circuit breaker around a payment provider (the seeds' Feign + Hystrix):
//! a slow or failing provider turns into fast `CircuitOpen` errors for a cool-down, then
//! one trial call decides whether the circuit closes again.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

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

#[async_trait]
impl PaymentGateway for ResilientGateway {
    async fn charge(&self, request: &ChargeRequest) -> Result<String, PaymentError> {
        self.call(self.inner.charge(request)).await
    }

    async fn void(&self, provider_ref: &str, key: &str) -> Result<(), PaymentError> {
        // Compensation is not refused by the breaker: it must be tried, and retried by its caller.
        match tokio::time::timeout(self.config.timeout, self.inner.void(provider_ref, key)).await {
            Ok(r) => r,
            Err(_) => Err(PaymentError::Timeout),
        }
    }

    async fn refund(&self, provider_ref: &str, amount: Won, key: &str) -> Result<(), PaymentError> {
        self.call(self.inner.refund(provider_ref, amount, key)).await
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
    async fn declines_do_not_open_the_circuit() {
        let g = breaker(10_000);
        for _ in 0..5 {
            assert!(matches!(g.charge(&req("tok_declined")).await, Err(PaymentError::Declined(_))));
        }
        assert_eq!(g.state(), BreakerState::Closed);
    }
}
