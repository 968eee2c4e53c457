//! Lambda entry point of `centre-reject`: serves its routes from the catalog (`clinicflow::catalog()`).

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    clinicflow::telemetry::init();
    let platform = Arc::new(clinicflow::wiring::from_env(clinicflow::catalog(), "centre-reject").await?);
    lambda_http::run(clinicflow::http::router(platform, Some("centre-reject"))).await
}
