//! The seed 002 scenarios of `covid_scenarios.rs`, end to end through `clinicflow-local` on
//! the AWS path: DynamoDB (the four centres' tables, their streams feeding the projector),
//! EventBridge rules to SQS queues, and SNS, all served by a moto server.

use clinicflow_tests::On;

/// The backend these scenarios run on.
const ON: On = On::Moto;

include!("../scenarios/covid.rs");
