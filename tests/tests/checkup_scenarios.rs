//! End-to-end scenarios of the health check-up booking flow (seed 001) through the local
//! stack's HTTP API: one or more tests per functional requirement (FR1–FR10) and per
//! non-functional one (transaction, fault isolation, CQRS), plus the Idempotency-Key.

use clinicflow_tests::On;

/// The backend these scenarios run on.
const ON: On = On::Sqlite;

include!("../scenarios/checkup.rs");
