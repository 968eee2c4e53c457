//! The vaccine slice's bootstrap: one binary for every function of the flow (slots,
//! subscriptions, reservations, the waiting list, the queries, the consumers of slot
//! management and the scheduled jobs). Each is its own Lambda function whose `Handler`
//! setting names it; the runtime passes that as `_HANDLER` and the platform starts that
//! function's handler (`clinicflow::bootstrap`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    clinicflow::bootstrap::flow(&clinicflow::flows::vaccine::SLICE).await
}
