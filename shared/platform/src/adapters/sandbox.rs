//! A deterministic payment provider for local runs and tests, driven by test card tokens:
//! `tok_ok` approves, `tok_declined` declines, `tok_slow` answers after a long delay,
//! `tok_down` fails as if the provider were down. It keeps a ledger so that tests can
//! check that no money is kept and nothing is refunded twice.
//!
//! Two ledgers, one set of rules:
//! - [`SandboxGateway`] keeps it in memory: the local runtime's provider, in-process like an
//!   external one. A real provider is not restarted with us: with the `failpoints` feature,
//!   [`SandboxGateway::provide`] keeps one ledger across the stacks a test starts and
//!   restarts to emulate a crash.
//! - [`StoredSandbox`] keeps it in the store (items `sandbox#…` of the payment context's
//!   table), so that on Lambda a charge taken by one function's process can be voided or
//!   refunded by another's, as with a real provider.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use crate::domain::Won;
use crate::ports::{AggregateKey, AggregateStore, AggregateWrite, ChargeRequest, PaymentError, PaymentGateway, StoreError, Transaction};

/// Where a sandbox payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerStatus {
    /// Taken.
    Captured,
    /// Released before its case existed.
    Voided,
    /// Given back.
    Refunded,
}

/// One payment in the sandbox ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Provider reference.
    pub provider_ref: String,
    /// Our reference (the case id).
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

/// What a test card token does: approve (after `slow` for `tok_slow`), decline, or fail.
async fn card(request: &ChargeRequest, slow: Duration) -> Result<(), PaymentError> {
    match request.card_token.0.as_str() {
        "tok_declined" => Err(PaymentError::Declined("card declined by issuer".into())),
        "tok_down" => Err(PaymentError::Unavailable("sandbox provider is down".into())),
        "tok_slow" => {
            tokio::time::sleep(slow).await;
            Ok(())
        }
        "tok_ok" => Ok(()),
        _ => Err(PaymentError::Declined("unknown card token".into())),
    }
}

/// A repeat of a charge must be for the same amount, as with a real provider. (The
/// reference is the case id, which a retried request mints anew; it is not compared.)
fn repeat_of(existing: &LedgerEntry, request: &ChargeRequest) -> Result<String, PaymentError> {
    if existing.amount == request.amount {
        Ok(existing.provider_ref.clone())
    } else {
        Err(PaymentError::Declined("idempotency key reused for a different charge".into()))
    }
}

/// What a refund does to an entry: `Some` the entry refunded, `None` nothing (already
/// refunded), or a refusal.
fn refunded(entry: &LedgerEntry, amount: Won) -> Result<Option<LedgerEntry>, PaymentError> {
    match entry.status {
        LedgerStatus::Captured if entry.amount == amount => Ok(Some(LedgerEntry {
            status: LedgerStatus::Refunded,
            refunds: entry.refunds + 1,
            ..entry.clone()
        })),
        LedgerStatus::Refunded => Ok(None),
        _ => Err(PaymentError::Declined(format!("payment {} cannot be refunded", entry.provider_ref))),
    }
}

#[async_trait]
impl PaymentGateway for SandboxGateway {
    async fn charge(&self, request: &ChargeRequest) -> Result<String, PaymentError> {
        card(request, self.slow).await?;
        let mut ledger = self.ledger();
        if let Some(existing) = ledger.by_key.get(&request.idempotency_key).and_then(|r| ledger.by_ref.get(r)) {
            return repeat_of(existing, request);
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
            Some(e) => {
                if let Some(after) = refunded(e, amount)? {
                    *e = after;
                }
            }
            None => return Err(PaymentError::Declined(format!("unknown payment {provider_ref}"))),
        }
        ledger.by_key.insert(key, provider_ref.to_owned());
        Ok(())
    }
}

/// The context whose table holds the stored ledger: the payment context's.
pub const LEDGER_CONTEXT: &str = "payment";

/// The sandbox provider with its ledger in the store: `sandbox#<provider ref>` holds an
/// entry, `sandbox-key#<key>` the charge an idempotency key took, `sandbox-refund#<key>`
/// a refund done. Each change is one conditional transaction, so concurrent calls with one
/// key charge once and refund once, whichever process makes them.
#[derive(Clone)]
pub struct StoredSandbox {
    store: Arc<dyn AggregateStore>,
    context: &'static str,
    slow: Duration,
}

impl std::fmt::Debug for StoredSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSandbox")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// Which charge an idempotency key took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeyRecord {
    provider_ref: String,
}

fn unavailable(e: StoreError) -> PaymentError {
    PaymentError::Unavailable(format!("sandbox ledger: {e}"))
}

/// How often a ledger change is tried again after a concurrent one won.
const LEDGER_RACES: usize = 5;

impl StoredSandbox {
    /// A sandbox whose ledger is kept in `context`'s table of `store`.
    pub fn new(store: Arc<dyn AggregateStore>, context: &'static str, slow: Duration) -> Self {
        Self { store, context, slow }
    }

    fn key(&self, id: String) -> AggregateKey {
        AggregateKey::new(self.context, id)
    }

    async fn read<T: serde::de::DeserializeOwned>(&self, id: String) -> Result<(Option<T>, u64), PaymentError> {
        match self.store.load(&self.key(id)).await.map_err(unavailable)? {
            None => Ok((None, 0)),
            Some(stored) => {
                let value = serde_json::from_value(stored.state).map_err(|e| PaymentError::Unavailable(format!("sandbox ledger: {e}")))?;
                Ok((Some(value), stored.version))
            }
        }
    }

    fn write<T: Serialize>(&self, id: String, version: u64, value: &T) -> Result<AggregateWrite, PaymentError> {
        Ok(AggregateWrite {
            key: self.key(id),
            expected_version: version,
            new_version: version + 1,
            state: serde_json::to_value(value).map_err(|e| PaymentError::Unavailable(format!("sandbox ledger: {e}")))?,
        })
    }

    /// One entry of the ledger, as the store holds it now.
    pub async fn entry(&self, provider_ref: &str) -> Result<Option<LedgerEntry>, PaymentError> {
        Ok(self.read::<LedgerEntry>(format!("sandbox#{provider_ref}")).await?.0)
    }

    /// Commits `writes`; `Ok(false)` when a concurrent change won (read again and retry).
    async fn commit(&self, writes: Vec<AggregateWrite>) -> Result<bool, PaymentError> {
        match self
            .store
            .commit(Transaction {
                writes,
                ..Default::default()
            })
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::VersionConflict(_)) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl PaymentGateway for StoredSandbox {
    async fn charge(&self, request: &ChargeRequest) -> Result<String, PaymentError> {
        card(request, self.slow).await?;
        let key_id = format!("sandbox-key#{}", request.idempotency_key);
        for _ in 0..LEDGER_RACES {
            let (taken, key_version) = self.read::<KeyRecord>(key_id.clone()).await?;
            if let Some(taken) = &taken
                && let Some(existing) = self.entry(&taken.provider_ref).await?
                && existing.status != LedgerStatus::Voided
            {
                return repeat_of(&existing, request);
            }
            // A new charge, or the key's charge was voided: a voided charge frees its key.
            let provider_ref = format!("sbx_{}", ulid::Ulid::new());
            let entry = LedgerEntry {
                provider_ref: provider_ref.clone(),
                reference: request.reference.clone(),
                amount: request.amount,
                status: LedgerStatus::Captured,
                refunds: 0,
            };
            let writes = vec![
                self.write(format!("sandbox#{provider_ref}"), 0, &entry)?,
                self.write(
                    key_id.clone(),
                    key_version,
                    &KeyRecord {
                        provider_ref: provider_ref.clone(),
                    },
                )?,
            ];
            if self.commit(writes).await? {
                return Ok(provider_ref);
            }
        }
        Err(PaymentError::Unavailable(
            "sandbox ledger: too many concurrent charges with one key".into(),
        ))
    }

    async fn void(&self, provider_ref: &str, _idempotency_key: &str) -> Result<(), PaymentError> {
        for _ in 0..LEDGER_RACES {
            let (entry, version) = self.read::<LedgerEntry>(format!("sandbox#{provider_ref}")).await?;
            let Some(entry) = entry else {
                return Err(PaymentError::Declined(format!("unknown payment {provider_ref}")));
            };
            if entry.status != LedgerStatus::Captured {
                return Ok(());
            }
            let voided = LedgerEntry {
                status: LedgerStatus::Voided,
                ..entry
            };
            if self
                .commit(vec![self.write(format!("sandbox#{provider_ref}"), version, &voided)?])
                .await?
            {
                return Ok(());
            }
        }
        Err(PaymentError::Unavailable("sandbox ledger: too many concurrent changes".into()))
    }

    async fn refund(&self, provider_ref: &str, amount: Won, idempotency_key: &str) -> Result<(), PaymentError> {
        let done_id = format!("sandbox-refund#{idempotency_key}");
        for _ in 0..LEDGER_RACES {
            if self.read::<KeyRecord>(done_id.clone()).await?.0.is_some() {
                return Ok(());
            }
            let (entry, version) = self.read::<LedgerEntry>(format!("sandbox#{provider_ref}")).await?;
            let Some(entry) = entry else {
                return Err(PaymentError::Declined(format!("unknown payment {provider_ref}")));
            };
            let Some(after) = refunded(&entry, amount)? else {
                return Ok(());
            };
            let writes = vec![
                self.write(format!("sandbox#{provider_ref}"), version, &after)?,
                self.write(
                    done_id.clone(),
                    0,
                    &KeyRecord {
                        provider_ref: provider_ref.to_owned(),
                    },
                )?,
            ];
            if self.commit(writes).await? {
                return Ok(());
            }
        }
        Err(PaymentError::Unavailable("sandbox ledger: too many concurrent refunds".into()))
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

    fn stored() -> (StoredSandbox, StoredSandbox) {
        let store: Arc<dyn AggregateStore> = Arc::new(crate::adapters::memory::Memory::new());
        let a = StoredSandbox::new(store.clone(), "payment", Duration::from_secs(5));
        let b = StoredSandbox::new(store, "payment", Duration::from_secs(5));
        (a, b)
    }

    #[tokio::test]
    async fn a_stored_charge_is_refunded_once_by_another_instance() {
        let (taker, refunder) = stored();
        let r = taker.charge(&req("tok_ok", "k1")).await.expect("charged");
        assert_eq!(
            refunder.charge(&req("tok_ok", "k1")).await.expect("replayed"),
            r,
            "one key, one charge"
        );
        refunder.refund(&r, Won(1000), "e1").await.expect("refund");
        refunder.refund(&r, Won(1000), "e1").await.expect("again");
        taker.refund(&r, Won(1000), "e2").await.expect("another key, already refunded");
        let entry = taker.entry(&r).await.expect("read").expect("kept");
        assert_eq!((entry.status, entry.refunds), (LedgerStatus::Refunded, 1));
    }

    #[tokio::test]
    async fn a_stored_void_frees_the_key_and_a_different_amount_is_refused() {
        let (a, b) = stored();
        let first = a.charge(&req("tok_ok", "k1")).await.expect("charged");
        let mut other = req("tok_ok", "k1");
        other.amount = Won(2000);
        assert!(matches!(b.charge(&other).await, Err(PaymentError::Declined(_))));
        b.void(&first, "k1").await.expect("voided");
        let second = a.charge(&req("tok_ok", "k1")).await.expect("charged anew");
        assert_ne!(second, first);
        assert!(matches!(a.refund(&first, Won(1000), "e1").await, Err(PaymentError::Declined(_))));
        assert!(matches!(a.charge(&req("tok_declined", "k9")).await, Err(PaymentError::Declined(_))));
    }

    #[tokio::test]
    async fn concurrent_charges_with_one_key_take_one_payment() {
        let (a, b) = stored();
        let charges = (0..8).map(|i| {
            let g = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move { g.charge(&req("tok_ok", "same")).await }
        });
        let refs: std::collections::BTreeSet<String> = futures::future::join_all(charges)
            .await
            .into_iter()
            .map(|r| r.expect("charged"))
            .collect();
        assert_eq!(refs.len(), 1);
    }
}
