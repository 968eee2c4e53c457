//! The vaccine bootstrap, started as Lambda starts it: an unknown handler, a missing table
//! or a bad setting of the flow stops it during init with a clear error, never a panic; its
//! scheduled jobs are handlers it serves.

use std::process::Command;

fn start(env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vaccine"))
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
fn an_unknown_handler_names_the_functions_served_and_the_jobs_are_among_them() {
    let all = start(&[("_HANDLER", "checkup-book")]);
    assert!(all.contains("unknown handler") && all.contains("bootstrap vaccine serves"), "{all}");
    assert!(
        all.contains("vaccine-reserve") && all.contains("vaccine-offer-expiry") && all.contains("vaccine-reminder"),
        "{all}"
    );
}

#[test]
fn a_scheduled_job_starts_as_far_as_its_configuration() {
    let all = start(&[("_HANDLER", "vaccine-reminder")]);
    assert!(all.contains("configuration variable TABLE_VACCINATION is required"), "{all}");
}

#[test]
fn a_bad_setting_of_the_flow_names_its_variable() {
    let all = start(&[("_HANDLER", "vaccine-reserve"), ("VACCINE_TYPES", " , ")]);
    assert!(all.contains("VACCINE_TYPES"), "{all}");
}
