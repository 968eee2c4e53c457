//! Lambda entry point of `outbox-sweeper`: on its schedule, republishes outbox events that
//! were committed but never marked published.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    clinicflow::telemetry::init();
    let platform = clinicflow::wiring::from_env(clinicflow::catalog(), "outbox-sweeper").await?;
    let grace = platform.config.outbox_grace;
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let report = clinicflow::app::relay::sweep(&platform, grace).await.map_err(|e| e.to_string())?;
        Ok::<_, Error>(serde_json::json!({"published": report.published, "failed": report.failed}))
    }))
    .await
}
