//! Lambda entry point of `sms-notifier`: consumes the events its rules in the catalog route to it.

use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    clinicflow::telemetry::init();
    let platform = clinicflow::wiring::from_env(clinicflow::catalog(), "sms-notifier").await?;
    run(service_fn(|event| {
        clinicflow::wiring::handle_eventbridge(&platform, "sms-notifier", event)
    }))
    .await
}
