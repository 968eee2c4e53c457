//! The COVID bootstrap, started as Lambda starts it: an unknown handler, a missing table or
//! signing key, or a bad setting of the flow stops it during init with a clear error, never
//! a panic.

use std::process::Command;

fn start(env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_covid"))
        .env_clear()
        .env("AWS_REGION", "ap-northeast-2")
        .envs(env.iter().copied())
        .output()
        .expect("the bootstrap starts");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "init must fail: {all}");
    assert!(!all.contains("panicked"), "{all}");
    all
}

#[test]
fn an_unknown_handler_names_the_functions_served() {
    let all = start(&[("_HANDLER", "hospital-queue")]);
    assert!(all.contains("unknown handler") && all.contains("bootstrap covid serves"), "{all}");
    assert!(all.contains("covid-apply") && all.contains("covid-certify"), "{all}");
}

#[test]
fn a_consumer_starts_as_far_as_its_configuration() {
    let all = start(&[("_HANDLER", "covid-site-queue")]);
    assert!(all.contains("configuration variable TABLE_TESTSITE is required"), "{all}");
}

#[test]
fn the_sealing_consumer_needs_its_signing_key() {
    let all = start(&[
        ("_HANDLER", "covid-certify"),
        ("TABLE_HEALTHCENTRE", "healthcentre"),
        ("TABLE_PROCESSED", "processed"),
        ("EVENT_BUS_NAME", "bus"),
    ]);
    assert!(all.contains("configuration variable SIGNING_KEY_ARN is required"), "{all}");
}

#[test]
fn a_bad_setting_of_the_flow_names_its_variable() {
    let all = start(&[("_HANDLER", "covid-apply"), ("COVID_TEST_SITES", "Bad Id")]);
    assert!(all.contains("COVID_TEST_SITES"), "{all}");
}
