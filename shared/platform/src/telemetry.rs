//! JSON logs for every process. Personal data never goes in: domain types print masked
//! (`PhoneNumber`, `PersonName`, `CardToken`), and handlers log ids, not bodies.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON subscriber. The level comes from `RUST_LOG` (`info`, or targets such as
/// `warn,clinicflow=debug`; default `info`). Safe to call twice.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let format = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false);
    let _ = tracing_subscriber::registry().with(format).with(filter).try_init();
}
