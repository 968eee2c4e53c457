//! The catalog model: what a slice (one flow) declares, and the [`Catalog`] assembled from
//! the slices with the platform's own parts. The local runtime routes and delivers from the
//! catalog; the templates are built from its [`Catalog::export`]; tests hold SAM and CDK to
//! it. Nothing here names a flow: flows arrive as [`Slice`]s.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::routing::{MethodFilter, MethodRouter};

use crate::app::Platform;
use crate::app::consumers::ConsumerFn;

/// How far a role sees: the scope its routes are authorized with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Only the caller's own cases (a patient, a citizen, a customer).
    Own,
    /// The cases assigned to the caller (a doctor's patients, a test site's applications).
    Assigned,
    /// Every case of the flow (a centre's staff).
    Flow,
}

/// A role: a Cognito group and the scope its members see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Role {
    /// The Cognito group name (`cognito:groups`).
    pub group: &'static str,
    /// What its members see.
    pub scope: Scope,
    /// Who they are, for the docs.
    pub description: &'static str,
}

impl Role {
    /// The Cognito group name.
    pub fn group(self) -> &'static str {
        self.group
    }
}

/// Every person (patient, citizen, customer) is a `patient` and sees only their own cases;
/// the platform's one role, shared by every flow.
pub const PATIENT: Role = Role {
    group: "patient",
    scope: Scope::Own,
    description: "a person who books, applies or orders, and follows their own cases",
};

/// HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
        }
    }

    /// axum's filter for the method.
    pub fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Delete => MethodFilter::DELETE,
        }
    }
}

/// The handler of a route, bound to the route's own method (`|m| on(m, book)`), so a route
/// cannot be declared without its handler, nor served under another method.
pub type Handler = fn(MethodFilter) -> MethodRouter<Arc<Platform>>;

/// An API route served by one function, carrying its handler.
#[derive(Clone, Copy)]
pub struct Route {
    /// Method.
    pub method: Method,
    /// Path, with `{param}` placeholders (API Gateway and axum 0.8 syntax alike).
    pub path: &'static str,
    /// The function serving it.
    pub function: &'static str,
    /// Roles allowed to call it; ownership is checked by the handler within the caller's
    /// [`Scope`]. Empty for the public routes, the health check and the OpenAPI document.
    pub roles: &'static [Role],
    /// The handler.
    pub handler: Handler,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("function", &self.function)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Route {
    /// Routes are equal when they are the same route: method, path, function and roles.
    fn eq(&self, other: &Self) -> bool {
        (self.method, self.path, self.function, self.roles) == (other.method, other.path, other.function, other.roles)
    }
}

impl Route {
    /// Open to anyone, without a token ([`PUBLIC_PATHS`]).
    pub fn is_public(&self) -> bool {
        self.roles.is_empty()
    }
}

/// What a consumer listens to: events of one of `sources` whose type is one of
/// `detail_types`, delivered through the EventBridge rule `rule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Rule name, unique in the catalog.
    pub rule: &'static str,
    /// Event sources (`clinicflow.<context>`).
    pub sources: &'static [&'static str],
    /// Event types.
    pub detail_types: &'static [&'static str],
}

/// An EventBridge rule: events of one of `sources` whose type is one of `detail_types` go
/// to `target`. Derived from the consumers' [`Subscription`]s and the slices' notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Rule name.
    pub name: &'static str,
    /// Event sources.
    pub sources: Vec<&'static str>,
    /// Event types.
    pub detail_types: Vec<&'static str>,
    /// Consumer function.
    pub target: &'static str,
}

impl Rule {
    /// Does an event match the rule's pattern?
    pub fn matches(&self, source: &str, detail_type: &str) -> bool {
        self.sources.contains(&source) && self.detail_types.contains(&detail_type)
    }
}

/// A consumer: an event-triggered function's handler and what it subscribes to.
#[derive(Clone, Copy)]
pub struct Consumer {
    /// The function (and the consumer's name in dedup marks and failure points).
    pub function: &'static str,
    /// Its subscriptions; each becomes a rule.
    pub subscriptions: &'static [Subscription],
    /// The handler.
    pub handle: ConsumerFn,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("function", &self.function)
            .field("subscriptions", &self.subscriptions)
            .finish_non_exhaustive()
    }
}

/// What one run of a scheduled job does, at the time it is given (the schedule's time on
/// AWS, the local scheduler's or a test's): how many cases it moved, or why it failed (the
/// run fails, and the next one picks up what it left).
pub type JobFn = for<'a> fn(&'a Platform, chrono::DateTime<chrono::Utc>) -> JobFuture<'a>;

/// What a [`JobFn`] returns.
pub type JobFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, crate::app::AppError>> + Send + 'a>>;

/// A slice's scheduled job: a [`Trigger::Schedule`] function and its run. Runs are
/// idempotent: one that runs twice, or late, changes nothing twice.
#[derive(Clone, Copy)]
pub struct Job {
    /// The scheduled function.
    pub function: &'static str,
    /// One run.
    pub run: JobFn,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("function", &self.function).finish_non_exhaustive()
    }
}

/// Where the contact of a notice's recipient comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactFrom {
    /// The event carries it in this field of its data (`contact`); the notifier keeps it
    /// for the case, so that the case's later notices find it.
    Field(&'static str),
    /// The contact kept for the case, from an earlier notice of it.
    Case,
    /// Many people: this field of the event's data lists cases (their ids), and each case's
    /// kept contact gets the SMS, with that case's reference (every subscriber of a slot).
    /// Each recipient is sent to at most once per event, and a redelivery sends to those
    /// the last delivery did not reach.
    Cases(&'static str),
}

/// One SMS a status change sends: which event, to whom, and the text in Korean and English.
/// A text's `{ref}` is the case's short reference; `{field}` is the event's data field
/// as it is, and `{field:won}` a number of won (`₩150,000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// The rule that brings the event to the notifier (rules group notifications).
    pub rule: &'static str,
    /// Event source.
    pub source: &'static str,
    /// Event type.
    pub event_type: &'static str,
    /// Whom it goes to.
    pub contact: ContactFrom,
    /// Korean text.
    pub ko: &'static str,
    /// English text.
    pub en: &'static str,
}

/// A stream trigger: change records of `tables` feed `function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTrigger {
    /// Function.
    pub function: &'static str,
    /// Source tables (bounded contexts).
    pub tables: Vec<&'static str>,
}

/// How a function is triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// HTTP API routes.
    Http,
    /// EventBridge rules.
    Events,
    /// DynamoDB stream.
    Stream,
    /// A schedule: `rate(<n> minute[s]|hour[s]|day[s])`, or `cron(<minute> <hour> * * ? *)`
    /// (UTC), the subset of EventBridge's expressions the local scheduler also runs.
    Schedule(&'static str),
}

/// A Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Package name = binary name = `events/<name>/`.
    pub name: &'static str,
    /// Trigger.
    pub trigger: Trigger,
    /// What it does.
    pub description: &'static str,
    /// The resources it touches: its IAM scope, and the connections primed at init.
    pub uses: Uses,
    /// Memory in MB, as deployed (SAM and CDK alike).
    pub memory_mb: u16,
    /// Timeout in seconds, as deployed.
    pub timeout_s: u16,
}

impl Function {
    /// An HTTP function of a slice, at the slices' usual size (256 MB, 20 s).
    pub const fn http(name: &'static str, description: &'static str, uses: Uses) -> Self {
        Self {
            name,
            trigger: Trigger::Http,
            description,
            uses,
            memory_mb: 256,
            timeout_s: 20,
        }
    }

    /// A consumer of a slice that decides on the aggregates of `tables`: it reads and
    /// writes them, marks the events it processed and publishes what it decided (128 MB,
    /// 30 s).
    pub const fn consumer(name: &'static str, description: &'static str, tables: &'static [&'static str]) -> Self {
        Self {
            name,
            trigger: Trigger::Events,
            description,
            uses: Uses {
                reads: tables,
                writes: tables,
                processed: true,
                bus: true,
                ..NONE
            },
            memory_mb: 128,
            timeout_s: 30,
        }
    }
}

/// The resources a function touches, and how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses {
    /// Bounded-context tables it reads.
    pub reads: &'static [&'static str],
    /// Bounded-context tables it stores aggregates, events (its outbox) or records in,
    /// transactionally: `PutItem`; with [`Uses::bus`] also `UpdateItem`, for its counters
    /// there and for marking the events it published.
    pub writes: &'static [&'static str],
    /// Bounded-context tables where it only moves counters (a place given back), storing
    /// nothing else there: `UpdateItem` alone.
    pub counts: &'static [&'static str],
    /// Reads and lists the status views.
    pub views_read: bool,
    /// Lists the status views (a query on their indexes), reading none by key: a consumer
    /// or a job that finds the cases it acts on there.
    pub views_listed: bool,
    /// Writes the status views (read, then a put conditional on the revision).
    pub views_write: bool,
    /// Reads and writes processed marks and idempotent responses.
    pub processed: bool,
    /// Publishes to the event bus.
    pub bus: bool,
    /// Sends SMS.
    pub sms: bool,
    /// Queries the outbox index of every context table and marks what it publishes (the
    /// sweeper).
    pub outbox_index: bool,
    /// Seals documents with its slice's signing key (`kms:Sign` on that key alone).
    pub seals: bool,
    /// Reads its slice's signing key's public half, to publish it and verify documents
    /// (`kms:GetPublicKey` on that key alone).
    pub verifies: bool,
}

impl Uses {
    /// Touches DynamoDB at all.
    pub fn store(&self) -> bool {
        !self.reads.is_empty()
            || !self.writes.is_empty()
            || !self.counts.is_empty()
            || self.views_read
            || self.views_listed
            || self.views_write
            || self.processed
            || self.outbox_index
    }
}

/// Uses nothing; slices spread it (`Uses { bus: true, ..NONE }`).
pub const NONE: Uses = Uses {
    reads: &[],
    writes: &[],
    counts: &[],
    views_read: false,
    views_listed: false,
    views_write: false,
    processed: false,
    bus: false,
    sms: false,
    outbox_index: false,
    seals: false,
    verifies: false,
};

/// The partition key of every table (S); no table has a sort key.
pub const TABLE_KEY: &str = "pk";
/// The TTL attribute (epoch seconds) of the tables that expire items.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The status views' table.
pub const VIEWS: &str = "views";
/// Consumer dedup marks and idempotent responses.
pub const PROCESSED: &str = "processed";
/// The notifier's own table (contacts and notification records); it has no stream.
pub const NOTIFICATION: &str = "notification";
/// The outbox's sparse index of unpublished events, on every context table.
pub const PENDING_INDEX: &str = "pending";

/// A global secondary index: string hash and range keys, projection `ALL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    /// Index name.
    pub name: &'static str,
    /// Hash key attribute.
    pub hash: &'static str,
    /// Range key attribute.
    pub range: &'static str,
}

/// A DynamoDB table (on demand, partition key [`TABLE_KEY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Logical name; the physical name comes from `TABLE_<NAME>`.
    pub name: &'static str,
    /// Has a `NEW_IMAGE` stream (read by the projector): a bounded context's table.
    pub stream: bool,
    /// Expires items on [`TTL_ATTRIBUTE`].
    pub ttl: bool,
    /// Global secondary indexes.
    pub indexes: &'static [Index],
}

/// The outbox's index, on every table that holds an outbox.
pub const OUTBOX_INDEXES: &[Index] = &[Index {
    name: PENDING_INDEX,
    hash: "pending",
    range: "pending_at",
}];

/// A bounded context's table: streamed to the projector, expiring, with the outbox index.
pub const fn context_table(name: &'static str) -> Table {
    Table {
        name,
        stream: true,
        ttl: true,
        indexes: OUTBOX_INDEXES,
    }
}

/// The health check: a route without the authorizer.
pub const HEALTH_PATH: &str = "/health";
/// The API's OpenAPI document (generated from the catalog, [`Catalog::openapi`]; committed as
/// `docs/openapi.json`): a route without the authorizer.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// The routes without the authorizer, open to anyone.
pub const PUBLIC_PATHS: &[&str] = &[HEALTH_PATH, OPENAPI_PATH];

/// The SMS notifier, the platform's consumer of every slice's notifications.
pub const SMS_NOTIFIER: &str = "sms-notifier";
/// The status-view projector, fed by every context table's stream.
pub const STATUS_PROJECTOR: &str = "status-projector";
/// The outbox sweeper.
pub const OUTBOX_SWEEPER: &str = "outbox-sweeper";
/// The platform's HTTP function: the public routes (the health check, the OpenAPI document).
pub const PLATFORM_API: &str = "platform-api";

/// The stack of the platform's own parts (deployed first); a slice's stack is named after
/// the slice.
pub const PLATFORM_STACK: &str = "platform";

/// The bootstrap of the platform's own functions (`functions/platform/`); a slice's is
/// named after the slice.
pub const PLATFORM_BOOTSTRAP: &str = "platform";

/// The platform's own functions, shared by every flow.
pub const PLATFORM_FUNCTIONS: &[Function] = &[
    Function {
        name: PLATFORM_API,
        trigger: Trigger::Http,
        description: "the public routes: the health check and the OpenAPI document",
        uses: NONE,
        memory_mb: 128,
        timeout_s: 10,
    },
    Function {
        name: SMS_NOTIFIER,
        trigger: Trigger::Events,
        description: "one SMS per status change to the person concerned",
        uses: Uses {
            reads: &[NOTIFICATION],
            writes: &[NOTIFICATION],
            processed: true,
            sms: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: STATUS_PROJECTOR,
        trigger: Trigger::Stream,
        description: "builds the status views from the tables' change records",
        uses: Uses { views_write: true, ..NONE },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: OUTBOX_SWEEPER,
        trigger: Trigger::Schedule("rate(1 minute)"),
        description: "republishes outbox events that were not published",
        uses: Uses {
            bus: true,
            outbox_index: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 60,
    },
];

/// The platform's own tables, shared by every flow.
pub const PLATFORM_TABLES: &[Table] = &[
    Table {
        name: NOTIFICATION,
        stream: false,
        ttl: true,
        indexes: OUTBOX_INDEXES,
    },
    Table {
        name: VIEWS,
        stream: false,
        ttl: false,
        indexes: &[
            Index {
                name: "by_owner",
                hash: "owner_key",
                range: "order_key",
            },
            Index {
                name: "by_date",
                hash: "date_key",
                range: "order_key",
            },
            Index {
                name: "by_flow",
                hash: "flow_key",
                range: "order_key",
            },
            Index {
                name: "by_queue",
                hash: "queue_key",
                range: "order_key",
            },
        ],
    },
    Table {
        name: PROCESSED,
        stream: false,
        ttl: true,
        indexes: &[],
    },
];

/// The events a slice emits from one source.
#[derive(Debug, Clone, Copy)]
pub struct Emits {
    /// `clinicflow.<context>`.
    pub source: &'static str,
    /// Event types.
    pub types: &'static [&'static str],
    /// The JSON Schema of the aggregate's event enum (`events::schema::of::<Event>`), one
    /// variant per type: `docs/events/<Type>.schema.json` is generated from it
    /// ([`crate::events::schema`]; empty without the `docs` feature).
    pub schema: crate::events::schema::SchemaFn,
}

/// Everything one flow is, as the platform consumes it.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    /// The flow's name (`[a-z]+`).
    pub name: &'static str,
    /// Its staff roles (the platform's [`PATIENT`] is everyone's).
    pub roles: &'static [Role],
    /// Its bounded contexts' tables.
    pub tables: &'static [Table],
    /// The events its aggregates emit.
    pub events: &'static [Emits],
    /// Its functions.
    pub functions: &'static [Function],
    /// Its routes, each with its handler.
    pub routes: &'static [Route],
    /// The paths of its routes that take no token, which anyone may call (the verifier of
    /// the documents it seals); every other route of the slice must require a role, and
    /// the catalog refuses a route without roles that is not listed here.
    pub public: &'static [&'static str],
    /// Its consumers, each with its subscriptions.
    pub consumers: &'static [Consumer],
    /// The projections that build its status views.
    pub projections: &'static [crate::app::projector::Projection],
    /// The SMS its status changes send.
    pub notifications: &'static [Notification],
    /// Its scheduled jobs, one per [`Trigger::Schedule`] function.
    pub jobs: &'static [Job],
    /// Reads its own settings, only in its own functions (and the local runtime).
    pub config: crate::config::LoadFn,
    /// Its part of the OpenAPI document, generated from its handlers' types: an operation
    /// per route, the schemas they use, and a sentence about the flow for the document's
    /// description (`http::openapi::part::<Api>`; empty without the `docs` feature). The
    /// platform adds the rest (`Catalog::openapi`).
    pub openapi: fn() -> utoipa::openapi::OpenApi,
}

impl Slice {
    /// What the platform's own functions (the SMS notifier, the status projector, the outbox
    /// sweeper, the public routes) need of this slice: its tables, events, roles, projections,
    /// notifications and settings, without its functions, routes, consumers and jobs. Made in
    /// a constant (`static PARTS: &[&Slice] = &[&SLICE.platform_part()]`), it refers to none
    /// of their handlers, so that a binary built on it links none of their code: the
    /// platform's bootstrap carries every slice's projections and texts, and no slice's
    /// commands.
    pub const fn platform_part(self) -> Slice {
        Slice {
            functions: &[],
            routes: &[],
            consumers: &[],
            jobs: &[],
            ..self
        }
    }
}

/// The whole platform: the slices and the platform's own parts, assembled once.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The slices, in order.
    pub slices: Vec<&'static Slice>,
    /// Every role: [`PATIENT`], then the slices'.
    pub roles: Vec<Role>,
    /// Every function: the slices', then the platform's.
    pub functions: Vec<Function>,
    /// Every route: the public ones, then the slices'.
    pub routes: Vec<Route>,
    /// Every rule: the consumers' subscriptions, then the notifier's.
    pub rules: Vec<Rule>,
    /// Every stream trigger.
    pub streams: Vec<StreamTrigger>,
    /// Every table: the slices', then the platform's.
    pub tables: Vec<Table>,
    /// Every consumer, the notifier's included.
    pub consumers: Vec<(&'static str, ConsumerFn)>,
    /// Every projection.
    pub projections: Vec<crate::app::projector::Projection>,
    /// Every notification.
    pub notifications: Vec<Notification>,
    /// Every slice's scheduled job.
    pub jobs: Vec<Job>,
    /// Every failure point: the platform's, then each command's after-commit point and
    /// each consumer's entry, before-write and after-write points.
    pub failure_points: Vec<String>,
    /// The OpenAPI document as served, generated on first use.
    openapi_json: OpenApiJson,
}

/// The served OpenAPI document: the one given, borrowed as it is, or the generated one,
/// once (printed as its length only).
#[derive(Clone, Default)]
struct OpenApiJson(std::sync::OnceLock<std::borrow::Cow<'static, str>>);

impl std::fmt::Debug for OpenApiJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(json) => write!(f, "OpenApiJson({} bytes)", json.len()),
            None => f.write_str("OpenApiJson(not generated)"),
        }
    }
}

impl Catalog {
    /// Assembles `slices` with the platform's functions, tables and public routes (served
    /// by [`PLATFORM_API`]).
    pub fn new(slices: &[&'static Slice]) -> Self {
        Self::assemble(slices, &[(SMS_NOTIFIER, crate::app::notifier::handle as ConsumerFn)])
    }

    /// The catalog a flow's bootstrap runs on: `slice` with the platform's parts as data, and
    /// none of the platform's own consumers (the SMS notifier runs in the platform's
    /// bootstrap), so that the binary links no code of theirs.
    pub fn of_flow(slice: &'static Slice) -> Self {
        Self::assemble(&[slice], &[])
    }

    /// The catalog of `slices`, whose consumers are the slices' and `platform_consumers`.
    fn assemble(slices: &[&'static Slice], platform_consumers: &[(&'static str, ConsumerFn)]) -> Self {
        let public = [
            (HEALTH_PATH, crate::http::routes::health as Handler),
            (OPENAPI_PATH, crate::http::routes::openapi as Handler),
        ]
        .map(|(path, handler)| Route {
            method: Method::Get,
            path,
            function: PLATFORM_API,
            roles: &[],
            handler,
        });
        let notifications: Vec<Notification> = slices.iter().flat_map(|s| s.notifications.iter().copied()).collect();
        let mut rules: Vec<Rule> = slices
            .iter()
            .flat_map(|s| s.consumers)
            .flat_map(|c| {
                c.subscriptions.iter().map(|s| Rule {
                    name: s.rule,
                    sources: s.sources.to_vec(),
                    detail_types: s.detail_types.to_vec(),
                    target: c.function,
                })
            })
            .collect();
        for n in &notifications {
            match rules.iter_mut().find(|r| r.name == n.rule && r.target == SMS_NOTIFIER) {
                Some(rule) => {
                    if !rule.sources.contains(&n.source) {
                        rule.sources.push(n.source);
                    }
                    if !rule.detail_types.contains(&n.event_type) {
                        rule.detail_types.push(n.event_type);
                    }
                }
                None => rules.push(Rule {
                    name: n.rule,
                    sources: vec![n.source],
                    detail_types: vec![n.event_type],
                    target: SMS_NOTIFIER,
                }),
            }
        }
        let tables: Vec<Table> = slices
            .iter()
            .flat_map(|s| s.tables.iter().copied())
            .chain(PLATFORM_TABLES.iter().copied())
            .collect();
        let streamed: Vec<&'static str> = tables.iter().filter(|t| t.stream).map(|t| t.name).collect();
        let consumers = slices
            .iter()
            .flat_map(|s| s.consumers)
            .map(|c| (c.function, c.handle))
            .chain(platform_consumers.iter().copied())
            .collect();
        let mut catalog = Self {
            slices: slices.to_vec(),
            roles: std::iter::once(PATIENT)
                .chain(slices.iter().flat_map(|s| s.roles.iter().copied()))
                .collect(),
            functions: slices
                .iter()
                .flat_map(|s| s.functions.iter().copied())
                .chain(PLATFORM_FUNCTIONS.iter().copied())
                .collect(),
            routes: public
                .into_iter()
                .chain(slices.iter().flat_map(|s| s.routes.iter().copied()))
                .collect(),
            rules,
            streams: vec![StreamTrigger {
                function: STATUS_PROJECTOR,
                tables: streamed,
            }],
            tables,
            consumers,
            projections: slices.iter().flat_map(|s| s.projections.iter().copied()).collect(),
            notifications,
            jobs: slices.iter().flat_map(|s| s.jobs.iter().copied()).collect(),
            failure_points: Vec::new(),
            openapi_json: OpenApiJson::default(),
        };
        catalog.failure_points = catalog.derive_failure_points();
        catalog
    }

    /// The function of that name.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name == name)
    }

    /// The routes served by `function`.
    pub fn routes_of<'a>(&'a self, function: &'a str) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes.iter().filter(move |r| r.function == function)
    }

    /// The table of that logical name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The bounded contexts' tables: those with a stream, which hold aggregates and outboxes.
    pub fn context_tables(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tables.iter().filter(|t| t.stream).map(|t| t.name)
    }

    /// The handler of consumer `name`.
    pub fn consumer(&self, name: &str) -> Option<ConsumerFn> {
        self.consumers.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
    }

    /// The job of scheduled function `name`.
    pub fn job(&self, name: &str) -> Option<Job> {
        self.jobs.iter().copied().find(|j| j.function == name)
    }

    /// The role of a Cognito group, if it is one of the catalog's.
    pub fn role(&self, group: &str) -> Option<Role> {
        self.roles.iter().copied().find(|r| r.group == group)
    }

    /// The bootstrap (the binary, `functions/<bootstrap>/`) that serves `function`: its
    /// slice's, named after the slice, or the platform's ([`PLATFORM_BOOTSTRAP`]). Every
    /// function of a bootstrap is still its own Lambda function; the `Handler` setting
    /// (`_HANDLER`) tells the binary which one it is.
    pub fn bootstrap_of(&self, function: &str) -> &'static str {
        self.slice_of(function).map_or(PLATFORM_BOOTSTRAP, |s| s.name)
    }

    /// Every bootstrap, each once, in catalog order: each slice's, then the platform's.
    pub fn bootstraps(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for f in &self.functions {
            let b = self.bootstrap_of(f.name);
            if !out.contains(&b) {
                out.push(b);
            }
        }
        out
    }

    /// The functions `bootstrap` serves, in catalog order.
    pub fn served_by<'a>(&'a self, bootstrap: &'a str) -> impl Iterator<Item = &'a Function> + 'a {
        self.functions.iter().filter(move |f| self.bootstrap_of(f.name) == bootstrap)
    }

    /// The stack that deploys `function`: its slice's, named after the slice, or the
    /// platform's ([`PLATFORM_STACK`]), which is deployed first.
    pub fn stack_of(&self, function: &str) -> &'static str {
        self.slice_of(function).map_or(PLATFORM_STACK, |s| s.name)
    }

    /// The stack that holds `table`: that of the slice declaring it, or the platform's.
    pub fn stack_of_table(&self, table: &str) -> &'static str {
        self.slices
            .iter()
            .find(|s| s.tables.iter().any(|t| t.name == table))
            .map_or(PLATFORM_STACK, |s| s.name)
    }

    /// Every stack, each once: each slice's, then the platform's.
    pub fn stacks(&self) -> Vec<&'static str> {
        self.slices.iter().map(|s| s.name).chain([PLATFORM_STACK]).collect()
    }

    /// The stack whose template writes a grant of `function` on `resource`: the function's
    /// own, unless the function is the platform's and the resource a slice's table (the
    /// projector reading a flow's stream, the sweeper its outbox): then the slice's stack,
    /// which is deployed after the platform's and attaches the grant to the function's role.
    pub fn stack_of_grant(&self, function: &str, resource: Resource) -> &'static str {
        let own = self.stack_of(function);
        match resource.table() {
            Some(table) if own == PLATFORM_STACK => self.stack_of_table(table),
            _ => own,
        }
    }

    /// The slice a function belongs to (`None` for the platform's own).
    pub fn slice_of(&self, function: &str) -> Option<&'static Slice> {
        self.slices.iter().copied().find(|s| s.functions.iter().any(|f| f.name == function))
    }

    fn derive_failure_points(&self) -> Vec<String> {
        use crate::app::faults;
        let mut points: Vec<String> = faults::PLATFORM_POINTS.iter().map(|p| (*p).to_owned()).collect();
        for f in &self.functions {
            match f.trigger {
                Trigger::Http if f.uses.bus => points.push(faults::after_commit(f.name)),
                Trigger::Events => points.extend(faults::consumer_points(f.name)),
                _ => {}
            }
        }
        points
    }

    /// The whole IAM scope of `function`, derived from its [`Uses`] and triggers: exactly
    /// the calls its adapters make, on exactly the resources they make them on. Both
    /// templates build the function's role from this, and the template test holds them to it.
    pub fn permissions(&self, function: &Function) -> Vec<Grant> {
        let u = &function.uses;
        let mut by_resource: BTreeMap<Resource, Vec<&'static str>> = BTreeMap::new();
        let mut grant = |resource: Resource, actions: &[&'static str]| {
            let entry = by_resource.entry(resource).or_default();
            for a in actions {
                if !entry.contains(a) {
                    entry.push(a);
                }
            }
        };
        // Aggregates, counters, idempotency records and views are read by key.
        for t in u.reads {
            grant(Resource::Table(t), &["dynamodb:GetItem"]);
        }
        // A commit is one TransactWriteItems of conditional Puts (aggregates, events,
        // records) and Updates (counters); marking an event published is an UpdateItem, so
        // only a function that publishes updates the tables it stores in. The IAM saga on
        // moto proves each of these grants both needed and enough.
        for t in u.writes {
            grant(Resource::Table(t), &["dynamodb:PutItem"]);
            if u.bus {
                grant(Resource::Table(t), &["dynamodb:UpdateItem"]);
            }
        }
        for t in u.counts {
            grant(Resource::Table(t), &["dynamodb:UpdateItem"]);
        }
        if u.processed {
            grant(Resource::Table(PROCESSED), &["dynamodb:GetItem", "dynamodb:PutItem"]);
        }
        if u.views_read {
            grant(Resource::Table(VIEWS), &["dynamodb:GetItem"]);
        }
        if u.views_read || u.views_listed {
            grant(Resource::Index(VIEWS, "*"), &["dynamodb:Query"]);
        }
        if u.views_write {
            grant(Resource::Table(VIEWS), &["dynamodb:GetItem", "dynamodb:PutItem"]);
        }
        if u.outbox_index {
            for t in self.context_tables() {
                grant(Resource::Index(t, PENDING_INDEX), &["dynamodb:Query"]);
                grant(Resource::Table(t), &["dynamodb:UpdateItem"]);
            }
        }
        if u.bus {
            grant(Resource::Bus, &["events:PutEvents"]);
        }
        if u.sms {
            grant(Resource::AnyButTopics, &["sns:Publish"]);
            grant(Resource::Any, &["sns:CheckIfPhoneNumberIsOptedOut"]);
        }
        // The slice's signing key, in the slice's stack: sealing signs, and nothing else;
        // publishing the key reads its public half, and nothing else.
        if u.seals {
            grant(Resource::SigningKey(self.stack_of(function.name)), &["kms:Sign"]);
        }
        if u.verifies {
            grant(Resource::SigningKey(self.stack_of(function.name)), &["kms:GetPublicKey"]);
        }
        // Lambda sends an asynchronous invocation (an EventBridge delivery) that still fails
        // after its retries to the function's on-failure destination, as the function's role.
        if function.trigger == Trigger::Events {
            grant(Resource::FailureQueue(function.name), &["sqs:SendMessage"]);
        }
        for s in self.streams.iter().filter(|s| s.function == function.name) {
            for t in &s.tables {
                grant(
                    Resource::Stream(t),
                    &["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                );
            }
            grant(Resource::Any, &["dynamodb:ListStreams"]);
            grant(Resource::FailureQueue(function.name), &["sqs:SendMessage"]);
        }
        by_resource
            .into_iter()
            .map(|(resource, mut actions)| {
                actions.sort_unstable();
                Grant { actions, resource }
            })
            .collect()
    }

    /// The environment `function` gets (variable → resource): the physical name of each
    /// table it has a grant on, in its own stack or the platform's, and the bus name if it
    /// publishes. A platform function never names a slice's table in its environment (its
    /// stack is deployed before theirs): the projector reads the stream records it is
    /// given, and the sweeper sweeps the tables its schedule's input names.
    pub fn environment_of(&self, function: &Function) -> Vec<(String, Resource)> {
        let own = self.stack_of(function.name);
        let granted: Vec<&'static str> = self
            .permissions(function)
            .iter()
            .filter_map(|g| g.resource.table())
            .filter(|t| {
                let home = self.stack_of_table(t);
                home == own || home == PLATFORM_STACK
            })
            .collect();
        self.tables
            .iter()
            .filter(|t| granted.contains(&t.name))
            .map(|t| (table_variable(t.name), Resource::Table(t.name)))
            .chain(function.uses.bus.then(|| (BUS_VARIABLE.to_owned(), Resource::Bus)))
            .chain((function.uses.seals || function.uses.verifies).then(|| (SIGNING_KEY_VARIABLE.to_owned(), Resource::SigningKey(own))))
            .collect()
    }

    /// The stacks whose slices seal documents, each of which holds a signing key (an
    /// asymmetric KMS key, `ECC_NIST_P256` for `SIGN_VERIFY`).
    pub fn signing_stacks(&self) -> Vec<&'static str> {
        let mut stacks: Vec<&'static str> = self
            .functions
            .iter()
            .filter(|f| f.uses.seals || f.uses.verifies)
            .map(|f| self.stack_of(f.name))
            .collect();
        stacks.dedup();
        stacks
    }

    /// What the sweeper's schedule in each stack sweeps: the stack's context tables (those
    /// with an outbox and a stream), for the stacks that have any.
    pub fn sweeps(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        self.stacks()
            .into_iter()
            .map(|stack| {
                let tables: Vec<&'static str> = self.context_tables().filter(|t| self.stack_of_table(t) == stack).collect();
                (stack, tables)
            })
            .filter(|(_, tables)| !tables.is_empty())
            .collect()
    }

    /// Every scheduled run the templates build: the sweeper once per stack with an outbox,
    /// on that stack's tables; each slice's job once, in its own stack, on no table.
    pub fn schedules(&self) -> Vec<ScheduleRun> {
        self.functions
            .iter()
            .filter_map(|f| match f.trigger {
                Trigger::Schedule(expression) => Some((f.name, expression)),
                _ => None,
            })
            .flat_map(|(function, expression)| {
                let runs = if function == OUTBOX_SWEEPER {
                    self.sweeps()
                } else {
                    vec![(self.stack_of(function), Vec::new())]
                };
                runs.into_iter().map(move |(stack, tables)| ScheduleRun {
                    function,
                    expression,
                    stack,
                    tables,
                })
            })
            .collect()
    }

    /// The topology as JSON (`infra/topology.json`): what the CDK app builds from, and what
    /// the template test compares the SAM and synthesized CDK templates against.
    pub fn export(&self) -> serde_json::Value {
        use serde_json::{Value, json};
        let functions: Vec<Value> = self
            .functions
            .iter()
            .map(|f| {
                let (trigger, schedule) = match f.trigger {
                    Trigger::Http => ("http", None),
                    Trigger::Events => ("events", None),
                    Trigger::Stream => ("stream", None),
                    Trigger::Schedule(s) => ("schedule", Some(s)),
                };
                let environment: serde_json::Map<String, Value> = self
                    .environment_of(f)
                    .into_iter()
                    .map(|(k, r)| (k, Value::String(r.to_string())))
                    .collect();
                json!({
                    "name": f.name,
                    "stack": self.stack_of(f.name),
                    "bootstrap": self.bootstrap_of(f.name),
                    "description": f.description,
                    "trigger": trigger,
                    "schedule": schedule,
                    "memory_mb": f.memory_mb,
                    "timeout_s": f.timeout_s,
                    "environment": environment,
                    "permissions": self.permissions(f).iter().map(|g| json!({
                        "actions": g.actions,
                        "resource": g.resource.to_string(),
                        "stack": self.stack_of_grant(f.name, g.resource),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let streams: Vec<Value> = self
            .streams
            .iter()
            .flat_map(|s| {
                self.stacks().into_iter().filter_map(move |stack| {
                    let tables: Vec<&str> = s.tables.iter().copied().filter(|t| self.stack_of_table(t) == stack).collect();
                    (!tables.is_empty()).then(|| json!({"function": s.function, "stack": stack, "tables": tables}))
                })
            })
            .collect();
        let schedules: Vec<Value> = self
            .schedules()
            .into_iter()
            .map(|s| json!({"function": s.function, "expression": s.expression, "stack": s.stack, "tables": s.tables}))
            .collect();
        json!({
            "stacks": self.stacks(),
            "roles": self.roles.iter().map(|r| r.group).collect::<Vec<_>>(),
            "functions": functions,
            "routes": self.routes.iter().map(|r| json!({
                "method": r.method.as_str(),
                "path": r.path,
                "function": r.function,
                "stack": self.stack_of(r.function),
                "public": r.is_public(),
            })).collect::<Vec<_>>(),
            "rules": self.rules.iter().map(|r| json!({
                "name": r.name,
                "target": r.target,
                "stack": self.stack_of(r.target),
                "pattern": {"source": r.sources, "detail-type": r.detail_types},
            })).collect::<Vec<_>>(),
            "streams": streams,
            "schedules": schedules,
            "tables": self.tables.iter().map(|t| json!({
                "name": t.name,
                "stack": self.stack_of_table(t.name),
                "key": TABLE_KEY,
                "stream": t.stream.then_some("NEW_IMAGE"),
                "ttl": t.ttl.then_some(TTL_ATTRIBUTE),
                "indexes": t.indexes.iter().map(|i| json!({"name": i.name, "hash": i.hash, "range": i.range})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "signing_keys": self.signing_stacks().into_iter().map(|stack| json!({
                "stack": stack,
                "resource": Resource::SigningKey(stack).to_string(),
                "key_spec": SIGNING_KEY_SPEC,
                "key_usage": SIGNING_KEY_USAGE,
                "algorithm": SIGNING_ALGORITHM,
            })).collect::<Vec<_>>(),
        })
    }

    /// The OpenAPI 3.1 document of the whole API: the platform's part merged with each
    /// slice's, each operation's tags and security from its route ([`crate::http::openapi`]).
    #[cfg(feature = "docs")]
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        crate::http::openapi::document(self)
    }

    /// Serves `json` at `GET /openapi.json`: the committed `docs/openapi.json`, which a test
    /// holds equal to [`Catalog::openapi`]. A Lambda function's catalog (one flow, no
    /// generators) serves the whole API's document this way.
    pub fn serving_openapi(self, json: &'static str) -> Self {
        // Borrowed: a function's init copies nothing it may never serve.
        let served = std::sync::OnceLock::new();
        let _ = served.set(std::borrow::Cow::Borrowed(json));
        Self {
            openapi_json: OpenApiJson(served),
            ..self
        }
    }

    /// The OpenAPI document as `GET /openapi.json` serves it: the one given to
    /// [`Catalog::serving_openapi`], or else (with the `docs` feature) the generated one,
    /// pretty-printed with a trailing newline, as `docs/openapi.json` holds it.
    pub fn openapi_json(&self) -> &str {
        self.openapi_json.0.get_or_init(|| {
            #[cfg(feature = "docs")]
            {
                std::borrow::Cow::Owned(crate::http::openapi::to_json(&self.openapi()))
            }
            #[cfg(not(feature = "docs"))]
            {
                std::borrow::Cow::Borrowed(crate::http::openapi::UNDOCUMENTED)
            }
        })
    }

    /// What the catalog is missing or contradicts, each named with its slice and place. The
    /// assembled catalog is checked in a test; an empty list is a whole catalog.
    pub fn check(&self) -> Vec<String> {
        crate::catalog_check::check(self)
    }

    /// What the repository at `root` lacks for the catalog: bootstraps, event schemas and
    /// samples.
    #[cfg(feature = "docs")]
    pub fn check_files(&self, root: &std::path::Path) -> Vec<String> {
        crate::catalog_check::check_files(self, root)
    }
}

/// One schedule of a scheduled function in one stack ([`Catalog::schedules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRun {
    /// The function it invokes.
    pub function: &'static str,
    /// Its expression.
    pub expression: &'static str,
    /// The stack that holds it.
    pub stack: &'static str,
    /// The tables its input names (the sweeper's; none for a job).
    pub tables: Vec<&'static str>,
}

/// The environment variable holding a table's physical name: `TABLE_CHECKUP`, ….
pub fn table_variable(table: &str) -> String {
    format!("TABLE_{}", table.to_uppercase().replace('-', "_"))
}

/// The environment variable holding the event bus name.
pub const BUS_VARIABLE: &str = "EVENT_BUS_NAME";
/// The key spec of a stack's signing key: a NIST P-256 key pair, as ES256 signs with.
pub const SIGNING_KEY_SPEC: &str = "ECC_NIST_P256";
/// The key usage of a stack's signing key.
pub const SIGNING_KEY_USAGE: &str = "SIGN_VERIFY";
/// The signing algorithm the sealing functions ask KMS for.
pub const SIGNING_ALGORITHM: &str = "ECDSA_SHA_256";

/// The variable holding the ARN of the signing key of a function that seals or verifies.
pub const SIGNING_KEY_VARIABLE: &str = "SIGNING_KEY_ARN";

/// What an IAM statement applies to, named by role in the topology; the templates turn
/// each into an ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// A table.
    Table(&'static str),
    /// A table's index (`*`: all of them).
    Index(&'static str, &'static str),
    /// A table's stream.
    Stream(&'static str),
    /// The event bus.
    Bus,
    /// A function's on-failure queue: where its stream mappings, or Lambda's asynchronous
    /// invocations of it (EventBridge deliveries), send what still fails after retries.
    FailureQueue(&'static str),
    /// Any resource: for actions that take none (`dynamodb:ListStreams`, SMS opt-out checks).
    Any,
    /// Anything but an SNS topic (`NotResource: arn:<partition>:sns:*:*:*`): direct SMS only.
    AnyButTopics,
    /// The signing key of a stack's slice (a KMS key in that stack).
    SigningKey(&'static str),
}

impl Resource {
    /// The table a table, index or stream resource belongs to.
    pub fn table(self) -> Option<&'static str> {
        match self {
            Self::Table(t) | Self::Index(t, _) | Self::Stream(t) => Some(t),
            _ => None,
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Table(t) => write!(f, "table/{t}"),
            Self::Index(t, i) => write!(f, "table/{t}/index/{i}"),
            Self::Stream(t) => write!(f, "table/{t}/stream"),
            Self::Bus => f.write_str("event-bus"),
            Self::FailureQueue(function) => write!(f, "failure-queue/{function}"),
            Self::Any => f.write_str("*"),
            Self::AnyButTopics => f.write_str("not:sns-topic"),
            Self::SigningKey(stack) => write!(f, "signing-key/{stack}"),
        }
    }
}

/// One IAM grant: `actions` on `resource`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// IAM actions (`dynamodb:GetItem`).
    pub actions: Vec<&'static str>,
    /// What they apply to.
    pub resource: Resource,
}
