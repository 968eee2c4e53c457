//! clinicflow: a serverless, event-driven clinic platform. This crate is the platform
//! ([`clinicflow_platform`], re-exported here module by module, which names no flow) with the
//! flows, each a [`topology::Slice`] in [`flows`], and the contexts they share
//! ([`contexts`]), assembled into one [`catalog`].

pub use clinicflow_platform::{adapters, app, config, domain, events, http, ports, telemetry, topology, wiring};

pub mod contexts;
pub mod flows;

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
