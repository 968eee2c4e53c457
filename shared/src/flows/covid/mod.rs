//! COVID testing (seed 002), in four bounded contexts linked only by events: the health
//! centre takes applications at any hour and issues signed certificates ([`application`],
//! [`certificate`]), each test site keeps its waiting list and its count, takes samples and
//! records results ([`site`]), the transfer centre dispatches positive citizens to
//! isolation centres with free beds ([`transfer`]), and each isolation centre admits and
//! releases them ([`stay`]). Citizens read their own results from the status views (CQRS),
//! whether the centres are up or not.

pub mod application;
pub mod certificate;
pub mod commands;
pub mod config;
pub mod consumers;
pub mod queries;
pub mod routes;
pub mod site;
pub mod stay;
pub mod texts;
pub mod transfer;
pub mod view;

use crate::app::projector::projection;
use crate::topology::{Consumer, Emits, Function, NONE, Role, Scope, Slice, Subscription, Uses, context_table};

/// The flow's functions and their failure points, by name.
pub mod faults {
    /// A citizen applies.
    pub const APPLY: &str = "covid-apply";
    /// A citizen asks to withdraw.
    pub const WITHDRAW: &str = "covid-withdraw";
    /// The queries.
    pub const QUERY: &str = "covid-query";
    /// The public certificate key and verifier.
    pub const CERTIFICATES: &str = "covid-certificates";
    /// Test-site staff take a sample.
    pub const SAMPLE: &str = "covid-sample";
    /// Test-site staff record a result.
    pub const RESULT: &str = "covid-result";
    /// Test-site staff mark a no-show.
    pub const NOSHOW: &str = "covid-noshow";
    /// Transfer-centre staff dispatch a citizen.
    pub const DISPATCH: &str = "covid-dispatch";
    /// Isolation-centre staff admit a citizen.
    pub const ADMIT: &str = "covid-admit";
    /// Isolation-centre staff release a citizen.
    pub const RELEASE: &str = "covid-release";
    /// The test site hears the health centre.
    pub const SITE_QUEUE: &str = "covid-site-queue";
    /// The health centre follows the test site.
    pub const CENTRE_FOLLOW: &str = "covid-centre-follow";
    /// The health centre seals a negative result's certificate.
    pub const CERTIFY: &str = "covid-certify";
    /// The transfer centre opens transfers and frees beds.
    pub const TRANSFER_FOLLOW: &str = "covid-transfer-follow";
    /// The isolation centre expects the citizens dispatched to it.
    pub const ISOLATION_ASSIGN: &str = "covid-isolation-assign";
    /// `covid-apply`, between its commit and its publish.
    pub const APPLY_AFTER_COMMIT: &str = "covid-apply/after-commit";
    /// `covid-dispatch`, between its commit and its publish.
    pub const DISPATCH_AFTER_COMMIT: &str = "covid-dispatch/after-commit";
    /// `covid-site-queue`, its effect staged, before its transaction.
    pub const SITE_QUEUE_BEFORE_WRITE: &str = "covid-site-queue/before-write";
    /// `covid-centre-follow`, committed, before it publishes and acknowledges.
    pub const CENTRE_FOLLOW_AFTER_WRITE: &str = "covid-centre-follow/after-write";
}

/// Test-site staff: their own site's waiting list, samples, results, no-shows.
pub const TEST_SITE: Role = Role {
    group: "test-site",
    scope: Scope::Flow,
    description: "test-site staff: their site's waiting list (custom:site), samples, results and no-shows there",
};

/// Transfer-centre staff: the transfer requests and their dispatch.
pub const TRANSFER_CENTRE: Role = Role {
    group: "transfer-centre",
    scope: Scope::Flow,
    description: "transfer-centre staff: dispatch positive citizens to isolation centres with free beds",
};

/// Isolation-centre staff: their own centre's occupants, admissions and releases.
pub const ISOLATION_CENTRE: Role = Role {
    group: "isolation-centre",
    scope: Scope::Flow,
    description: "isolation-centre staff: their centre's occupants and free beds (custom:site), admissions and releases",
};

const HEALTH_CENTRE: &str = application::CONTEXT;
const TEST_SITES: &str = site::CONTEXT;
const TRANSFERS: &str = transfer::CONTEXT;
const ISOLATION: &str = stay::CONTEXT;

/// A command of one centre: reads and writes its own table, publishes.
const fn command(name: &'static str, description: &'static str, table: &'static [&'static str]) -> Function {
    Function::http(
        name,
        description,
        Uses {
            reads: table,
            writes: table,
            bus: true,
            ..NONE
        },
    )
}

/// `f`, sealing documents with the slice's signing key.
const fn sealing(f: Function) -> Function {
    Function {
        uses: Uses { seals: true, ..f.uses },
        ..f
    }
}

/// The flow's functions.
pub const FUNCTIONS: &[Function] = &[
    Function::http(
        faults::APPLY,
        "a citizen applies to the health centre for a test, at any hour",
        Uses {
            writes: &[HEALTH_CENTRE],
            // The responses kept for its Idempotency-Key.
            processed: true,
            bus: true,
            ..NONE
        },
    ),
    command(
        faults::WITHDRAW,
        "a citizen asks to withdraw their application; the test site decides",
        &[HEALTH_CENTRE],
    ),
    Function::http(
        faults::QUERY,
        "applications, waiting lists and their counts, transfers, isolation centres and their beds, certificates",
        // The waiting counts and the beds are counters in the sites' and transfers' tables.
        Uses {
            reads: &[TEST_SITES, TRANSFERS],
            views_read: true,
            ..NONE
        },
    ),
    Function::http(
        faults::CERTIFICATES,
        "the public key that verifies certificates, and the public verifier",
        Uses { verifies: true, ..NONE },
    ),
    command(
        faults::SAMPLE,
        "test-site staff take the sample: the citizen leaves the waiting list, in one write with its count",
        &[TEST_SITES],
    ),
    command(faults::RESULT, "test-site staff record the result", &[TEST_SITES]),
    command(
        faults::NOSHOW,
        "test-site staff mark a no-show: the citizen leaves the waiting list, in one write with its count",
        &[TEST_SITES],
    ),
    command(
        faults::DISPATCH,
        "transfer-centre staff dispatch a citizen to an isolation centre, taking a bed in the same write",
        &[TRANSFERS],
    ),
    command(faults::ADMIT, "isolation-centre staff admit a dispatched citizen", &[ISOLATION]),
    command(faults::RELEASE, "isolation-centre staff release a citizen", &[ISOLATION]),
    Function::consumer(
        faults::SITE_QUEUE,
        "the test site puts applications on its waiting list (and withdraws them), moving its count",
        &[TEST_SITES],
    ),
    Function::consumer(
        faults::CENTRE_FOLLOW,
        "the health centre follows the test site, and asks for a positive result's transfer",
        &[HEALTH_CENTRE],
    ),
    sealing(Function::consumer(
        faults::CERTIFY,
        "the health centre seals a negative result's certificate",
        &[HEALTH_CENTRE],
    )),
    Function::consumer(
        faults::TRANSFER_FOLLOW,
        "the transfer centre opens transfers, and frees the bed of a released citizen",
        &[TRANSFERS],
    ),
    Function::consumer(
        faults::ISOLATION_ASSIGN,
        "the isolation centre expects the citizens dispatched to it",
        &[ISOLATION],
    ),
];

/// The flow's consumers.
pub const CONSUMERS: &[Consumer] = &[
    Consumer {
        function: faults::SITE_QUEUE,
        subscriptions: &[Subscription {
            rule: "covid-site-queue-on-application",
            sources: &["clinicflow.healthcentre"],
            detail_types: &["ApplicationSubmitted", "WithdrawalRequested"],
        }],
        handle: consumers::site_queue,
    },
    Consumer {
        function: faults::CENTRE_FOLLOW,
        subscriptions: &[Subscription {
            rule: "covid-centre-follow-on-site",
            sources: &["clinicflow.testsite"],
            detail_types: &[
                "SiteEntryWithdrawn",
                "WithdrawalRefused",
                "SampleTaken",
                "ResultRecorded",
                "NoShowMarked",
            ],
        }],
        handle: consumers::centre_follow,
    },
    Consumer {
        function: faults::CERTIFY,
        subscriptions: &[Subscription {
            rule: "covid-certify-on-result",
            sources: &["clinicflow.healthcentre"],
            detail_types: &["ResultHeard"],
        }],
        handle: consumers::certify_negative,
    },
    Consumer {
        function: faults::TRANSFER_FOLLOW,
        subscriptions: &[
            Subscription {
                rule: "covid-transfer-on-request",
                sources: &["clinicflow.healthcentre"],
                detail_types: &["TransferRequested"],
            },
            Subscription {
                rule: "covid-transfer-on-release",
                sources: &["clinicflow.isolation"],
                detail_types: &["StayReleased"],
            },
        ],
        handle: consumers::transfer_follow,
    },
    Consumer {
        function: faults::ISOLATION_ASSIGN,
        subscriptions: &[Subscription {
            rule: "covid-isolation-on-dispatch",
            sources: &["clinicflow.transfer"],
            detail_types: &["TransferDispatched"],
        }],
        handle: consumers::isolation_assign,
    },
];

/// The COVID slice.
pub static SLICE: Slice = Slice {
    name: "covid",
    roles: &[TEST_SITE, TRANSFER_CENTRE, ISOLATION_CENTRE],
    tables: &[
        context_table(HEALTH_CENTRE),
        context_table(TEST_SITES),
        context_table(TRANSFERS),
        context_table(ISOLATION),
    ],
    events: &[
        Emits {
            source: "clinicflow.healthcentre",
            types: &[
                "ApplicationSubmitted",
                "WithdrawalRequested",
                "WithdrawalDeclined",
                "ApplicationWithdrawn",
                "ApplicationSampled",
                "ResultHeard",
                "ApplicationNoShow",
                "CertificateIssued",
                "TransferRequested",
            ],
            schema: crate::events::schema::of::<application::Event>,
        },
        Emits {
            source: "clinicflow.healthcentre",
            types: &["CertificateSealed"],
            schema: crate::events::schema::of::<certificate::Event>,
        },
        Emits {
            source: "clinicflow.testsite",
            types: &[
                "SiteEntryQueued",
                "SiteEntryWithdrawn",
                "WithdrawalRefused",
                "SampleTaken",
                "ResultRecorded",
                "NoShowMarked",
            ],
            schema: crate::events::schema::of::<site::Event>,
        },
        Emits {
            source: "clinicflow.transfer",
            types: &["TransferOpened", "TransferDispatched", "TransferClosed"],
            schema: crate::events::schema::of::<transfer::Event>,
        },
        Emits {
            source: "clinicflow.isolation",
            types: &["StayAssigned", "StayAdmitted", "StayReleased"],
            schema: crate::events::schema::of::<stay::Event>,
        },
    ],
    functions: FUNCTIONS,
    routes: routes::ROUTES,
    // Anyone holding a certificate's QR code verifies it, without an account.
    public: &["/covid/certificates/key", "/covid/certificates/verify"],
    consumers: CONSUMERS,
    projections: &[
        projection::<view::CovidView>(&[HEALTH_CENTRE, TEST_SITES, TRANSFERS, ISOLATION]),
        projection::<view::TransferView>(&[TRANSFERS]),
        projection::<view::StayView>(&[ISOLATION]),
        projection::<view::CertificateView>(&[HEALTH_CENTRE]),
    ],
    notifications: texts::NOTIFICATIONS,
    jobs: &[],
    config: config::load,
    openapi: crate::http::openapi::part::<routes::CovidApi>,
};
