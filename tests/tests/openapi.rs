//! `docs/openapi.json` describes exactly the API of `topology.rs`: an OpenAPI 3.1 document
//! with every route (and nothing else), the bearer JWT on every route but the public ones,
//! 401 and 403 wherever a token is needed, references that resolve; it is the document
//! generated from the handlers' types, and the local stack serves it, byte for byte, at
//! `GET /openapi.json` without a token.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clinicflow::topology;
use clinicflow_tests::start;
use serde_json::{Value, json};

fn document_text() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn document() -> Value {
    serde_json::from_str(&document_text()).expect("docs/openapi.json is JSON")
}

/// Every operation: (method in upper case, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ["get", "put", "post", "delete", "options", "head", "patch", "trace"].contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

fn route_of(method: &str, path: &str) -> &'static topology::Route {
    clinicflow::catalog()
        .routes
        .iter()
        .find(|r| r.method.as_str() == method && r.path == path)
        .unwrap_or_else(|| panic!("{method} {path} is not a route of topology.rs"))
}

#[test]
fn the_document_is_openapi_3_1() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "openapi: {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
}

#[test]
fn every_route_of_the_topology_is_described_and_nothing_else() {
    let doc = document();
    let described: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let routes: BTreeSet<(String, String)> = clinicflow::catalog()
        .routes
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(
        described.difference(&routes).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "described but not routes"
    );
    assert_eq!(
        routes.difference(&described).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routes not described"
    );
    assert!(routes.contains(&("GET".to_owned(), topology::OPENAPI_PATH.to_owned())));
}

#[test]
fn every_protected_operation_takes_the_bearer_jwt_and_answers_401_and_403() {
    let doc = document();
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    for (method, path, op) in operations(&doc) {
        let route = route_of(&method, &path);
        let security = op.get("security").unwrap_or(&doc["security"]);
        let responses = op["responses"].as_object().expect("responses");
        if route.is_public() {
            assert_eq!(security, &json!([]), "{method} {path} is public: no security");
            continue;
        }
        assert_eq!(security, &json!([{"bearer": []}]), "{method} {path}: bearer");
        for status in ["401", "403"] {
            assert!(responses.contains_key(status), "{method} {path}: no {status}");
        }
        assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success response");
        if method == "POST" {
            for status in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(status), "{method} {path}: no {status}");
            }
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_every_error_is_a_problem() {
    let doc = document();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r}: only local references"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    for (name, response) in doc["components"]["responses"].as_object().expect("responses") {
        let content = response["content"].as_object().expect("content");
        // API Gateway's own answers (throttling, the authorizer in AWS) are its JSON
        // `{"message"}`; everything the code answers is a problem.
        if name != "Throttled" {
            assert!(content.contains_key("application/problem+json"), "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_serves_exactly_the_document_without_a_token() {
    assert_eq!(
        clinicflow::http::openapi::to_json(&clinicflow::catalog().openapi()),
        document_text(),
        "docs/openapi.json is the generated document (CLINICFLOW_UPDATE_OPENAPI=1 cargo test -p clinicflow --test openapi_export)"
    );
    let stack = start().await;
    let res = reqwest::get(format!("{}{}", stack.url(), topology::OPENAPI_PATH))
        .await
        .expect("request sent");
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/json");
    let body = res.text().await.expect("body");
    assert_eq!(body, document_text());
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_and_bodies_are_refused_as_the_document_says() {
    let stack = start().await;
    let patient = clinicflow_tests::Client::new(&stack, "patient-1", &["patient"]);
    let staff = clinicflow_tests::Client::new(&stack, "staff-1", &["centre"]);
    let id = "01JD3M7Q0000000000000000AB";
    // An id that is not UTF-8 once percent-decoded cannot exist.
    for path in ["/checkups/%FF%FE", "/checkups/%C0/cancel"] {
        let r = if path.ends_with("cancel") {
            patient.post_empty(path).await
        } else {
            patient.get(path).await
        };
        assert_eq!((r.status, r.content_type.as_str()), (404, "application/problem+json"), "{path}");
    }
    // Commands without fields: no body or a JSON object; never a body they cannot read.
    for (ct, body, status) in [
        ("text/plain", b"{}".to_vec(), 415),
        ("application/json", b"{".to_vec(), 400),
        ("application/json", b"[]".to_vec(), 422),
        ("application/json", br#"{"note": "\ud800"}"#.to_vec(), 422),
        ("application/json", vec![b' '; 20_000], 413),
    ] {
        for (who, path) in [
            (&patient, format!("/checkups/{id}/cancel")),
            (&staff, format!("/centre/checkups/{id}/confirm")),
        ] {
            let r = who.send_raw("POST", &path, ct, body.clone()).await;
            assert_eq!(
                (r.status, r.content_type.as_str()),
                (status, "application/problem+json"),
                "{path} {ct}"
            );
        }
    }
    // A JSON object is read and its fields ignored: the booking is simply not found.
    let r = patient.post(&format!("/checkups/{id}/cancel"), &json!({"note": "x"})).await;
    assert_eq!(r.status, 404);
    stack.shutdown().await;
}
