//! The sandbox payment provider keeps its ledger in the store on the AWS path, so a charge
//! taken by one function's platform is voided or refunded by another's, as separate Lambda
//! processes would: nothing is shared between them but DynamoDB (here, moto). The first
//! test takes the charge and the refunds in separate OS processes (`payment-step`).

use clinicflow::adapters::sandbox::LedgerStatus;
use clinicflow::app::{Faults, Platform};
use clinicflow::config::Config;
use clinicflow::domain::Won;
use clinicflow::ports::{CardToken, ChargeRequest, PaymentError, PaymentGateway};
use clinicflow::wiring::{self, AwsSettings};
use clinicflow_tests::moto::{moto, unique};

/// The platform of one function, built as its Lambda builds it, on its own clients.
async fn function_platform(prefix: &str) -> (Platform, wiring::AwsParts) {
    let sdk = moto().await.sdk().await;
    let settings = AwsSettings::prefixed(clinicflow::catalog(), prefix);
    wiring::aws(clinicflow::catalog(), &sdk, settings, Config::default(), Faults::none())
}

fn charge(key: &str, amount: u64) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: key.into(),
        card_token: CardToken("tok_ok".into()),
        amount: Won(amount),
        reference: "01JD3M7Q0000000000000000AB".into(),
    }
}

/// Runs one payment step in a process of its own; its output line.
async fn step(args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_payment-step"))
        .args(args)
        .env("CLINICFLOW_MOTO_ENDPOINT", &moto().await.endpoint)
        .output()
        .await
        .expect("payment-step runs");
    assert!(
        out.status.success(),
        "payment-step {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_taken_in_one_process_is_refunded_once_in_others() {
    let prefix = unique("pay");
    let (_, parts) = function_platform(&prefix).await;
    parts.store.create_tables(&clinicflow::catalog().tables).await.expect("tables");

    let provider_ref = step(&["charge", &prefix, "k1", "100000"]).await;
    assert!(!provider_ref.is_empty());
    assert_eq!(
        step(&["charge", &prefix, "k1", "100000"]).await,
        provider_ref,
        "a retry of the same key in another process takes no second charge"
    );
    for key in ["refund-1", "refund-1", "refund-2"] {
        assert_eq!(step(&["refund", &prefix, &provider_ref, "100000", key]).await, "refunded");
    }
    let ledger = clinicflow::adapters::sandbox::StoredSandbox::new(
        std::sync::Arc::new(parts.store.clone()),
        clinicflow::contexts::payment::CONTEXT,
        Config::default().sandbox_slow,
    );
    let entry = ledger.entry(&provider_ref).await.expect("read").expect("in the ledger");
    assert_eq!(entry.status, LedgerStatus::Refunded);
    assert_eq!(entry.refunds, 1, "money moved back once, whatever process refunded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_taken_by_one_function_is_refunded_once_by_another() {
    let prefix = unique("pay");
    let (book, parts) = function_platform(&prefix).await;
    parts.store.create_tables(&clinicflow::catalog().tables).await.expect("tables");
    let (refund, _) = function_platform(&prefix).await;
    let (reader, reader_parts) = function_platform(&prefix).await;

    let provider_ref = book.payments.charge(&charge("k1", 100_000)).await.expect("charged");
    assert_eq!(
        refund.payments.charge(&charge("k1", 100_000)).await.expect("the same key"),
        provider_ref,
        "one key takes one charge, whichever function retries it"
    );
    refund
        .payments
        .refund(&provider_ref, Won(100_000), "refund-1")
        .await
        .expect("refunded");
    refund
        .payments
        .refund(&provider_ref, Won(100_000), "refund-1")
        .await
        .expect("again, harmless");
    reader
        .payments
        .refund(&provider_ref, Won(100_000), "refund-2")
        .await
        .expect("already refunded");

    let ledger = clinicflow::adapters::sandbox::StoredSandbox::new(
        std::sync::Arc::new(reader_parts.store.clone()),
        clinicflow::contexts::payment::CONTEXT,
        Config::default().sandbox_slow,
    );
    let entry = ledger.entry(&provider_ref).await.expect("read").expect("in the ledger");
    assert_eq!(entry.status, LedgerStatus::Refunded);
    assert_eq!(entry.refunds, 1, "money moved back once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_voided_by_one_function_frees_its_key_for_another() {
    let prefix = unique("pay");
    let (book, parts) = function_platform(&prefix).await;
    parts.store.create_tables(&clinicflow::catalog().tables).await.expect("tables");
    let (other, _) = function_platform(&prefix).await;

    let first = book.payments.charge(&charge("k2", 250_000)).await.expect("charged");
    assert!(
        matches!(other.payments.charge(&charge("k2", 500_000)).await, Err(PaymentError::Declined(_))),
        "the same key for another amount is refused"
    );
    other.payments.void(&first, "k2").await.expect("voided");
    let second = book.payments.charge(&charge("k2", 250_000)).await.expect("charged anew");
    assert_ne!(second, first);
    assert!(matches!(
        other.payments.refund(&first, Won(250_000), "r").await,
        Err(PaymentError::Declined(_))
    ));
}
