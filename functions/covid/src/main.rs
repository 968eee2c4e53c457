//! The COVID testing slice's bootstrap: one binary for every function of the flow (the
//! health centre's, the test sites', the transfer centre's and the isolation centres'
//! commands, the queries, the public verifier, and the consumers by which the centres hear
//! each other). Each is its own Lambda function whose `Handler` setting names it; the
//! runtime passes that as `_HANDLER` and the platform starts that function's handler
//! (`clinicflow::bootstrap`). Built with feature `kms`: `covid-certify` seals certificates
//! with the stack's KMS key (`flow_sealing`), which no other bootstrap links.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    clinicflow::bootstrap::flow_sealing(&clinicflow::flows::covid::SLICE).await
}
