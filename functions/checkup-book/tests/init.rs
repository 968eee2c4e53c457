//! A function started without its configuration stops during init with a clear error
//! naming the missing variable, logged as JSON, and never panics.

use std::process::Command;

#[test]
fn a_missing_variable_is_a_clear_init_error_not_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_checkup-book"))
        .env_clear()
        .env("AWS_REGION", "ap-northeast-2")
        .output()
        .expect("the function starts");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "init must fail: {all}");
    assert!(all.contains("configuration variable TABLE_CHECKUP is required"), "{all}");
    assert!(all.contains(r#""message":"init failed""#), "logged as JSON: {all}");
    assert!(!all.contains("panicked"), "{all}");
}

#[test]
fn a_bad_value_names_its_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_checkup-book"))
        .env_clear()
        .env("CHECKUP_DAILY_CAPACITY", "plenty")
        .output()
        .expect("the function starts");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "init must fail: {all}");
    assert!(all.contains("CHECKUP_DAILY_CAPACITY"), "{all}");
    assert!(!all.contains("panicked"), "{all}");
}
