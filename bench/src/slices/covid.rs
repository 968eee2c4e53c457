//! The COVID testing slice's bench fixture: a case is an application, worked by four
//! centres linked only by events. It is opened by a citizen applying to the health centre
//! (`POST /covid/applications`), settled once the test site has it on its waiting list, its
//! SMS went out and its view exists, and ended by the site taking the sample and recording
//! a positive result (the transfer follows). Each request acting on an application is made
//! on one of its own, taken as far as the request needs ([`Stage`]) with every event
//! delivered, as the bus would, before the clock starts.
//!
//! Staff act at their own site (`custom:site`): the fixture's test-site staff work at
//! [`SITE`], its isolation-centre staff at [`CENTRE`], the sites of the samples its requests
//! are made from (`events/covid-*/`, checked when read). Where the fixture acts on the
//! emulator itself it runs the use cases at the same sites, since the seeder's requests
//! carry none. The slice has no stream sample (`events/status-projector/`): the projector's
//! batch is made from the slice's own events.
//!
//! Certificates are sealed with the platform's key: in-process a key in memory, on the
//! emulator the slice's stack's KMS key, with which the seeder signs too, so that the
//! spawned verifier gets a certificate it accepts and `covid-certify` a negative result it
//! seals a certificate for.
//!
//! The saga measured end to end is the seed's: apply → the site puts the application on
//! its waiting list → the site's staff (at [`SITE`]) take the sample → record a negative
//! result → the health centre hears it and seals the certificate → the citizen's view shows
//! it → the result's SMS.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail, ensure};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clinicflow::app::command::Accepted;
use clinicflow::app::{AppError, Platform, consumers, projector};
use clinicflow::config::Config;
use clinicflow::domain::{Actor, Contact, Locale, PersonName, PhoneNumber, today_in_korea};
use clinicflow::events::{Causality, EventEnvelope};
use clinicflow::flows::covid::certificate::{self, Content};
use clinicflow::flows::covid::commands::{self as usecase, ApplicationInput, IsolationWork, SiteWork};
use clinicflow::flows::covid::config::CovidConfig;
use clinicflow::flows::covid::faults::{
    ADMIT, APPLY, CENTRE_FOLLOW, CERTIFICATES, CERTIFY, DISPATCH, ISOLATION_ASSIGN, NOSHOW, QUERY, RELEASE, RESULT, SAMPLE, SITE_QUEUE,
    TRANSFER_FOLLOW, WITHDRAW,
};
use clinicflow::flows::covid::site::TestResult;
use clinicflow::flows::covid::{self, ISOLATION_CENTRE, TEST_SITE, TRANSFER_CENTRE, application, site, transfer, view};
use clinicflow::http::SITE_CLAIM;
use clinicflow::sealing::Signer;
use clinicflow::topology::{PATIENT, SMS_NOTIFIER, STATUS_PROJECTOR, Slice};
use serde_json::{Value, json};

use super::{AwsModel, Fixture, Handlers, HttpCase, Moment, SagaAction, SagaCaller, SagaSpec, SagaStep};
use crate::handlers::{Ctx, find, read};
use crate::lambda::seed::{Seeder, http_event};

/// The COVID testing slice's fixture.
pub struct Covid;

/// The test site of every application (one of the default `COVID_TEST_SITES`).
const SITE: &str = "mapo";
/// The isolation centre every positive citizen is dispatched to (one of the default
/// `COVID_ISOLATION_CENTRES`).
const CENTRE: &str = "incheon";
/// The beds of every isolation centre: the most a deployment may configure, so that the
/// dispatches of a long run (never all released) do not fill a centre.
const BEDS: u32 = 100_000;
/// Applications behind the handler figures' queries: a page of the default 20.
const SEEDED: usize = 20;
/// The application the stream batch names (replaced by each call's own).
const SAMPLE_CASE: &str = "01KCVD00000000000000000000";
/// The causation of the setup made in-process and on the emulator.
const SETUP: &str = "bench-setup";
/// The account and region the stream batch names.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "ap-northeast-2";

/// Who calls: a subject, a group, and a staff member's site (`custom:site`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Caller {
    sub: &'static str,
    group: &'static str,
    site: Option<&'static str>,
}

impl Caller {
    fn actor(self) -> Actor {
        Actor { sub: self.sub.to_owned() }
    }

    /// The same caller taking a saga step (with a token naming their site).
    const fn saga(self) -> SagaCaller {
        SagaCaller {
            sub: self.sub,
            group: self.group,
            site: self.site,
        }
    }
}

/// The citizen of every application (a citizen may hold any number of them).
const CITIZEN: Caller = Caller {
    sub: "bench-covid-citizen",
    group: PATIENT.group,
    site: None,
};
/// The staff of [`SITE`].
const SITE_STAFF: Caller = Caller {
    sub: "bench-covid-site",
    group: TEST_SITE.group,
    site: Some(SITE),
};
/// The transfer centre's staff (no site: the centre dispatches everywhere).
const DISPATCHER: Caller = Caller {
    sub: "bench-covid-dispatcher",
    group: TRANSFER_CENTRE.group,
    site: None,
};
/// The staff of [`CENTRE`].
const CENTRE_STAFF: Caller = Caller {
    sub: "bench-covid-isolation",
    group: ISOLATION_CENTRE.group,
    site: Some(CENTRE),
};

/// What a centre's staff do to an application, in the order of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The site takes the sample.
    Sample,
    /// The site records the result.
    Record(TestResult),
    /// The transfer centre dispatches the citizen to [`CENTRE`].
    Dispatch,
    /// The isolation centre admits them.
    Admit,
    /// The isolation centre releases them.
    Release,
}

/// How far an application is taken before the request measured on it, every event on the
/// way delivered to the slice's consumers (each stage includes the ones before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Applied; the site has it on its waiting list.
    Queued,
    /// The sample was taken.
    Sampled,
    /// The result is positive; the health centre heard it and the transfer centre opened
    /// the transfer.
    Positive,
    /// Dispatched to [`CENTRE`], which expects the citizen.
    Dispatched,
    /// Admitted: in isolation.
    Admitted,
    /// Released; the bed is free again.
    Released,
}

/// The steps that take an application from queued to each later stage.
const PATH: [(Stage, Step); 5] = [
    (Stage::Sampled, Step::Sample),
    (Stage::Positive, Step::Record(TestResult::Positive)),
    (Stage::Dispatched, Step::Dispatch),
    (Stage::Admitted, Step::Admit),
    (Stage::Released, Step::Release),
];

/// `step` on application `id`, as its centre's staff do it on `p`.
async fn act(p: &Platform, id: &str, step: Step) -> Result<Accepted, AppError> {
    let (site, centre) = (SITE_STAFF.actor(), CENTRE_STAFF.actor());
    match step {
        Step::Sample => usecase::at_site(p, &site, SITE_STAFF.site, id, SiteWork::Sample, SETUP).await,
        Step::Record(result) => usecase::at_site(p, &site, SITE_STAFF.site, id, SiteWork::Record(result), SETUP).await,
        Step::Dispatch => usecase::dispatch(p, &DISPATCHER.actor(), id, CENTRE, SETUP).await,
        Step::Admit => usecase::at_isolation(p, &centre, CENTRE_STAFF.site, id, IsolationWork::Admit, SETUP).await,
        Step::Release => usecase::at_isolation(p, &centre, CENTRE_STAFF.site, id, IsolationWork::Release, SETUP).await,
    }
}

#[async_trait]
impl Fixture for Covid {
    fn slice(&self) -> &'static Slice {
        &covid::SLICE
    }

    /// Beds that never run out ([`BEDS`] in each isolation centre); the test sites are the
    /// defaults. A site's waiting count is bounded far above any run.
    fn configure(&self, config: &mut Config) {
        for centre in &mut config.slice_mut::<CovidConfig>().centres {
            centre.beds = BEDS;
        }
    }

    /// The isolation centres with their beds, as configured (`COVID_ISOLATION_CENTRES`):
    /// `covid-dispatch` spawned with the default 50 would refuse the 51st dispatch of a run.
    fn environment(&self, config: &Config) -> Vec<(String, String)> {
        let centres: Vec<String> = config
            .slice::<CovidConfig>()
            .centres
            .iter()
            .map(|c| format!("{}:{}", c.id, c.beds))
            .collect();
        vec![("COVID_ISOLATION_CENTRES".to_owned(), centres.join(","))]
    }

    fn entry(&self) -> &'static str {
        APPLY
    }

    fn http_functions(&self) -> &'static [&'static str] {
        &[
            APPLY,
            WITHDRAW,
            QUERY,
            CERTIFICATES,
            SAMPLE,
            RESULT,
            NOSHOW,
            DISPATCH,
            ADMIT,
            RELEASE,
        ]
    }

    async fn http_events(&self, seeder: &Seeder, function: &str, count: usize) -> anyhow::Result<Vec<Value>> {
        let requests = Requests::read(&|function, file| seeder.sample(function, file))?;
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            out.push(match function {
                APPLY => requests.apply(&application_body(seeder.next())),
                WITHDRAW => requests.withdraw(&self.seed(seeder, Stage::Queued).await?),
                QUERY => {
                    let id = self.seed(seeder, Stage::Queued).await?;
                    match i % 3 {
                        0 => requests.application(&id),
                        1 => requests.mine.clone(),
                        _ => requests.site_queue(),
                    }
                }
                CERTIFICATES => {
                    // Sealed with the seeder's key, the slice's stack's: a valid certificate.
                    let platform = seeder.platform();
                    let signer = platform.signer().map_err(|e| anyhow!("the seeder cannot seal: {e}"))?;
                    requests.verify(&sealed(signer, &platform.config.slice::<CovidConfig>()).await?)
                }
                SAMPLE => requests.at_site(&requests.sample, &self.seed(seeder, Stage::Queued).await?, "sample"),
                NOSHOW => requests.at_site(&requests.noshow, &self.seed(seeder, Stage::Queued).await?, "noshow"),
                RESULT => requests.at_site(&requests.result, &self.seed(seeder, Stage::Sampled).await?, "result"),
                DISPATCH => requests.dispatch(&self.seed(seeder, Stage::Positive).await?),
                ADMIT => requests.at_centre(&requests.admit, &self.seed(seeder, Stage::Dispatched).await?, "admit"),
                RELEASE => requests.at_centre(&requests.release, &self.seed(seeder, Stage::Admitted).await?, "release"),
                other => bail!("the COVID fixture makes no request for {other}"),
            });
        }
        Ok(out)
    }

    /// The public verifier must find the certificates the seeder sealed valid: sealed with
    /// the key the spawned function holds (its stack's).
    fn check_response(&self, function: &str, body: &Value) -> anyhow::Result<()> {
        if function == CERTIFICATES {
            ensure!(
                body["valid"] == true,
                "a certificate sealed with the stack's key did not verify: {body}"
            );
        }
        Ok(())
    }

    /// The citizen applies at [`SITE`] (a phone number of its own); the event is kept, not
    /// delivered.
    async fn open_case(&self, seeder: &Seeder, platform: &Arc<Platform>) -> anyhow::Result<String> {
        let body = application_body(seeder.next());
        let applied = seeder
            .http(platform, "POST", "/covid/applications", (CITIZEN.sub, CITIZEN.group), &|| {
                Some(body.clone())
            })
            .await?;
        id_of(&applied)
    }

    /// The site takes the settled application's sample and records a positive result, none
    /// of it delivered: the sample reaches `covid-centre-follow`, and through it the
    /// result's `ResultHeard` reaches `covid-certify` and its `TransferRequested`
    /// `covid-transfer-follow`. Before that, a second application is taken to an open
    /// transfer (delivered) and dispatched (not delivered), for `covid-isolation-assign`;
    /// and a third gets a negative result (not delivered), so that `covid-certify`'s first
    /// event is one it seals a certificate for (with the stack's key, as the seeder does)
    /// rather than one it passes over.
    async fn end_case(&self, seeder: &Seeder, id: &str) -> anyhow::Result<()> {
        let platform = seeder.platform();
        let transfer = self.open_case(seeder, platform).await?;
        let negative = self.open_case(seeder, platform).await?;
        seeder.settle(None).await?;
        for case in [&transfer, &negative] {
            seeded(seeder, case, Step::Sample).await?;
        }
        seeder.settle(None).await?;
        seeded(seeder, &transfer, Step::Record(TestResult::Positive)).await?;
        seeder.settle(None).await?;
        // Left undelivered from here.
        seeded(seeder, &transfer, Step::Dispatch).await?;
        seeded(seeder, &negative, Step::Record(TestResult::Negative)).await?;
        seeded(seeder, id, Step::Sample).await?;
        seeded(seeder, id, Step::Record(TestResult::Positive)).await
    }

    fn handlers(&self, _config: &Config) -> anyhow::Result<Box<dyn Handlers>> {
        Ok(Box::new(Samples::load()?))
    }

    fn saga(&self) -> &'static SagaSpec {
        &SAGA
    }

    fn model(&self) -> &'static AwsModel {
        &MODEL
    }
}

impl Covid {
    /// An application taken to `stage` on the seeder's platform, every event delivered on
    /// the way.
    async fn seed(&self, seeder: &Seeder, stage: Stage) -> anyhow::Result<String> {
        let id = self.open_case(seeder, seeder.platform()).await?;
        seeder.settle(None).await?;
        for (reached, step) in PATH {
            if stage >= reached {
                seeded(seeder, &id, step).await?;
                seeder.settle(None).await?;
            }
        }
        Ok(id)
    }
}

/// [`act`] on the seeder's platform; a conflict or an unavailable store (the emulator is
/// shared with the spawned functions) is tried again, as the seeder's own requests are.
async fn seeded(seeder: &Seeder, id: &str, step: Step) -> anyhow::Result<()> {
    let mut attempt = 0u64;
    loop {
        match act(seeder.platform(), id, step).await {
            Ok(_) => return Ok(()),
            Err(AppError::Conflict(_) | AppError::Unavailable { .. }) if attempt < 4 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
            }
            Err(e) => bail!("seeding {step:?} on application {id}: {e}"),
        }
    }
}

/// The `id` of an answer.
fn id_of(answer: &Value) -> anyhow::Result<String> {
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("an answer without an id: {answer}"))
}

/// A Korean mobile number of its own for number `n`: `010-HHHH-LLLL` (the subscriber part
/// cannot start with 0) and its E.164 form.
fn phone(n: u64) -> (String, String) {
    let (high, low) = (1000 + (n / 10_000) % 9000, n % 10_000);
    (format!("010-{high:04}-{low:04}"), format!("+8210{high:04}{low:04}"))
}

/// The date every application asks for: tomorrow, Korean time (within the 14 days a
/// citizen may ask ahead).
fn test_date() -> String {
    (today_in_korea(Utc::now()) + chrono::Days::new(1)).to_string()
}

/// An application at [`SITE`], with phone number `n`.
fn application_body(n: u64) -> Value {
    json!({
        "site": SITE,
        "date": test_date(),
        "name": "김서연",
        "phone": phone(n).0,
        "locale": "ko",
    })
}

/// The samples the fixture's requests are made from (`events/<function>/<file>`), each
/// checked to come from its caller's group and site (a public one from nobody).
struct Requests {
    apply: Value,
    withdraw: Value,
    application: Value,
    /// The citizen's own applications: the same request every time.
    mine: Value,
    site_queue: Value,
    verify: Value,
    sample: Value,
    result: Value,
    noshow: Value,
    dispatch: Value,
    admit: Value,
    release: Value,
}

/// Reads sample `file` of `function` as JSON.
type ReadSample<'a> = dyn Fn(&str, &str) -> anyhow::Result<Value> + 'a;

impl Requests {
    fn read(json: &ReadSample<'_>) -> anyhow::Result<Self> {
        let of = |function: &str, file: &str, caller: Option<Caller>| -> anyhow::Result<Value> {
            let template = json(function, file)?;
            let claims = &template["requestContext"]["authorizer"]["jwt"]["claims"];
            let matches = match caller {
                Some(c) => claims["cognito:groups"] == format!("[{}]", c.group) && claims[SITE_CLAIM].as_str() == c.site,
                None => claims.is_null(),
            };
            ensure!(
                matches,
                "{function}/{file} is not a request of {:?} (the fixture's caller)",
                caller.map(|c| (c.group, c.site))
            );
            Ok(template)
        };
        Ok(Self {
            apply: of(APPLY, "apply.json", Some(CITIZEN))?,
            withdraw: of(WITHDRAW, "withdraw.json", Some(CITIZEN))?,
            application: of(QUERY, "application.json", Some(CITIZEN))?,
            mine: http_event(
                &of(QUERY, "my-applications.json", Some(CITIZEN))?,
                "/covid/applications",
                None,
                None,
                CITIZEN.sub,
            ),
            site_queue: of(QUERY, "site-queue.json", Some(SITE_STAFF))?,
            verify: of(CERTIFICATES, "verify-unknown-key.json", None)?,
            sample: of(SAMPLE, "sample.json", Some(SITE_STAFF))?,
            result: of(RESULT, "result.json", Some(SITE_STAFF))?,
            noshow: of(NOSHOW, "noshow.json", Some(SITE_STAFF))?,
            dispatch: of(DISPATCH, "dispatch.json", Some(DISPATCHER))?,
            admit: of(ADMIT, "admit.json", Some(CENTRE_STAFF))?,
            release: of(RELEASE, "release.json", Some(CENTRE_STAFF))?,
        })
    }

    /// The citizen applies with `body` and an `Idempotency-Key` of its own (the same key
    /// again would be answered from the first).
    fn apply(&self, body: &Value) -> Value {
        let mut event = http_event(&self.apply, "/covid/applications", None, Some(body), CITIZEN.sub);
        event["headers"]["idempotency-key"] = json!(format!("bench-apply-{}", ulid::Ulid::new()));
        event
    }

    /// The citizen withdraws application `id`.
    fn withdraw(&self, id: &str) -> Value {
        let path = format!("/covid/applications/{id}/withdraw");
        http_event(&self.withdraw, &path, Some(id), None, CITIZEN.sub)
    }

    /// The citizen reads application `id`.
    fn application(&self, id: &str) -> Value {
        http_event(&self.application, &format!("/covid/applications/{id}"), Some(id), None, CITIZEN.sub)
    }

    /// The site's staff read its waiting list and count.
    fn site_queue(&self) -> Value {
        let path = format!("/covid/sites/{SITE}/queue");
        http_event(&self.site_queue, &path, None, None, SITE_STAFF.sub)
    }

    /// The site's staff `action` application `id` (the sample's body, if it has one).
    fn at_site(&self, template: &Value, id: &str, action: &str) -> Value {
        let path = format!("/covid/applications/{id}/{action}");
        http_event(template, &path, Some(id), None, SITE_STAFF.sub)
    }

    /// The transfer centre dispatches application `id` to [`CENTRE`].
    fn dispatch(&self, id: &str) -> Value {
        let path = format!("/covid/transfers/{id}/dispatch");
        let body = json!({ "isolation_centre": CENTRE });
        http_event(&self.dispatch, &path, Some(id), Some(&body), DISPATCHER.sub)
    }

    /// [`CENTRE`]'s staff `action` application `id`.
    fn at_centre(&self, template: &Value, id: &str, action: &str) -> Value {
        let path = format!("/covid/isolation/{id}/{action}");
        http_event(template, &path, Some(id), None, CENTRE_STAFF.sub)
    }

    /// Anyone presents `payload` to the public verifier (no token).
    fn verify(&self, payload: &str) -> Value {
        let mut event = self.verify.clone();
        event["requestContext"]["requestId"] = json!(ulid::Ulid::new().to_string());
        event["body"] = json!(json!({ "payload": payload }).to_string());
        if let Some(headers) = event["headers"].as_object_mut() {
            headers.remove("content-length");
        }
        event
    }
}

/// A negative result's certificate as the health centre seals it (`config`'s issuer, test
/// and validity), sealed with `signer`: its QR payload.
async fn sealed(signer: &dyn Signer, config: &CovidConfig) -> anyhow::Result<String> {
    let now = Utc::now();
    let content = Content {
        holder: PersonName::parse("김서연").map_err(|e| anyhow!("{}", e.detail))?,
        test_type: config.test_type.clone(),
        sampled_at: now,
        result: TestResult::Negative,
        site_name: config.site_name(SITE),
        issuer: config.issuer.clone(),
        issued_at: now,
        expires_at: now + chrono::Duration::hours(i64::from(config.valid_hours)),
    };
    let id = ulid::Ulid::new().to_string();
    certificate::seal(signer, &id, &content)
        .await
        .map_err(|e| anyhow!("sealing a certificate: {e}"))
}

/// The saga of the seed: apply → on the site's waiting list → the site's staff take the
/// sample (tried again while the site has not heard of the application) → record a
/// negative result → the health centre hears it and seals the certificate → the citizen's
/// view shows `negative` with its certificate; the result's SMS is the saga's last. One
/// citizen for every worker (a citizen may hold any number of applications), one member of
/// [`SITE`]'s staff for every worker.
static SAGA: SagaSpec = SagaSpec {
    description: "apply → waiting → site sample → negative result → certificate sealed → view shows it → SMS",
    opener: (CITIZEN.sub, PATIENT.group),
    opener_per_worker: false,
    open_path: "/covid/applications",
    open_step: "apply",
    setup: None,
    open_body: saga_application,
    steps: &[
        SagaStep {
            name: "site sample",
            caller: Some(SITE_STAFF.saga()),
            action: SagaAction::Act {
                path: |case| format!("/covid/applications/{}/sample", case.id),
                body: None,
                status: 200,
                keep: false,
            },
        },
        SagaStep {
            name: "site result",
            caller: Some(SITE_STAFF.saga()),
            action: SagaAction::Act {
                path: |case| format!("/covid/applications/{}/result", case.id),
                body: Some(|_| json!({ "result": "negative" })),
                status: 200,
                keep: false,
            },
        },
        SagaStep {
            name: "view",
            caller: None,
            action: SagaAction::View {
                path: |case| format!("/covid/applications/{}", case.id),
                settled: "negative",
                shown: Some("certificate"),
            },
        },
    ],
    // The word of the Korean result SMS (`… 코로나19 검사 결과가 나왔습니다(신청번호 …)`),
    // which says nothing of the result.
    sms_word: "결과가 나왔습니다",
    throughput: "local_covid_sagas_per_s",
    open_latency: "covid_application_latency_ms",
    saga_latency: "covid_saga_latency_ms",
};

/// The application of saga `n`: its own phone number (the saga has no setup).
fn saga_application(n: u64, _setup: &str) -> anyhow::Result<(Vec<u8>, String)> {
    Ok((serde_json::to_vec(&application_body(n))?, phone(n).1))
}

/// What one certificate saga (apply → queued → sample → the health centre hears it →
/// negative result → heard → certificate sealed; two SMS; the citizen reads the status
/// once) does on AWS.
static MODEL: AwsModel = AwsModel {
    invocations: &[
        (APPLY, 1.0),
        // ApplicationSubmitted.
        (SITE_QUEUE, 1.0),
        (SAMPLE, 1.0),
        // SampleTaken and ResultRecorded.
        (CENTRE_FOLLOW, 2.0),
        (RESULT, 1.0),
        // ResultHeard (negative).
        (CERTIFY, 1.0),
        // ApplicationSubmitted and ResultHeard.
        (SMS_NOTIFIER, 2.0),
        (QUERY, 1.0),
        // Stream batches of the health centre's and the site's tables: seven commits (the
        // certificate's carries two events), and the publish marks after them.
        (STATUS_PROJECTOR, 14.0),
    ],
    // Apply, sample, result, one status read.
    http_requests: 4.0,
    // ApplicationSubmitted, SiteEntryQueued, SampleTaken, ApplicationSampled, ResultRecorded,
    // ResultHeard, CertificateSealed, CertificateIssued.
    events: 8.0,
    // Items written in transactions count twice: each commit's aggregates and outbox events
    // (16 items: the certificate's commit writes the certificate and the application with
    // an event each), the application's idempotency record, the site's waiting count moved
    // twice and the four consumers' marks (7): 46; the outbox index's writes (8); the eight
    // publish marks and their index deletes (16); the projector's nine view puts (the
    // application's view for every event, the certificate's for its own) with their indexes
    // (27); the notifier's claim and settlement with the contact and its mark, per SMS (16).
    wru: 113.0,
    // Strongly consistent reads: the idempotency key (1); the aggregate each command and
    // consumer loads (6), the consumers' marks (4); the status read (1); the projector's
    // view reads (9); the notifier's mark, contact and record, per SMS (6).
    rru: 27.0,
    // Apply; EventBridge delivers ApplicationSubmitted to the site's waiting list; (the
    // citizen comes to the site: human time, not counted) sample; (the test runs: human
    // time) result; EventBridge delivers ResultRecorded to the health centre, and its
    // ResultHeard to the certificate consumer, which seals (`covid-certify`'s figure signs
    // with a key in memory: KMS's `Sign` round trip on AWS is not in it); the stream
    // delivers CertificateIssued to the projector (the view shows the certificate). The
    // sample's way to the health centre and the SMS go through EventBridge meanwhile, in
    // parallel, on shorter paths.
    critical_path: &[
        "covid_apply",
        SITE_QUEUE,
        "covid_sample",
        "covid_result",
        CENTRE_FOLLOW,
        CERTIFY,
        STATUS_PROJECTOR,
    ],
    eventbridge_hops: 3.0,
    stream_hops: 1.0,
    projected: "projected_aws_covid_saga_ms",
    cost: "aws_usd_per_1000_covid_certificates",
};

/// The handler figures' cases, in the order they are reported: one for each HTTP function,
/// and the site's waiting list beside the citizen's application.
const HTTP_CASES: &[HttpCase] = &[
    HttpCase {
        name: "covid_apply",
        function: APPLY,
        status: 201,
    },
    HttpCase {
        name: "covid_withdraw",
        function: WITHDRAW,
        status: 202,
    },
    HttpCase {
        name: "covid_sample",
        function: SAMPLE,
        status: 200,
    },
    HttpCase {
        name: "covid_result",
        function: RESULT,
        status: 200,
    },
    HttpCase {
        name: "covid_noshow",
        function: NOSHOW,
        status: 200,
    },
    HttpCase {
        name: "covid_dispatch",
        function: DISPATCH,
        status: 200,
    },
    HttpCase {
        name: "covid_admit",
        function: ADMIT,
        status: 200,
    },
    HttpCase {
        name: "covid_release",
        function: RELEASE,
        status: 200,
    },
    HttpCase {
        name: "covid_verify",
        function: CERTIFICATES,
        status: 200,
    },
    HttpCase {
        name: "covid_application",
        function: QUERY,
        status: 200,
    },
    HttpCase {
        name: "covid_site_queue",
        function: QUERY,
        status: 200,
    },
];

/// The event each consumer of the slice is measured on: its sample file, and which event of
/// an application it is (`ApplicationSubmitted` opens one; the others are the flow's own
/// steps: a negative result recorded and heard, which the certificate consumer seals, and
/// a positive one's transfer asked for and dispatched). The SMS notifier is measured on the
/// first fixture's.
const CONSUMER_SAMPLES: &[(&str, &str, Moment)] = &[
    (SITE_QUEUE, "covid-site-queue/application-submitted.json", Moment::Opens),
    (
        CENTRE_FOLLOW,
        "covid-centre-follow/result-recorded.json",
        Moment::Reached("ResultRecorded"),
    ),
    (CERTIFY, "covid-certify/result-heard.json", Moment::Reached("ResultHeard")),
    (
        TRANSFER_FOLLOW,
        "covid-transfer-follow/transfer-requested.json",
        Moment::Reached("TransferRequested"),
    ),
    (
        ISOLATION_ASSIGN,
        "covid-isolation-assign/transfer-dispatched.json",
        Moment::Reached("TransferDispatched"),
    ),
];

/// The sample events of the handler figures, read once.
struct Samples {
    requests: Requests,
    /// The entry event the HTTP floor would echo (the application sample, as it is).
    entry: String,
    /// Each consumer's EventBridge sample and which event it gets.
    consumers: HashMap<&'static str, (Value, Moment)>,
    /// The EventBridge sample the event floor would echo.
    echo_event: String,
    /// The projector's stream batch of an application (applied, queued, sampled, positive,
    /// the transfer asked for and opened).
    stream: String,
}

impl Samples {
    fn load() -> anyhow::Result<Self> {
        let json = |name: &str| -> anyhow::Result<Value> { Ok(serde_json::from_str(&read(name)?)?) };
        let mut consumers = HashMap::new();
        for (target, file, moment) in CONSUMER_SAMPLES {
            consumers.insert(*target, (json(file)?, *moment));
        }
        Ok(Self {
            requests: Requests::read(&|function, file| json(&format!("{function}/{file}")))?,
            entry: read("covid-apply/apply.json")?,
            consumers,
            echo_event: read("covid-site-queue/application-submitted.json")?,
            stream: serde_json::to_string(&stream_batch(&sample_events(SAMPLE_CASE)?)?)?,
        })
    }

    /// Runs one use case on `ctx`; returns what it answered and the events it published.
    async fn run<F>(ctx: &Ctx, what: &str, call: F) -> anyhow::Result<(Accepted, Vec<EventEnvelope>)>
    where
        F: std::future::Future<Output = Result<Accepted, AppError>>,
    {
        let accepted = call.await.map_err(|e| anyhow!("setup: {what} failed: {e:?}"))?;
        Ok((accepted, ctx.publisher.take()))
    }

    /// The citizen applies at [`SITE`]; returns the application's id and the events.
    async fn apply(&self, ctx: &Ctx) -> anyhow::Result<(String, Vec<EventEnvelope>)> {
        ctx.publisher.take();
        let input: ApplicationInput = serde_json::from_value(application_body(0))?;
        let citizen = CITIZEN.actor();
        let call = usecase::apply(&ctx.platform, &citizen, input, None, SETUP);
        let (accepted, events) = Self::run(ctx, "applying", call).await?;
        Ok((id_of(&accepted.body)?, events))
    }

    /// `step` on application `id`; returns the events it published.
    async fn step(&self, ctx: &Ctx, id: &str, step: Step) -> anyhow::Result<Vec<EventEnvelope>> {
        Ok(Self::run(ctx, &format!("{step:?}"), act(&ctx.platform, id, step)).await?.1)
    }

    /// An application taken to `stage`, every event delivered to the slice's consumers on
    /// the way (and projected, with `project`).
    async fn at(&self, ctx: &Ctx, stage: Stage, project: bool) -> anyhow::Result<String> {
        let (id, events) = self.apply(ctx).await?;
        deliver(ctx, events, project).await?;
        for (reached, step) in PATH {
            if stage >= reached {
                let events = self.step(ctx, &id, step).await?;
                deliver(ctx, events, project).await?;
            }
        }
        Ok(id)
    }

    /// [`SEEDED`] applications taken to `stage`, projected; returns the first one.
    async fn seed(&self, ctx: &Ctx, stage: Stage) -> anyhow::Result<String> {
        let mut first = None;
        for _ in 0..SEEDED {
            let id = self.at(ctx, stage, true).await?;
            first.get_or_insert(id);
        }
        first.context("setup: nothing was applied for")
    }

    /// A sampled application whose result is recorded: `ResultRecorded`, not delivered.
    async fn recorded(&self, ctx: &Ctx, result: TestResult) -> anyhow::Result<EventEnvelope> {
        let id = self.at(ctx, Stage::Sampled, false).await?;
        find(self.step(ctx, &id, Step::Record(result)).await?, "ResultRecorded")
    }

    /// What the health centre publishes on hearing `result` (its `ResultHeard`, and a
    /// positive one's `TransferRequested`), not delivered.
    async fn heard(&self, ctx: &Ctx, result: TestResult) -> anyhow::Result<Vec<EventEnvelope>> {
        let recorded = self.recorded(ctx, result).await?;
        consumers::dispatch(&ctx.platform, CENTRE_FOLLOW, &recorded)
            .await
            .map_err(|e| anyhow!("setup: {CENTRE_FOLLOW} failed: {e}"))?;
        Ok(ctx.publisher.take())
    }
}

/// Delivers `events`, and what they lead to, to the slice's consumers as the bus would (and
/// to the projector, with `project`); the SMS are not sent.
async fn deliver(ctx: &Ctx, events: Vec<EventEnvelope>, project: bool) -> anyhow::Result<()> {
    let ours = |target: &str| covid::FUNCTIONS.iter().any(|f| f.name == target);
    let mut next = events;
    while !next.is_empty() {
        for e in &next {
            if project {
                projector::project(&ctx.platform, e)
                    .await
                    .map_err(|err| anyhow!("setup: projecting {} failed: {err:?}", e.event_type))?;
            }
            for rule in clinicflow::catalog()
                .rules
                .iter()
                .filter(|r| ours(r.target) && r.matches(&e.source, &e.event_type))
            {
                consumers::dispatch(&ctx.platform, rule.target, e)
                    .await
                    .map_err(|err| anyhow!("setup: {} failed on {}: {err}", rule.target, e.event_type))?;
            }
        }
        next = ctx.publisher.take();
    }
    Ok(())
}

/// The events of application `case` from its submission to its transfer opened, in an
/// order the stream may carry them (each aggregate's in order), as the four centres publish
/// them.
fn sample_events(case: &str) -> anyhow::Result<Vec<EventEnvelope>> {
    let at: DateTime<Utc> = "2027-03-01T01:00:00Z".parse()?;
    let date = at.date_naive() + chrono::Days::new(1);
    let field = |e: clinicflow::domain::FieldError| anyhow!("{}: {}", e.field, e.detail);
    let contact = Contact {
        name: PersonName::parse("김서연").map_err(field)?,
        phone: PhoneNumber::parse("010-2222-3333").map_err(field)?,
        locale: Locale::Ko,
    };
    let site_name = CovidConfig::default().site_name(SITE);
    let by = SITE_STAFF.sub.to_owned();
    let positive = TestResult::Positive;
    let mut causality = Causality {
        correlation_id: case.to_owned(),
        causation_id: "Hs9pQrAbIE0EJbA=".to_owned(),
    };
    let mut events = Vec::new();
    let mut push = |context: &str, version: u64, event: Value| -> anyhow::Result<()> {
        let id = ulid::Ulid::from_parts(at.timestamp_millis() as u64, events.len() as u128).to_string();
        let envelope = EventEnvelope::wrap(id.clone(), context, case, version, &causality, at, &event)?;
        events.push(envelope);
        causality.causation_id = id;
        Ok(())
    };
    let healthcentre = application::CONTEXT;
    let testsite = site::CONTEXT;
    push(
        healthcentre,
        1,
        serde_json::to_value(application::Event::ApplicationSubmitted {
            citizen_sub: CITIZEN.sub.to_owned(),
            site: SITE.to_owned(),
            site_name,
            date,
            contact,
        })?,
    )?;
    push(
        testsite,
        1,
        serde_json::to_value(site::Event::SiteEntryQueued {
            site: SITE.to_owned(),
            date,
        })?,
    )?;
    push(
        testsite,
        2,
        serde_json::to_value(site::Event::SampleTaken {
            site: SITE.to_owned(),
            sampled_at: at,
            by: by.clone(),
        })?,
    )?;
    push(
        testsite,
        3,
        serde_json::to_value(site::Event::ResultRecorded {
            site: SITE.to_owned(),
            result: positive,
            sampled_at: at,
            by,
        })?,
    )?;
    push(
        healthcentre,
        2,
        serde_json::to_value(application::Event::ApplicationSampled { sampled_at: at })?,
    )?;
    push(
        healthcentre,
        3,
        serde_json::to_value(application::Event::ResultHeard {
            result: positive,
            sampled_at: at,
        })?,
    )?;
    push(
        healthcentre,
        4,
        serde_json::to_value(application::Event::TransferRequested { site: SITE.to_owned() })?,
    )?;
    push(
        transfer::CONTEXT,
        1,
        serde_json::to_value(transfer::Event::TransferOpened { site: SITE.to_owned() })?,
    )?;
    Ok(events)
}

/// A DynamoDB stream batch inserting `events` as outbox items of their centres' tables, as
/// the projector gets them.
fn stream_batch(events: &[EventEnvelope]) -> anyhow::Result<Value> {
    let mut records = Vec::with_capacity(events.len());
    for (n, e) in events.iter().enumerate() {
        let pk = json!({ "S": format!("event#{}", e.id) });
        let occurred_at = e.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let envelope: serde_dynamo::Item = serde_dynamo::to_item(e)?;
        let table = e.source.trim_start_matches("clinicflow.");
        records.push(json!({
            "eventID": format!("{:032x}", n + 1),
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": {
                "ApproximateCreationDateTime": e.occurred_at.timestamp(),
                "Keys": { "pk": pk },
                "NewImage": {
                    "pk": pk,
                    "envelope": { "M": serde_json::to_value(envelope)? },
                    "occurred_at": { "S": occurred_at },
                    "pending": { "S": "pending" },
                    "pending_at": { "S": format!("{}#{}", e.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), e.id) },
                },
                "SequenceNumber": format!("{:021}", n + 1),
                "SizeBytes": 512,
                "StreamViewType": "NEW_IMAGE",
            },
            "eventSourceARN": format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/clinicflow-{table}/stream/2027-03-01T00:00:00.000"),
        }));
    }
    Ok(json!({ "Records": records }))
}

#[async_trait(?Send)]
impl Handlers for Samples {
    fn http_cases(&self) -> &[HttpCase] {
        HTTP_CASES
    }

    fn entry_event(&self) -> &str {
        &self.entry
    }

    fn echo_event(&self) -> &str {
        &self.echo_event
    }

    async fn prepare(&self, case: &HttpCase, ctx: &Ctx) -> anyhow::Result<String> {
        let event = match case.name {
            "covid_verify" => {
                // A certificate sealed with the platform's own key, as the health centre seals it.
                let signer = ctx.platform.signer().map_err(|e| anyhow!("setup: {e}"))?;
                let r = &self.requests;
                r.verify(&sealed(signer, &ctx.platform.config.slice::<CovidConfig>()).await?)
            }
            "covid_application" => self.requests.application(&self.seed(ctx, Stage::Released).await?),
            "covid_site_queue" => {
                self.seed(ctx, Stage::Queued).await?;
                self.requests.site_queue()
            }
            // Each call's event is made for an application of its own.
            "covid_apply" | "covid_withdraw" | "covid_sample" | "covid_result" | "covid_noshow" | "covid_dispatch" | "covid_admit"
            | "covid_release" => return Ok(String::new()),
            other => bail!("no COVID handler case {other}"),
        };
        Ok(serde_json::to_string(&event)?)
    }

    async fn event(&self, case: &HttpCase, ctx: &Ctx, _prepared: &str) -> anyhow::Result<Option<String>> {
        let r = &self.requests;
        let event = match case.name {
            "covid_apply" => r.apply(&application_body(0)),
            "covid_withdraw" => r.withdraw(&self.at(ctx, Stage::Queued, false).await?),
            "covid_sample" => r.at_site(&r.sample, &self.at(ctx, Stage::Queued, false).await?, "sample"),
            "covid_noshow" => r.at_site(&r.noshow, &self.at(ctx, Stage::Queued, false).await?, "noshow"),
            "covid_result" => r.at_site(&r.result, &self.at(ctx, Stage::Sampled, false).await?, "result"),
            "covid_dispatch" => r.dispatch(&self.at(ctx, Stage::Positive, false).await?),
            "covid_admit" => r.at_centre(&r.admit, &self.at(ctx, Stage::Dispatched, false).await?, "admit"),
            "covid_release" => r.at_centre(&r.release, &self.at(ctx, Stage::Admitted, false).await?, "release"),
            _ => return Ok(None),
        };
        Ok(Some(serde_json::to_string(&event)?))
    }

    fn check(&self, case: &HttpCase, body: &Value) -> anyhow::Result<()> {
        let found = match case.name {
            "covid_verify" => {
                ensure!(body["valid"] == true, "the certificate did not verify: {body}");
                return Ok(());
            }
            "covid_application" => usize::from(body.get("id").is_some()),
            "covid_site_queue" => {
                ensure!(body["waiting"].as_u64().is_some_and(|n| n > 0), "nobody is waiting: {body}");
                body["items"].as_array().map_or(0, Vec::len)
            }
            _ => return Ok(()),
        };
        ensure!(found > 0, "the query found nothing: {body}");
        Ok(())
    }

    fn consumer_sample(&self, target: &str) -> Option<(&Value, Moment)> {
        self.consumers.get(target).map(|(sample, moment)| (sample, *moment))
    }

    /// An application's first event: its submission, `ApplicationSubmitted`.
    async fn opened(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope> {
        find(self.apply(ctx).await?.1, "ApplicationSubmitted")
    }

    /// An admitted citizen released (as a positive case ends): `StayReleased`.
    async fn ended(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope> {
        let id = self.at(ctx, Stage::Admitted, false).await?;
        find(self.step(ctx, &id, Step::Release).await?, "StayReleased")
    }

    /// The flow's own events, each from an application taken to the step before it: a
    /// negative result recorded and heard, a positive one's transfer asked for, and its
    /// dispatch.
    async fn reached(&self, ctx: &Ctx, event_type: &str) -> anyhow::Result<EventEnvelope> {
        let events = match event_type {
            "ResultRecorded" => vec![self.recorded(ctx, TestResult::Negative).await?],
            "ResultHeard" => self.heard(ctx, TestResult::Negative).await?,
            "TransferRequested" => self.heard(ctx, TestResult::Positive).await?,
            "TransferDispatched" => {
                let id = self.at(ctx, Stage::Positive, false).await?;
                self.step(ctx, &id, Step::Dispatch).await?
            }
            other => bail!("the COVID fixture makes no {other} of its own"),
        };
        find(events, event_type)
    }

    fn stream_event(&self, id: &str) -> String {
        self.stream.replace(SAMPLE_CASE, id)
    }

    fn view_key(&self, id: &str) -> String {
        projector::view_id(view::APPLICATIONS, id)
    }
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::eventbridge::EventBridgeEvent;
    use lambda_http::request::LambdaRequest;
    use lambda_http::{Context as LambdaContext, LambdaEvent};
    use tower::ServiceExt;

    use super::*;

    /// The COVID figures are named apart from the other fixtures'.
    #[test]
    fn the_figures_have_their_own_names() {
        let names = crate::handlers::figure_names().expect("the cases");
        for case in HTTP_CASES {
            assert!(case.name.starts_with("covid_"), "{}", case.name);
            assert!(names.contains(&format!("handler_us.{}", case.name)), "{}", case.name);
        }
        for (target, _, _) in CONSUMER_SAMPLES {
            assert!(names.contains(&format!("handler_us.{target}")), "{target}");
        }
        assert_eq!(
            [SAGA.throughput, SAGA.open_latency, SAGA.saga_latency],
            ["local_covid_sagas_per_s", "covid_application_latency_ms", "covid_saga_latency_ms"]
        );
        assert_eq!(
            [MODEL.projected, MODEL.cost],
            ["projected_aws_covid_saga_ms", "aws_usd_per_1000_covid_certificates"]
        );
        for step in MODEL.critical_path {
            assert!(names.contains(&format!("handler_us.{step}")), "{step} is a handler figure");
        }
    }

    #[test]
    fn every_http_function_and_consumer_of_the_slice_is_measured() {
        for f in covid::SLICE.functions {
            match f.trigger {
                clinicflow::topology::Trigger::Http => {
                    assert!(Covid.http_functions().contains(&f.name), "{}", f.name);
                    assert!(HTTP_CASES.iter().any(|c| c.function == f.name), "{} has a handler case", f.name);
                }
                _ => assert!(CONSUMER_SAMPLES.iter().any(|(t, _, _)| *t == f.name), "{} has a sample", f.name),
            }
        }
    }

    #[test]
    fn the_saga_applications_differ_and_their_phones_are_e164() {
        let (a, to_a) = saga_application(1, "").expect("a body");
        let (b, to_b) = saga_application(2, "").expect("a body");
        assert_ne!(a, b);
        assert_ne!(to_a, to_b);
        assert!(to_a.starts_with("+8210") && to_a.len() == 13, "{to_a}");
        let body: Value = serde_json::from_slice(&a).expect("JSON");
        assert_eq!(body["site"], SITE);
        assert_eq!(SAGA.settled(), "negative");
        assert_eq!(SAGA.essential_requests(), 4);
    }

    /// The site's steps are taken by its own staff, with a token naming the site; the view
    /// ends the saga once it shows the certificate.
    #[test]
    fn the_saga_is_the_seeds_with_the_sites_staff_at_their_site() {
        let callers: Vec<Option<SagaCaller>> = SAGA.steps.iter().map(|s| s.caller).collect();
        let staff = Some(SagaCaller::new(SITE_STAFF.sub, TEST_SITE.group).at(SITE));
        assert_eq!(callers, [staff, staff, None]);
        assert!(matches!(
            SAGA.steps.last().map(|s| &s.action),
            Some(SagaAction::View {
                settled: "negative",
                shown: Some("certificate"),
                ..
            })
        ));
    }

    /// On the emulator, a verification the spawned verifier refuses stops the run: the
    /// seeder and the function hold different keys.
    #[test]
    fn a_refused_certificate_on_the_emulator_is_an_error() {
        let refused = json!({ "valid": false, "reason": "unknown-key" });
        assert!(Covid.check_response(CERTIFICATES, &refused).is_err());
        assert!(Covid.check_response(CERTIFICATES, &json!({ "valid": true })).is_ok());
        assert!(Covid.check_response(QUERY, &refused).is_ok());
    }

    /// The spawned functions get the beds the bench configures, in the form the slice reads.
    #[test]
    fn the_spawned_functions_get_the_configured_beds() {
        let env = Covid.environment(&crate::slices::config());
        assert_eq!(
            env,
            [("COVID_ISOLATION_CENTRES".to_owned(), format!("incheon:{BEDS},suwon:{BEDS}"))]
        );
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let config = Config::for_function(clinicflow::catalog(), DISPATCH, lookup).expect("the variables parse");
        assert_eq!(
            config.slice::<CovidConfig>().centres,
            crate::slices::config().slice::<CovidConfig>().centres
        );
    }

    /// Beds never run out in a long run; the sites stay the defaults the events name.
    #[test]
    fn the_settings_give_every_centre_its_most_beds() {
        let config = crate::slices::config().slice::<CovidConfig>();
        assert!(config.centres.iter().all(|c| c.beds == BEDS), "{:?}", config.centres);
        assert!(config.centre("isolation_centre", CENTRE).is_ok());
        assert!(config.site("site", SITE).is_ok());
    }

    /// The projector's case runs on the first fixture's batch; this one's must work too.
    #[tokio::test]
    async fn the_projector_batch_writes_the_application_view() {
        use aws_lambda_events::dynamodb::Event as StreamEvent;

        let samples = Samples::load().expect("samples");
        let ctx = Ctx::new(&crate::slices::config());
        let id = ulid::Ulid::new().to_string();
        let event = samples.stream_event(&id);
        assert!(!event.contains(SAMPLE_CASE));
        let payload: StreamEvent = serde_json::from_str(&event).expect("a stream batch");
        let response = clinicflow::wiring::handle_stream(&ctx.platform, LambdaEvent::new(payload, LambdaContext::default()))
            .await
            .expect("projected");
        assert!(response.batch_item_failures.is_empty());
        let view = ctx
            .platform
            .views
            .get(&samples.view_key(&id))
            .await
            .expect("read")
            .expect("the view");
        assert_eq!(view.status.as_deref(), Some("positive"), "{view:?}");
        let echoed: EventBridgeEvent<EventEnvelope> = serde_json::from_str(samples.echo_event()).expect("a delivery");
        assert_eq!(echoed.detail.event_type, "ApplicationSubmitted");
    }

    /// Every stage a handler case starts from is reached in-process, and the consumers'
    /// own events are the ones they subscribe to.
    #[tokio::test]
    async fn the_stages_and_the_consumers_events_are_made_in_process() {
        let samples = Samples::load().expect("samples");
        let ctx = Ctx::new(&crate::slices::config());
        let released = samples.at(&ctx, Stage::Released, true).await.expect("released");
        let view = ctx
            .platform
            .views
            .get(&samples.view_key(&released))
            .await
            .expect("read")
            .expect("the view");
        assert_eq!(view.status.as_deref(), Some("released"), "{view:?}");
        for (target, file, moment) in CONSUMER_SAMPLES {
            let envelope = match moment {
                Moment::Opens => samples.opened(&ctx).await,
                Moment::Ends => samples.ended(&ctx).await,
                Moment::Reached(t) => samples.reached(&ctx, t).await,
            }
            .expect("an event");
            let sample: EventBridgeEvent<EventEnvelope> = serde_json::from_str(&read(file).expect("the sample")).expect("a delivery");
            assert_eq!(
                (envelope.event_type.as_str(), envelope.source.as_str()),
                (sample.detail.event_type.as_str(), sample.detail.source.as_str()),
                "{target} is measured on the event of its sample"
            );
            let rule = clinicflow::catalog()
                .rules
                .iter()
                .find(|r| r.target == *target && r.matches(&envelope.source, &envelope.event_type));
            assert!(rule.is_some(), "{target} does not subscribe to {}", envelope.event_type);
        }
        let heard = samples.reached(&ctx, "ResultHeard").await.expect("heard");
        assert_eq!(heard.data["result"], "negative", "the certificate consumer seals it");
        assert_eq!(samples.ended(&ctx).await.expect("released").event_type, "StayReleased");
    }

    /// Every handler case answers its status through the adapter its Lambda function uses,
    /// and every consumer processes its event, on the bench's in-memory platform, which
    /// seals as the local stack does (the certificate consumer and the public verifier need
    /// its key).
    #[tokio::test]
    async fn every_case_is_answered_as_declared() {
        let samples = Samples::load().expect("samples");
        for case in HTTP_CASES {
            let ctx = Ctx::new(&crate::slices::config());
            let prepared = samples.prepare(case, &ctx).await.expect("prepared");
            let event = samples.event(case, &ctx, &prepared).await.expect("an event").unwrap_or(prepared);
            let request: LambdaRequest = serde_json::from_str(&event).expect("an API Gateway event");
            let router = clinicflow::http::router(ctx.platform.clone(), Some(case.function));
            let response = lambda_http::Adapter::from(router)
                .oneshot(LambdaEvent::new(request, LambdaContext::default()))
                .await
                .expect("served");
            let answer = serde_json::to_value(&response).expect("serialized");
            let body: Value = answer["body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null);
            assert_eq!(answer["statusCode"], case.status, "{}: {body}", case.name);
            samples.check(case, &body).unwrap_or_else(|e| panic!("{}: {e:#}", case.name));
        }
        for (target, _, moment) in CONSUMER_SAMPLES {
            let ctx = Ctx::new(&crate::slices::config());
            let envelope = match moment {
                Moment::Opens => samples.opened(&ctx).await,
                Moment::Ends => samples.ended(&ctx).await,
                Moment::Reached(t) => samples.reached(&ctx, t).await,
            }
            .expect("an event");
            let (template, _) = samples.consumer_sample(target).expect("a sample");
            let mut delivery = template.clone();
            delivery["detail"] = serde_json::to_value(&envelope).expect("JSON");
            let payload: EventBridgeEvent<EventEnvelope> = serde_json::from_value(delivery).expect("a delivery");
            clinicflow::wiring::handle_eventbridge(&ctx.platform, target, LambdaEvent::new(payload, LambdaContext::default()))
                .await
                .unwrap_or_else(|e| panic!("{target} failed on {}: {e}", envelope.event_type));
            assert!(
                ctx.platform.store.is_processed(target, &envelope.id).await.expect("read"),
                "{target}"
            );
            let published = ctx.publisher.take();
            if *target == CERTIFY {
                assert!(
                    published.iter().any(|e| e.event_type == "CertificateIssued"),
                    "the certificate consumer sealed nothing: {published:?}"
                );
            }
        }
    }
}
