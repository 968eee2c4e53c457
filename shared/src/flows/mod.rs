//! The flows, one slice each. This module and [`crate::catalog`] are the only places that
//! name them all: the platform consumes them as [`crate::topology::Slice`]s.

pub mod checkup;
pub mod covid;
pub mod hospital;
pub mod vaccine;
