//! clinicflow: a serverless, event-driven clinic platform. This crate is the platform
//! ([`clinicflow_platform`], re-exported here module by module, which names no flow) with the
//! flows, each a [`topology::Slice`] in [`flows`], and the contexts they share
//! ([`contexts`]), assembled into one [`catalog`].

pub use clinicflow_platform::{adapters, app, config, domain, events, http, ports, schedule, sealing, telemetry, topology, wiring};

pub mod contexts;
pub mod flows;

use std::sync::LazyLock;

use topology::{Catalog, Slice};

/// Lists every slice once: [`SLICES`], and the same slices' parts the platform's own
/// functions need ([`Slice::platform_part`]), which the platform's bootstrap runs on.
macro_rules! slices {
    ($($slice:path),+ $(,)?) => {
        /// Every slice, in the order the catalog lists their parts.
        pub static SLICES: &[&Slice] = &[$(&$slice),+];

        /// [`SLICES`], each as the platform's own functions need it: no slice's commands,
        /// consumers or jobs, so that the platform's bootstrap links none of their code.
        pub static PLATFORM_PARTS: &[&Slice] = &[$(&$slice.platform_part()),+];
    };
}

slices!(
    flows::checkup::SLICE,
    flows::vaccine::SLICE,
    flows::hospital::SLICE,
    flows::covid::SLICE,
);

/// The whole API's OpenAPI document as committed (`docs/openapi.json`), which every catalog
/// here serves at `GET /openapi.json`: a test holds it equal to the document generated from
/// the handlers' types (`Catalog::openapi`, feature `docs`), so that no Lambda function
/// carries the generators.
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// The catalog of the whole platform: every slice with the platform's own parts.
pub fn catalog() -> &'static Catalog {
    static CATALOG: LazyLock<Catalog> = LazyLock::new(|| Catalog::new(SLICES).serving_openapi(OPENAPI_JSON));
    &CATALOG
}

/// The entry points of the Lambda bootstraps (`functions/<bootstrap>/`): one binary per
/// slice, and one for the platform's own functions, each serving the function its
/// `Handler` setting names (`_HANDLER`, [`clinicflow_platform::bootstrap`]).
#[cfg(feature = "aws")]
pub mod bootstrap {
    pub use clinicflow_platform::bootstrap::{BootstrapError, HANDLER_VARIABLE, select};

    use super::{Catalog, OPENAPI_JSON, Slice};

    /// The catalog a slice's bootstrap runs on: that slice alone with the platform's parts,
    /// so that the binary links no other flow's code, serving the whole API's document.
    pub fn catalog_of(slice: &'static Slice) -> Catalog {
        Catalog::of_flow(slice).serving_openapi(OPENAPI_JSON)
    }

    /// Runs the function of `slice` that `_HANDLER` names.
    pub async fn flow(slice: &'static Slice) -> Result<(), lambda_runtime::Error> {
        let catalog: &'static Catalog = Box::leak(Box::new(catalog_of(slice)));
        clinicflow_platform::bootstrap::run_flow(catalog, slice.name, None).await
    }

    /// [`flow`] for a slice whose functions seal documents: a function given the stack's
    /// signing key (`SIGNING_KEY_ARN`) signs with it on KMS. Only that slice's bootstrap
    /// calls this, so only its binary links the KMS client.
    #[cfg(feature = "kms")]
    pub async fn flow_sealing(slice: &'static Slice) -> Result<(), lambda_runtime::Error> {
        let catalog: &'static Catalog = Box::leak(Box::new(catalog_of(slice)));
        clinicflow_platform::bootstrap::run_flow(catalog, slice.name, Some(crate::adapters::kms::signer)).await
    }

    /// The catalog the platform's bootstrap runs on: every slice's [`Slice::platform_part`]
    /// (projections, notifications, tables) with the platform's own functions.
    pub fn platform_catalog() -> Catalog {
        Catalog::new(super::PLATFORM_PARTS).serving_openapi(OPENAPI_JSON)
    }

    /// Runs the platform function (`platform-api`, `sms-notifier`, `status-projector`,
    /// `outbox-sweeper`) that `_HANDLER` names, on [`platform_catalog`]: every slice's
    /// projections and notifications, and no slice's commands.
    pub async fn platform() -> Result<(), lambda_runtime::Error> {
        let catalog: &'static Catalog = Box::leak(Box::new(platform_catalog()));
        clinicflow_platform::bootstrap::run_platform(catalog, crate::topology::PLATFORM_BOOTSTRAP).await
    }
}
