//! A Lambda's resource names come from its environment, for every table of the catalog.

use clinicflow::wiring::AwsSettings;

fn full(name: &str) -> Option<String> {
    Some(format!("value-of-{name}"))
}

#[test]
fn settings_name_every_table_from_its_variable() {
    let s = AwsSettings::from_lookup(clinicflow::catalog(), full).expect("complete");
    assert_eq!(s.bus, "value-of-EVENT_BUS_NAME");
    assert_eq!(s.tables.views, "value-of-TABLE_VIEWS");
    assert!(s.tables.contexts.contains(&("checkup", "value-of-TABLE_CHECKUP".into())));
    assert!(s.tables.contexts.contains(&("notification", "value-of-TABLE_NOTIFICATION".into())));
}

#[test]
fn a_missing_or_empty_variable_is_named() {
    for missing in ["TABLE_CHECKUP", "TABLE_PROCESSED", "EVENT_BUS_NAME"] {
        let err = AwsSettings::from_lookup(clinicflow::catalog(), |n| if n == missing { Some(" ".into()) } else { full(n) })
            .expect_err("incomplete");
        assert_eq!(err.to_string(), format!("configuration variable {missing} is required"));
    }
}
