//! The AWS SDK configuration that every AWS adapter of a process shares: one HTTP client
//! (rustls with ring, so the functions cross-build for arm64 without a C toolchain for
//! aws-lc), bounded timeouts, standard retries, and an optional endpoint for emulators
//! such as moto.
//!
//! Region and credentials come from the environment, as the Lambda runtime provides them
//! (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). The
//! full default chain (profiles, SSO, STS web identity, IMDS) is left out on purpose: a
//! function never needs it, and it would double the size of every function's zip.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Where the AWS clients point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsTarget {
    /// An endpoint for every service (a moto server), or `None` for the real AWS endpoints.
    pub endpoint: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Builds the SDK configuration once per process. Against an emulator endpoint, a missing
/// region defaults to `us-east-1` and missing credentials to placeholders.
pub async fn sdk_config(target: &AwsTarget) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(15))
        .build();
    let emulated = target.endpoint.is_some();
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| emulated.then(|| "us-east-1".to_owned()));
    let credentials = if env("AWS_ACCESS_KEY_ID").is_none() && emulated {
        SharedCredentialsProvider::new(Credentials::new("clinicflow", "clinicflow", None, None, "clinicflow-emulator"))
    } else {
        SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new())
    };
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard())
        .credentials_provider(credentials);
    if let Some(region) = region {
        builder = builder.region(Region::new(region));
    }
    if let Some(url) = &target.endpoint {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

/// A short, data-free name of a failure: the service's error code, or the kind of failure.
pub(crate) fn error_code<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> String {
    match e {
        SdkError::ServiceError(_) => match (e.code(), e.raw_response().map(|r| r.status().as_u16())) {
            (Some(code), _) => code.to_owned(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => "ServiceError".to_owned(),
        },
        SdkError::TimeoutError(_) => "Timeout".to_owned(),
        SdkError::DispatchFailure(_) => "DispatchFailure".to_owned(),
        SdkError::ResponseError(_) => "ResponseError".to_owned(),
        SdkError::ConstructionFailure(_) => "ConstructionFailure".to_owned(),
        _ => "Unknown".to_owned(),
    }
}
