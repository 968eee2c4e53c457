//! The one catalog of clinicflow's functions, routes, rules, stream triggers and tables.
//! The local runtime routes and delivers from it; tests hold the SAM and CDK templates to it.

use crate::domain::{centre, checkup, payment};

/// A role, from the `cognito:groups` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A patient (citizen, customer).
    Patient,
    /// Check-up centre staff.
    Centre,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 2] = [Role::Patient, Role::Centre];

    /// The Cognito group name.
    pub fn group(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Centre => "centre",
        }
    }

    /// The role of a Cognito group, if it is one of ours.
    pub fn from_group(group: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.group() == group)
    }
}

/// HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// An API route served by one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Method.
    pub method: Method,
    /// Path, with `{param}` placeholders (API Gateway and axum 0.8 syntax alike).
    pub path: &'static str,
    /// The function serving it.
    pub function: &'static str,
    /// Roles allowed to call it; ownership is checked by the handler. Empty for the public
    /// routes, the health check and the OpenAPI document.
    pub roles: &'static [Role],
}

impl Route {
    /// Open to anyone, without a token ([`PUBLIC_PATHS`]).
    pub fn is_public(&self) -> bool {
        self.roles.is_empty()
    }
}

/// An EventBridge rule: events of `source` whose type is one of `detail_types` go to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Rule name.
    pub name: &'static str,
    /// Event source (`clinicflow.checkup`).
    pub source: &'static str,
    /// Event types.
    pub detail_types: &'static [&'static str],
    /// Consumer function.
    pub target: &'static str,
}

impl Rule {
    /// Does an event match the rule's pattern?
    pub fn matches(&self, source: &str, detail_type: &str) -> bool {
        self.source == source && self.detail_types.contains(&detail_type)
    }
}

/// A stream trigger: change records of `tables` feed `function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTrigger {
    /// Function.
    pub function: &'static str,
    /// Source tables (bounded contexts).
    pub tables: &'static [&'static str],
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
    /// A schedule (`rate(1 minute)`).
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

/// The resources a function touches, and how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses {
    /// Bounded-context tables it reads.
    pub reads: &'static [&'static str],
    /// Bounded-context tables it writes (aggregates, counters, outbox), transactionally.
    pub writes: &'static [&'static str],
    /// Reads and lists the status views.
    pub views_read: bool,
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
}

impl Uses {
    /// Touches DynamoDB at all.
    pub fn store(&self) -> bool {
        !self.reads.is_empty() || !self.writes.is_empty() || self.views_read || self.views_write || self.processed || self.outbox_index
    }
}

/// The notifier's own table (contacts and notification records); it has no stream.
pub const NOTIFICATION: &str = "notification";
const NONE: Uses = Uses {
    reads: &[],
    writes: &[],
    views_read: false,
    views_write: false,
    processed: false,
    bus: false,
    sms: false,
    outbox_index: false,
};

/// The bounded-context tables (each with a stream), plus the shared ones.
pub const CONTEXT_TABLES: &[&str] = &[checkup::CONTEXT, payment::CONTEXT, centre::CONTEXT];

/// Every function.
pub const FUNCTIONS: &[Function] = &[
    Function {
        name: "checkup-book",
        trigger: Trigger::Http,
        description: "book a check-up: validate, take payment, store booking, place and event",
        uses: Uses {
            reads: &[checkup::CONTEXT],
            writes: &[checkup::CONTEXT, payment::CONTEXT],
            processed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: "checkup-cancel",
        trigger: Trigger::Http,
        description: "the patient cancels a booking",
        uses: Uses {
            reads: &[checkup::CONTEXT],
            writes: &[checkup::CONTEXT],
            bus: true,
            ..NONE
        },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: "checkup-query",
        trigger: Trigger::Http,
        description: "status views: one booking, my bookings, the centre's work list",
        uses: Uses { views_read: true, ..NONE },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: "centre-confirm",
        trigger: Trigger::Http,
        description: "centre staff confirm a booking",
        uses: Uses {
            reads: &[checkup::CONTEXT, centre::CONTEXT],
            writes: &[checkup::CONTEXT, centre::CONTEXT],
            bus: true,
            ..NONE
        },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: "centre-reject",
        trigger: Trigger::Http,
        description: "centre staff reject a booking",
        uses: Uses {
            reads: &[checkup::CONTEXT, centre::CONTEXT],
            writes: &[checkup::CONTEXT, centre::CONTEXT],
            bus: true,
            ..NONE
        },
        memory_mb: 256,
        timeout_s: 20,
    },
    Function {
        name: "centre-worklist",
        trigger: Trigger::Events,
        description: "puts bookings on the centre's work list, withdraws cancelled ones",
        uses: Uses {
            reads: &[centre::CONTEXT],
            writes: &[centre::CONTEXT],
            processed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: "availability-release",
        trigger: Trigger::Events,
        description: "gives a cancelled or rejected booking's place back",
        uses: Uses {
            reads: &[checkup::CONTEXT],
            writes: &[checkup::CONTEXT],
            processed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: "payment-refund",
        trigger: Trigger::Events,
        description: "refunds a cancelled or rejected booking's payment",
        uses: Uses {
            reads: &[checkup::CONTEXT, payment::CONTEXT],
            writes: &[payment::CONTEXT],
            processed: true,
            bus: true,
            ..NONE
        },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: "sms-notifier",
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
        name: "status-projector",
        trigger: Trigger::Stream,
        description: "builds the status views from the tables' change records",
        uses: Uses { views_write: true, ..NONE },
        memory_mb: 128,
        timeout_s: 30,
    },
    Function {
        name: "outbox-sweeper",
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

/// The health check: a route without the authorizer.
pub const HEALTH_PATH: &str = "/health";
/// The API's OpenAPI document (`docs/openapi.json`): a route without the authorizer.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// The routes without the authorizer, open to anyone.
pub const PUBLIC_PATHS: &[&str] = &[HEALTH_PATH, OPENAPI_PATH];

const PATIENT: &[Role] = &[Role::Patient];
const CENTRE: &[Role] = &[Role::Centre];
const PATIENT_OR_CENTRE: &[Role] = &[Role::Patient, Role::Centre];

/// Every API route.
pub const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: HEALTH_PATH,
        function: "checkup-query",
        roles: &[],
    },
    Route {
        method: Method::Get,
        path: OPENAPI_PATH,
        function: "checkup-query",
        roles: &[],
    },
    Route {
        method: Method::Post,
        path: "/checkups",
        function: "checkup-book",
        roles: PATIENT,
    },
    Route {
        method: Method::Get,
        path: "/checkups",
        function: "checkup-query",
        roles: PATIENT,
    },
    Route {
        method: Method::Get,
        path: "/checkups/{id}",
        function: "checkup-query",
        roles: PATIENT_OR_CENTRE,
    },
    Route {
        method: Method::Post,
        path: "/checkups/{id}/cancel",
        function: "checkup-cancel",
        roles: PATIENT,
    },
    Route {
        method: Method::Get,
        path: "/centre/checkups",
        function: "checkup-query",
        roles: CENTRE,
    },
    Route {
        method: Method::Post,
        path: "/centre/checkups/{id}/confirm",
        function: "centre-confirm",
        roles: CENTRE,
    },
    Route {
        method: Method::Post,
        path: "/centre/checkups/{id}/reject",
        function: "centre-reject",
        roles: CENTRE,
    },
];

/// Every EventBridge rule.
pub const RULES: &[Rule] = &[
    Rule {
        name: "centre-worklist-on-checkup",
        source: "clinicflow.checkup",
        detail_types: &["CheckupBooked", "CheckupCancelled"],
        target: "centre-worklist",
    },
    Rule {
        name: "availability-release-on-checkup-end",
        source: "clinicflow.checkup",
        detail_types: &["CheckupCancelled", "CheckupRejected"],
        target: "availability-release",
    },
    Rule {
        name: "payment-refund-on-checkup-end",
        source: "clinicflow.checkup",
        detail_types: &["CheckupCancelled", "CheckupRejected"],
        target: "payment-refund",
    },
    Rule {
        name: "sms-on-checkup-status",
        source: "clinicflow.checkup",
        detail_types: &["CheckupBooked", "CheckupConfirmed", "CheckupRejected", "CheckupCancelled"],
        target: "sms-notifier",
    },
    Rule {
        name: "sms-on-payment-refund",
        source: "clinicflow.payment",
        detail_types: &["PaymentRefunded"],
        target: "sms-notifier",
    },
];

/// Every stream trigger.
pub const STREAMS: &[StreamTrigger] = &[StreamTrigger {
    function: "status-projector",
    tables: CONTEXT_TABLES,
}];

/// The routes served by `function`.
pub fn routes_of(function: &str) -> impl Iterator<Item = &'static Route> + '_ {
    ROUTES.iter().filter(move |r| r.function == function)
}

/// The function of that name.
pub fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// The partition key of every table (S); no table has a sort key.
pub const TABLE_KEY: &str = "pk";
/// The TTL attribute (epoch seconds) of the tables that expire items.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The status views' table.
pub const VIEWS: &str = "views";
/// Consumer dedup marks and idempotent responses.
pub const PROCESSED: &str = "processed";
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
    /// Has a `NEW_IMAGE` stream (read by the projector).
    pub stream: bool,
    /// Expires items on [`TTL_ATTRIBUTE`].
    pub ttl: bool,
    /// Global secondary indexes.
    pub indexes: &'static [Index],
}

const OUTBOX_INDEXES: &[Index] = &[Index {
    name: PENDING_INDEX,
    hash: "pending",
    range: "pending_at",
}];

/// Every table.
pub const TABLES: &[Table] = &[
    Table {
        name: checkup::CONTEXT,
        stream: true,
        ttl: true,
        indexes: OUTBOX_INDEXES,
    },
    Table {
        name: payment::CONTEXT,
        stream: true,
        ttl: true,
        indexes: OUTBOX_INDEXES,
    },
    Table {
        name: centre::CONTEXT,
        stream: true,
        ttl: true,
        indexes: OUTBOX_INDEXES,
    },
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
        ],
    },
    Table {
        name: PROCESSED,
        stream: false,
        ttl: true,
        indexes: &[],
    },
];

/// The table of that logical name.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// The environment variable holding a table's physical name: `TABLE_CHECKUP`, ….
pub fn table_variable(table: &str) -> String {
    format!("TABLE_{}", table.to_uppercase().replace('-', "_"))
}

/// The environment variable holding the event bus name.
pub const BUS_VARIABLE: &str = "EVENT_BUS_NAME";

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

/// The whole IAM scope of `function`, derived from its [`Uses`] and triggers: exactly the
/// calls its adapters make, on exactly the resources they make them on. Both templates
/// build the function's role from this, and the template test holds them to it.
pub fn permissions(function: &Function) -> Vec<Grant> {
    use std::collections::BTreeMap;
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
    // A commit is one TransactWriteItems of conditional Puts and Updates (counters);
    // marking an event published is an UpdateItem.
    for t in u.writes {
        grant(Resource::Table(t), &["dynamodb:PutItem", "dynamodb:UpdateItem"]);
    }
    if u.processed {
        grant(Resource::Table(PROCESSED), &["dynamodb:GetItem", "dynamodb:PutItem"]);
    }
    if u.views_read {
        grant(Resource::Table(VIEWS), &["dynamodb:GetItem"]);
        grant(Resource::Index(VIEWS, "*"), &["dynamodb:Query"]);
    }
    if u.views_write {
        grant(Resource::Table(VIEWS), &["dynamodb:GetItem", "dynamodb:PutItem"]);
    }
    if u.outbox_index {
        for t in CONTEXT_TABLES {
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
    // Lambda sends an asynchronous invocation (an EventBridge delivery) that still fails
    // after its retries to the function's on-failure destination, as the function's role.
    if function.trigger == Trigger::Events {
        grant(Resource::FailureQueue(function.name), &["sqs:SendMessage"]);
    }
    for s in STREAMS.iter().filter(|s| s.function == function.name) {
        for t in s.tables {
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

/// The environment every function gets: each table's physical name and the bus name
/// (variable → resource).
pub fn environment() -> Vec<(String, Resource)> {
    TABLES
        .iter()
        .map(|t| (table_variable(t.name), Resource::Table(t.name)))
        .chain([(BUS_VARIABLE.to_owned(), Resource::Bus)])
        .collect()
}

/// The topology as JSON (`infra/topology.json`): what the CDK app builds from, and what
/// the template test compares the SAM and synthesized CDK templates against.
pub fn export() -> serde_json::Value {
    use serde_json::{Value, json};
    let functions: Vec<Value> = FUNCTIONS
        .iter()
        .map(|f| {
            let (trigger, schedule) = match f.trigger {
                Trigger::Http => ("http", None),
                Trigger::Events => ("events", None),
                Trigger::Stream => ("stream", None),
                Trigger::Schedule(s) => ("schedule", Some(s)),
            };
            let environment: serde_json::Map<String, Value> =
                environment().into_iter().map(|(k, r)| (k, Value::String(r.to_string()))).collect();
            json!({
                "name": f.name,
                "description": f.description,
                "trigger": trigger,
                "schedule": schedule,
                "memory_mb": f.memory_mb,
                "timeout_s": f.timeout_s,
                "environment": environment,
                "permissions": permissions(f).iter().map(|g| json!({
                    "actions": g.actions,
                    "resource": g.resource.to_string(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "roles": Role::ALL.iter().map(|r| r.group()).collect::<Vec<_>>(),
        "functions": functions,
        "routes": ROUTES.iter().map(|r| json!({
            "method": r.method.as_str(),
            "path": r.path,
            "function": r.function,
            "public": r.is_public(),
        })).collect::<Vec<_>>(),
        "rules": RULES.iter().map(|r| json!({
            "name": r.name,
            "target": r.target,
            "pattern": {"source": [r.source], "detail-type": r.detail_types},
        })).collect::<Vec<_>>(),
        "streams": STREAMS.iter().map(|s| json!({"function": s.function, "tables": s.tables})).collect::<Vec<_>>(),
        "tables": TABLES.iter().map(|t| json!({
            "name": t.name,
            "key": TABLE_KEY,
            "stream": t.stream.then_some("NEW_IMAGE"),
            "ttl": t.ttl.then_some(TTL_ATTRIBUTE),
            "indexes": t.indexes.iter().map(|i| json!({"name": i.name, "hash": i.hash, "range": i.range})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_rule_and_stream_names_a_function_with_the_right_trigger() {
        for r in ROUTES {
            assert_eq!(function(r.function).map(|f| f.trigger), Some(Trigger::Http), "{}", r.path);
        }
        for r in RULES {
            assert_eq!(function(r.target).map(|f| f.trigger), Some(Trigger::Events), "{}", r.name);
        }
        for s in STREAMS {
            assert_eq!(function(s.function).map(|f| f.trigger), Some(Trigger::Stream));
        }
    }

    #[test]
    fn every_http_and_event_function_has_a_route_or_rule() {
        for f in FUNCTIONS {
            match f.trigger {
                Trigger::Http => assert!(routes_of(f.name).next().is_some(), "{}", f.name),
                Trigger::Events => assert!(RULES.iter().any(|r| r.target == f.name), "{}", f.name),
                _ => {}
            }
        }
    }

    #[test]
    fn every_route_but_the_health_check_and_the_openapi_document_requires_a_role() {
        for r in ROUTES {
            assert_eq!(r.is_public(), PUBLIC_PATHS.contains(&r.path), "{} {}", r.method.as_str(), r.path);
        }
    }

    #[test]
    fn every_function_is_granted_what_its_uses_name_and_nothing_else() {
        let book = permissions(function("checkup-book").expect("catalogued"));
        let on = |action: &str| -> Vec<String> {
            book.iter()
                .filter(|g| g.actions.contains(&action))
                .map(|g| g.resource.to_string())
                .collect()
        };
        assert_eq!(on("dynamodb:GetItem"), ["table/checkup", "table/processed"]);
        assert_eq!(on("dynamodb:PutItem"), ["table/checkup", "table/payment", "table/processed"]);
        assert_eq!(on("events:PutEvents"), ["event-bus"]);
        assert!(on("sns:Publish").is_empty() && on("dynamodb:Query").is_empty());

        let sms: Vec<&str> = FUNCTIONS
            .iter()
            .filter(|f| permissions(f).iter().any(|g| g.actions.iter().any(|a| a.starts_with("sns:"))))
            .map(|f| f.name)
            .collect();
        assert_eq!(sms, ["sms-notifier"]);
        let publish = permissions(function("sms-notifier").expect("catalogued"));
        assert!(
            publish
                .iter()
                .any(|g| g.actions == ["sns:Publish"] && g.resource == Resource::AnyButTopics)
        );

        let projector = permissions(function("status-projector").expect("catalogued"));
        for table in CONTEXT_TABLES {
            assert!(
                projector
                    .iter()
                    .any(|g| g.resource == Resource::Stream(table) && g.actions.contains(&"dynamodb:GetRecords"))
            );
        }
        assert!(projector.iter().any(|g| g.resource == Resource::FailureQueue("status-projector")));
        assert!(projector.iter().all(|g| !g.actions.contains(&"dynamodb:UpdateItem")));
        for f in FUNCTIONS.iter().filter(|f| f.trigger == Trigger::Events) {
            assert!(
                permissions(f).iter().any(|g| g.resource == Resource::FailureQueue(f.name)),
                "{} can send to its failure queue",
                f.name
            );
        }
    }

    #[test]
    fn every_table_a_function_uses_is_catalogued() {
        for f in FUNCTIONS {
            for g in permissions(f) {
                if let Resource::Table(t) | Resource::Index(t, _) | Resource::Stream(t) = g.resource {
                    assert!(table(t).is_some(), "{} uses {t}", f.name);
                }
            }
        }
        for s in STREAMS {
            assert!(s.tables.iter().all(|t| table(t).is_some_and(|t| t.stream)), "{}", s.function);
        }
    }

    #[test]
    fn the_export_lists_everything_the_templates_must_build() {
        let export = export();
        let count = |key: &str| export[key].as_array().map_or(0, Vec::len);
        assert_eq!(count("functions"), FUNCTIONS.len());
        assert_eq!(count("routes"), ROUTES.len());
        assert_eq!(count("rules"), RULES.len());
        assert_eq!(count("tables"), TABLES.len());
        assert_eq!(export["rules"][0]["pattern"]["detail-type"][0], "CheckupBooked");
        assert_eq!(export["functions"][0]["environment"]["TABLE_CHECKUP"], "table/checkup");
    }
}
