//! The check-up flow (seed 001), the platform's first slice: a patient books a date and a
//! package and pays before the booking exists; the centre confirms or rejects it on its
//! work list; the patient may cancel. Cancel and reject give the place back and refund the
//! payment; every status change reaches the patient by SMS; the my-page view folds the
//! booking, its payment and its reservation.

pub mod availability;
pub mod centre;
pub mod commands;
pub mod config;
pub mod consumers;
pub mod domain;
#[cfg(test)]
mod notifier_tests;
pub mod queries;
pub mod routes;
pub mod texts;
pub mod view;

use crate::app::projector::projection;
use crate::contexts::payment;
use crate::topology::{Consumer, Emits, Function, NONE, Role, Scope, Slice, Subscription, Trigger, Uses, context_table};

/// The flow's functions and their failure points, by name.
pub mod faults {
    /// Books (and pays for) a check-up.
    pub const BOOK: &str = "checkup-book";
    /// The patient cancels.
    pub const CANCEL: &str = "checkup-cancel";
    /// The status views.
    pub const QUERY: &str = "checkup-query";
    /// The centre confirms.
    pub const CONFIRM: &str = "centre-confirm";
    /// The centre rejects.
    pub const REJECT: &str = "centre-reject";
    /// `checkup-book`, between its commit and its publish.
    pub const BOOK_AFTER_COMMIT: &str = "checkup-book/after-commit";
    /// `checkup-cancel`, between its commit and its publish.
    pub const CANCEL_AFTER_COMMIT: &str = "checkup-cancel/after-commit";
    /// `centre-confirm`, between its commit and its publish.
    pub const CONFIRM_AFTER_COMMIT: &str = "centre-confirm/after-commit";
    /// `centre-reject`, between its commit and its publish.
    pub const REJECT_AFTER_COMMIT: &str = "centre-reject/after-commit";
    /// `centre-worklist`, on entry, before it reads anything.
    pub const CENTRE_WORKLIST: &str = "centre-worklist";
    /// `centre-worklist`, its reservation staged, before its transaction.
    pub const CENTRE_WORKLIST_BEFORE_WRITE: &str = "centre-worklist/before-write";
    /// `centre-worklist`, its transaction committed, before it publishes and acknowledges.
    pub const CENTRE_WORKLIST_AFTER_WRITE: &str = "centre-worklist/after-write";
    /// `availability-release`, on entry.
    pub const AVAILABILITY_RELEASE: &str = "availability-release";
    /// `availability-release`, before the counter moves.
    pub const AVAILABILITY_RELEASE_BEFORE_WRITE: &str = "availability-release/before-write";
    /// `availability-release`, the counter moved, before it acknowledges.
    pub const AVAILABILITY_RELEASE_AFTER_WRITE: &str = "availability-release/after-write";
    /// `payment-refund`, on entry.
    pub const PAYMENT_REFUND: &str = "payment-refund";
    /// `payment-refund`, the provider refunded, before the payment records it.
    pub const PAYMENT_REFUND_BEFORE_WRITE: &str = "payment-refund/before-write";
    /// `payment-refund`, the refund recorded, before `PaymentRefunded` is published.
    pub const PAYMENT_REFUND_AFTER_WRITE: &str = "payment-refund/after-write";
    /// `sms-notifier`, on entry.
    pub const SMS_NOTIFIER: &str = "sms-notifier";
    /// `sms-notifier`, before it claims the SMS (its first write).
    pub const SMS_NOTIFIER_BEFORE_WRITE: &str = "sms-notifier/before-write";
    /// `sms-notifier`, the outcome and the processed mark recorded, before it acknowledges.
    pub const SMS_NOTIFIER_AFTER_WRITE: &str = "sms-notifier/after-write";
}

/// Check-up centre staff: every booking of the flow.
pub const CENTRE: Role = Role {
    group: "centre",
    scope: Scope::Flow,
    description: "check-up centre staff: the work list, confirm and reject",
};

const CHECKUP: &str = domain::CONTEXT;
const PAYMENT: &str = payment::CONTEXT;
const RESERVATIONS: &str = centre::CONTEXT;
const SOURCE: &[&str] = &["clinicflow.checkup"];

/// The flow's functions.
pub const FUNCTIONS: &[Function] = &[
    Function {
        name: faults::BOOK,
        trigger: Trigger::Http,
        description: "book a check-up: validate, take payment, store booking, place and event",
        uses: Uses {
            // The payment table too: the sandbox provider's ledger lives there on AWS.
            reads: &[CHECKUP, PAYMENT],
            writes: &[CHECKUP, PAYMENT],
            processed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: faults::CANCEL,
        trigger: Trigger::Http,
        description: "the patient cancels a booking",
        uses: Uses {
            reads: &[CHECKUP],
            writes: &[CHECKUP],
            bus: true,
            ..NONE
        },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: faults::QUERY,
        trigger: Trigger::Http,
        description: "status views: one booking, my bookings, the centre's work list",
        uses: Uses { views_read: true, ..NONE },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: faults::CONFIRM,
        trigger: Trigger::Http,
        description: "centre staff confirm a booking",
        uses: Uses {
            reads: &[CHECKUP, RESERVATIONS],
            writes: &[CHECKUP, RESERVATIONS],
            bus: true,
            ..NONE
        },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: faults::REJECT,
        trigger: Trigger::Http,
        description: "centre staff reject a booking",
        uses: Uses {
            reads: &[CHECKUP, RESERVATIONS],
            writes: &[CHECKUP, RESERVATIONS],
            bus: true,
            ..NONE
        },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: faults::CENTRE_WORKLIST,
        trigger: Trigger::Events,
        description: "puts bookings on the centre's work list, withdraws cancelled ones",
        uses: Uses {
            reads: &[RESERVATIONS],
            writes: &[RESERVATIONS],
            processed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: faults::AVAILABILITY_RELEASE,
        trigger: Trigger::Events,
        description: "gives a cancelled or rejected booking's place back",
        uses: Uses {
            // It moves the place's counter and stores nothing else: no event, no aggregate.
            reads: &[CHECKUP],
            counts: &[CHECKUP],
            processed: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: faults::PAYMENT_REFUND,
        trigger: Trigger::Events,
        description: "refunds a cancelled or rejected booking's payment",
        uses: Uses {
            reads: &[PAYMENT],
            writes: &[PAYMENT],
            processed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 30,
    },
];

/// The flow's consumers.
pub const CONSUMERS: &[Consumer] = &[
    Consumer {
        function: faults::CENTRE_WORKLIST,
        subscriptions: &[Subscription {
            rule: "centre-worklist-on-checkup",
            sources: SOURCE,
            detail_types: &["CheckupBooked", "CheckupCancelled"],
        }],
        handle: consumers::centre_worklist,
    },
    Consumer {
        function: faults::AVAILABILITY_RELEASE,
        subscriptions: &[Subscription {
            rule: "availability-release-on-checkup-end",
            sources: SOURCE,
            detail_types: &["CheckupCancelled", "CheckupRejected"],
        }],
        handle: consumers::availability_release,
    },
    Consumer {
        function: faults::PAYMENT_REFUND,
        subscriptions: &[Subscription {
            rule: "payment-refund-on-checkup-end",
            sources: SOURCE,
            detail_types: &["CheckupCancelled", "CheckupRejected"],
        }],
        handle: payment::refund,
    },
];

/// The check-up slice.
pub static SLICE: Slice = Slice {
    name: "checkup",
    roles: &[CENTRE],
    tables: &[context_table(CHECKUP), context_table(PAYMENT), context_table(RESERVATIONS)],
    events: &[
        Emits {
            source: "clinicflow.checkup",
            types: &["CheckupBooked", "CheckupConfirmed", "CheckupRejected", "CheckupCancelled"],
            schema: crate::events::schema::of::<domain::Event>,
        },
        Emits {
            source: "clinicflow.payment",
            types: &["PaymentCaptured", "PaymentRefunded"],
            schema: crate::events::schema::of::<crate::contexts::payment::Event>,
        },
        Emits {
            source: "clinicflow.centre",
            types: &[
                "ReservationReceived",
                "ReservationConfirmed",
                "ReservationRejected",
                "ReservationWithdrawn",
            ],
            schema: crate::events::schema::of::<centre::Event>,
        },
    ],
    functions: FUNCTIONS,
    routes: routes::ROUTES,
    public: &[],
    consumers: CONSUMERS,
    projections: &[projection::<view::CheckupView>(&[CHECKUP, PAYMENT, RESERVATIONS])],
    notifications: texts::NOTIFICATIONS,
    jobs: &[],
    config: config::load,
    openapi: crate::http::openapi::part::<routes::CheckupApi>,
};

/// Helpers for the tests of the flow's consumers and of the platform's notifier on it.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use chrono::Utc;

    use crate::adapters::memory::{Memory, MemoryPublisher, MemorySms};
    use crate::adapters::sandbox::SandboxGateway;
    use crate::app::{Faults, Platform};
    use crate::config::Config;
    use crate::events::EventEnvelope;

    /// A platform on the memory adapters, and its SMS channel.
    pub(crate) fn platform() -> (Platform, MemorySms) {
        let sms = MemorySms::new();
        let p = crate::wiring::platform(
            crate::catalog(),
            Memory::new(),
            Arc::new(MemoryPublisher::new()),
            Arc::new(sms.clone()),
            Arc::new(SandboxGateway::default()),
            Config::default(),
            Faults::none(),
        );
        (p, sms)
    }

    /// A check-up event of booking `b1`.
    pub(crate) fn event(id: &str, event_type: &str, version: u64, data: serde_json::Value) -> EventEnvelope {
        EventEnvelope {
            id: id.into(),
            event_type: event_type.into(),
            source: "clinicflow.checkup".into(),
            aggregate_id: "b1".into(),
            version,
            correlation_id: "b1".into(),
            causation_id: "r1".into(),
            occurred_at: Utc::now(),
            data,
        }
    }
}
