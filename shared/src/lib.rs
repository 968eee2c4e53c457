//! clinicflow: a serverless, event-driven clinic platform. This crate is everything but the
//! entry points: the pure domain, the ports and their adapters, the use cases, the HTTP edge
//! and the topology that every runtime (Lambda, `clinicflow-local`) is built from.

pub mod adapters;
pub mod app;
pub mod config;
pub mod domain;
pub mod events;
pub mod http;
pub mod ports;
pub mod telemetry;
pub mod topology;
pub mod wiring;
