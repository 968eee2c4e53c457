//! Hospital visit (seed 000), the platform's third slice: three desks, each its own bounded
//! context with its own table, linked only by events. Reception registers a visit; the
//! patient joins the department's doctors' queue when diagnosis hears of it; a doctor takes
//! them, prescribes exams, which join the examiners' work list when examination hears of
//! them; examiners perform or cancel them; the doctor reviews the results and completes or
//! refuses the treatment; reception sees the outcome by itself and closes the visit. Each
//! desk works while another is down, and catches up once when it recovers.

pub mod commands;
pub mod config;
pub mod consumers;
pub mod exam;
pub mod queries;
pub mod routes;
pub mod texts;
pub mod treatment;
pub mod view;
pub mod visit;

use crate::app::projector::projection;
use crate::topology::{Consumer, Emits, Function, NONE, Role, Scope, Slice, Subscription, Uses, context_table};

/// The flow's functions and their failure points, by name.
pub mod faults {
    /// Reception registers a visit.
    pub const REGISTER: &str = "hospital-visit-register";
    /// Reception cancels a visit.
    pub const CANCEL: &str = "hospital-visit-cancel";
    /// Reception closes a visit.
    pub const CLOSE: &str = "hospital-visit-close";
    /// The queries.
    pub const QUERY: &str = "hospital-query";
    /// A doctor takes a patient.
    pub const START: &str = "hospital-treatment-start";
    /// A doctor prescribes an exam.
    pub const PRESCRIBE: &str = "hospital-exam-prescribe";
    /// A doctor reviews an exam's result.
    pub const REVIEW: &str = "hospital-exam-review";
    /// A doctor completes the treatment.
    pub const COMPLETE: &str = "hospital-treatment-complete";
    /// A doctor refuses the treatment.
    pub const REFUSE: &str = "hospital-treatment-refuse";
    /// An examiner performs an exam.
    pub const PERFORM: &str = "hospital-exam-perform";
    /// An examiner cancels an exam.
    pub const EXAM_CANCEL: &str = "hospital-exam-cancel";
    /// Diagnosis queues (and withdraws) reception's patients.
    pub const QUEUE: &str = "hospital-queue";
    /// Examination puts prescriptions on the work list (and revokes a refused treatment's).
    pub const EXAM_ORDER: &str = "hospital-exam-order";
    /// Diagnosis records what examination did.
    pub const EXAM_OUTCOME: &str = "hospital-exam-outcome";
    /// Reception follows the treatment.
    pub const VISIT_FOLLOW: &str = "hospital-visit-follow";
    /// `hospital-visit-register`, between its commit and its publish.
    pub const REGISTER_AFTER_COMMIT: &str = "hospital-visit-register/after-commit";
    /// `hospital-exam-prescribe`, between its commit and its publish.
    pub const PRESCRIBE_AFTER_COMMIT: &str = "hospital-exam-prescribe/after-commit";
    /// `hospital-queue`, its effect staged, before its transaction.
    pub const QUEUE_BEFORE_WRITE: &str = "hospital-queue/before-write";
    /// `hospital-exam-order`, committed, before it publishes and acknowledges.
    pub const EXAM_ORDER_AFTER_WRITE: &str = "hospital-exam-order/after-write";
}

/// Reception: registers, cancels and closes visits, and sees every visit.
pub const RECEPTION_DESK: Role = Role {
    group: "reception",
    scope: Scope::Flow,
    description: "hospital reception: registers visits, cancels them before a doctor takes the patient, closes them at the desk",
};

/// Doctors: their department's queue, and the treatment of the patients they take.
pub const DOCTOR: Role = Role {
    group: "doctor",
    scope: Scope::Flow,
    description: "doctors: take patients from their department's queue, prescribe exams, review results, complete or refuse",
};

/// Examiners: the work list.
pub const EXAMINER: Role = Role {
    group: "examiner",
    scope: Scope::Flow,
    description: "examiners: perform or cancel the exams on the work list",
};

/// The customer team: the board of the day's visits, read only.
pub const CUSTOMER_TEAM: Role = Role {
    group: "customer-team",
    scope: Scope::Flow,
    description: "the customer team: every visit of a day and its status, read only",
};

const RECEPTION: &str = visit::CONTEXT;
const DIAGNOSIS: &str = treatment::CONTEXT;
const EXAMINATION: &str = exam::CONTEXT;

/// The flow's functions.
pub const FUNCTIONS: &[Function] = &[
    Function::http(
        faults::REGISTER,
        "reception registers a visit",
        Uses {
            writes: &[RECEPTION],
            // The responses kept for its Idempotency-Key.
            processed: true,
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::CANCEL,
        "reception cancels a visit before a doctor takes the patient: the visit and its claim, in one write",
        Uses {
            // The visit's claim is a counter in diagnosis's table: read, then taken.
            reads: &[RECEPTION, DIAGNOSIS],
            writes: &[RECEPTION],
            counts: &[DIAGNOSIS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::CLOSE,
        "reception closes a visit whose treatment is over",
        Uses {
            reads: &[RECEPTION],
            writes: &[RECEPTION],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::QUERY,
        "visits, the board, the doctors' queue and the examiners' work list",
        Uses { views_read: true, ..NONE },
    ),
    Function::http(
        faults::START,
        "a doctor takes a patient from the queue: the treatment and the visit's claim, in one write",
        Uses {
            reads: &[DIAGNOSIS],
            writes: &[DIAGNOSIS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::PRESCRIBE,
        "the patient's doctor prescribes an exam",
        Uses {
            reads: &[DIAGNOSIS],
            writes: &[DIAGNOSIS],
            processed: true,
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::REVIEW,
        "the patient's doctor reviews an exam's result",
        Uses {
            reads: &[DIAGNOSIS],
            writes: &[DIAGNOSIS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::COMPLETE,
        "the patient's doctor completes the treatment",
        Uses {
            reads: &[DIAGNOSIS],
            writes: &[DIAGNOSIS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::REFUSE,
        "the patient's doctor refuses the treatment",
        Uses {
            reads: &[DIAGNOSIS],
            writes: &[DIAGNOSIS],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::PERFORM,
        "an examiner performs an exam",
        Uses {
            reads: &[EXAMINATION],
            writes: &[EXAMINATION],
            bus: true,
            ..NONE
        },
    ),
    Function::http(
        faults::EXAM_CANCEL,
        "an examiner cancels an exam",
        Uses {
            reads: &[EXAMINATION],
            writes: &[EXAMINATION],
            bus: true,
            ..NONE
        },
    ),
    Function::consumer(
        faults::QUEUE,
        "diagnosis queues the patients reception registers, and withdraws those it cancels",
        &[DIAGNOSIS],
    ),
    Function::consumer(
        faults::EXAM_ORDER,
        "examination puts prescribed exams on the work list, and revokes those a refused treatment leaves",
        &[EXAMINATION],
    ),
    Function::consumer(
        faults::EXAM_OUTCOME,
        "diagnosis records the exams examination performed or cancelled",
        &[DIAGNOSIS],
    ),
    Function::consumer(faults::VISIT_FOLLOW, "reception follows the treatment to its outcome", &[RECEPTION]),
];

/// The flow's consumers.
pub const CONSUMERS: &[Consumer] = &[
    Consumer {
        function: faults::QUEUE,
        subscriptions: &[Subscription {
            rule: "hospital-queue-on-visit",
            sources: &["clinicflow.reception"],
            detail_types: &["VisitReceived", "VisitCancelled"],
        }],
        handle: consumers::queue,
    },
    Consumer {
        function: faults::EXAM_ORDER,
        subscriptions: &[Subscription {
            rule: "hospital-exam-order-on-treatment",
            sources: &["clinicflow.diagnosis"],
            detail_types: &["ExamPrescribed", "TreatmentRefused"],
        }],
        handle: consumers::exam_order,
    },
    Consumer {
        function: faults::EXAM_OUTCOME,
        subscriptions: &[Subscription {
            rule: "hospital-exam-outcome-on-exam",
            sources: &["clinicflow.examination"],
            detail_types: &["ExamPerformed", "ExamCancelled"],
        }],
        handle: consumers::exam_outcome,
    },
    Consumer {
        function: faults::VISIT_FOLLOW,
        subscriptions: &[Subscription {
            rule: "hospital-visit-follow-on-treatment",
            sources: &["clinicflow.diagnosis"],
            detail_types: &["TreatmentStarted", "TreatmentCompleted", "TreatmentRefused"],
        }],
        handle: consumers::visit_follow,
    },
];

/// The hospital slice.
pub static SLICE: Slice = Slice {
    name: "hospital",
    roles: &[RECEPTION_DESK, DOCTOR, EXAMINER, CUSTOMER_TEAM],
    tables: &[context_table(RECEPTION), context_table(DIAGNOSIS), context_table(EXAMINATION)],
    events: &[
        Emits {
            source: "clinicflow.reception",
            types: &[
                "VisitReceived",
                "VisitCancelled",
                "VisitStarted",
                "VisitCompleted",
                "VisitRefused",
                "VisitClosed",
            ],
            schema: crate::events::schema::of::<visit::Event>,
        },
        Emits {
            source: "clinicflow.diagnosis",
            types: &[
                "TreatmentQueued",
                "TreatmentWithdrawn",
                "TreatmentStarted",
                "ExamPrescribed",
                "ExamOutcomeRecorded",
                "ExamReviewed",
                "TreatmentCompleted",
                "TreatmentRefused",
            ],
            schema: crate::events::schema::of::<treatment::Event>,
        },
        Emits {
            source: "clinicflow.examination",
            types: &["ExamOrdered", "ExamPerformed", "ExamCancelled"],
            schema: crate::events::schema::of::<exam::Event>,
        },
    ],
    functions: FUNCTIONS,
    routes: routes::ROUTES,
    public: &[],
    consumers: CONSUMERS,
    projections: &[
        projection::<view::VisitView>(&[RECEPTION, DIAGNOSIS, EXAMINATION]),
        projection::<view::ExamView>(&[EXAMINATION]),
    ],
    notifications: texts::NOTIFICATIONS,
    jobs: &[],
    config: config::load,
    openapi: crate::http::openapi::part::<routes::HospitalApi>,
};
