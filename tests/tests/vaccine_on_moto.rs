//! The seed 003 scenarios of `vaccine_scenarios.rs`, end to end through `clinicflow-local`
//! on the AWS path: DynamoDB (with its streams feeding the projector), EventBridge rules to
//! SQS queues, and SNS, all served by a moto server.

use clinicflow_tests::On;

/// The backend these scenarios run on.
const ON: On = On::Moto;

include!("../scenarios/vaccine.rs");
