//! Lambda entry point of `checkup-cancel`: serves its routes from the catalog (`clinicflow::catalog()`).

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    clinicflow::telemetry::init();
    let platform = Arc::new(clinicflow::wiring::from_env(clinicflow::catalog(), "checkup-cancel").await?);
    lambda_http::run(clinicflow::http::router(platform, Some("checkup-cancel"))).await
}
