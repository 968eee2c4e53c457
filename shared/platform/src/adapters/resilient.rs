//! The payment provider behind the platform's timeout and circuit breaker
//! ([`crate::app::resilience`]): a slow or failing provider turns into fast `CircuitOpen`
//! errors for a cool-down, then one trial call decides whether the circuit closes again.
//! Compensations (void, refund) are timed but never refused by the breaker.

use std::sync::Arc;

use async_trait::async_trait;

use crate::app::faults::{self, Faults};
pub use crate::app::resilience::{BreakerConfig, BreakerState};
use crate::app::resilience::{CircuitBreaker, Guarded};
use crate::domain::Won;
use crate::ports::{ChargeRequest, PaymentError, PaymentGateway};

/// A payment provider behind a timeout and a circuit breaker.
pub struct ResilientGateway {
    inner: Arc<dyn PaymentGateway>,
    breaker: CircuitBreaker,
}

impl std::fmt::Debug for ResilientGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResilientGateway").field("breaker", &self.breaker).finish()
    }
}

impl ResilientGateway {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn PaymentGateway>, config: BreakerConfig) -> Self {
        Self {
            inner,
            breaker: CircuitBreaker::new(config),
        }
    }

    /// The breaker's state now.
    pub fn state(&self) -> BreakerState {
        self.breaker.state()
    }

    async fn call<T, F>(&self, f: F) -> Result<T, PaymentError>
    where
        F: std::future::Future<Output = Result<T, PaymentError>> + Send,
    {
        // A decline is the provider working as it should.
        let healthy = |r: &Result<T, PaymentError>| matches!(r, Ok(_) | Err(PaymentError::Declined(_)));
        match self.breaker.call(f, healthy).await {
            Ok(v) => Ok(v),
            Err(Guarded::Open { retry_after }) => Err(PaymentError::CircuitOpen { retry_after }),
            // The failure that opened the circuit is already answered as an open circuit.
            Err(Guarded::TimedOut | Guarded::Failed(PaymentError::Timeout | PaymentError::Unavailable(_))) if self.breaker.is_open() => {
                Err(PaymentError::CircuitOpen {
                    retry_after: self.breaker.config().cool_down,
                })
            }
            Err(Guarded::TimedOut) => Err(PaymentError::Timeout),
            Err(Guarded::Failed(e)) => Err(e),
        }
    }

    /// A compensation (void, refund) is not refused by the breaker, nor does it move it: it
    /// must be tried, and its caller retries it; an open circuit would only exhaust the
    /// retries of a refund while the provider is already back.
    async fn compensate<F>(&self, f: F) -> Result<(), PaymentError>
    where
        F: std::future::Future<Output = Result<(), PaymentError>> + Send,
    {
        match self.breaker.timed(f).await {
            Ok(()) => Ok(()),
            Err(Guarded::Failed(e)) => Err(e),
            Err(Guarded::TimedOut | Guarded::Open { .. }) => Err(PaymentError::Timeout),
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
}

/// A provider call through a failure point: failing is the provider down; crashing is the
/// call done and its answer lost; a delay is the provider slow.
async fn provider<T>(
    faults: &Faults,
    point: &str,
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
    use std::time::Duration;

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
