//! End-to-end scenarios of the hospital visit flow (seed 000) through the local stack's
//! HTTP API: one or more tests per step of the visit (FR1–FR8: reception registers, the
//! doctors' queue, a doctor takes the patient and prescribes, the examiners' work list,
//! exams performed or cancelled, review, completion or refusal, closing at the desk), the
//! views, fault isolation between the three desks, redelivered events, the races between
//! desks, and what the SMS never say.

use clinicflow_tests::On;

/// The backend these scenarios run on.
const ON: On = On::Sqlite;

include!("../scenarios/hospital.rs");
