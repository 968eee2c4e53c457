//! `docs/openapi.json` is the OpenAPI document generated from the handlers' types and the
//! catalog ([`clinicflow::topology::Catalog::openapi_json`], what `GET /openapi.json` serves):
//! readers and schemathesis read the file, so it must never drift from the code.
//! Regenerate with `CLINICFLOW_UPDATE_OPENAPI=1 cargo test -p clinicflow --test openapi_export`.

use std::path::PathBuf;

#[test]
fn docs_openapi_json_is_the_generated_document() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let expected = clinicflow::catalog().openapi_json();
    if std::env::var_os("CLINICFLOW_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, expected).expect("docs/openapi.json written");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == expected,
        "docs/openapi.json is not the document generated from the handlers; regenerate it with\n  \
         CLINICFLOW_UPDATE_OPENAPI=1 cargo test -p clinicflow --test openapi_export"
    );
}
