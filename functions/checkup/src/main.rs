//! The check-up slice's bootstrap: one binary for every function of the flow (booking,
//! cancelling, the status queries, the centre's decisions and the flow's consumers). Each
//! is its own Lambda function whose `Handler` setting names it; the runtime passes that as
//! `_HANDLER` and the platform starts that function's handler (`clinicflow::bootstrap`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    clinicflow::bootstrap::flow(&clinicflow::flows::checkup::SLICE).await
}
