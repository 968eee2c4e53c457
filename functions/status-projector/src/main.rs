//! Lambda entry point of `status-projector`: folds the context tables' stream batches into
//! the status views, reporting the first record it could not project so the stream
//! retries from there (`ReportBatchItemFailures`).

use lambda_runtime::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    clinicflow::telemetry::init();
    let platform = clinicflow::wiring::from_env(clinicflow::catalog(), "status-projector").await?;
    run(service_fn(|event| clinicflow::wiring::handle_stream(&platform, event))).await
}
