//! Adapters, named after their technology:
//! - `embedded` (feature `embedded`): SQLite store, views, local bus and SMS outbox;
//! - `aws`, `dynamodb`, `eventbridge`, `sns` (feature `aws`): the SDK configuration and
//!   the DynamoDB store, the EventBridge publisher and the SNS SMS sender;
//! - `memory`: the store, views, a recording publisher and SMS channel in plain memory,
//!   with the embedded store's semantics (benchmarks and dependency-free tests);
//! - `keyfile`: the local signing key of sealed documents, in the data directory; `kms`
//!   (feature `kms`): a KMS asymmetric key as the signing key;
//! - `sandbox`: a deterministic payment provider; `resilient`: timeout and circuit breaker
//!   around any payment provider.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod keyfile;
#[cfg(feature = "kms")]
pub mod kms;
pub mod memory;
pub mod resilient;
pub mod sandbox;
#[cfg(feature = "aws")]
pub mod sns;
