//! The benchmarks' floor: the smallest Lambda function a Rust team would deploy with the
//! same stack as clinicflow's functions. It builds the same SDK configuration and the same
//! three clients (DynamoDB, EventBridge, SNS) during init, then echoes every event; it
//! does nothing else. Built with the same release profile and the same cargo-lambda
//! command as the functions, so `clinicflow-bench` can report each function's cold start,
//! zip size and peak memory as a ratio to this one's.

use clinicflow::adapters::aws::{AwsTarget, sdk_config};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let target = AwsTarget {
        endpoint: std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.is_empty()),
    };
    let sdk = sdk_config(&target).await;
    let clients = (
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_eventbridge::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
    );
    let clients = &clients;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Keep the clients alive (and in the binary) for as long as the function runs.
        std::hint::black_box(clients);
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
