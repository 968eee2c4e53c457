//! End-to-end scenarios of the vaccine reservation flow (seed 003) through the local stack's
//! HTTP API: one or more tests per functional requirement (FR1–FR8) and per non-functional
//! one (transaction, load shedding, fault isolation, CQRS), the rush on a sharded slot, the
//! waiting list and the reminder.

use clinicflow_tests::On;

/// The backend these scenarios run on.
const ON: On = On::Sqlite;

include!("../scenarios/vaccine.rs");
