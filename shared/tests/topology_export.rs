//! `infra/topology.json` is the export of `topology.rs`: the CDK app builds from it and the
//! template test reads it, so it must never drift from the code.
//! Regenerate with `CLINICFLOW_UPDATE_TOPOLOGY=1 cargo test -p clinicflow --test topology_export`.

use std::path::PathBuf;

#[test]
fn infra_topology_json_is_the_export_of_topology_rs() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/topology.json");
    let expected = serde_json::to_string_pretty(&clinicflow::catalog().export()).expect("serializable") + "\n";
    if std::env::var_os("CLINICFLOW_UPDATE_TOPOLOGY").is_some() {
        std::fs::write(&path, &expected).expect("infra/topology.json written");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == expected,
        "infra/topology.json is not the export of shared/src/topology.rs; regenerate it with\n  \
         CLINICFLOW_UPDATE_TOPOLOGY=1 cargo test -p clinicflow --test topology_export"
    );
}
