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
    /// Roles allowed to call it; ownership is checked by the handler.
    pub roles: &'static [Role],
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
}

/// The resources a function touches, and how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uses {
    /// Bounded-context tables it reads.
    pub reads: &'static [&'static str],
    /// Bounded-context tables it writes (aggregates, counters, outbox), transactionally.
    pub writes: &'static [&'static str],
    /// Reads the status views.
    pub views_read: bool,
    /// Writes the status views.
    pub views_write: bool,
    /// Reads and writes processed marks and idempotent responses.
    pub processed: bool,
    /// Publishes to the event bus.
    pub bus: bool,
    /// Sends SMS.
    pub sms: bool,
    /// Scans the outbox index of every context table (the sweeper).
    pub outbox_index: bool,
}

impl Uses {
    /// Touches DynamoDB at all.
    pub fn store(&self) -> bool {
        !self.reads.is_empty() || !self.writes.is_empty() || self.views_read || self.views_write || self.processed
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
    },
    Function {
        name: "checkup-cancel",
        trigger: Trigger::Http,
        description: "the patient cancels a booking",
        uses: Uses {
            reads: &[checkup::CONTEXT],
            writes: &[checkup::CONTEXT],
            processed: true,
            bus: true,
            ..NONE
        },
    },
    Function {
        name: "checkup-query",
        trigger: Trigger::Http,
        description: "status views: one booking, my bookings, the centre's work list",
        uses: Uses { views_read: true, ..NONE },
    },
    Function {
        name: "centre-confirm",
        trigger: Trigger::Http,
        description: "centre staff confirm a booking",
        uses: Uses {
            reads: &[checkup::CONTEXT, centre::CONTEXT],
            writes: &[checkup::CONTEXT, centre::CONTEXT],
            processed: true,
            bus: true,
            ..NONE
        },
    },
    Function {
        name: "centre-reject",
        trigger: Trigger::Http,
        description: "centre staff reject a booking",
        uses: Uses {
            reads: &[checkup::CONTEXT, centre::CONTEXT],
            writes: &[checkup::CONTEXT, centre::CONTEXT],
            processed: true,
            bus: true,
            ..NONE
        },
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
    },
    Function {
        name: "status-projector",
        trigger: Trigger::Stream,
        description: "builds the status views from the tables' change records",
        uses: Uses {
            views_read: true,
            views_write: true,
            ..NONE
        },
    },
    Function {
        name: "outbox-sweeper",
        trigger: Trigger::Schedule("rate(1 minute)"),
        description: "republishes outbox events that were not published",
        uses: Uses {
            reads: CONTEXT_TABLES,
            writes: CONTEXT_TABLES,
            bus: true,
            outbox_index: true,
            ..NONE
        },
    },
];

const PATIENT: &[Role] = &[Role::Patient];
const CENTRE: &[Role] = &[Role::Centre];
const PATIENT_OR_CENTRE: &[Role] = &[Role::Patient, Role::Centre];

/// Every API route.
pub const ROUTES: &[Route] = &[
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
    fn every_route_requires_a_role() {
        assert!(ROUTES.iter().all(|r| !r.roles.is_empty()));
    }
}
