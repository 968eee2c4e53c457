//! The COVID slice's saga: six citizens apply at one test site; two withdraw; the site
//! takes three samples, records one negative (its certificate sealed by `covid-certify`
//! with the stack's KMS key) and two positive, and marks the fourth citizen a no-show; the
//! transfer centre dispatches the positive citizens to an isolation centre, which admits and
//! releases them; every query, the public key and the public verifier. The first publish of
//! `covid-withdraw`, `covid-result`, `covid-transfer-follow` and `covid-release` fails: the
//! sweeper publishes and marks those events, in each of the slice's four tables; their
//! later publishes (the second withdrawal, result and release) mark their own.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Deployment, Saga};

pub const SAGA: Saga = Saga {
    slice: "covid",
    unpublished: &["covid-withdraw", "covid-result", "covid-transfer-follow", "covid-release"],
    run,
    swept,
};

/// A caller: subject, group, site.
type Caller = (&'static str, &'static str, Option<&'static str>);

const CITIZEN: Caller = ("covid-citizen-1", "patient", None);
const SITE: Caller = ("gangnam-staff", "test-site", Some("gangnam"));
const DISPATCHER: Caller = ("dispatcher-1", "transfer-centre", None);
const CENTRE: Caller = ("incheon-staff", "isolation-centre", Some("incheon"));
const ANYONE: Caller = ("anyone", "", None);

async fn ok(d: &Deployment, method: &str, path: &str, (sub, group, site): Caller, body: Value, expected: u16) -> Value {
    let (status, answer) = d.http_at(method, path, sub, group, site, body).await;
    assert_eq!(status, expected, "{method} {path}: {answer:#}");
    answer
}

fn run(d: &Deployment) -> BoxFuture<'_, Vec<String>> {
    async move {
        let date = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive().to_string();
        let mut ids = Vec::new();
        for n in 0..6 {
            let body = json!({"site": "gangnam", "date": date, "name": format!("시민{n}"), "phone": "010-2222-3333"});
            let applied = ok(d, "POST", "/covid/applications", CITIZEN, body, 201).await;
            ids.push(applied["id"].as_str().expect("an id").to_owned());
        }
        d.settle().await;
        let queue = ok(d, "GET", "/covid/sites/gangnam/queue", SITE, Value::Null, 200).await;
        assert_eq!(queue["waiting"], 6, "{queue:#}");
        let (negative, positive, withdrawn, absent, second, left) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5]);
        // The first withdrawal's publish fails: the site hears it once swept.
        for id in [withdrawn, left] {
            ok(d, "POST", &format!("/covid/applications/{id}/withdraw"), CITIZEN, json!({}), 202).await;
        }
        for id in [negative, positive, second] {
            ok(d, "POST", &format!("/covid/applications/{id}/sample"), SITE, json!({}), 200).await;
        }
        // The negative result's publish fails: its certificate is sealed once swept.
        let path = format!("/covid/applications/{negative}/result");
        ok(d, "POST", &path, SITE, json!({"result": "negative"}), 200).await;
        for id in [positive, second] {
            let path = format!("/covid/applications/{id}/result");
            ok(d, "POST", &path, SITE, json!({"result": "positive"}), 200).await;
        }
        ok(d, "POST", &format!("/covid/applications/{absent}/noshow"), SITE, json!({}), 200).await;
        d.settle().await;

        // The transfer opened (its TransferOpened waits in the outbox: the transfer centre's
        // first publish fails), dispatched by the application's id.
        for id in [positive, second] {
            let path = format!("/covid/transfers/{id}/dispatch");
            ok(d, "POST", &path, DISPATCHER, json!({"isolation_centre": "incheon"}), 200).await;
        }
        d.settle().await;
        for id in [positive, second] {
            ok(d, "POST", &format!("/covid/isolation/{id}/admit"), CENTRE, json!({}), 200).await;
        }
        let board = ok(d, "GET", "/covid/isolation/incheon", CENTRE, Value::Null, 200).await;
        assert_eq!(board["free_beds"], 48, "{board:#}");
        // The first release's publish fails: that bed is freed once swept.
        for id in [positive, second] {
            ok(d, "POST", &format!("/covid/isolation/{id}/release"), CENTRE, json!({}), 200).await;
        }
        d.settle().await;
        let board = ok(d, "GET", "/covid/isolation/incheon", CENTRE, Value::Null, 200).await;
        assert_eq!(board["free_beds"], 49, "one release heard, one unpublished: {board:#}");
        ids
    }
    .boxed()
}

fn swept<'a>(d: &'a Deployment, ids: &'a [String]) -> BoxFuture<'a, ()> {
    async move {
        let (negative, positive, withdrawn) = (&ids[0], &ids[1], &ids[2]);
        let queue = ok(d, "GET", "/covid/sites/gangnam/queue", SITE, Value::Null, 200).await;
        assert_eq!(queue["waiting"], 0, "swept, the withdrawal reached the site: {queue:#}");
        let view = ok(d, "GET", &format!("/covid/applications/{withdrawn}"), CITIZEN, Value::Null, 200).await;
        assert_eq!(view["status"], "withdrawn", "{view:#}");
        let mine = ok(d, "GET", "/covid/applications", CITIZEN, Value::Null, 200).await;
        assert_eq!(mine["items"].as_array().map(Vec::len), Some(6), "{mine:#}");

        let view = ok(d, "GET", &format!("/covid/applications/{negative}"), CITIZEN, Value::Null, 200).await;
        let certificate = view["certificate"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("swept, the result was certified: {view:#}"))
            .to_owned();
        let cert = ok(d, "GET", &format!("/covid/certificates/{certificate}"), CITIZEN, Value::Null, 200).await;
        let payload = cert["qr_payload"].as_str().expect("a payload");
        ok(d, "GET", "/covid/certificates/key", ANYONE, Value::Null, 200).await;
        let verdict = ok(d, "POST", "/covid/certificates/verify", ANYONE, json!({"payload": payload}), 200).await;
        assert_eq!(verdict["valid"], true, "sealed by the KMS key: {verdict:#}");

        let board = ok(d, "GET", "/covid/isolation/incheon", CENTRE, Value::Null, 200).await;
        assert_eq!(board["free_beds"], 50, "swept, the first release freed its bed: {board:#}");
        let closed = ok(d, "GET", "/covid/transfers?status=closed", DISPATCHER, Value::Null, 200).await;
        assert_eq!(closed["items"][0]["id"], positive.as_str(), "{closed:#}");
        let view = ok(d, "GET", &format!("/covid/applications/{positive}"), CITIZEN, Value::Null, 200).await;
        assert_eq!(view["status"], "released", "{view:#}");
    }
    .boxed()
}
