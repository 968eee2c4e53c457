//! The entry point of every Lambda bootstrap. A bootstrap is one binary serving several
//! functions (a slice's, or the platform's own): each is still its own Lambda function, with
//! its own role, alias and alarms, whose `Handler` setting names it; the runtime passes that
//! setting to the process as `_HANDLER`, and [`run_flow`] or [`run_platform`] starts that function's handler on the
//! runtime loop its trigger needs. An unknown or missing handler is an init error naming it
//! and the functions the bootstrap serves.

use std::sync::Arc;

use lambda_runtime::service_fn;

use crate::topology::{Catalog, Function, OUTBOX_SWEEPER, Trigger};

/// The variable the Lambda runtime sets from the function's `Handler` setting.
pub const HANDLER_VARIABLE: &str = "_HANDLER";

/// Why a bootstrap cannot tell which function it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// `_HANDLER` is not set (or empty).
    #[error(
        "{HANDLER_VARIABLE} is not set: the function's Handler setting must name one of the functions bootstrap {bootstrap} serves: {served}"
    )]
    NoHandler {
        /// The bootstrap.
        bootstrap: String,
        /// The functions it serves, comma-separated.
        served: String,
    },
    /// `_HANDLER` names no function of this bootstrap.
    #[error("unknown handler {handler:?}: bootstrap {bootstrap} serves {served}")]
    Unknown {
        /// What `_HANDLER` says.
        handler: String,
        /// The bootstrap.
        bootstrap: String,
        /// The functions it serves, comma-separated.
        served: String,
    },
    /// A function a flow's bootstrap does not run (the stream projector is the platform's).
    #[error("function {0} is the platform's, not a flow's: its Handler belongs to the platform's bootstrap")]
    NotAFlowFunction(String),
    /// A scheduled function that is neither the outbox sweeper nor a slice's job.
    #[error("function {0} runs on a schedule, and is neither the outbox sweeper nor a job of its slice")]
    NoScheduledHandler(String),
}

/// The function of `bootstrap` that `handler` (the `_HANDLER` value) names.
pub fn select<'a>(catalog: &'a Catalog, bootstrap: &str, handler: Option<&str>) -> Result<&'a Function, BootstrapError> {
    let served = || catalog.served_by(bootstrap).map(|f| f.name).collect::<Vec<_>>().join(", ");
    let handler = handler.map(str::trim).filter(|h| !h.is_empty());
    let Some(handler) = handler else {
        return Err(BootstrapError::NoHandler {
            bootstrap: bootstrap.to_owned(),
            served: served(),
        });
    };
    let Some(function) = catalog
        .functions
        .iter()
        .find(|f| f.name == handler && catalog.bootstrap_of(f.name) == bootstrap)
    else {
        return Err(BootstrapError::Unknown {
            handler: handler.to_owned(),
            bootstrap: bootstrap.to_owned(),
            served: served(),
        });
    };
    if matches!(function.trigger, Trigger::Schedule(_)) && function.name != OUTBOX_SWEEPER && catalog.job(function.name).is_none() {
        return Err(BootstrapError::NoScheduledHandler(function.name.to_owned()));
    }
    Ok(function)
}

/// Runs the function of flow bootstrap `bootstrap` that `_HANDLER` names, on `catalog`, until
/// the runtime stops it: its platform is built from the environment once
/// ([`crate::wiring::from_env`]), then the loop of its trigger serves it (HTTP through
/// `lambda_http`, an EventBridge consumer, a slice's job). The platform's own handlers (the
/// projector, the sweeper) are [`run_platform`]'s, so that a flow's binary links none of them.
///
/// `signer` makes the signer of a function that seals documents (a bootstrap whose slice
/// seals passes `adapters::kms::signer`; the others `None`, linking no signer's client).
pub async fn run_flow(
    catalog: &'static Catalog,
    bootstrap: &str,
    signer: Option<crate::wiring::SignerFactory>,
) -> Result<(), lambda_runtime::Error> {
    let (function, platform, _parts) = init(catalog, bootstrap, signer).await?;
    let name = function.name;
    match function.trigger {
        Trigger::Http => lambda_http::run(crate::http::router(Arc::new(platform), Some(name))).await,
        Trigger::Events => lambda_runtime::run(service_fn(|event| crate::wiring::handle_eventbridge(&platform, name, event))).await,
        Trigger::Schedule(_) => match catalog.job(name) {
            Some(job) => lambda_runtime::run(service_fn(|event| crate::wiring::handle_job(&platform, job, event))).await,
            None => Err(BootstrapError::NoScheduledHandler(name.to_owned()).into()),
        },
        Trigger::Stream => Err(BootstrapError::NotAFlowFunction(name.to_owned()).into()),
    }
}

/// Runs the platform's function that `_HANDLER` names, as [`run_flow`] does a flow's: the
/// public routes, the SMS notifier, the stream projector or the outbox sweeper.
pub async fn run_platform(catalog: &'static Catalog, bootstrap: &str) -> Result<(), lambda_runtime::Error> {
    let (function, platform, parts) = init(catalog, bootstrap, None).await?;
    let name = function.name;
    match function.trigger {
        Trigger::Http => lambda_http::run(crate::http::router(Arc::new(platform), Some(name))).await,
        Trigger::Events => lambda_runtime::run(service_fn(|event| crate::wiring::handle_eventbridge(&platform, name, event))).await,
        Trigger::Stream => lambda_runtime::run(service_fn(|event| crate::wiring::handle_stream(&platform, event))).await,
        Trigger::Schedule(_) => lambda_runtime::run(service_fn(|event| crate::wiring::handle_sweep(&platform, &parts.store, event))).await,
    }
}

/// Telemetry, the function `_HANDLER` names, its platform built from the environment.
async fn init(
    catalog: &'static Catalog,
    bootstrap: &str,
    signer: Option<crate::wiring::SignerFactory>,
) -> Result<(&'static Function, crate::app::Platform, crate::wiring::AwsParts), lambda_runtime::Error> {
    crate::telemetry::init();
    let handler = std::env::var(HANDLER_VARIABLE).ok();
    let function = select(catalog, bootstrap, handler.as_deref()).inspect_err(|e| {
        tracing::error!(bootstrap, error = %e, "init failed");
    })?;
    let (platform, parts) = crate::wiring::parts_from_env(catalog, function.name, signer).await?;
    Ok((function, platform, parts))
}
