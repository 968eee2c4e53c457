//! Adapters, named after their technology: `embedded` (SQLite: store, views, local bus,
//! SMS outbox), `sandbox` (a deterministic payment provider) and `resilient` (timeout and
//! circuit breaker around any payment provider).

pub mod embedded;
pub mod resilient;
pub mod sandbox;
