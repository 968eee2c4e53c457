//! The COVID slice's fixture (`shared/src/flows/covid/`): what every area of the harness
//! needs to know about a COVID test and cannot read from the catalog.
//!
//! - A case is an application: `POST /covid/applications`, sent by the citizen, with a test
//!   site (variant 0: gangnam, variant 1: mapo), a date (one to thirteen days ahead, Korean
//!   calendar: the day of an opening body picks one, as the slice takes no date further than
//!   fourteen days), the name, phone and locale. A test takes no payment: the card of a
//!   journey is not sent.
//! - Four centres linked by events: the health centre's application, the test site's entry
//!   on its waiting list (once the site hears of the application), the transfer centre's
//!   transfer (once it hears of a positive result), the isolation centre's stay (once it
//!   hears of the dispatch). An application is ready for its steps once its view shows it
//!   waiting at the site; a later step waits for what it depends on of the other centres
//!   ([`Fixture::ready_for`]): a dispatch for the transfer, an admission or a release for
//!   the stay.
//! - Staff belong to one site ([`Fixture::sites`]): every staff token the areas make carries
//!   `custom:site`, gangnam for test-site staff and incheon for isolation-centre staff, where
//!   the fixture's cases are; the transfer centre belongs to no site. The `authz` area adds
//!   staff of mapo and of suwon, who must find none of those cases ([`RouteCall::elsewhere`]),
//!   and staff whose token names no site, refused ([`RouteCall::no_site`]). Staff see only
//!   the cases that reached their desk ([`Fixture::staff_sees`]): a site its own, the
//!   transfer centre the positive ones, an isolation centre the citizens sent to it.
//! - Journeys: apply → sample → negative (a certificate sealed); apply → sample → positive →
//!   dispatch → admit → release; apply → withdraw; apply → no-show; apply → sample →
//!   positive → dispatch → release (a citizen who never arrived); apply → withdraw twice;
//!   apply, left waiting; apply → sample → positive, left for the transfer centre; apply →
//!   sample → positive → dispatch → admit, left in isolation. Between them they pass through
//!   every failure point of the slice. The results a journey records are confidential
//!   ([`Fixture::confidential`]): the `privacy` area looks for them in every log line and SMS.
//! - The authorization matrix's call of each of the slice's sixteen routes, the public key
//!   and verifier included. An application is read by every staff role once it is dispatched
//!   (the transfer centre sees positive cases only, an isolation centre the citizens sent to
//!   it), a result recorded after the sample, a dispatch made once the transfer is open, an
//!   admission and a release once the citizen is dispatched ([`RouteCall::given`]). The
//!   certificate route's `{id}` names a certificate, not a case: it is called with an id that
//!   names nothing, and the certificates' owners are checked in [`Fixture::check`].
//! - Its invariants: one terminal state per application, the expected one, with at most one
//!   of each event per centre; the health centre agreeing with the site, no withdrawal left
//!   undecided; each site's waiting count equal to its entries waiting; each negative result
//!   with exactly one certificate, verifying, its one-byte alteration refused, readable by its
//!   citizen only; a transfer exactly for each positive result, a stay exactly for each
//!   dispatch, a release closing its transfer; each centre's beds taken equal to the
//!   citizens dispatched there and not released, never over its capacity; the views agreeing
//!   with the aggregates; no SMS carrying a result. A test owes no money: no dues.
//! - The `concurrency` area: the waiting count raced by a sample, a no-show (test-site
//!   staff) and a withdrawal (the citizen) on each of many applications at one site at once,
//!   each excluding the others (some applications only withdrawn, as a withdrawal the site
//!   hears asynchronously seldom beats its own decisions); and the last beds of a centre raced by dispatches
//!   ([`Fixture::taking`]): every contender's citizen tested positive first.
//! - The use cases themselves (`commands::apply`, `commands::withdraw`) for the openings
//!   and endings the areas make without HTTP.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::Utc;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::command::{self, IdempotencyKey};
use clinicflow::app::{Platform, faults as platform, projector};
use clinicflow::config::Config;
use clinicflow::domain::{Actor, Won, kst, short_ref};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::covid::application::{self, Application, ApplicationStatus};
use clinicflow::flows::covid::certificate::Certificate;
use clinicflow::flows::covid::commands::{self as usecase, ApplicationInput, HORIZON_DAYS};
use clinicflow::flows::covid::config::{CovidConfig, IsolationCentre};
use clinicflow::flows::covid::site::{self, EntryStatus, SiteEntry, TestResult, WAITING_LIMIT, waiting_key};
use clinicflow::flows::covid::stay::{self, Stay, StayStatus};
use clinicflow::flows::covid::transfer::{self, Transfer, TransferStatus, beds_key};
use clinicflow::flows::covid::view::{self, CertificateView, CovidView, Stage, StayView, TransferView};
use clinicflow::flows::covid::{ISOLATION_CENTRE, SLICE, TEST_SITE, TRANSFER_CENTRE, faults, queries};
use clinicflow::topology::{Method, PATIENT, Role, Route};
use clinicflow_tests::{LocalOptions, LocalStack};
use serde_json::{Value, json};

use super::{Body, Contest, Due, Fixture, Journey, Opened, Opens, Personal, RouteCall, Sites, Step, Taking, Who};
use crate::areas::api::{Api, CONTENDER, Person, wait_for};
use crate::invariants::{Case, aggregates};

/// The COVID slice's fixture.
#[derive(Debug, Clone, Copy)]
pub struct Covid;

/// The one instance, listed in [`super::all`].
pub static COVID: Covid = Covid;

const OPENING: &str = "/covid/applications";

/// The test sites of the two variants of the opening request (the default configuration's);
/// the fixture's test-site staff work at the first.
const SITES: [&str; 2] = ["gangnam", "mapo"];
/// The isolation centre the fixture dispatches to, where its isolation-centre staff work,
/// and another one.
const CENTRE: &str = "incheon";
const OTHER_CENTRE: &str = "suwon";

/// A QR payload of the certificates' form that no key signed.
const FOREIGN_PAYLOAD: &str = "CF1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDEXWK G2EP4J0B3KL6QM5/OVGA/MAJM";

/// The results a test site records: health data, never logged, never texted (nor their
/// Debug forms).
const RESULTS: &[&str] = &["negative", "positive", "Negative", "Positive"];

/// The event sources of the four centres.
const HEALTH_CENTRE_SOURCE: &str = "clinicflow.healthcentre";
const SITE_SOURCE: &str = "clinicflow.testsite";
const TRANSFER_SOURCE: &str = "clinicflow.transfer";
const ISOLATION_SOURCE: &str = "clinicflow.isolation";

/// What the SMS of an application say when it is received (`en`, `ko`).
const APPLIED_TEXTS: &[&str] = &["test application for", "검사 신청이 접수되었습니다"];

fn negative() -> Value {
    json!({"result": "negative"})
}

fn positive() -> Value {
    json!({"result": "positive"})
}

fn to_centre() -> Value {
    json!({"isolation_centre": CENTRE})
}

fn foreign_payload() -> Value {
    json!({"payload": FOREIGN_PAYLOAD})
}

/// Test-site staff take the sample: the citizen leaves the waiting list.
const SAMPLE: Step = Step {
    name: "sample",
    who: Who::Staff(TEST_SITE),
    method: Method::Post,
    path: "/covid/applications/{id}/sample",
    body: None,
    success: 200,
};

/// Test-site staff record a negative result.
const NEGATIVE: Step = Step {
    name: "negative",
    who: Who::Staff(TEST_SITE),
    method: Method::Post,
    path: "/covid/applications/{id}/result",
    body: Some(negative),
    success: 200,
};

/// Test-site staff record a positive result.
const POSITIVE: Step = Step {
    name: "positive",
    who: Who::Staff(TEST_SITE),
    method: Method::Post,
    path: "/covid/applications/{id}/result",
    body: Some(positive),
    success: 200,
};

/// Test-site staff mark a no-show: the citizen leaves the waiting list.
const NOSHOW: Step = Step {
    name: "no-show",
    who: Who::Staff(TEST_SITE),
    method: Method::Post,
    path: "/covid/applications/{id}/noshow",
    body: None,
    success: 200,
};

/// The citizen asks to withdraw; the site decides.
const WITHDRAW: Step = Step {
    name: "withdraw",
    who: Who::Owner,
    method: Method::Post,
    path: "/covid/applications/{id}/withdraw",
    body: None,
    success: 202,
};

/// Transfer-centre staff dispatch the citizen to [`CENTRE`], once the transfer is open.
const DISPATCH: Step = Step {
    name: "dispatch",
    who: Who::Staff(TRANSFER_CENTRE),
    method: Method::Post,
    path: "/covid/transfers/{id}/dispatch",
    body: Some(to_centre),
    success: 200,
};

/// Isolation-centre staff admit the citizen, once the centre heard of the dispatch.
const ADMIT: Step = Step {
    name: "admit",
    who: Who::Staff(ISOLATION_CENTRE),
    method: Method::Post,
    path: "/covid/isolation/{id}/admit",
    body: None,
    success: 200,
};

/// Isolation-centre staff release the citizen (admitted or not), once the centre heard of
/// the dispatch.
const RELEASE: Step = Step {
    name: "release",
    who: Who::Staff(ISOLATION_CENTRE),
    method: Method::Post,
    path: "/covid/isolation/{id}/release",
    body: None,
    success: 200,
};

fn after_commit(point: &str, function: &str) -> bool {
    point == platform::after_commit(function)
}

fn consumed(point: &str, consumer: &str) -> bool {
    platform::consumer_points(consumer).iter().any(|p| p == point)
}

/// A negative test: the application, the site's list, the sample and the result, the
/// health centre following the site and sealing the certificate.
fn negative_points(point: &str) -> bool {
    [faults::APPLY, faults::SAMPLE, faults::RESULT]
        .iter()
        .any(|f| after_commit(point, f))
        || [faults::SITE_QUEUE, faults::CENTRE_FOLLOW, faults::CERTIFY]
            .iter()
            .any(|c| consumed(point, c))
}

/// A positive test's way through isolation: the dispatch, the admission and the release,
/// the transfer opened and closed, the stay assigned.
fn released_points(point: &str) -> bool {
    [faults::DISPATCH, faults::ADMIT, faults::RELEASE]
        .iter()
        .any(|f| after_commit(point, f))
        || [faults::TRANSFER_FOLLOW, faults::ISOLATION_ASSIGN]
            .iter()
            .any(|c| consumed(point, c))
}

/// A withdrawal: asked at the health centre, decided by the site (its list and the health
/// centre hearing it).
fn withdrawn_points(point: &str) -> bool {
    after_commit(point, faults::WITHDRAW) || [faults::SITE_QUEUE, faults::CENTRE_FOLLOW].iter().any(|c| consumed(point, c))
}

fn noshow_points(point: &str) -> bool {
    after_commit(point, faults::NOSHOW)
}

/// Covered by the journeys above.
fn nowhere(_: &str) -> bool {
    false
}

/// A test takes no payment; the opening body carries no card.
const NO_CARD: &str = "tok_ok";

const JOURNEYS: &[Journey] = &[
    Journey {
        name: "apply→sample→negative (certified)",
        card: NO_CARD,
        opens: Opens::Case("negative"),
        opening: None,
        steps: &[SAMPLE, NEGATIVE],
        armed_at: negative_points,
    },
    Journey {
        name: "apply→sample→positive→dispatch→admit→release",
        card: NO_CARD,
        opens: Opens::Case("released"),
        opening: None,
        steps: &[SAMPLE, POSITIVE, DISPATCH, ADMIT, RELEASE],
        armed_at: released_points,
    },
    Journey {
        name: "apply→withdraw",
        card: NO_CARD,
        opens: Opens::Case("withdrawn"),
        opening: None,
        steps: &[WITHDRAW],
        armed_at: withdrawn_points,
    },
    Journey {
        name: "apply→no-show",
        card: NO_CARD,
        opens: Opens::Case("noshow"),
        opening: None,
        steps: &[NOSHOW],
        armed_at: noshow_points,
    },
    Journey {
        name: "apply→sample→positive→dispatch→release (never arrived)",
        card: NO_CARD,
        opens: Opens::Case("released"),
        opening: None,
        steps: &[SAMPLE, POSITIVE, DISPATCH, RELEASE],
        armed_at: nowhere,
    },
    Journey {
        name: "apply→withdraw→withdraw again",
        card: NO_CARD,
        opens: Opens::Case("withdrawn"),
        opening: None,
        steps: &[WITHDRAW, WITHDRAW],
        armed_at: nowhere,
    },
    Journey {
        name: "apply, left waiting",
        card: NO_CARD,
        opens: Opens::Case("waiting"),
        opening: None,
        steps: &[],
        armed_at: nowhere,
    },
    Journey {
        name: "apply→sample→positive, left for the transfer centre",
        card: NO_CARD,
        opens: Opens::Case("positive"),
        opening: None,
        steps: &[SAMPLE, POSITIVE],
        armed_at: nowhere,
    },
    Journey {
        name: "apply→sample→positive→dispatch→admit, left in isolation",
        card: NO_CARD,
        opens: Opens::Case("isolated"),
        opening: None,
        steps: &[SAMPLE, POSITIVE, DISPATCH, ADMIT],
        armed_at: nowhere,
    },
];

/// The date of the `day`-th opening body: one to thirteen days ahead in Korea, within the
/// fourteen days the slice takes whatever the hour.
fn date_of(day: i64) -> String {
    let ahead = 1 + day.rem_euclid(HORIZON_DAYS - 1);
    (Utc::now().with_timezone(&kst()).date_naive() + chrono::Duration::days(ahead)).to_string()
}

/// The opening body of variant `variant` on day `day`.
fn body_for(day: i64, variant: usize, person: &Person<'_>) -> Value {
    json!({
        "site": SITES[variant.min(1)],
        "date": date_of(day),
        "name": person.name,
        "phone": person.phone,
        "locale": person.locale,
    })
}

/// The variant of an application at `site`.
fn variant_of(site: &str) -> &'static str {
    if site == SITES[1] { SITES[1] } else { SITES[0] }
}

/// Application `id`'s view, raw.
async fn raw_view(stack: &LocalStack, id: &str) -> Option<Value> {
    let key = projector::view_id(view::APPLICATIONS, id);
    stack.platform.views.get(&key).await.ok().flatten().map(|v| v.body)
}

/// View `V` (named `name`) of `id`, if stored and readable.
async fn view_of<V: serde::de::DeserializeOwned>(p: &Platform, name: &str, id: &str) -> anyhow::Result<Option<V>> {
    let stored = p.views.get(&projector::view_id(name, id)).await?;
    Ok(stored.and_then(|v| serde_json::from_value(v.body).ok()))
}

/// The health centre's table: its applications and its certificates (one context, two
/// aggregates), and the ids of rows that are neither.
struct HealthCentre {
    applications: BTreeMap<String, Application>,
    certificates: BTreeMap<String, Certificate>,
    unreadable: Vec<String>,
}

/// Every row of the health centre's table in `db`, told apart by shape: a certificate holds
/// its sealed payload.
async fn health_centre(db: &Embedded) -> anyhow::Result<HealthCentre> {
    let rows: BTreeMap<String, Value> = aggregates(db, application::CONTEXT).await?;
    let mut hc = HealthCentre {
        applications: BTreeMap::new(),
        certificates: BTreeMap::new(),
        unreadable: Vec::new(),
    };
    for (id, row) in rows {
        if row.get("payload").is_some() {
            match serde_json::from_value::<Certificate>(row) {
                Ok(c) => {
                    hc.certificates.insert(id, c);
                }
                Err(_) => hc.unreadable.push(id),
            }
        } else {
            match serde_json::from_value::<Application>(row) {
                Ok(a) => {
                    hc.applications.insert(id, a);
                }
                Err(_) => hc.unreadable.push(id),
            }
        }
    }
    Ok(hc)
}

/// Does the site's entry stand where the health centre's application says?
fn agrees(a: &Application, e: &SiteEntry) -> bool {
    let status = matches!(
        (a.status, e.status, e.result),
        (ApplicationStatus::Applied, EntryStatus::Waiting, None)
            | (ApplicationStatus::Withdrawn, EntryStatus::Withdrawn, None)
            | (ApplicationStatus::Sampled, EntryStatus::Sampled, None)
            | (ApplicationStatus::Negative, EntryStatus::Resulted, Some(TestResult::Negative))
            | (ApplicationStatus::Positive, EntryStatus::Resulted, Some(TestResult::Positive))
            | (ApplicationStatus::Noshow, EntryStatus::Noshow, None)
    );
    status && a.site == e.site
}

/// The stage the centres' aggregates say an application is at, as its view must show it.
fn stage_of(a: &Application, e: Option<&SiteEntry>, t: Option<&Transfer>, s: Option<&Stay>) -> Stage {
    let transfer = t.map(|t| t.status);
    match (s.map(|s| s.status), transfer) {
        (Some(StayStatus::Released), _) | (_, Some(TransferStatus::Closed)) => Stage::Released,
        (Some(StayStatus::Isolated), _) => Stage::Isolated,
        (Some(StayStatus::Assigned), _) | (_, Some(TransferStatus::Dispatched)) => Stage::Dispatched,
        _ => match a.status {
            ApplicationStatus::Positive => Stage::Positive,
            ApplicationStatus::Negative => Stage::Negative,
            ApplicationStatus::Noshow => Stage::Noshow,
            ApplicationStatus::Withdrawn => Stage::Withdrawn,
            ApplicationStatus::Sampled => Stage::Sampled,
            ApplicationStatus::Applied if e.is_some_and(SiteEntry::is_waiting) => Stage::Waiting,
            ApplicationStatus::Applied => Stage::Applied,
        },
    }
}

/// `payload` with one character changed (to another of Base45's alphabet), halfway.
fn altered(payload: &str) -> String {
    let mut chars: Vec<char> = payload.chars().collect();
    let at = chars.len() / 2;
    if let Some(c) = chars.get_mut(at) {
        *c = if *c == '0' { '1' } else { '0' };
    }
    chars.into_iter().collect()
}

/// The test sites and isolation centres of the stack's configuration.
fn places(p: &Platform) -> CovidConfig {
    p.config.slice::<CovidConfig>()
}

#[async_trait]
impl Fixture for Covid {
    fn slice(&self) -> &'static str {
        SLICE.name
    }

    fn context(&self) -> &'static str {
        application::CONTEXT
    }

    fn opening(&self) -> &'static str {
        OPENING
    }

    /// `{site}` is the site the case applied to, `{centre}` the centre the fixture
    /// dispatches to.
    fn resolve(&self, path: &str, id: &str, body: &Value) -> String {
        path.replace("{id}", id)
            .replace("{site}", body["site"].as_str().unwrap_or(SITES[0]))
            .replace("{centre}", CENTRE)
    }

    /// A sample or a no-show waits for the site's entry; a result for the sample; a
    /// dispatch for the transfer the transfer centre opened; an admission or a release for
    /// the stay the isolation centre expects.
    async fn ready_for(&self, stack: &LocalStack, id: &str, step: &Step) -> bool {
        let p = &stack.platform;
        if step.path == SAMPLE.path || step.path == NOSHOW.path {
            return command::load::<SiteEntry>(p, id).await.ok().and_then(|l| l.state).is_some();
        }
        if step.path == NEGATIVE.path {
            return command::load::<SiteEntry>(p, id)
                .await
                .ok()
                .and_then(|l| l.state)
                .is_some_and(|e| matches!(e.status, EntryStatus::Sampled | EntryStatus::Resulted));
        }
        if step.path == DISPATCH.path {
            return command::load::<Transfer>(p, id).await.ok().and_then(|l| l.state).is_some();
        }
        if step.path == ADMIT.path || step.path == RELEASE.path {
            return command::load::<Stay>(p, id).await.ok().and_then(|l| l.state).is_some();
        }
        true
    }

    fn confidential(&self) -> &'static [&'static str] {
        RESULTS
    }

    fn taking(&self) -> Option<Taking> {
        Some(Taking {
            given: &[SAMPLE, POSITIVE],
            step: DISPATCH,
        })
    }

    fn sites(&self, role: Role) -> Option<Sites> {
        if role == TEST_SITE {
            Some(Sites {
                home: SITES[0],
                other: SITES[1],
            })
        } else if role == ISOLATION_CENTRE {
            Some(Sites {
                home: CENTRE,
                other: OTHER_CENTRE,
            })
        } else {
            None
        }
    }

    /// Test-site staff see their site's applications; the transfer centre, those whose
    /// result asked for a transfer; an isolation centre, the citizens dispatched to it.
    async fn staff_sees(&self, stack: &LocalStack, id: &str, role: Role) -> bool {
        stack.settle(Duration::from_secs(10)).await;
        let Some(v) = raw_view(stack, id).await else { return false };
        if role == TEST_SITE {
            v["site"] == SITES[0]
        } else if role == TRANSFER_CENTRE {
            !v["transfer"].is_null()
        } else if role == ISOLATION_CENTRE {
            v["stay"]["isolation_centre"] == CENTRE
        } else {
            true
        }
    }

    /// Beds, taken by a dispatch ([`Fixture::taking`]).
    fn has_places(&self) -> bool {
        true
    }

    /// The card is not sent: a test takes no payment (and the request refuses unknown
    /// fields).
    fn open_body(&self, day: i64, person: &Person<'_>, _card: &str) -> Value {
        body_for(day, 0, person)
    }

    /// The other test site (there is no price).
    fn other_body(&self, body: &Value) -> Value {
        let mut other = body.clone();
        other["site"] = json!(SITES[1]);
        other
    }

    fn variants(&self) -> [&'static str; 2] {
        SITES
    }

    fn personal(&self) -> Personal {
        Personal {
            name: "name",
            phone: "phone",
            card: None,
        }
    }

    fn invalid_openings(&self, valid: &Value) -> Vec<(&'static str, Value)> {
        let with = |field: &str, value: Value| {
            let mut b = valid.clone();
            b[field] = value;
            b
        };
        let without = |field: &str| {
            let mut b = valid.clone();
            if let Some(fields) = b.as_object_mut() {
                fields.remove(field);
            }
            b
        };
        let past = (Utc::now().with_timezone(&kst()).date_naive() - chrono::Duration::days(2)).to_string();
        let beyond = (Utc::now().with_timezone(&kst()).date_naive() + chrono::Duration::days(HORIZON_DAYS + 3)).to_string();
        vec![
            ("no site", without("site")),
            ("an unknown site", with("site", json!("jongno"))),
            ("no date", without("date")),
            ("a date in the past", with("date", json!(past))),
            ("a date beyond the fourteen days", with("date", json!(beyond))),
            ("a date that is no date", with("date", json!("2027-02-30"))),
            ("an unknown locale", with("locale", json!("fr"))),
        ]
    }

    fn view_key(&self, id: &str) -> String {
        projector::view_id(view::APPLICATIONS, id)
    }

    /// An application is ready once its view shows it on the site's waiting list (the site
    /// heard of it): staff may take the sample or mark a no-show.
    async fn ready(&self, stack: &LocalStack, id: &str) -> bool {
        raw_view(stack, id).await.is_some_and(|v| v["entry"] == "waiting")
    }

    fn journeys(&self) -> &'static [Journey] {
        JOURNEYS
    }

    fn route(&self, route: &Route) -> Option<RouteCall> {
        let call = RouteCall::new;
        match (route.method, route.path) {
            (Method::Post, "/covid/applications") => Some(call(false, true, 201, Body::Opening)),
            (Method::Get, "/covid/applications") => Some(RouteCall {
                filters: &["status"],
                ..call(false, false, 200, Body::Empty)
            }),
            // Read by every staff role once dispatched: the transfer centre sees a positive
            // case, the isolation centre a citizen sent to it, the site its own.
            (Method::Get, "/covid/applications/{id}") => Some(RouteCall {
                given: &[SAMPLE, POSITIVE, DISPATCH],
                elsewhere: Some(404),
                no_site: Some(404),
                ..call(true, false, 200, Body::Empty)
            }),
            (Method::Post, "/covid/applications/{id}/withdraw") => Some(call(true, true, 202, Body::Empty)),
            // `{site}`: the site of the fixture's cases; another site's list is forbidden.
            // Staff whose token names no site are refused, or find no case.
            (Method::Get, "/covid/sites/{site}/queue") => Some(RouteCall {
                elsewhere: Some(403),
                no_site: Some(403),
                ..call(false, false, 200, Body::Empty)
            }),
            (Method::Post, "/covid/applications/{id}/sample") => Some(RouteCall {
                elsewhere: Some(404),
                no_site: Some(403),
                ..call(true, true, 200, Body::Empty)
            }),
            (Method::Post, "/covid/applications/{id}/result") => Some(RouteCall {
                given: &[SAMPLE],
                elsewhere: Some(404),
                no_site: Some(403),
                ..call(true, true, 200, Body::Json(negative))
            }),
            (Method::Post, "/covid/applications/{id}/noshow") => Some(RouteCall {
                elsewhere: Some(404),
                no_site: Some(403),
                ..call(true, true, 200, Body::Empty)
            }),
            // Public: anyone, with whatever token or none.
            (Method::Get, "/covid/certificates/key") => Some(call(false, false, 200, Body::Empty)),
            (Method::Post, "/covid/certificates/verify") => Some(call(false, false, 200, Body::Json(foreign_payload))),
            // `{id}` names a certificate, never a case: called with an id that names nothing,
            // every allowed caller gets 404 (the owners are checked by `check`).
            (Method::Get, "/covid/certificates/{id}") => Some(call(false, false, 404, Body::Empty)),
            (Method::Get, "/covid/transfers") => Some(RouteCall {
                filters: &["status"],
                ..call(false, false, 200, Body::Empty)
            }),
            (Method::Post, "/covid/transfers/{id}/dispatch") => Some(RouteCall {
                given: &[SAMPLE, POSITIVE],
                ..call(true, true, 200, Body::Json(to_centre))
            }),
            // `{centre}`: the centre the fixture dispatches to; another centre's is forbidden.
            (Method::Get, "/covid/isolation/{centre}") => Some(RouteCall {
                filters: &["status"],
                elsewhere: Some(403),
                no_site: Some(403),
                ..call(false, false, 200, Body::Empty)
            }),
            (Method::Post, "/covid/isolation/{id}/admit") => Some(RouteCall {
                given: &[SAMPLE, POSITIVE, DISPATCH],
                elsewhere: Some(404),
                no_site: Some(403),
                ..call(true, true, 200, Body::Empty)
            }),
            (Method::Post, "/covid/isolation/{id}/release") => Some(RouteCall {
                given: &[SAMPLE, POSITIVE, DISPATCH],
                elsewhere: Some(404),
                no_site: Some(403),
                ..call(true, true, 200, Body::Empty)
            }),
            _ => None,
        }
    }

    async fn check(&self, stack: &LocalStack, cases: &[&Case], events: &[EventEnvelope]) -> anyhow::Result<Vec<String>> {
        let db = &stack.embedded().context("the invariants are read from the SQLite backend")?.db;
        let p: &Platform = &stack.platform;
        let cfg = places(p);
        let mut violations = Vec::new();
        let mut broken = |invariant: &str, what: String| violations.push(format!("{invariant}: {what}"));
        let hc = health_centre(db).await?;
        let entries: BTreeMap<String, SiteEntry> = aggregates(db, site::CONTEXT).await?;
        let transfers: BTreeMap<String, Transfer> = aggregates(db, transfer::CONTEXT).await?;
        let stays: BTreeMap<String, Stay> = aggregates(db, stay::CONTEXT).await?;
        for id in &hc.unreadable {
            broken(
                "terminal state",
                format!("health centre row {id} is neither an application nor a certificate"),
            );
        }
        let apps = &hc.applications;
        let mut of: HashMap<(&str, &str), HashMap<&str, usize>> = HashMap::new();
        for e in events {
            *of.entry((e.source.as_str(), e.aggregate_id.as_str()))
                .or_default()
                .entry(e.event_type.as_str())
                .or_default() += 1;
        }
        let count = |source: &str, id: &str, t: &str| of.get(&(source, id)).and_then(|m| m.get(t)).copied().unwrap_or(0);
        let stage_shown = async |id: &str| view_of::<CovidView>(p, view::APPLICATIONS, id).await.map(|v| v.map(|v| v.stage()));

        // Each case reached exactly one terminal state, the expected one.
        for case in cases {
            let Some(id) = &case.id else {
                if let Some((id, _)) = apps.iter().find(|(_, a)| a.citizen_sub == case.owner) {
                    broken("terminal state", format!("application {id} exists, none was expected"));
                }
                continue;
            };
            let Some(a) = apps.get(id) else {
                broken("terminal state", format!("application {id} does not exist"));
                continue;
            };
            let shown = stage_shown(id).await?;
            if shown.map(Stage::as_str) != case.outcome {
                broken(
                    "terminal state",
                    format!("application {id} is {:?}, expected {:?}", shown.map(Stage::as_str), case.outcome),
                );
            }
            if a.citizen_sub != case.owner {
                broken(
                    "terminal state",
                    format!("application {id} belongs to another citizen than its owner"),
                );
            }
        }

        // At most one of each event per aggregate; each centre ends a case once.
        let unique: [(&str, &[&str], &[&str]); 4] = [
            (
                HEALTH_CENTRE_SOURCE,
                &[
                    "ApplicationSubmitted",
                    "ApplicationWithdrawn",
                    "ApplicationSampled",
                    "ResultHeard",
                    "ApplicationNoShow",
                    "CertificateIssued",
                    "TransferRequested",
                ],
                &["ApplicationWithdrawn", "ResultHeard", "ApplicationNoShow"],
            ),
            (
                SITE_SOURCE,
                &[
                    "SiteEntryQueued",
                    "SiteEntryWithdrawn",
                    "SampleTaken",
                    "ResultRecorded",
                    "NoShowMarked",
                ],
                &["SiteEntryWithdrawn", "SampleTaken", "NoShowMarked"],
            ),
            (TRANSFER_SOURCE, &["TransferOpened", "TransferDispatched", "TransferClosed"], &[]),
            (ISOLATION_SOURCE, &["StayAssigned", "StayAdmitted", "StayReleased"], &[]),
        ];
        let ids = apps.keys().chain(entries.keys()).chain(transfers.keys()).chain(stays.keys());
        let ids: std::collections::BTreeSet<&String> = ids.collect();
        for id in ids {
            for (source, once, ends) in unique {
                for t in once {
                    if count(source, id, t) > 1 {
                        broken("terminal state", format!("case {id} has {} {t} events", count(source, id, t)));
                    }
                }
                let ended: usize = ends.iter().map(|t| count(source, id, t)).sum();
                if ended > 1 {
                    broken("terminal state", format!("case {id} ended {ended} times at {source}"));
                }
            }
        }

        // The health centre agrees with the site; no withdrawal is left undecided.
        for (id, a) in apps {
            match entries.get(id) {
                Some(e) if agrees(a, e) => {}
                Some(e) => broken(
                    "health centre agrees with the site",
                    format!(
                        "application {id} is {} at {}, its entry {} ({:?}) at {}",
                        a.status.as_str(),
                        a.site,
                        e.status.as_str(),
                        e.result.map(TestResult::as_str),
                        e.site
                    ),
                ),
                None => broken(
                    "health centre agrees with the site",
                    format!("application {id} ({}) never reached its site", a.status.as_str()),
                ),
            }
            if a.withdrawal_requested {
                broken(
                    "health centre agrees with the site",
                    format!("application {id}'s withdrawal was never decided by the site"),
                );
            }
        }
        for (id, e) in &entries {
            if !apps.contains_key(id) {
                broken(
                    "health centre agrees with the site",
                    format!("entry {id} ({}) at {} is of no application", e.status.as_str(), e.site),
                );
            }
        }

        // Each site's waiting count is its entries waiting.
        for s in &cfg.sites {
            let counted = p.store.counter(&waiting_key(&s.id)).await?;
            let waiting = entries.values().filter(|e| e.site == s.id && e.is_waiting()).count() as i64;
            if counted != waiting || !(0..=WAITING_LIMIT).contains(&counted) {
                broken(
                    "waiting count",
                    format!("site {}'s count is {counted}, {waiting} entries wait there", s.id),
                );
            }
        }
        for (id, e) in entries.iter().filter(|(_, e)| cfg.site("site", &e.site).is_err()) {
            broken(
                "waiting count",
                format!("entry {id} is at {}, no site of the configuration", e.site),
            );
        }

        // Each negative result has exactly one certificate, which verifies, and whose
        // alteration does not.
        let mut certified: HashMap<&str, Vec<&str>> = HashMap::new();
        for (cid, c) in &hc.certificates {
            certified.entry(c.application_id.as_str()).or_default().push(cid.as_str());
            let Some(a) = apps.get(&c.application_id) else {
                broken("one certificate per negative", format!("certificate {cid} is of no application"));
                continue;
            };
            if c.citizen_sub != a.citizen_sub || c.content.holder != a.holder || c.content.result != TestResult::Negative {
                broken(
                    "one certificate per negative",
                    format!(
                        "certificate {cid} of application {}: another citizen {}, another holder {}, result {}",
                        c.application_id,
                        c.citizen_sub != a.citizen_sub,
                        c.content.holder != a.holder,
                        c.content.result.as_str()
                    ),
                );
            }
            let verdict = queries::verify(p, &c.payload).await?;
            if !verdict.valid || verdict.certificate_id.as_deref() != Some(cid.as_str()) {
                broken(
                    "certificates verify",
                    format!(
                        "certificate {cid} verifies {} ({:?}), naming {:?}",
                        verdict.valid, verdict.reason, verdict.certificate_id
                    ),
                );
            }
            let tampered = queries::verify(p, &altered(&c.payload)).await?;
            if tampered.valid {
                broken(
                    "certificates verify",
                    format!("certificate {cid} altered by one character still verifies"),
                );
            }
        }
        for (id, a) in apps {
            let sealed = certified.get(id.as_str()).map_or(&[][..], Vec::as_slice);
            let expected = usize::from(a.status == ApplicationStatus::Negative);
            let recorded = a.certificate.as_ref().map(|c| c.id.as_str());
            if sealed.len() != expected || (expected == 1 && recorded != sealed.first().copied()) || (expected == 0 && recorded.is_some()) {
                broken(
                    "one certificate per negative",
                    format!(
                        "application {id} ({}) has {} certificate(s) sealed, one recorded: {}",
                        a.status.as_str(),
                        sealed.len(),
                        recorded.is_some()
                    ),
                );
            }
        }

        // A negative case's certificate is read by its citizen, and by no other.
        let api = Api::new(stack)?;
        let intruder = stack.token("covid-check-intruder", &[PATIENT.group]);
        for case in cases.iter().filter(|c| c.outcome == Some("negative")) {
            let Some(cid) = case
                .id
                .as_ref()
                .and_then(|id| apps.get(id))
                .and_then(|a| a.certificate.as_ref())
                .map(|c| c.id.clone())
            else {
                continue;
            };
            let path = format!("/covid/certificates/{cid}");
            let own = api
                .send("GET", &path, Some(&stack.token(&case.owner, &[PATIENT.group])), None)
                .await?;
            let stored = hc.certificates.get(&cid).map(|c| c.payload.as_str());
            if own.status != 200 || own.body["qr_payload"].as_str() != stored {
                broken(
                    "certificates read by their citizen only",
                    format!(
                        "certificate {cid}: its citizen got {} (the stored payload: {})",
                        own.status,
                        own.body["qr_payload"].as_str() == stored
                    ),
                );
            }
            let other = api.send("GET", &path, Some(&intruder), None).await?;
            if other.status != 404 {
                broken(
                    "certificates read by their citizen only",
                    format!("certificate {cid}: another citizen got {}", other.status),
                );
            }
        }

        // A transfer exactly for each positive result; a stay exactly for each dispatch; a
        // release closes its transfer.
        for (id, a) in apps {
            let positive = a.status == ApplicationStatus::Positive;
            match (positive, transfers.get(id)) {
                (true, Some(t)) if t.site == a.site => {}
                (false, None) => {}
                (_, t) => broken(
                    "a transfer per positive",
                    format!(
                        "application {id} is {}, its transfer {:?}",
                        a.status.as_str(),
                        t.map(|t| t.status.as_str())
                    ),
                ),
            }
        }
        for (id, t) in &transfers {
            if !apps.contains_key(id) {
                broken("a transfer per positive", format!("transfer {id} is of no application"));
            }
            let s = stays.get(id);
            let fine = match (t.status, s) {
                (TransferStatus::Requested, None) => true,
                (TransferStatus::Dispatched, Some(s)) => s.status != StayStatus::Released && Some(&s.centre) == t.centre.as_ref(),
                (TransferStatus::Closed, Some(s)) => s.status == StayStatus::Released && Some(&s.centre) == t.centre.as_ref(),
                _ => false,
            };
            if !fine {
                broken(
                    "a stay per dispatch",
                    format!(
                        "transfer {id} is {} (to {:?}), its stay {:?} (at {:?})",
                        t.status.as_str(),
                        t.centre,
                        s.map(|s| s.status.as_str()),
                        s.map(|s| s.centre.as_str())
                    ),
                );
            }
        }
        for id in stays.keys().filter(|id| !transfers.contains_key(*id)) {
            broken("a stay per dispatch", format!("stay {id} has no transfer"));
        }

        // Each centre's beds taken are its citizens dispatched and not released, within its beds.
        for c in &cfg.centres {
            let taken = p.store.counter(&beds_key(&c.id)).await?;
            let dispatched = transfers.values().filter(|t| t.bed() == Some(c.id.as_str())).count() as i64;
            if taken != dispatched || !(0..=i64::from(c.beds)).contains(&taken) {
                broken(
                    "beds",
                    format!(
                        "centre {}: {taken} bed(s) taken of {}, {dispatched} citizen(s) dispatched there and not released",
                        c.id, c.beds
                    ),
                );
            }
        }
        for (id, t) in transfers
            .iter()
            .filter(|(_, t)| t.centre.as_ref().is_some_and(|c| cfg.centre("c", c).is_err()))
        {
            broken(
                "beds",
                format!("transfer {id} is to {:?}, no centre of the configuration", t.centre),
            );
        }

        // The views agree with the aggregates.
        for (id, a) in apps {
            let expected = stage_of(a, entries.get(id), transfers.get(id), stays.get(id));
            let Some(v) = view_of::<CovidView>(p, view::APPLICATIONS, id).await? else {
                broken(
                    "view equals aggregates",
                    format!("view of application {id} is missing or unreadable"),
                );
                continue;
            };
            let certificate = v.certificate.as_ref().map(|c| c.id.as_str());
            if v.stage() != expected || certificate != a.certificate.as_ref().map(|c| c.id.as_str()) || v.citizen_sub != a.citizen_sub {
                broken(
                    "view equals aggregates",
                    format!(
                        "view of application {id} shows {} (certificate {}), the centres say {} (certificate {})",
                        v.stage().as_str(),
                        certificate.is_some(),
                        expected.as_str(),
                        a.certificate.is_some()
                    ),
                );
            }
        }
        for (id, t) in &transfers {
            let v = view_of::<TransferView>(p, view::TRANSFERS, id).await?;
            if v.as_ref().is_none_or(|v| v.status != Some(t.status) || v.centre != t.centre) {
                broken(
                    "view equals aggregates",
                    format!(
                        "view of transfer {id} says {:?}, the transfer {}",
                        v.and_then(|v| v.status).map(TransferStatus::as_str),
                        t.status.as_str()
                    ),
                );
            }
        }
        for (id, s) in &stays {
            let v = view_of::<StayView>(p, view::STAYS, id).await?;
            if v.as_ref()
                .is_none_or(|v| v.status != Some(s.status) || v.centre.as_ref() != Some(&s.centre))
            {
                broken(
                    "view equals aggregates",
                    format!(
                        "view of stay {id} says {:?}, the stay {}",
                        v.and_then(|v| v.status).map(StayStatus::as_str),
                        s.status.as_str()
                    ),
                );
            }
        }
        for (cid, c) in &hc.certificates {
            let v = view_of::<CertificateView>(p, view::CERTIFICATES, cid).await?;
            if v.as_ref()
                .is_none_or(|v| v.payload.as_ref() != Some(&c.payload) || v.citizen_sub != c.citizen_sub)
            {
                broken(
                    "view equals aggregates",
                    format!("view of certificate {cid} is missing or differs from it"),
                );
            }
        }

        // No SMS of the slice carries a result.
        let of_slice: HashSet<&str> = events
            .iter()
            .filter(|e| [HEALTH_CENTRE_SOURCE, SITE_SOURCE, TRANSFER_SOURCE, ISOLATION_SOURCE].contains(&e.source.as_str()))
            .map(|e| e.id.as_str())
            .collect();
        for sms in stack.sms_sent().await? {
            if of_slice.contains(sms.key.as_str()) && RESULTS.iter().any(|r| sms.body.contains(r)) {
                broken("no result in an SMS", format!("an SMS (seq {}) names a result", sms.seq));
            }
        }
        Ok(violations)
    }

    /// A test owes no money.
    async fn dues(&self, _db: &Embedded) -> anyhow::Result<Vec<Due>> {
        Ok(Vec::new())
    }

    /// Every site's waiting count and every centre's beds taken.
    async fn counters(&self, stack: &LocalStack) -> anyhow::Result<Vec<(String, i64)>> {
        let cfg = places(&stack.platform);
        let keys = cfg
            .sites
            .iter()
            .map(|s| waiting_key(&s.id))
            .chain(cfg.centres.iter().map(|c| beds_key(&c.id)));
        let mut counters = Vec::new();
        for key in keys {
            let value = stack.platform.store.counter(&key).await?;
            counters.push((key, value));
        }
        Ok(counters)
    }

    /// The beds of every isolation centre of the configuration.
    fn set_capacity(&self, options: &mut LocalOptions, places: i64) {
        let beds = u32::try_from(places.clamp(1, 100_000)).unwrap_or(1);
        options.config.slice_mut::<CovidConfig>().centres = [CENTRE, OTHER_CENTRE]
            .into_iter()
            .map(|id| IsolationCentre { id: id.to_owned(), beds })
            .collect();
    }

    /// A test is free.
    fn price(&self, _config: &Config, _variant: usize) -> Won {
        Won(0)
    }

    /// The beds taken at the centre the fixture dispatches to (the opening names none).
    async fn places_taken(&self, stack: &LocalStack, _body: &Value) -> anyhow::Result<i64> {
        Ok(stack.platform.store.counter(&beds_key(CENTRE)).await?)
    }

    /// The cases holding a bed at the centre the fixture dispatches to: dispatched there and
    /// not released.
    async fn cases_like(&self, db: &Embedded, _body: &Value) -> anyhow::Result<HashSet<String>> {
        let transfers: BTreeMap<String, Transfer> = aggregates(db, transfer::CONTEXT).await?;
        Ok(transfers.into_values().filter(|t| t.bed() == Some(CENTRE)).map(|t| t.id).collect())
    }

    /// Every stored application; none has a payment (`payment_id` is empty, the price 0).
    async fn opened(&self, db: &Embedded) -> anyhow::Result<Vec<Opened>> {
        Ok(health_centre(db)
            .await?
            .applications
            .into_values()
            .map(|a| Opened {
                variant: variant_of(&a.site),
                id: a.id,
                owner: a.citizen_sub,
                payment_id: String::new(),
                price: Won(0),
            })
            .collect())
    }

    fn contest(&self) -> Contest {
        Contest {
            decisions: &[SAMPLE, NOSHOW, WITHDRAW],
            // Each outcome contested by all three, and by each pair; and the withdrawal
            // alone, raced by its own copies and by the other cases' decisions at the site:
            // the site hears a withdrawal asynchronously, so it seldom beats the site's own
            // decisions, and the count must see withdrawals too.
            mixes: &[&[0, 1, 2], &[0, 1, 2], &[0, 1], &[0, 2], &[1, 2], &[2]],
        }
    }

    fn implied_outcome(&self, won: &[bool]) -> Result<&'static str, String> {
        let [sampled, noshow, withdrawn] = won else {
            return Err(format!("{} decisions, expected sample, no-show and withdraw", won.len()));
        };
        implied_outcome(*sampled, *noshow, *withdrawn)
    }

    async fn judge_contest(
        &self,
        stack: &LocalStack,
        api: &Api,
        id: &str,
        owner: &str,
        body: &Value,
        _won: &[bool],
        outcome: &str,
    ) -> anyhow::Result<Vec<String>> {
        let p = &stack.platform;
        let mut wrong = Vec::new();
        let path = format!("/covid/applications/{id}");
        let view = wait_for(api, owner, &path, Duration::from_secs(5), |v| v["status"] == outcome).await;
        if view.is_none() {
            let seen = api.send("GET", &path, Some(owner), None).await?;
            wrong.push(format!("view shows status {} (expected {outcome})", seen.body["status"]));
        }

        // The site and the health centre: where the decision that won left them.
        let (entry, application) = match outcome {
            "sampled" => (EntryStatus::Sampled, ApplicationStatus::Sampled),
            "noshow" => (EntryStatus::Noshow, ApplicationStatus::Noshow),
            _ => (EntryStatus::Withdrawn, ApplicationStatus::Withdrawn),
        };
        match command::load::<SiteEntry>(p, id).await?.state {
            Some(e) if e.status == entry => {}
            Some(e) => wrong.push(format!("the site's entry is {} (expected {})", e.status.as_str(), entry.as_str())),
            None => wrong.push("the site has no entry".into()),
        }
        match command::load::<Application>(p, id).await?.state {
            Some(a) if a.status == application && !a.withdrawal_requested => {}
            Some(a) => wrong.push(format!(
                "the application is {} (withdrawal undecided: {}), expected {}",
                a.status.as_str(),
                a.withdrawal_requested,
                application.as_str()
            )),
            None => wrong.push("the application is not stored".into()),
        }

        // The site's waiting count is its entries waiting, whatever raced.
        let site = body["site"].as_str().unwrap_or(SITES[0]);
        let db = &stack.embedded().context("on SQLite")?.db;
        let entries: BTreeMap<String, SiteEntry> = aggregates(db, site::CONTEXT).await?;
        let waiting = entries.values().filter(|e| e.site == site && e.is_waiting()).count() as i64;
        let counted = p.store.counter(&waiting_key(site)).await?;
        if counted != waiting {
            wrong.push(format!("site {site}'s waiting count is {counted}, {waiting} entries wait there"));
        }

        // SMS: the application's only; a sample, a no-show or a withdrawal sends none.
        let sms = stack.sms_sent().await?;
        let texts: Vec<&str> = sms
            .iter()
            .filter(|s| s.body.contains(short_ref(id)))
            .map(|s| s.body.as_str())
            .collect();
        let applied = texts.iter().filter(|t| APPLIED_TEXTS.iter().any(|n| t.contains(*n))).count();
        if applied != 1 || texts.len() != 1 {
            wrong.push(format!(
                "{applied} 'application received' SMS, {} in all (expected 1 and 1)",
                texts.len()
            ));
        }
        Ok(wrong)
    }

    /// The citizen's withdrawal (a test has no money to give back).
    fn ending(&self) -> &'static Step {
        &WITHDRAW
    }

    /// The citizen applies on the use case. The `Idempotency-Key` is hashed with the
    /// request's body, as the route does.
    async fn open_direct(&self, p: &Platform, owner: &str, day: i64, variant: usize, key: &str, request_id: &str) -> Result<u16, String> {
        let body = body_for(day, variant, &CONTENDER);
        let input: ApplicationInput = serde_json::from_value(body.clone()).map_err(|e| e.to_string())?;
        let key = IdempotencyKey::parse(key, body.to_string().as_bytes()).map_err(|e| e.detail)?;
        let actor = Actor { sub: owner.to_owned() };
        usecase::apply(p, &actor, input, Some(key), request_id)
            .await
            .map(|a| a.status)
            .map_err(|e| e.to_string())
    }

    async fn end_direct(&self, p: &Platform, owner: &str, id: &str, request_id: &str) -> anyhow::Result<()> {
        usecase::withdraw(p, &Actor { sub: owner.to_owned() }, id, request_id).await?;
        Ok(())
    }
}

/// The application's state after the contest, as the decisions that won imply: the site
/// takes the sample or marks the no-show, whichever comes first, and a withdrawal the site
/// heard before either leaves the list; each excludes the others. A withdrawal asked (`202`)
/// after the sample is refused by the site, so it wins only when neither of the others did.
fn implied_outcome(sampled: bool, noshow: bool, withdrawn: bool) -> Result<&'static str, String> {
    match (sampled, noshow, withdrawn) {
        (true, false, _) => Ok("sampled"),
        (false, true, _) => Ok("noshow"),
        (false, false, true) => Ok("withdrawn"),
        (false, false, false) => Err("no decision succeeded".into()),
        (true, true, _) => Err("both the sample and the no-show succeeded".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::areas::api::SOMEONE;

    #[test]
    fn the_site_takes_one_decision_and_a_withdrawal_wins_only_alone() {
        assert_eq!(implied_outcome(true, false, false), Ok("sampled"));
        assert_eq!(implied_outcome(true, false, true), Ok("sampled"), "the withdrawal was refused");
        assert_eq!(implied_outcome(false, true, true), Ok("noshow"), "the withdrawal was refused");
        assert_eq!(implied_outcome(false, false, true), Ok("withdrawn"));
        assert!(implied_outcome(true, true, false).is_err());
        assert!(implied_outcome(true, true, true).is_err());
        assert!(implied_outcome(false, false, false).is_err());
        assert_eq!(COVID.implied_outcome(&[false, true, false]), Ok("noshow"));
    }

    #[test]
    fn outcomes_are_stages() {
        for j in JOURNEYS {
            if let Some(outcome) = j.outcome() {
                assert!(Stage::parse("status", outcome).is_ok(), "{}: {outcome}", j.name);
            }
        }
        for outcome in ["sampled", "noshow", "withdrawn"] {
            assert!(Stage::parse("status", outcome).is_ok(), "{outcome}");
        }
    }

    #[test]
    fn the_opening_body_is_a_valid_application_within_the_horizon_and_the_other_variant_another_site() {
        let today = Utc::now().with_timezone(&kst()).date_naive();
        for day in [0, 30, 50, 100, 250, 300, -1] {
            let body = COVID.open_body(day, &SOMEONE, "tok_ok");
            let input: ApplicationInput = serde_json::from_value(body.clone()).expect("an application");
            let date = chrono::NaiveDate::parse_from_str(input.date.as_deref().expect("a date"), "%Y-%m-%d").expect("a date");
            let ahead = (date - today).num_days();
            assert!((1..HORIZON_DAYS).contains(&ahead), "day {day}: {ahead} days ahead");
            assert_eq!(input.site.as_deref(), Some(SITES[0]));
        }
        let body = COVID.open_body(30, &SOMEONE, "tok_ok");
        let other = COVID.other_body(&body);
        assert_eq!(other["site"], json!(SITES[1]));
        assert_eq!(other["name"], body["name"]);
        for (what, invalid) in COVID.invalid_openings(&body) {
            assert_ne!(invalid, body, "{what}");
        }
    }

    #[test]
    fn every_route_of_the_slice_has_a_call_and_the_place_routes_are_resolved() {
        for route in SLICE.routes {
            assert!(COVID.route(route).is_some(), "{} {}", route.method.as_str(), route.path);
            let resolved = COVID.resolve(route.path, "01JD3M7Q0000000000000000AB", &COVID.open_body(1, &SOMEONE, "tok_ok"));
            assert!(!resolved.contains('{'), "{resolved}");
        }
        assert_eq!(
            COVID.resolve("/covid/sites/{site}/queue", "", &COVID.open_body(1, &SOMEONE, "tok_ok")),
            "/covid/sites/gangnam/queue"
        );
    }

    #[test]
    fn every_failure_point_of_the_slice_is_armed_on_a_journey() {
        let catalog = clinicflow::catalog();
        let functions: Vec<&str> = SLICE.functions.iter().map(|f| f.name).collect();
        let of_slice = catalog
            .failure_points
            .iter()
            .filter(|p| functions.iter().any(|f| p.as_str() == *f || p.starts_with(&format!("{f}/"))));
        for point in of_slice {
            assert!(JOURNEYS.iter().any(|j| (j.armed_at)(point)), "{point}");
        }
    }

    #[test]
    fn the_sites_are_the_configurations_and_staff_carry_them() {
        let cfg = CovidConfig::default();
        for role in SLICE.roles {
            if let Some(s) = COVID.sites(*role) {
                let known = |id: &str| cfg.site("site", id).is_ok() || cfg.centre("site", id).is_ok();
                assert!(known(s.home) && known(s.other) && s.home != s.other, "{}", role.group);
            }
        }
        assert!(COVID.sites(TRANSFER_CENTRE).is_none());
        assert_eq!(super::super::site_of(&[TEST_SITE.group]), Some(SITES[0]));
        assert_eq!(super::super::site_of(&[ISOLATION_CENTRE.group]), Some(CENTRE));
        assert_eq!(super::super::site_of(&[PATIENT.group]), None);
    }

    #[test]
    fn an_altered_payload_differs_in_one_character() {
        let altered = altered(FOREIGN_PAYLOAD);
        assert_eq!(altered.len(), FOREIGN_PAYLOAD.len());
        assert_eq!(altered.chars().zip(FOREIGN_PAYLOAD.chars()).filter(|(a, b)| a != b).count(), 1);
    }
}
