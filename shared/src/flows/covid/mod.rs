//! COVID testing (seed 002), in four bounded contexts linked only by events: the health
//! centre takes applications at any hour and issues certificates ([`application`]), each
//! test site keeps its waiting list and its count, takes samples and records results
//! ([`site`]), the transfer centre dispatches positive citizens to isolation centres with
//! free beds ([`transfer`]), and each isolation centre admits and releases them ([`stay`]).
//!
//! Where it stands: the four contexts' aggregates, with the invariants the seed's saga
//! rests on (the waiting count, the beds); the commands, consumers, views and routes that
//! make them a slice of the catalog come next (issue 17).

pub mod application;
pub mod config;
pub mod site;
pub mod stay;
pub mod transfer;
