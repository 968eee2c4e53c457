//! The check-up bootstrap, started as Lambda starts it: without a handler, or with one it
//! does not serve, it stops during init with a clear error naming the handler and the
//! functions it serves; with its handler but without its configuration, with an error naming
//! the missing or bad variable. Logged as JSON, and never a panic.

use std::process::{Command, Output};

fn start(env: &[(&str, &str)]) -> (Output, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_checkup"))
        .env_clear()
        .env("AWS_REGION", "ap-northeast-2")
        .envs(env.iter().copied())
        .output()
        .expect("the bootstrap starts");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "init must fail: {all}");
    assert!(!all.contains("panicked"), "{all}");
    (out, all)
}

#[test]
fn an_unknown_handler_is_a_clear_init_error_naming_it_and_the_functions_served() {
    let (_, all) = start(&[("_HANDLER", "checkup-reschedule")]);
    assert!(
        all.contains(r#"unknown handler \"checkup-reschedule\": bootstrap checkup serves"#),
        "{all}"
    );
    assert!(all.contains("checkup-book") && all.contains("payment-refund"), "{all}");
    assert!(all.contains(r#""message":"init failed""#), "logged as JSON: {all}");

    let (_, all) = start(&[("_HANDLER", "sms-notifier")]);
    assert!(
        all.contains("unknown handler"),
        "the platform's functions are not this bootstrap's: {all}"
    );

    let (_, all) = start(&[]);
    assert!(all.contains("_HANDLER is not set"), "{all}");
}

#[test]
fn a_missing_variable_is_a_clear_init_error_not_a_panic() {
    let (_, all) = start(&[("_HANDLER", "checkup-book")]);
    assert!(all.contains("configuration variable TABLE_CHECKUP is required"), "{all}");
    assert!(all.contains(r#""message":"init failed""#), "logged as JSON: {all}");
}

#[test]
fn a_bad_value_names_its_variable() {
    let (_, all) = start(&[("_HANDLER", "checkup-book"), ("CHECKUP_DAILY_CAPACITY", "plenty")]);
    assert!(all.contains("CHECKUP_DAILY_CAPACITY"), "{all}");
}
