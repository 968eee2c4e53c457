//! The catalog assembled from the slices checks itself, and notices what a slice forgets:
//! each mutation below breaks one place on purpose, and the check must name the slice and
//! the place.

use std::path::PathBuf;

use clinicflow::catalog;
use clinicflow::flows::{checkup, covid, hospital, vaccine};
use clinicflow::topology::{
    Catalog, Consumer, Emits, Function, Method, NONE, Resource, Role, Route, Scope, Slice, Subscription, Trigger, Uses,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The check-up slice with `change` applied, assembled alone.
fn mutated(change: impl FnOnce(&mut Slice)) -> Catalog {
    let mut slice = checkup::SLICE;
    change(&mut slice);
    let slice: &'static Slice = Box::leak(Box::new(slice));
    Catalog::new(&[slice])
}

fn leak<T>(items: Vec<T>) -> &'static [T] {
    Box::leak(items.into_boxed_slice())
}

fn problems(c: &Catalog) -> Vec<String> {
    let mut all = c.check();
    all.extend(c.check_files(&root()));
    all
}

#[track_caller]
fn assert_named(problems: &[String], needles: &[&str]) {
    assert!(
        problems.iter().any(|p| needles.iter().all(|n| p.contains(n))),
        "no problem names {needles:?}; problems: {problems:#?}"
    );
}

#[test]
fn the_assembled_catalog_is_whole() {
    assert_eq!(problems(catalog()), Vec::<String>::new());
}

#[test]
fn a_route_without_an_openapi_entry_is_named() {
    let c = mutated(|s| {
        let mut routes = s.routes.to_vec();
        let mut extra = routes[0];
        extra.path = "/checkups/{id}/reschedule";
        extra.method = Method::Post;
        routes.push(extra);
        s.routes = leak(routes);
    });
    assert_named(
        &problems(&c),
        &["slice checkup", "route POST /checkups/{id}/reschedule", "docs/openapi.json"],
    );
}

#[test]
fn an_openapi_operation_without_a_route_is_named() {
    let c = mutated(|s| s.routes = leak(s.routes.iter().copied().filter(|r| r.path != "/checkups/{id}/cancel").collect()));
    assert_named(
        &problems(&c),
        &[
            "slice checkup",
            "OpenAPI document",
            "POST /checkups/{id}/cancel",
            "none of its routes",
        ],
    );
}

/// A scheduled function of the check-up slice, for the schedule rules.
fn scheduled(expression: &'static str) -> Function {
    Function {
        name: "checkup-nightly",
        trigger: Trigger::Schedule(expression),
        description: "a nightly run",
        uses: NONE,
        memory_mb: 128,
        timeout_s: 60,
    }
}

fn no_run(_: &clinicflow::app::Platform, _: chrono::DateTime<chrono::Utc>) -> clinicflow::topology::JobFuture<'static> {
    Box::pin(async { Ok(0) })
}

#[test]
fn a_scheduled_function_without_a_job_or_with_a_bad_expression_is_named() {
    let c = mutated(|s| {
        let mut functions = s.functions.to_vec();
        functions.push(scheduled("every night"));
        s.functions = leak(functions);
    });
    let found = problems(&c);
    assert_named(&found, &["slice checkup", "checkup-nightly", "has no job"]);
    assert_named(&found, &["slice checkup", "checkup-nightly", "every night"]);
}

#[test]
fn a_job_of_a_function_that_is_not_scheduled_is_named_and_a_well_formed_one_is_whole() {
    let c = mutated(|s| {
        s.jobs = leak(vec![clinicflow::topology::Job {
            function: "checkup-book",
            run: no_run,
        }])
    });
    assert_named(
        &problems(&c),
        &["slice checkup", "job checkup-book", "not one of the slice's scheduled functions"],
    );
    let c = mutated(|s| {
        let mut functions = s.functions.to_vec();
        functions.push(scheduled("cron(0 0 * * ? *)"));
        s.functions = leak(functions);
        s.jobs = leak(vec![clinicflow::topology::Job {
            function: "checkup-nightly",
            run: no_run,
        }]);
    });
    let found: Vec<String> = c.check().into_iter().filter(|p| p.contains("checkup-nightly")).collect();
    assert!(found.is_empty(), "{found:?}");
    assert!(
        c.schedules()
            .iter()
            .any(|s| s.function == "checkup-nightly" && s.expression == "cron(0 0 * * ? *)")
    );
}

#[test]
fn a_consumer_subscribed_to_an_event_nobody_emits_is_named() {
    let c = mutated(|s| {
        let mut consumers = s.consumers.to_vec();
        consumers[0] = Consumer {
            subscriptions: leak(vec![Subscription {
                rule: "centre-worklist-on-checkup",
                sources: &["clinicflow.checkup"],
                detail_types: &["CheckupRescheduled"],
            }]),
            ..consumers[0]
        };
        s.consumers = leak(consumers);
    });
    assert_named(
        &problems(&c),
        &["slice checkup", "consumer centre-worklist", "CheckupRescheduled", "no slice emits"],
    );
}

#[test]
fn an_event_without_a_schema_or_a_sample_is_named() {
    let c = mutated(|s| {
        let mut events = s.events.to_vec();
        events.push(Emits {
            source: "clinicflow.checkup",
            types: &["CheckupRescheduled"],
            schema: clinicflow::events::schema::of::<clinicflow::flows::checkup::domain::Event>,
        });
        s.events = leak(events);
    });
    let found = problems(&c);
    assert_named(&found, &["slice checkup", "CheckupRescheduled", "no schema"]);
    assert_named(&found, &["slice checkup", "CheckupRescheduled", "no sample"]);
}

#[test]
fn an_event_variant_the_slice_does_not_declare_is_named() {
    let c = mutated(|s| {
        let mut events = s.events.to_vec();
        events[0].types = &["CheckupBooked", "CheckupConfirmed", "CheckupRejected"];
        s.events = leak(events);
    });
    assert_named(&problems(&c), &["slice checkup", "variant CheckupCancelled", "does not declare"]);
}

#[test]
fn a_new_function_joins_its_slices_bootstrap_and_a_slice_without_one_is_named() {
    let c = mutated(|s| {
        let mut functions = s.functions.to_vec();
        functions.push(Function {
            name: "checkup-reschedule",
            trigger: Trigger::Http,
            description: "moves a booking to another date",
            uses: NONE,
            memory_mb: 128,
            timeout_s: 10,
        });
        s.functions = leak(functions);
    });
    let found = problems(&c);
    assert_eq!(c.bootstrap_of("checkup-reschedule"), "checkup", "served by the slice's bootstrap");
    assert!(
        !found.iter().any(|p| p.contains("has no package")),
        "a function needs no package of its own: {found:#?}"
    );
    assert_named(&found, &["slice checkup", "function checkup-reschedule", "serves no route"]);

    let c = mutated(|s| s.name = "reschedule");
    assert_named(
        &problems(&c),
        &["bootstrap reschedule", "checkup-book", "has no package (functions/reschedule/)"],
    );
}

#[test]
fn a_role_without_an_authorization_cell_is_named() {
    const AUDITOR: Role = Role {
        group: "auditor",
        scope: Scope::Flow,
        description: "reads everything",
    };
    let c = mutated(|s| s.roles = leak(vec![checkup::CENTRE, AUDITOR]));
    assert_named(&problems(&c), &["role auditor", "no authorization cell"]);

    let c = mutated(|s| {
        let mut routes = s.routes.to_vec();
        routes[0] = Route {
            roles: leak(vec![AUDITOR]),
            ..routes[0]
        };
        s.routes = leak(routes);
    });
    assert_named(
        &problems(&c),
        &["slice checkup", "route POST /checkups", "role auditor", "no slice declares"],
    );
}

#[test]
fn a_consumer_function_without_a_handler_or_a_rule_is_named() {
    let c = mutated(|s| {
        let mut functions = s.functions.to_vec();
        functions.push(Function {
            name: "checkup-reminder",
            trigger: Trigger::Events,
            description: "reminds the patient the day before",
            uses: Uses { bus: true, ..NONE },
            memory_mb: 128,
            timeout_s: 10,
        });
        s.functions = leak(functions);
    });
    let found = problems(&c);
    assert_named(&found, &["slice checkup", "function checkup-reminder", "no consumer handler"]);
    assert_named(&found, &["slice checkup", "function checkup-reminder", "no rule targets it"]);
}

#[test]
fn failure_points_are_derived_for_every_command_and_consumer() {
    let points = &catalog().failure_points;
    let mut unique = points.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), points.len(), "each point once");
    for f in &catalog().functions {
        match f.trigger {
            Trigger::Http if f.uses.bus => assert!(points.contains(&format!("{}/after-commit", f.name)), "{}", f.name),
            Trigger::Events => {
                for suffix in ["", "/before-write", "/after-write"] {
                    assert!(points.contains(&format!("{}{suffix}", f.name)), "{}{suffix}", f.name);
                }
            }
            _ => {}
        }
    }
    use checkup::faults::*;
    for named in [
        BOOK_AFTER_COMMIT,
        CANCEL_AFTER_COMMIT,
        CONFIRM_AFTER_COMMIT,
        REJECT_AFTER_COMMIT,
        CENTRE_WORKLIST_BEFORE_WRITE,
        AVAILABILITY_RELEASE_AFTER_WRITE,
        PAYMENT_REFUND_BEFORE_WRITE,
        SMS_NOTIFIER_BEFORE_WRITE,
        SMS_NOTIFIER_AFTER_WRITE,
    ] {
        assert!(points.iter().any(|p| p == named), "{named} is one of the catalog's points");
    }
    assert!(points.iter().any(|p| p == vaccine::faults::DOSE_RETURN_AFTER_WRITE));
    assert!(points.iter().any(|p| p == vaccine::faults::RESERVE_AFTER_COMMIT));
    assert!(points.iter().any(|p| p == hospital::faults::REGISTER_AFTER_COMMIT));
    assert!(points.iter().any(|p| p == hospital::faults::QUEUE_BEFORE_WRITE));
    assert!(points.iter().any(|p| p == covid::faults::APPLY_AFTER_COMMIT));
    assert!(points.iter().any(|p| p == covid::faults::SITE_QUEUE_BEFORE_WRITE));
    // Ten commands of the hospital flow publish, and it has four consumers; eight of the
    // COVID flow's, and it has five.
    assert_eq!(points.len(), 39 + 10 + 4 * 3 + 8 + 5 * 3);
}

#[test]
fn rules_are_derived_from_subscriptions_and_notifications() {
    let c = catalog();
    let names: Vec<&str> = c.rules.iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        [
            "centre-worklist-on-checkup",
            "availability-release-on-checkup-end",
            "payment-refund-on-checkup-end",
            "vaccine-dose-return-on-cancel",
            "vaccine-slot-notice-on-open",
            "hospital-queue-on-visit",
            "hospital-exam-order-on-treatment",
            "hospital-exam-outcome-on-exam",
            "hospital-visit-follow-on-treatment",
            "covid-site-queue-on-application",
            "covid-centre-follow-on-site",
            "covid-certify-on-result",
            "covid-transfer-on-request",
            "covid-transfer-on-release",
            "covid-isolation-on-dispatch",
            "sms-on-checkup-status",
            "sms-on-payment-refund",
            "sms-on-vaccine-alert",
            "sms-on-vaccine-slot",
            "sms-on-vaccine-reservation",
            "sms-on-hospital-visit",
            "sms-on-hospital-treatment",
            "sms-on-covid-application",
            "sms-on-covid-transfer",
            "sms-on-covid-isolation"
        ]
    );
    let sms = c.rules.iter().find(|r| r.name == "sms-on-checkup-status").expect("rule");
    assert_eq!(sms.target, "sms-notifier");
    assert_eq!(
        sms.detail_types,
        ["CheckupBooked", "CheckupConfirmed", "CheckupRejected", "CheckupCancelled"]
    );
    assert!(sms.matches("clinicflow.checkup", "CheckupBooked"));
    assert!(!sms.matches("clinicflow.payment", "CheckupBooked"));
}

#[test]
fn every_function_is_granted_what_its_uses_name_and_nothing_else() {
    let c = catalog();
    let book = c.permissions(c.function("checkup-book").expect("catalogued"));
    let on = |action: &str| -> Vec<String> {
        book.iter()
            .filter(|g| g.actions.contains(&action))
            .map(|g| g.resource.to_string())
            .collect()
    };
    // The payment table too: the sandbox provider keeps its ledger there on AWS.
    assert_eq!(on("dynamodb:GetItem"), ["table/checkup", "table/payment", "table/processed"]);
    assert_eq!(on("dynamodb:PutItem"), ["table/checkup", "table/payment", "table/processed"]);
    assert_eq!(on("events:PutEvents"), ["event-bus"]);
    assert!(on("sns:Publish").is_empty() && on("dynamodb:Query").is_empty());

    let sms: Vec<&str> = c
        .functions
        .iter()
        .filter(|f| c.permissions(f).iter().any(|g| g.actions.iter().any(|a| a.starts_with("sns:"))))
        .map(|f| f.name)
        .collect();
    assert_eq!(sms, ["sms-notifier"]);
    let publish = c.permissions(c.function("sms-notifier").expect("catalogued"));
    assert!(
        publish
            .iter()
            .any(|g| g.actions == ["sns:Publish"] && g.resource == Resource::AnyButTopics)
    );

    let projector = c.permissions(c.function("status-projector").expect("catalogued"));
    for table in c.context_tables() {
        assert!(
            projector
                .iter()
                .any(|g| g.resource == Resource::Stream(table) && g.actions.contains(&"dynamodb:GetRecords"))
        );
    }
    assert!(projector.iter().any(|g| g.resource == Resource::FailureQueue("status-projector")));
    assert!(projector.iter().all(|g| !g.actions.contains(&"dynamodb:UpdateItem")));
    for f in c.functions.iter().filter(|f| f.trigger == Trigger::Events) {
        assert!(
            c.permissions(f).iter().any(|g| g.resource == Resource::FailureQueue(f.name)),
            "{} can send to its failure queue",
            f.name
        );
    }
}

#[test]
fn every_table_a_function_uses_is_catalogued() {
    let c = catalog();
    for f in &c.functions {
        for g in c.permissions(f) {
            if let Resource::Table(t) | Resource::Index(t, _) | Resource::Stream(t) = g.resource {
                assert!(c.table(t).is_some(), "{} uses {t}", f.name);
            }
        }
    }
    for s in &c.streams {
        assert!(s.tables.iter().all(|t| c.table(t).is_some_and(|t| t.stream)), "{}", s.function);
    }
}

#[test]
fn the_export_lists_everything_the_templates_must_build() {
    let c = catalog();
    let export = c.export();
    let count = |key: &str| export[key].as_array().map_or(0, Vec::len);
    assert_eq!(count("functions"), c.functions.len());
    assert_eq!(count("routes"), c.routes.len());
    assert_eq!(count("rules"), c.rules.len());
    assert_eq!(count("tables"), c.tables.len());
    assert_eq!(export["rules"][0]["pattern"]["detail-type"][0], "CheckupBooked");
    assert_eq!(export["functions"][0]["environment"]["TABLE_CHECKUP"], "table/checkup");
}

#[test]
fn a_consumer_without_its_function_is_named() {
    let c = mutated(|s| s.functions = leak(s.functions.iter().copied().filter(|f| f.name != "payment-refund").collect()));
    assert_named(
        &problems(&c),
        &[
            "slice checkup",
            "consumer payment-refund",
            "not one of the slice's event-triggered functions",
        ],
    );
}

#[test]
fn the_stored_payment_ledger_lives_in_the_payment_contexts_table() {
    use clinicflow::adapters::sandbox::LEDGER_CONTEXT;
    assert_eq!(LEDGER_CONTEXT, clinicflow::contexts::payment::CONTEXT);
    assert!(catalog().table(LEDGER_CONTEXT).is_some_and(|t| t.stream));
}
