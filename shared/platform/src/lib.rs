//! clinicflow's platform: everything a flow plugs into, naming no flow. The ports and their
//! adapters (DynamoDB, EventBridge, SNS, embedded SQLite, memory fakes, the sandbox payment
//! provider), the command runner, the consumers' dispatch, the SMS notifier, the status-view
//! projector, list queries, the outbox relay, resilience, failure points, sealed documents
//! (signed claims anyone can verify offline, [`sealing`]), the HTTP edge, the
//! catalog model that slices declare themselves in ([`topology::Slice`]), and the wiring
//! every runtime (Lambda, `clinicflow-local`) is built from. The flows and the catalog that
//! assembles them are in the `clinicflow` crate; this crate cannot see them.

pub mod adapters;
pub mod app;
#[cfg(feature = "aws")]
pub mod bootstrap;
mod catalog_check;
pub mod config;
pub mod domain;
pub mod events;
pub mod http;
pub mod ports;
pub mod schedule;
pub mod sealing;
pub mod telemetry;
pub mod topology;
pub mod wiring;
