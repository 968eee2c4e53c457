//! The COVID slice on a catalog of its own, through its routes on the embedded (SQLite)
//! adapters, every event delivered and every change projected between requests: the
//! seed's flow (apply, the site's waiting list and its count, sample, result, a signed
//! certificate anyone verifies, a positive result's transfer, isolation and release), its
//! refusals (another site's staff, a result before the sample, an admission before the
//! dispatch), the withdrawal the site decides, and the beds of a centre under racing
//! dispatches. The slice is not in the platform's catalog yet (issue 17); these run it as
//! the platform will.

use std::sync::Arc;

use chrono::Utc;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::{Faults, Platform, consumers, projector};
use clinicflow::config::Config;
use clinicflow::flows::covid::{self, config::CovidConfig, config::IsolationCentre};
use clinicflow::http::Claims;
use clinicflow::sealing::KeySigner;
use clinicflow::topology::{Catalog, Slice};
use clinicflow::wiring::{self, EmbeddedParts};
use serde_json::{Value, json};
use tower::ServiceExt;

static ONLY_COVID: &[&Slice] = &[&covid::SLICE];

fn catalog() -> &'static Catalog {
    static CATALOG: std::sync::LazyLock<Catalog> = std::sync::LazyLock::new(|| Catalog::new(ONLY_COVID));
    &CATALOG
}

struct Flow {
    p: Arc<Platform>,
    parts: EmbeddedParts,
    /// The change feed's position the projector reached.
    projected: tokio::sync::Mutex<i64>,
}

/// Who calls: a subject, a group, and a site (staff only).
#[derive(Clone, Copy)]
struct Caller(&'static str, &'static str, Option<&'static str>);

const CITIZEN: Caller = Caller("citizen-1", "patient", None);
const OTHER_CITIZEN: Caller = Caller("citizen-2", "patient", None);
const MAPO: Caller = Caller("mapo-staff", "test-site", Some("mapo"));
const GANGNAM: Caller = Caller("gangnam-staff", "test-site", Some("gangnam"));
const DISPATCHER: Caller = Caller("dispatcher", "transfer-centre", None);
const INCHEON: Caller = Caller("incheon-staff", "isolation-centre", Some("incheon"));
const SUWON: Caller = Caller("suwon-staff", "isolation-centre", Some("suwon"));

impl Flow {
    fn new(beds: u32) -> Self {
        let mut config = Config::default();
        config.slice_mut::<CovidConfig>().centres = vec![
            IsolationCentre {
                id: "incheon".into(),
                beds,
            },
            IsolationCentre { id: "suwon".into(), beds },
        ];
        let db = Embedded::in_memory().expect("a database");
        let (p, parts) = wiring::embedded(catalog(), db, config, Faults::none());
        Self {
            p: Arc::new(p.with_signer(Arc::new(KeySigner::random()))),
            parts,
            projected: tokio::sync::Mutex::new(0),
        }
    }

    async fn call(&self, who: Option<Caller>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .expect("a request");
        if let Some(Caller(sub, group, site)) = who {
            request.extensions_mut().insert(Claims {
                sub: sub.to_owned(),
                groups: vec![group.to_owned()],
                site: site.map(str::to_owned),
            });
        }
        let response = clinicflow::http::router(self.p.clone(), None)
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a body");
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        self.settle().await;
        (status, value)
    }

    async fn get(&self, who: Caller, path: &str) -> (u16, Value) {
        self.call(Some(who), "GET", path, None).await
    }

    async fn post(&self, who: Caller, path: &str, body: Value) -> (u16, Value) {
        self.call(Some(who), "POST", path, Some(body)).await
    }

    /// Delivers every queued event and projects every change, until nothing is left.
    async fn settle(&self) {
        let mut projected = self.projected.lock().await;
        for _ in 0..50 {
            let due = self
                .parts
                .bus
                .due(Utc::now() + chrono::Duration::hours(1), 100)
                .await
                .expect("the bus queue");
            for d in &due {
                let handled = consumers::dispatch(&self.p, &d.target, &d.event).await;
                assert!(handled.is_ok(), "{} failed on {}: {handled:?}", d.target, d.event.event_type);
                self.parts.bus.complete(d.id).await.expect("completes");
            }
            let changes = self.parts.db.changes_after(*projected, 100).await.expect("the change feed");
            for (seq, e) in &changes {
                projector::project(&self.p, e).await.expect("projects");
                *projected = *seq;
            }
            if due.is_empty() && changes.is_empty() {
                return;
            }
        }
        panic!("the flow did not settle");
    }

    async fn apply(&self, who: Caller, site: &str) -> String {
        let date = (Utc::now() + chrono::Duration::days(1))
            .with_timezone(&clinicflow::domain::kst())
            .date_naive();
        let (status, body) = self
            .post(
                who,
                "/covid/applications",
                json!({"site": site, "date": date.to_string(), "name": "김서연", "phone": "010-2222-3333"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("an id").to_owned()
    }

    async fn waiting(&self, staff: Caller, site: &str) -> (u64, usize) {
        let (status, body) = self.get(staff, &format!("/covid/sites/{site}/queue")).await;
        assert_eq!(status, 200, "{body}");
        (
            body["waiting"].as_u64().expect("a count"),
            body["items"].as_array().map_or(0, Vec::len),
        )
    }

    async fn stage(&self, id: &str) -> String {
        let (status, body) = self.get(CITIZEN, &format!("/covid/applications/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body["status"].as_str().unwrap_or_default().to_owned()
    }
}

#[test]
fn the_slice_passes_the_catalog_checks() {
    assert_eq!(catalog().check(), Vec::<String>::new());
}

#[tokio::test]
async fn a_negative_result_gets_a_certificate_anyone_verifies_and_no_altered_copy_passes() {
    let flow = Flow::new(50);
    let id = flow.apply(CITIZEN, "mapo").await;
    assert_eq!(flow.waiting(MAPO, "mapo").await, (1, 1), "on the list, counted");
    assert_eq!(flow.stage(&id).await, "waiting");

    let (status, body) = flow
        .post(MAPO, &format!("/covid/applications/{id}/result"), json!({"result": "negative"}))
        .await;
    assert_eq!(status, 409, "a result before the sample: {body}");
    let (status, body) = flow.post(MAPO, &format!("/covid/applications/{id}/sample"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(flow.waiting(MAPO, "mapo").await, (0, 0), "sampled: off the list, the count drops");
    let (status, _) = flow
        .post(MAPO, &format!("/covid/applications/{id}/result"), json!({"result": "negative"}))
        .await;
    assert_eq!(status, 200);

    let (_, view) = flow.get(CITIZEN, &format!("/covid/applications/{id}")).await;
    assert_eq!(
        (view["status"].as_str(), view["result"].as_str()),
        (Some("negative"), Some("negative")),
        "{view}"
    );
    let certificate = view["certificate"]["id"].as_str().expect("a certificate").to_owned();
    let (status, cert) = flow.get(CITIZEN, &format!("/covid/certificates/{certificate}")).await;
    assert_eq!(status, 200, "{cert}");
    assert_eq!(cert["holder"], "김서연");
    assert_eq!(cert["application_id"], id.as_str());
    assert_eq!(flow.get(OTHER_CITIZEN, &format!("/covid/certificates/{certificate}")).await.0, 404);

    let payload = cert["qr_payload"].as_str().expect("a payload").to_owned();
    let (status, verdict) = flow
        .call(None, "POST", "/covid/certificates/verify", Some(json!({"payload": payload})))
        .await;
    assert_eq!(status, 200, "public, no token: {verdict}");
    assert_eq!(
        (verdict["valid"].as_bool(), verdict["holder"].as_str()),
        (Some(true), Some("김서연"))
    );
    let mut altered: Vec<char> = payload.chars().collect();
    let i = altered.len() / 2;
    altered[i] = if altered[i] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    let (_, verdict) = flow
        .call(None, "POST", "/covid/certificates/verify", Some(json!({"payload": altered})))
        .await;
    assert_eq!(verdict["valid"], false, "{verdict}");
    let (status, _) = flow
        .call(None, "POST", "/covid/certificates/verify", Some(json!({"payload": 7})))
        .await;
    assert_eq!(status, 422);
    let (status, key) = flow.call(None, "GET", "/covid/certificates/key", None).await;
    assert_eq!(
        (status, key["crv"].as_str(), key["alg"].as_str()),
        (200, Some("P-256"), Some("ES256"))
    );
}

#[tokio::test]
async fn a_positive_result_is_transferred_isolated_and_released_and_the_bed_is_freed_once() {
    let flow = Flow::new(50);
    let id = flow.apply(CITIZEN, "mapo").await;
    flow.post(MAPO, &format!("/covid/applications/{id}/sample"), json!({})).await;
    flow.post(MAPO, &format!("/covid/applications/{id}/result"), json!({"result": "positive"}))
        .await;
    assert_eq!(flow.stage(&id).await, "positive");

    let (status, list) = flow.get(DISPATCHER, "/covid/transfers").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["id"], id.as_str(), "{list}");
    let (status, body) = flow.post(INCHEON, &format!("/covid/isolation/{id}/admit"), json!({})).await;
    assert_eq!(status, 409, "an admission before the dispatch: {body}");
    let (status, body) = flow
        .post(
            DISPATCHER,
            &format!("/covid/transfers/{id}/dispatch"),
            json!({"isolation_centre": "busan"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"][0]["detail"].as_str().unwrap_or_default().contains("incheon, suwon"));
    let (status, _) = flow
        .post(
            DISPATCHER,
            &format!("/covid/transfers/{id}/dispatch"),
            json!({"isolation_centre": "incheon"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(flow.stage(&id).await, "dispatched");
    let (_, board) = flow.get(INCHEON, "/covid/isolation/incheon").await;
    assert_eq!(board["free_beds"], 49, "{board}");
    assert_eq!(flow.get(SUWON, "/covid/isolation/incheon").await.0, 403, "another centre's board");
    assert_eq!(flow.post(SUWON, &format!("/covid/isolation/{id}/admit"), json!({})).await.0, 403);
    assert_eq!(flow.post(INCHEON, &format!("/covid/isolation/{id}/admit"), json!({})).await.0, 200);
    assert_eq!(flow.stage(&id).await, "isolated");
    let (_, board) = flow.get(INCHEON, "/covid/isolation/incheon").await;
    assert_eq!(board["items"][0]["id"], id.as_str(), "{board}");
    assert_eq!(
        flow.post(INCHEON, &format!("/covid/isolation/{id}/release"), json!({})).await.0,
        200
    );
    assert_eq!(
        flow.post(INCHEON, &format!("/covid/isolation/{id}/release"), json!({})).await.0,
        200,
        "twice: harmless"
    );
    assert_eq!(flow.stage(&id).await, "released");
    let (_, board) = flow.get(INCHEON, "/covid/isolation/incheon").await;
    assert_eq!(board["free_beds"], 50, "the bed is free again, once: {board}");

    let (_, view) = flow.get(INCHEON, &format!("/covid/applications/{id}")).await;
    assert_eq!(view["isolation"]["status"], "released", "the centre involved reads it: {view}");
    assert_eq!(
        flow.get(SUWON, &format!("/covid/applications/{id}")).await.0,
        404,
        "a centre not involved does not"
    );
    let sms = flow.parts.sms.list().await.expect("the SMS outbox");
    let texts: Vec<&str> = sms.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(texts.len(), 4, "applied, result ready, transfer, release: {texts:?}");
    assert!(
        texts.iter().all(|t| !t.contains("positive") && !t.contains("양성")),
        "no result in an SMS: {texts:?}"
    );
}

#[tokio::test]
async fn staff_act_only_at_their_own_site_and_a_withdrawal_is_the_sites_to_decide() {
    let flow = Flow::new(50);
    let id = flow.apply(CITIZEN, "mapo").await;
    assert_eq!(
        flow.post(GANGNAM, &format!("/covid/applications/{id}/sample"), json!({})).await.0,
        403
    );
    assert_eq!(flow.get(GANGNAM, "/covid/sites/mapo/queue").await.0, 403);
    assert_eq!(flow.get(GANGNAM, "/covid/sites/jongno/queue").await.0, 422, "an unknown site");
    assert_eq!(flow.get(GANGNAM, &format!("/covid/applications/{id}")).await.0, 404);
    assert_eq!(
        flow.post(OTHER_CITIZEN, &format!("/covid/applications/{id}/withdraw"), json!({}))
            .await
            .0,
        404
    );

    let (status, body) = flow.post(CITIZEN, &format!("/covid/applications/{id}/withdraw"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(flow.stage(&id).await, "withdrawn");
    assert_eq!(flow.waiting(MAPO, "mapo").await, (0, 0), "withdrawn: off the list, the count drops");
    assert_eq!(flow.post(MAPO, &format!("/covid/applications/{id}/sample"), json!({})).await.0, 409);

    let late = flow.apply(CITIZEN, "mapo").await;
    flow.post(MAPO, &format!("/covid/applications/{late}/sample"), json!({})).await;
    let (status, _) = flow.post(CITIZEN, &format!("/covid/applications/{late}/withdraw"), json!({})).await;
    assert_eq!(status, 409, "the health centre already heard of the sample");
    let noshow = flow.apply(CITIZEN, "mapo").await;
    assert_eq!(flow.waiting(MAPO, "mapo").await, (1, 1));
    assert_eq!(
        flow.post(MAPO, &format!("/covid/applications/{noshow}/noshow"), json!({})).await.0,
        200
    );
    assert_eq!(flow.waiting(MAPO, "mapo").await, (0, 0));
    assert_eq!(flow.stage(&noshow).await, "noshow");
}

#[tokio::test]
async fn racing_dispatches_for_the_last_beds_never_fill_a_centre_over_capacity() {
    let flow = Arc::new(Flow::new(2));
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = flow.apply(CITIZEN, "gangnam").await;
        flow.post(GANGNAM, &format!("/covid/applications/{id}/sample"), json!({})).await;
        flow.post(GANGNAM, &format!("/covid/applications/{id}/result"), json!({"result": "positive"}))
            .await;
        ids.push(id);
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let flow = flow.clone();
            let id = id.clone();
            tokio::spawn(async move {
                flow.post(
                    DISPATCHER,
                    &format!("/covid/transfers/{id}/dispatch"),
                    json!({"isolation_centre": "suwon"}),
                )
                .await
                .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("a dispatch"));
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 409, 409, 409], "two beds, two dispatches");
    let (_, board) = flow.get(SUWON, "/covid/isolation/suwon").await;
    assert_eq!(board["free_beds"], 0, "{board}");
}
