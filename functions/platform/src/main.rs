//! The platform's bootstrap: one binary for the platform's own functions, the SMS notifier,
//! the status-view projector and the outbox sweeper, on the whole catalog (every slice's
//! notifications and projections). Each is its own Lambda function whose `Handler` setting
//! names it (`_HANDLER`, `clinicflow::bootstrap`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    clinicflow::bootstrap::platform().await
}
