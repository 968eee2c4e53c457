//! A deterministic payment provider for local runs and tests, driven by test card tokens:
//! `tok_ok` approves, `tok_declined` declines, `tok_slow` answers after a long delay,
//! `tok_down` fails as if the provider were down. It keeps a ledger so that tests can
//! check that no money is kept and nothing is refunded twice.
//!
//! The ledger lives in memory. A real provider is not restarted with us: with the
//! `failpoints` feature, [`SandboxGateway::provide`] keeps one ledger across the stacks a
//! test starts and restarts to emulate a crash.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Won;
use crate::ports::{ChargeRequest, PaymentError, PaymentGateway};

/// Where a sandbox payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerStatus {
    /// Taken.
    Captured,
    /// Released before a booking existed.
    Voided,
    /// Given back.
    Refunded,
}

/// One payment in the sandbox ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Provider reference.
    pub provider_ref: String,
    /// Our reference (booking id).
    pub reference: String,
    /// Amount.
    pub amount: Won,
    /// Status.
    pub status: LedgerStatus,
    /// How many refund calls moved money (must never exceed 1).
    pub refunds: u32,
}

#[derive(Debug, Default)]
struct Ledger {
    by_ref: HashMap<String, LedgerEntry>,
    by_key: HashMap<String, String>,
    seq: u64,
}

#[cfg(feature = "failpoints")]
tokio::task_local! {
    static PROVIDER: Arc<Mutex<Ledger>>;
}

fn provided_ledger() -> Arc<Mutex<Ledger>> {
    #[cfg(feature = "failpoints")]
    if let Ok(ledger) = PROVIDER.try_with(Arc::clone) {
        return ledger;
    }
    Arc::default()
}

/// The sandbox provider.
#[derive(Debug, Clone)]
pub struct SandboxGateway {
    ledger: Arc<Mutex<Ledger>>,
    slow: Duration,
}

impl Default for SandboxGateway {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl SandboxGateway {
    /// A sandbox whose `tok_slow` answers after `slow`; inside [`SandboxGateway::provide`],
    /// on the providing sandbox's ledger.
    pub fn new(slow: Duration) -> Self {
        Self {
            ledger: provided_ledger(),
            slow,
        }
    }

    /// Runs `f` so that every sandbox created in it, synchronously in this task (by the
    /// local stacks it starts and restarts), shares this sandbox's ledger.
    #[cfg(feature = "failpoints")]
    pub async fn provide<F: std::future::Future>(&self, f: F) -> F::Output {
        PROVIDER.scope(self.ledger.clone(), f).await
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the ledger.
    pub fn entries(&self) -> Vec<LedgerEntry> {
        let mut v: Vec<_> = self.ledger().by_ref.values().cloned().collect();
        v.sort_by(|a, b| a.provider_ref.cmp(&b.provider_ref));
        v
    }

    /// Money currently kept (captured and neither voided nor refunded).
    pub fn kept(&self) -> Won {
        Won(self
            .ledger()
            .by_ref
            .values()
            .filter(|e| e.status == LedgerStatus::Captured)
            .map(|e| e.amount.0)
            .sum())
    }
}

#[async_trait]
impl PaymentGateway for SandboxGateway {
    async fn charge(&self, request: &ChargeRequest) -> Result<String, PaymentError> {
        match request.card_token.0.as_str() {
            "tok_declined" => return Err(PaymentError::Declined("card declined by issuer".into())),
            "tok_down" => return Err(PaymentError::Unavailable("sandbox provider is down".into())),
            "tok_slow" => {
                tokio::time::sleep(self.slow).await;
            }
            "tok_ok" => {}
            _ => return Err(PaymentError::Declined("unknown card token".into())),
        }
        let mut ledger = self.ledger();
        if let Some(existing) = ledger.by_key.get(&request.idempotency_key) {
            // Like a real provider: a repeat must charge the same amount. (The reference is
            // the booking id, which a retried request mints anew; it is not compared.)
            let same = ledger.by_ref.get(existing).is_some_and(|e| e.amount == request.amount);
            if !same {
                return Err(PaymentError::Declined("idempotency key reused for a different charge".into()));
            }
            return Ok(existing.clone());
        }
        ledger.seq += 1;
        let provider_ref = format!("sbx_{:08}", ledger.seq);
        ledger.by_key.insert(request.idempotency_key.clone(), provider_ref.clone());
        ledger.by_ref.insert(
            provider_ref.clone(),
            LedgerEntry {
                provider_ref: provider_ref.clone(),
                reference: request.reference.clone(),
                amount: request.amount,
                status: LedgerStatus::Captured,
                refunds: 0,
            },
        );
        Ok(provider_ref)
    }

    async fn void(&self, provider_ref: &str, _idempotency_key: &str) -> Result<(), PaymentError> {
        let mut ledger = self.ledger();
        match ledger.by_ref.get_mut(provider_ref) {
            Some(e) if e.status == LedgerStatus::Captured => {
                e.status = LedgerStatus::Voided;
                // A voided charge frees its idempotency key: the next charge with it is new.
                ledger.by_key.retain(|_, r| r != provider_ref);
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(PaymentError::Declined(format!("unknown payment {provider_ref}"))),
        }
    }

    async fn refund(&self, provider_ref: &str, amount: Won, idempotency_key: &str) -> Result<(), PaymentError> {
        let mut ledger = self.ledger();
        let key = format!("refund:{idempotency_key}");
        if ledger.by_key.contains_key(&key) {
            return Ok(());
        }
        match ledger.by_ref.get_mut(provider_ref) {
            Some(e) if e.status == LedgerStatus::Captured && e.amount == amount => {
                e.status = LedgerStatus::Refunded;
                e.refunds += 1;
            }
            Some(e) if e.status == LedgerStatus::Refunded => {}
            Some(_) => return Err(PaymentError::Declined(format!("payment {provider_ref} cannot be refunded"))),
            None => return Err(PaymentError::Declined(format!("unknown payment {provider_ref}"))),
        }
        ledger.by_key.insert(key, provider_ref.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::CardToken;

    fn req(token: &str, key: &str) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: key.into(),
            card_token: CardToken(token.into()),
            amount: Won(1000),
            reference: "b".into(),
        }
    }

    #[tokio::test]
    async fn test_tokens_approve_decline_and_fail() {
        let g = SandboxGateway::default();
        assert!(g.charge(&req("tok_ok", "k1")).await.is_ok());
        assert!(matches!(g.charge(&req("tok_declined", "k2")).await, Err(PaymentError::Declined(_))));
        assert!(matches!(g.charge(&req("tok_down", "k3")).await, Err(PaymentError::Unavailable(_))));
        assert_eq!(g.kept(), Won(1000));
    }

    #[tokio::test]
    async fn the_same_key_charges_once_until_the_charge_is_voided() {
        let g = SandboxGateway::default();
        let first = g.charge(&req("tok_ok", "k1")).await.expect("charged");
        assert_eq!(g.charge(&req("tok_ok", "k1")).await.expect("replayed"), first);
        g.void(&first, "k1").await.expect("voided");
        let second = g.charge(&req("tok_ok", "k1")).await.expect("charged anew");
        assert_ne!(second, first);
        assert_eq!(g.kept(), Won(1000));
    }

    #[tokio::test]
    async fn the_same_refund_key_refunds_once() {
        let g = SandboxGateway::default();
        let r = g.charge(&req("tok_ok", "k1")).await.expect("charged");
        g.refund(&r, Won(1000), "e1").await.expect("refund");
        g.refund(&r, Won(1000), "e1").await.expect("again");
        assert_eq!(g.entries()[0].refunds, 1);
        assert_eq!(g.kept(), Won(0));
    }
}
