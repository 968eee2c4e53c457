//! `docs/openapi.json` is the OpenAPI document generated from the handlers' types and the
//! catalog ([`clinicflow::topology::Catalog::openapi`]): what `GET /openapi.json` serves
//! (every catalog serves the committed file, [`clinicflow::OPENAPI_JSON`], so that no Lambda
//! function carries the generators), and what readers and schemathesis read, so it must never
//! drift from the code.
//! Regenerate with `CLINICFLOW_UPDATE_OPENAPI=1 cargo test -p clinicflow --test openapi_export`.

use std::path::PathBuf;

#[test]
fn docs_openapi_json_is_the_generated_document() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let expected = clinicflow::http::openapi::to_json(&clinicflow::catalog().openapi());
    if std::env::var_os("CLINICFLOW_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &expected).expect("docs/openapi.json written");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == expected && clinicflow::OPENAPI_JSON == expected,
        "docs/openapi.json is not the document generated from the handlers; regenerate it with\n  \
         CLINICFLOW_UPDATE_OPENAPI=1 cargo test -p clinicflow --test openapi_export\n\
         (and rebuild: the crate serves the file as it was when it was compiled)"
    );
}
