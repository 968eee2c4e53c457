//! Bounded contexts shared by several flows.

pub mod payment;
