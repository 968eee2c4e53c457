//! clinicflow: a serverless, event-driven clinic platform. This crate is everything but the
//! entry points: the platform (ports and adapters, the command runner, consumers, projector,
//! notifier, HTTP edge, catalog model, wiring), which names no flow, and the flows, each a
//! [`topology::Slice`] that plugs into it, assembled into one [`catalog`].

pub mod adapters;
pub mod app;
mod catalog_check;
pub mod config;
pub mod contexts;
pub mod domain;
pub mod events;
pub mod flows;
pub mod http;
pub mod ports;
pub mod telemetry;
pub mod topology;
pub mod wiring;

use std::sync::LazyLock;

use topology::{Catalog, Slice};

/// Every slice, in the order the catalog lists their parts.
pub static SLICES: &[&Slice] = &[&flows::checkup::SLICE];

/// The function that serves the platform's public routes (the health check, the OpenAPI
/// document) until the platform has an HTTP function of its own.
pub const PUBLIC_HOST: &str = flows::checkup::faults::QUERY;

/// The catalog of the whole platform: every slice with the platform's own parts.
pub fn catalog() -> &'static Catalog {
    static CATALOG: LazyLock<Catalog> = LazyLock::new(|| Catalog::new(SLICES, PUBLIC_HOST));
    &CATALOG
}
