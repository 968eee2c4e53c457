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
        let answer = self.send(who, method, path, body).await;
        self.settle().await;
        answer
    }

    /// A request, and nothing delivered after it.
    async fn send(&self, who: Option<Caller>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
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
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
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

    /// Delivers what is queued as a bus that redelivers and reorders would: each batch of
    /// deliveries shuffled, every delivery made twice; then projects every change twice.
    async fn settle_chaotically(&self, seed: &mut u64) {
        let mut projected = self.projected.lock().await;
        for _ in 0..50 {
            let mut due = self
                .parts
                .bus
                .due(Utc::now() + chrono::Duration::hours(1), 1000)
                .await
                .expect("the bus queue");
            shuffle(&mut due, seed);
            for d in due.iter().chain(due.iter().rev()) {
                let handled = consumers::dispatch(&self.p, &d.target, &d.event).await;
                assert!(handled.is_ok(), "{} failed on {}: {handled:?}", d.target, d.event.event_type);
            }
            for d in &due {
                self.parts.bus.complete(d.id).await.expect("completes");
            }
            // The four tables' streams deliver in any order across aggregates: the changes are
            // projected shuffled, each twice, an early one retried once its predecessor is in.
            let changes = self.parts.db.changes_after(*projected, 1000).await.expect("the change feed");
            let mut pending: Vec<_> = changes.iter().collect();
            shuffle(&mut pending, seed);
            for _ in 0..1000 {
                if pending.is_empty() {
                    break;
                }
                let mut early = Vec::new();
                for change in pending {
                    match projector::project(&self.p, &change.1).await {
                        Ok(_) => {
                            projector::project(&self.p, &change.1).await.expect("projects again");
                        }
                        Err(clinicflow::app::AppError::Conflict(_)) => early.push(change),
                        Err(e) => panic!("projecting {}: {e}", change.1.event_type),
                    }
                }
                pending = early;
            }
            assert!(pending.is_empty(), "changes never projected: {}", pending.len());
            if let Some((seq, _)) = changes.last() {
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

/// A Fisher-Yates shuffle on a xorshift sequence from `seed`: the same seed, the same order.
fn shuffle<T>(items: &mut [T], seed: &mut u64) {
    for i in (1..items.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = usize::try_from(*seed % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

#[test]
fn the_slice_passes_the_catalog_checks() {
    assert_eq!(catalog().check(), Vec::<String>::new());
}

#[test]
fn only_the_sealing_consumer_may_sign_and_only_the_verifier_read_the_public_key() {
    use clinicflow::topology::{Resource, SIGNING_KEY_VARIABLE};
    let c = catalog();
    let key = Resource::SigningKey("covid");
    for f in &c.functions {
        let grants: Vec<&str> = c
            .permissions(f)
            .iter()
            .filter(|g| g.resource == key)
            .flat_map(|g| g.actions.iter().copied())
            .collect();
        let env = c.environment_of(f);
        let wanted: &[&str] = match f.name {
            covid::faults::CERTIFY => &["kms:Sign"],
            covid::faults::CERTIFICATES => &["kms:GetPublicKey"],
            _ => &[],
        };
        assert_eq!(grants, wanted, "{}", f.name);
        assert!(
            c.permissions(f)
                .iter()
                .all(|g| g.actions.iter().all(|a| !a.starts_with("kms:")) || g.resource == key),
            "{}: a KMS grant on anything but the slice's key",
            f.name
        );
        assert_eq!(
            env.iter().any(|(v, r)| v == SIGNING_KEY_VARIABLE && *r == key),
            !wanted.is_empty(),
            "{}: SIGNING_KEY_ARN in its environment",
            f.name
        );
    }
    assert_eq!(c.signing_stacks(), vec!["covid"]);
    // A sealing function without its key's ARN does not start.
    let missing =
        clinicflow::wiring::AwsSettings::from_lookup(c, covid::faults::CERTIFY, |v| (v != SIGNING_KEY_VARIABLE).then(|| "x".to_owned()));
    assert!(matches!(missing, Err(clinicflow::wiring::InitError::Missing(v)) if v == SIGNING_KEY_VARIABLE));
    let given =
        clinicflow::wiring::AwsSettings::from_lookup(c, covid::faults::CERTIFY, |_| Some("arn:aws:kms:k".to_owned())).expect("settings");
    assert_eq!(given.signing_key.as_deref(), Some("arn:aws:kms:k"));
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
    assert_eq!(
        flow.post(SUWON, &format!("/covid/isolation/{id}/admit"), json!({})).await.0,
        404,
        "another centre's citizen"
    );
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
        404,
        "another site's application is not found"
    );
    let siteless = Caller("siteless", "test-site", None);
    assert_eq!(
        flow.post(siteless, &format!("/covid/applications/{id}/sample"), json!({})).await.0,
        403,
        "no site"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_count_equals_the_applications_waiting_after_500_concurrent_moves_delivered_twice_out_of_order() {
    let flow = Arc::new(Flow::new(50));
    let mut seed = 0x5eed_c0de_u64;
    let date = (Utc::now() + chrono::Duration::days(1))
        .with_timezone(&clinicflow::domain::kst())
        .date_naive();
    // 500 citizens apply at once; nothing reaches the site yet.
    let applying: Vec<_> = (0..500)
        .map(|i| {
            let flow = flow.clone();
            let body = json!({"site": "mapo", "date": date.to_string(), "name": format!("시민{i}"), "phone": "010-2222-3333"});
            tokio::spawn(async move { flow.send(Some(CITIZEN), "POST", "/covid/applications", Some(body)).await })
        })
        .collect();
    let mut ids = Vec::new();
    for a in applying {
        let (status, body) = a.await.expect("an application");
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().expect("an id").to_owned());
    }
    // 100 withdraw before the site has heard of them: their withdrawals race their
    // applications to the site.
    let withdrawing: Vec<_> = ids[..100]
        .iter()
        .map(|id| {
            let flow = flow.clone();
            let path = format!("/covid/applications/{id}/withdraw");
            tokio::spawn(async move { flow.send(Some(CITIZEN), "POST", &path, Some(json!({}))).await.0 })
        })
        .collect();
    for w in withdrawing {
        assert_eq!(w.await.expect("a withdrawal"), 202);
    }
    flow.settle_chaotically(&mut seed).await;
    assert_eq!(flow.waiting(MAPO, "mapo").await.0, 400);
    // At once: 150 tested, 50 no-shows, and 50 more withdrawals, 25 of them of citizens
    // whose sample is being taken at the same time.
    let mut moves: Vec<(Caller, String)> = Vec::new();
    moves.extend(ids[100..250].iter().map(|id| (MAPO, format!("/covid/applications/{id}/sample"))));
    moves.extend(ids[250..300].iter().map(|id| (MAPO, format!("/covid/applications/{id}/noshow"))));
    moves.extend(
        ids[225..275]
            .iter()
            .map(|id| (CITIZEN, format!("/covid/applications/{id}/withdraw"))),
    );
    shuffle(&mut moves, &mut seed);
    let moving: Vec<_> = moves
        .into_iter()
        .map(|(who, path)| {
            let flow = flow.clone();
            tokio::spawn(async move { flow.send(Some(who), "POST", &path, Some(json!({}))).await.0 })
        })
        .collect();
    for m in moving {
        let status = m.await.expect("a move");
        assert!(matches!(status, 200 | 202 | 409), "{status}");
    }
    flow.settle_chaotically(&mut seed).await;

    // The count is the entries waiting at the site, as the site's own table holds them.
    let entries = flow.parts.db.all_aggregates("testsite").await.expect("the site's table");
    let waiting_entries = entries.iter().filter(|(_, stored)| stored.state["status"] == "waiting").count();
    let (count, _) = flow.waiting(MAPO, "mapo").await;
    assert_eq!(usize::try_from(count).unwrap_or_default(), waiting_entries);
    // And the list agrees, page by page.
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/covid/sites/mapo/queue?limit=100&cursor={c}"),
            None => "/covid/sites/mapo/queue?limit=100".to_owned(),
        };
        let (_, page) = flow.get(MAPO, &path).await;
        listed += page["items"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, waiting_entries);
    // 500 - 100 withdrawn - 150 sampled - 50 no-shows - the 25 later withdrawals of citizens
    // neither sampled nor marked (ids 275..300 were marked no-shows or withdrawn, one each).
    let sampled_or_gone = 100 + 150 + 50;
    assert!(waiting_entries <= 500 - sampled_or_gone, "{waiting_entries} waiting");
    assert_eq!(waiting_entries, 200, "ids 300..500 only are still waiting");
}

#[tokio::test]
async fn a_certificate_verifies_with_the_independent_verifier_and_is_told_expired_past_its_expiry() {
    let flow = Flow::new(50);
    let id = flow.apply(CITIZEN, "gangnam").await;
    flow.post(GANGNAM, &format!("/covid/applications/{id}/sample"), json!({})).await;
    flow.post(GANGNAM, &format!("/covid/applications/{id}/result"), json!({"result": "negative"}))
        .await;
    let (_, view) = flow.get(CITIZEN, &format!("/covid/applications/{id}")).await;
    let certificate = view["certificate"]["id"].as_str().expect("a certificate").to_owned();
    let (_, cert) = flow.get(CITIZEN, &format!("/covid/certificates/{certificate}")).await;
    let (_, jwk) = flow.call(None, "GET", "/covid/certificates/key", None).await;
    let payload = cert["qr_payload"].as_str().expect("a payload");
    let expires_at = chrono::DateTime::parse_from_rfc3339(cert["expires_at"].as_str().expect("an expiry"))
        .expect("RFC 3339")
        .timestamp();
    let verify = |now: i64| {
        use std::io::Write as _;
        let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python");
        let python = if std::path::Path::new(python).exists() { python } else { "python3" };
        let mut child = std::process::Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/verifiers/verify_sealed.py"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python runs (./scripts/test.sh installs cbor2 and cryptography in .venv)");
        let request = json!({"payload": payload, "jwk": jwk, "now": now}).to_string();
        child.stdin.take().expect("stdin").write_all(request.as_bytes()).expect("written");
        let out = child.wait_with_output().expect("the verifier ends");
        serde_json::from_slice::<Value>(&out.stdout).expect("the verifier answers JSON")
    };
    let fresh = verify(Utc::now().timestamp());
    assert_eq!(
        (fresh["valid"].as_bool(), fresh["expired"].as_bool()),
        (Some(true), Some(false)),
        "{fresh}"
    );
    assert_eq!(fresh["claims"]["holder"], "김서연");
    assert_eq!(fresh["claims"]["result"], "negative");
    assert_eq!(fresh["claims"]["cti"], certificate.as_str());
    assert_eq!(verify(expires_at)["expired"], true);

    // The platform's own verifier says so too, once the clock is past the expiry.
    let mut later = (*flow.p).clone();
    later.clock = Arc::new(Fixed(chrono::DateTime::from_timestamp(expires_at + 1, 0).expect("a time")));
    let later = Flow {
        p: Arc::new(later),
        parts: flow.parts.clone(),
        projected: tokio::sync::Mutex::new(0),
    };
    let (status, verdict) = later
        .call(None, "POST", "/covid/certificates/verify", Some(json!({"payload": payload})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (verdict["valid"].as_bool(), verdict["reason"].as_str()),
        (Some(false), Some("expired")),
        "{verdict}"
    );
}

#[tokio::test]
async fn every_order_of_the_centres_events_delivered_twice_ends_in_the_same_views() {
    let mut ends = std::collections::BTreeSet::new();
    for run in 0..6_u64 {
        let flow = Flow::new(50);
        let mut seed = 0x9e37_79b9_7f4a_7c15 ^ (run + 1);
        let id = flow
            .send(
                Some(CITIZEN),
                "POST",
                "/covid/applications",
                Some(json!({
                    "site": "mapo",
                    "date": (Utc::now() + chrono::Duration::days(1)).with_timezone(&clinicflow::domain::kst()).date_naive().to_string(),
                    "name": "김서연",
                    "phone": "010-2222-3333",
                })),
            )
            .await
            .1["id"]
            .as_str()
            .expect("an id")
            .to_owned();
        flow.settle_chaotically(&mut seed).await;
        flow.send(Some(MAPO), "POST", &format!("/covid/applications/{id}/sample"), Some(json!({})))
            .await;
        flow.send(
            Some(MAPO),
            "POST",
            &format!("/covid/applications/{id}/result"),
            Some(json!({"result": "positive"})),
        )
        .await;
        flow.settle_chaotically(&mut seed).await;
        flow.send(
            Some(DISPATCHER),
            "POST",
            &format!("/covid/transfers/{id}/dispatch"),
            Some(json!({"isolation_centre": "incheon"})),
        )
        .await;
        flow.settle_chaotically(&mut seed).await;
        flow.send(Some(INCHEON), "POST", &format!("/covid/isolation/{id}/admit"), Some(json!({})))
            .await;
        flow.send(Some(INCHEON), "POST", &format!("/covid/isolation/{id}/release"), Some(json!({})))
            .await;
        flow.settle_chaotically(&mut seed).await;
        let (_, view) = flow.get(CITIZEN, &format!("/covid/applications/{id}")).await;
        let (_, board) = flow.get(INCHEON, "/covid/isolation/incheon").await;
        let steps: Vec<&str> = view["timeline"]
            .as_array()
            .expect("a timeline")
            .iter()
            .filter_map(|s| s["status"].as_str())
            .collect();
        ends.insert(format!("{} {} {} {steps:?}", view["status"], view["result"], board["free_beds"]));
    }
    assert_eq!(ends.len(), 1, "every order ends the same: {ends:#?}");
    let end = ends.into_iter().next().unwrap_or_default();
    assert!(end.starts_with("\"released\" \"positive\" 50"), "{end}");
}

/// A clock that says one time.
#[derive(Debug)]
struct Fixed(chrono::DateTime<Utc>);

impl clinicflow::ports::Clock for Fixed {
    fn now(&self) -> chrono::DateTime<Utc> {
        self.0
    }
}
