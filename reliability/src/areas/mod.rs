//! The harness's areas. Each `run` starts what it needs (local stacks on free ports, in
//! memory or in a temporary directory), tries its cases on every slice's fixture
//! ([`crate::slices::all`]) and returns one [`AreaReport`]. No area names a flow.

pub mod api;
pub mod authz;
pub mod concurrency;
pub mod failpoints;
pub mod fuzz;
pub mod held_charge;
pub mod privacy;
pub mod redelivery;
