//! The hospital slice's bootstrap: one binary for every function of the flow (reception's,
//! the doctors', the examiners', the queries, and the consumers by which the three desks
//! hear each other). Each is its own Lambda function whose `Handler` setting names it; the
//! runtime passes that as `_HANDLER` and the platform starts that function's handler
//! (`clinicflow::bootstrap`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    clinicflow::bootstrap::flow(&clinicflow::flows::hospital::SLICE).await
}
