//! Lambda entry point of `payment-refund`: consumes the events its rules in the catalog route to it.

use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    clinicflow::telemetry::init();
    let platform = clinicflow::wiring::from_env(clinicflow::catalog(), "payment-refund").await?;
    run(service_fn(|event| {
        clinicflow::wiring::handle_eventbridge(&platform, "payment-refund", event)
    }))
    .await
}
