//! One step of a payment, in a process of its own, as one Lambda function takes it: builds
//! the function's platform on the AWS adapters (moto at `CLINICFLOW_MOTO_ENDPOINT`) and
//! charges or refunds through its payment provider, whose ledger is in the store.
//! `tests/tests/payment_on_moto.rs` runs it once per step, so that nothing but the store is
//! shared between the charge and the refund.
//!
//!   payment-step charge <prefix> <idempotency key> <amount>         prints the provider ref
//!   payment-step refund <prefix> <provider ref> <amount> <refund key>   prints "refunded"

use std::process::ExitCode;

use clinicflow::app::Faults;
use clinicflow::config::Config;
use clinicflow::domain::Won;
use clinicflow::ports::{CardToken, ChargeRequest, PaymentGateway};
use clinicflow::wiring::{self, AwsSettings};
use clinicflow_tests::moto::moto;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(step), Some(prefix)) = (args.first(), args.get(1)) else {
        eprintln!("usage: payment-step charge|refund <prefix> ...");
        return ExitCode::from(2);
    };
    let amount = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok()).map(Won);
    let sdk = moto().await.sdk().await;
    let settings = AwsSettings::prefixed(clinicflow::catalog(), prefix);
    let (platform, _parts) = wiring::aws(clinicflow::catalog(), &sdk, settings, Config::default(), Faults::none());
    let outcome = match (step.as_str(), args.get(2), amount(3)) {
        ("charge", Some(key), Some(amount)) => platform
            .payments
            .charge(&ChargeRequest {
                idempotency_key: key.clone(),
                card_token: CardToken("tok_ok".into()),
                amount,
                reference: "01JD3M7Q0000000000000000AB".into(),
            })
            .await
            .map_err(|e| e.to_string()),
        ("refund", Some(provider_ref), Some(amount)) => match args.get(4) {
            Some(key) => platform
                .payments
                .refund(provider_ref, amount, key)
                .await
                .map(|()| "refunded".to_owned())
                .map_err(|e| e.to_string()),
            None => Err("refund wants a refund key".to_owned()),
        },
        _ => Err(format!("unknown step or arguments: {args:?}")),
    };
    match outcome {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("payment-step {step}: {why}");
            ExitCode::FAILURE
        }
    }
}
