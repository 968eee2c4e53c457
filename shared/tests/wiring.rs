//! A Lambda's resource names come from its environment: exactly the tables its grants name
//! in its own stack or the platform's, and the bus if it publishes.

use clinicflow::topology::Resource;
use clinicflow::wiring::AwsSettings;

fn full(name: &str) -> Option<String> {
    Some(format!("value-of-{name}"))
}

#[test]
fn settings_name_the_tables_of_the_functions_environment() {
    let s = AwsSettings::from_lookup(clinicflow::catalog(), "checkup-book", full).expect("complete");
    assert_eq!(s.bus, "value-of-EVENT_BUS_NAME");
    assert_eq!(s.tables.processed, "value-of-TABLE_PROCESSED");
    assert!(s.tables.contexts.contains(&("checkup", "value-of-TABLE_CHECKUP".into())));
    assert!(s.tables.contexts.contains(&("payment", "value-of-TABLE_PAYMENT".into())));
    // Not granted, so not named, and not required.
    assert_eq!(s.tables.name_of("views"), None);
    assert_eq!(s.tables.name_of("centre"), None);

    let notifier = AwsSettings::from_lookup(clinicflow::catalog(), "sms-notifier", full).expect("complete");
    assert!(
        notifier
            .tables
            .contexts
            .contains(&("notification", "value-of-TABLE_NOTIFICATION".into()))
    );
    assert_eq!(notifier.bus, "", "the notifier does not publish");
}

#[test]
fn a_missing_or_empty_variable_is_named() {
    for missing in ["TABLE_CHECKUP", "TABLE_PROCESSED", "EVENT_BUS_NAME"] {
        let err = AwsSettings::from_lookup(clinicflow::catalog(), "checkup-book", |n| {
            if n == missing { Some(" ".into()) } else { full(n) }
        })
        .expect_err("incomplete");
        assert_eq!(err.to_string(), format!("configuration variable {missing} is required"));
    }
}

#[test]
fn only_what_it_is_given_is_required() {
    // A function reads nothing it is not given: an environment of its own variables alone.
    let catalog = clinicflow::catalog();
    for f in &catalog.functions {
        let own: Vec<String> = catalog.environment_of(f).into_iter().map(|(v, _)| v).collect();
        AwsSettings::from_lookup(catalog, f.name, |n| own.iter().any(|v| v == n).then(|| full(n)).flatten())
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
    }
}

#[test]
fn a_platform_function_names_no_flows_table() {
    // The platform's stack is deployed before the flows': its functions' environments name
    // only the platform's tables (the sweeper learns a flow's from its schedule).
    let catalog = clinicflow::catalog();
    for f in catalog.functions.iter().filter(|f| catalog.stack_of(f.name) == "platform") {
        for (variable, resource) in catalog.environment_of(f) {
            if let Resource::Table(t) = resource {
                assert_eq!(catalog.stack_of_table(t), "platform", "{}: {variable}", f.name);
            }
        }
    }
    let sweeper = catalog.function("outbox-sweeper").expect("the sweeper");
    assert_eq!(catalog.environment_of(sweeper), vec![("EVENT_BUS_NAME".to_owned(), Resource::Bus)]);
}

#[test]
fn a_sweep_input_names_context_tables_only() {
    use clinicflow::wiring::SweepInput;
    let catalog = clinicflow::catalog();
    let input: SweepInput = serde_json::from_str(r#"{"tables": {"checkup": "t-checkup", "payment": "t-payment"}}"#).expect("an input");
    assert_eq!(
        input.contexts(catalog),
        Ok(vec![("checkup", "t-checkup".to_owned()), ("payment", "t-payment".to_owned())])
    );
    let views: SweepInput = serde_json::from_str(r#"{"tables": {"views": "t-views"}}"#).expect("an input");
    assert!(views.contexts(catalog).expect_err("not a context").contains("\"views\""));
    let empty: SweepInput = serde_json::from_str(r#"{"tables": {}}"#).expect("an input");
    assert!(empty.contexts(catalog).expect_err("nothing").contains("names no tables"));
    let unnamed: SweepInput = serde_json::from_str(r#"{"tables": {"checkup": " "}}"#).expect("an input");
    assert!(unnamed.contexts(catalog).expect_err("no name").contains("has no name"));
    // The scheduled event EventBridge sends without an input is not a sweep input.
    let scheduled = r#"{"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}"#;
    assert!(serde_json::from_str::<SweepInput>(scheduled).is_err());
    // The sample is one: a stack's sweep, of that stack's context tables.
    let sample =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/outbox-sweeper/scheduled.json")).expect("the sample");
    let sample: SweepInput = serde_json::from_str(&sample).expect("the sample is an input");
    let mut swept: Vec<&str> = sample
        .contexts(catalog)
        .expect("context tables")
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    swept.sort_unstable();
    assert!(
        catalog.sweeps().into_iter().any(|(_, mut tables)| {
            tables.sort_unstable();
            tables == swept
        }),
        "the sample sweeps one stack's tables: {swept:?}"
    );
}
