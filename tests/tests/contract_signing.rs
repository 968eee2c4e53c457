//! Sealed documents, checked from outside: documents sealed by the platform verify with a
//! verifier that shares no code with it (`tests/verifiers/verify_sealed.py`: Base45 by
//! hand, CBOR by cbor2, ECDSA by `cryptography`), fail once any one byte is changed, and
//! are told expired past their `exp`; the KMS signer, on moto's KMS with an
//! `ECC_NIST_P256` key, seals documents that both verifiers accept.

use std::io::Write as _;
use std::process::{Command, Stdio};

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use clinicflow::adapters::kms::KmsSigner;
use clinicflow::sealing::{self, Document, KeySigner, PREFIX, Signer};
use clinicflow_tests::moto::{moto, python};
use coset::cbor::value::Value;
use serde_json::{Value as Json, json};

const NOW: i64 = 1_800_000_100;

fn document() -> Document {
    Document {
        issuer: "clinicflow health centre".into(),
        id: "01JCERTIFICATE00000000000A".into(),
        issued_at: 1_800_000_000,
        expires_at: 1_800_172_800,
        claims: vec![
            ("holder".into(), Value::Text("김서연".into())),
            ("test".into(), Value::Text("RT-PCR".into())),
            ("result".into(), Value::Text("negative".into())),
        ],
    }
}

/// The independent verifier's answer for `payload` against `jwk` at `now`.
fn verify_outside(payload: &str, jwk: &Json, now: i64) -> Json {
    run_verifier(&json!({"payload": payload, "jwk": jwk, "now": now}))
}

/// The independent verifier's answers for each of `payloads`, from one process.
fn verify_all_outside(payloads: &[String], jwk: &Json, now: i64) -> Vec<Json> {
    match run_verifier(&json!({"payloads": payloads, "jwk": jwk, "now": now})) {
        Json::Array(all) => all,
        other => panic!("the verifier answered no list: {other}"),
    }
}

fn run_verifier(request: &Json) -> Json {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/verifiers/verify_sealed.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs (./scripts/test.sh installs cbor2 and cryptography in .venv)");
    let request = request.to_string();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.as_bytes())
        .expect("request written");
    let out = child.wait_with_output().expect("verifier ends");
    assert!(out.status.success(), "verifier failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("verifier answers JSON")
}

/// Every variant of `payload` with one byte of its COSE bytes changed, and one with one
/// character of its text changed.
fn altered(payload: &str) -> Vec<String> {
    let bytes = base45::decode(&payload[PREFIX.len()..]).expect("base45");
    let mut all: Vec<String> = (0..bytes.len())
        .map(|i| {
            let mut b = bytes.clone();
            b[i] = b[i].wrapping_add(1);
            format!("{PREFIX}{}", base45::encode(&b))
        })
        .collect();
    let mut text: Vec<char> = payload.chars().collect();
    let last = text.len() - 1;
    text[last] = if text[last] == '0' { '1' } else { '0' };
    all.push(text.into_iter().collect());
    all
}

#[tokio::test]
async fn a_sealed_document_verifies_outside_the_platform_and_no_altered_byte_does() {
    let signer = KeySigner::random();
    let payload = sealing::seal(&signer, &document()).await.expect("sealed");
    let jwk = sealing::public_jwk(signer.verifying_key(), signer.key_id());

    let answer = verify_outside(&payload, &jwk, NOW);
    assert_eq!(answer["valid"], true, "{answer}");
    assert_eq!(answer["expired"], false, "{answer}");
    assert_eq!(answer["claims"]["holder"], "김서연");
    assert_eq!(answer["claims"]["result"], "negative");
    assert_eq!(answer["claims"]["cti"], "01JCERTIFICATE00000000000A");
    assert_eq!(answer["claims"]["exp"], 1_800_172_800);

    let expired = verify_outside(&payload, &jwk, 1_800_172_800);
    assert_eq!((expired["valid"].clone(), expired["expired"].clone()), (json!(true), json!(true)));

    let variants = altered(&payload);
    let answers = verify_all_outside(&variants, &jwk, NOW);
    assert_eq!(answers.len(), variants.len());
    for (variant, answer) in variants.iter().zip(&answers) {
        assert_eq!(answer["valid"], false, "an altered payload verified outside: {variant} → {answer}");
        assert!(
            sealing::open(variant, signer.verifying_key(), signer.key_id(), NOW).is_err(),
            "an altered payload opened inside: {variant}"
        );
    }

    let stranger = KeySigner::random();
    let foreign = sealing::seal(&stranger, &document()).await.expect("sealed");
    assert_eq!(verify_outside(&foreign, &jwk, NOW)["reason"], "unknown key");
}

#[tokio::test]
async fn the_kms_signer_seals_what_both_verifiers_accept() {
    let sdk = moto().await.sdk().await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let key = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .description("clinicflow contract test")
        .send()
        .await
        .expect("key created");
    let arn = key.key_metadata().map(|m| m.arn().unwrap_or_default().to_owned()).expect("arn");
    let signer = KmsSigner::new(kms.clone(), &arn);

    let payload = sealing::seal(&signer, &document()).await.expect("sealed by KMS");
    let public = signer.public_key().await.expect("public key");
    let opened = sealing::open(&payload, &public, signer.key_id(), NOW).expect("opens inside");
    assert_eq!(opened.document, document());
    let answer = verify_outside(&payload, &sealing::public_jwk(&public, signer.key_id()), NOW);
    assert_eq!(answer["valid"], true, "{answer}");

    let missing = KmsSigner::new(
        kms,
        arn.replace(key.key_metadata().map(|m| m.key_id()).unwrap_or_default(), "no-such-key"),
    );
    let err = missing.sign(b"x").await.expect_err("no such key");
    assert!(matches!(err, sealing::SignError::Key(_)), "{err:?}");
}
