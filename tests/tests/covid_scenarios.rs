//! End-to-end scenarios of the COVID testing flow (seed 002) through the local stack's HTTP
//! API: one or more tests per requirement of the seed and of issue 17 (the application, the
//! site's waiting list and its count, the test, the signed certificate anyone verifies, the
//! transfer, isolation and release, the citizen's own views), fault isolation between the
//! four centres, redelivered events, the race for the last beds, and what the SMS never say.

use clinicflow_tests::On;

/// The backend these scenarios run on.
const ON: On = On::Sqlite;

include!("../scenarios/covid.rs");
