//! Lambda entry point of `checkup-book`: serves its routes from the catalog (`clinicflow::catalog()`).

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    clinicflow::telemetry::init();
    let platform = Arc::new(clinicflow::wiring::from_env(clinicflow::catalog(), "checkup-book").await?);
    lambda_http::run(clinicflow::http::router(platform, Some("checkup-book"))).await
}
