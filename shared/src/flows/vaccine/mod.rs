//! Vaccine reservation (seed 003), the platform's second slice. A government administrator
//! registers slots (a date, a hospital, a vaccine, doses split across shard counters);
//! citizens subscribe to new-slot notices, reserve a dose (taken in the transaction that
//! stores the reservation, so no reservation exists without its dose, and a rush cannot
//! overbook), cancel (accepted even while slot management is down: the dose goes back when
//! it recovers), and wait for a given-back dose on a slot's waiting list, which holds it for
//! the first in line for a while. A reminder goes out the day before, at 09:00 in Korea.

pub mod alert;
pub mod commands;
pub mod config;
pub mod consumers;
pub mod jobs;
pub mod queries;
pub mod reservation;
pub mod routes;
pub mod slot;
pub mod texts;
pub mod view;

use crate::app::projector::projection;
use crate::topology::{Consumer, Emits, Function, Job, NONE, Role, Scope, Slice, Subscription, Trigger, Uses, context_table};

/// The flow's functions and their failure points, by name.
pub mod faults {
    /// Registers a slot.
    pub const SLOT_OPEN: &str = "vaccine-slot-open";
    /// Adds doses to a slot.
    pub const SLOT_DOSES: &str = "vaccine-slot-doses";
    /// Closes a slot.
    pub const SLOT_CLOSE: &str = "vaccine-slot-close";
    /// The queries.
    pub const QUERY: &str = "vaccine-query";
    /// Subscribes and unsubscribes.
    pub const SUBSCRIBE: &str = "vaccine-subscription";
    /// Reserves a dose.
    pub const RESERVE: &str = "vaccine-reserve";
    /// Cancels a reservation or leaves a waiting list.
    pub const CANCEL: &str = "vaccine-cancel";
    /// Joins a waiting list.
    pub const WAITLIST: &str = "vaccine-waitlist";
    /// Accepts a held dose.
    pub const ACCEPT: &str = "vaccine-accept";
    /// The hospital marks a dose given.
    pub const FULFIL: &str = "vaccine-fulfil";
    /// The hospital marks a no-show.
    pub const NOSHOW: &str = "vaccine-noshow";
    /// Gives a cancelled reservation's dose back.
    pub const DOSE_RETURN: &str = "vaccine-dose-return";
    /// Tells a new slot's subscribers.
    pub const SLOT_NOTICE: &str = "vaccine-slot-notice";
    /// Ends the holds that ended.
    pub const OFFER_EXPIRY: &str = "vaccine-offer-expiry";
    /// The day-before reminders.
    pub const REMINDER: &str = "vaccine-reminder";
    /// `vaccine-reserve`, between its commit and its publish.
    pub const RESERVE_AFTER_COMMIT: &str = "vaccine-reserve/after-commit";
    /// `vaccine-cancel`, between its commit and its publish.
    pub const CANCEL_AFTER_COMMIT: &str = "vaccine-cancel/after-commit";
    /// `vaccine-dose-return`, its effect staged, before its transaction.
    pub const DOSE_RETURN_BEFORE_WRITE: &str = "vaccine-dose-return/before-write";
    /// `vaccine-dose-return`, committed, before it publishes and acknowledges.
    pub const DOSE_RETURN_AFTER_WRITE: &str = "vaccine-dose-return/after-write";
}

/// Government vaccination administrators: every slot and reservation of the flow.
pub const VACCINE_ADMIN: Role = Role {
    group: "vaccine-admin",
    scope: Scope::Flow,
    description: "vaccination administrators: slots, their doses and reservations, and the hospital's marks",
};

const SLOTS: &str = slot::CONTEXT;
const RESERVATIONS: &str = reservation::CONTEXT;
const ALERTS: &str = alert::CONTEXT;

/// The flow's functions.
pub const FUNCTIONS: &[Function] = &[
    Function::http(
        faults::SLOT_OPEN,
        "an administrator registers a vaccination slot",
        Uses {
            writes: &[SLOTS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::SLOT_DOSES,
        "an administrator adds doses to a slot",
        Uses {
            reads: &[SLOTS],
            writes: &[SLOTS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::SLOT_CLOSE,
        "an administrator closes a slot",
        Uses {
            reads: &[SLOTS],
            writes: &[SLOTS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::QUERY,
        "slots with their remaining doses, reservations, offers and subscriptions",
        Uses {
            // A slot's remaining doses are its shard counters, read by key.
            reads: &[SLOTS],
            views_read: true,
            ..NONE
        },
    ),
    Function::http(
        faults::SUBSCRIBE,
        "a citizen subscribes to new-slot notices, or unsubscribes",
        Uses {
            reads: &[ALERTS],
            writes: &[ALERTS],
            // The responses kept for its Idempotency-Key.
            processed: true,
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::RESERVE,
        "a citizen reserves a dose: the reservation and the dose taken from a shard, in one write",
        Uses {
            reads: &[SLOTS],
            writes: &[RESERVATIONS],
            // The dose is a shard counter in slot management's table: moved, nothing stored.
            counts: &[SLOTS],
            processed: true,
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::CANCEL,
        "a citizen cancels a reservation or leaves a waiting list",
        Uses {
            reads: &[RESERVATIONS],
            writes: &[RESERVATIONS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::WAITLIST,
        "a citizen joins an empty slot's waiting list",
        Uses {
            reads: &[SLOTS, RESERVATIONS],
            writes: &[SLOTS, RESERVATIONS],
            // The responses kept for its Idempotency-Key.
            processed: true,
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::ACCEPT,
        "a citizen takes the dose held for them",
        Uses {
            reads: &[SLOTS, RESERVATIONS],
            writes: &[SLOTS, RESERVATIONS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::FULFIL,
        "the hospital marks a dose given",
        Uses {
            reads: &[RESERVATIONS],
            writes: &[RESERVATIONS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::NOSHOW,
        "the hospital marks a citizen who did not come",
        Uses {
            reads: &[RESERVATIONS],
            writes: &[RESERVATIONS],
            bus: true,
            ..NONE
        },
    ),
    Function {
        name: faults::DOSE_RETURN,
        trigger: Trigger::Events,
        description: "gives a cancelled reservation's dose to the first in line, or back to the slot",
        uses: Uses {
            reads: &[SLOTS, RESERVATIONS],
            writes: &[SLOTS, RESERVATIONS],
            processed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: faults::SLOT_NOTICE,
        trigger: Trigger::Events,
        description: "lists a new slot's subscribers for the SMS fan-out",
        uses: Uses {
            reads: &[SLOTS],
            writes: &[SLOTS],
            views_listed: true,
            processed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: faults::OFFER_EXPIRY,
        trigger: Trigger::Schedule("rate(1 minute)"),
        description: "ends the holds on offered doses that ended, passing each dose on",
        uses: Uses {
            reads: &[SLOTS, RESERVATIONS],
            writes: &[SLOTS, RESERVATIONS],
            views_listed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 60,
    },
    Function {
        name: faults::REMINDER,
        // 09:00 in Korea.
        trigger: Trigger::Schedule("cron(0 0 * * ? *)"),
        description: "the day-before reminder of each booked vaccination",
        uses: Uses {
            reads: &[RESERVATIONS],
            writes: &[RESERVATIONS],
            views_listed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 300,
    },
];

/// The flow's consumers.
pub const CONSUMERS: &[Consumer] = &[
    Consumer {
        function: faults::DOSE_RETURN,
        subscriptions: &[Subscription {
            rule: "vaccine-dose-return-on-cancel",
            sources: &["clinicflow.vaccination"],
            detail_types: &["ReservationCancelled"],
        }],
        handle: consumers::dose_return,
    },
    Consumer {
        function: faults::SLOT_NOTICE,
        subscriptions: &[Subscription {
            rule: "vaccine-slot-notice-on-open",
            sources: &["clinicflow.vaccine"],
            detail_types: &["SlotOpened"],
        }],
        handle: consumers::slot_notice,
    },
];

/// The vaccine slice.
pub static SLICE: Slice = Slice {
    name: "vaccine",
    roles: &[VACCINE_ADMIN],
    tables: &[context_table(SLOTS), context_table(RESERVATIONS), context_table(ALERTS)],
    events: &[
        Emits {
            source: "clinicflow.vaccine",
            types: &[
                "SlotOpened",
                "DosesAdded",
                "SlotClosed",
                "SlotAnnounced",
                "SlotWaitlisted",
                "SlotDoseHeld",
                "SlotDoseReturned",
                "SlotWaiterLeft",
                "SlotHeldTaken",
                "SlotHoldLapsed",
            ],
            schema: crate::events::schema::of::<slot::Event>,
        },
        Emits {
            source: "clinicflow.vaccination",
            types: &[
                "ReservationBooked",
                "WaitlistJoined",
                "DoseOffered",
                "OfferAccepted",
                "OfferLapsed",
                "ReservationCancelled",
                "ReservationReminded",
                "ReservationFulfilled",
                "ReservationNoShow",
            ],
            schema: crate::events::schema::of::<reservation::Event>,
        },
        Emits {
            source: "clinicflow.vaccinealert",
            types: &["AlertSubscribed", "AlertUnsubscribed"],
            schema: crate::events::schema::of::<alert::Event>,
        },
    ],
    functions: FUNCTIONS,
    routes: routes::ROUTES,
    public: &[],
    consumers: CONSUMERS,
    projections: &[
        projection::<view::ReservationView>(&[RESERVATIONS]),
        projection::<view::SlotView>(&[SLOTS]),
        projection::<view::AlertView>(&[ALERTS]),
    ],
    notifications: texts::NOTIFICATIONS,
    jobs: &[
        Job {
            function: faults::OFFER_EXPIRY,
            run: jobs::offer_expiry,
        },
        Job {
            function: faults::REMINDER,
            run: jobs::reminder,
        },
    ],
    config: config::load,
    openapi: crate::http::openapi::part::<routes::VaccineApi>,
};
