//! The hospital slice's bench fixture: a case is a visit, worked by three desks linked only
//! by events. It is opened by reception registering it (`POST /visits`), settled once
//! diagnosis has queued the patient for a doctor, its SMS went out and its view exists, and
//! ended by the doctor taking the patient, prescribing an exam and refusing the treatment
//! (which revokes the exam): between them, the registration and the end reach every consumer
//! of the slice. The saga measured end to end is a visit from registration to closing with
//! one exam: register → queued → the doctor takes the patient → prescribes an exam → on the
//! examiners' work list → performed → the doctor reviews the result → completes → reception's
//! view shows `completed` → reception closes the visit, and the completion's SMS.
//!
//! Each request acting on a visit is made on a visit of its own, taken as far as the request
//! needs ([`Stage`]) with every event delivered, as the bus would, before the clock starts.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail, ensure};
use async_trait::async_trait;
use chrono::Utc;
use clinicflow::app::command::Accepted;
use clinicflow::app::{AppError, Platform, consumers, projector};
use clinicflow::config::Config;
use clinicflow::domain::{Actor, today_in_korea};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::hospital::commands::{self as usecase, Decision, Desk, ExamInput, ExamWork, VisitInput};
use clinicflow::flows::hospital::faults::{
    CANCEL, CLOSE, COMPLETE, EXAM_CANCEL, EXAM_ORDER, EXAM_OUTCOME, PERFORM, PRESCRIBE, QUERY, QUEUE, REFUSE, REGISTER, REVIEW, START,
    VISIT_FOLLOW,
};
use clinicflow::flows::hospital::{self, DOCTOR, EXAMINER, RECEPTION_DESK, view};
use clinicflow::topology::{SMS_NOTIFIER, STATUS_PROJECTOR, Slice};
use serde_json::{Value, json};

use super::{AwsModel, Fixture, Handlers, HttpCase, Moment, SagaAction, SagaCaller, SagaCase, SagaSpec, SagaStep};
use crate::handlers::{Ctx, find, read, sub_of};
use crate::lambda::seed::{Seeder, http_event};

/// The hospital slice's fixture.
pub struct Hospital;

/// The visit the sample events name.
const SAMPLE_VISIT: &str = "01KHSP00000000000000000000";
/// The department of every visit the fixture registers (the samples' own: the board, the
/// doctors' queue and the work list samples filter on it).
const DEPARTMENT: &str = "internal";
/// The exam every visit's doctor prescribes (one of the default `VISIT_EXAMS`).
const EXAM: &str = "blood";
/// Visits (or exam orders) behind the handler figures' queries: a page of the default 20.
const SEEDED: usize = 20;
/// The callers of the saga: reception registers, reads and closes the visit; one doctor and
/// one examiner work every visit.
const SAGA_RECEPTION: (&str, &str) = ("bench-reception", RECEPTION_DESK.group);
const SAGA_DOCTOR: SagaCaller = SagaCaller::new("bench-doctor", DOCTOR.group);
const SAGA_EXAMINER: SagaCaller = SagaCaller::new("bench-examiner", EXAMINER.group);
/// The causation of the setup made in-process.
const SETUP: &str = "bench-setup";

/// How far a visit is taken before the request measured on it, every event on the way
/// delivered to the slice's consumers (each stage includes the ones before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Registered; diagnosis queued the patient.
    Queued,
    /// The doctor took the patient.
    Started,
    /// The doctor prescribed the exam; examination put it on the work list.
    Ordered,
    /// The examiner performed it; diagnosis recorded the outcome.
    Recorded,
    /// The doctor reviewed the result.
    Reviewed,
    /// The doctor completed the treatment; reception's visit followed.
    Completed,
    /// Reception closed the visit.
    Closed,
}

/// A visit and its exam order (empty before the prescription).
#[derive(Debug, Clone, Default)]
struct Case {
    visit: String,
    exam: String,
}

#[async_trait]
impl Fixture for Hospital {
    fn slice(&self) -> &'static Slice {
        &hospital::SLICE
    }

    /// Nothing runs out: a doctor may treat any number of patients, a visit's exams are a
    /// handful, and the departments and exams are the defaults the samples name.
    fn configure(&self, _config: &mut Config) {}

    fn entry(&self) -> &'static str {
        REGISTER
    }

    fn http_functions(&self) -> &'static [&'static str] {
        &[
            REGISTER,
            CANCEL,
            CLOSE,
            QUERY,
            START,
            PRESCRIBE,
            REVIEW,
            COMPLETE,
            REFUSE,
            PERFORM,
            EXAM_CANCEL,
        ]
    }

    async fn http_events(&self, seeder: &Seeder, function: &str, count: usize) -> anyhow::Result<Vec<Value>> {
        let callers = Callers::of(seeder)?;
        let mut out = Vec::with_capacity(count);
        match function {
            REGISTER => {
                let template = seeder.sample(function, "register.json")?;
                let mut body = sample_body(&template)?;
                for _ in 0..count {
                    body["phone"] = json!(phone(seeder.next()).0);
                    let mut event = http_event(&template, "/visits", None, Some(&body), &callers.reception);
                    event["headers"]["idempotency-key"] = json!(format!("bench-register-{}", ulid::Ulid::new()));
                    out.push(event);
                }
            }
            QUERY => {
                let visit = seeder.sample(function, "visit.json")?;
                let board = board_sample(seeder.sample(function, "board.json")?);
                let queue = seeder.sample(function, "doctor-queue.json")?;
                let work_list = seeder.sample(function, "work-list.json")?;
                for i in 0..count {
                    out.push(match i % 4 {
                        0 => {
                            let case = self.seed(seeder, Stage::Queued).await?;
                            let path = format!("/visits/{}", case.visit);
                            http_event(&visit, &path, Some(&case.visit), None, &callers.reception)
                        }
                        1 => {
                            self.seed(seeder, Stage::Queued).await?;
                            http_event(&board, "/visits", None, None, &callers.team)
                        }
                        2 => {
                            self.seed(seeder, Stage::Queued).await?;
                            http_event(&queue, "/doctor/queue", None, None, &callers.doctor)
                        }
                        _ => {
                            self.seed(seeder, Stage::Ordered).await?;
                            http_event(&work_list, "/exams", None, None, &callers.examiner)
                        }
                    });
                }
            }
            PERFORM | EXAM_CANCEL => {
                let (file, action) = if function == PERFORM {
                    ("perform.json", "perform")
                } else {
                    ("cancel.json", "cancel")
                };
                let template = seeder.sample(function, file)?;
                let body = sample_body(&template)?;
                for _ in 0..count {
                    let case = self.seed(seeder, Stage::Ordered).await?;
                    let path = format!("/exams/{}/{action}", case.exam);
                    out.push(http_event(&template, &path, Some(&case.exam), Some(&body), &callers.examiner));
                }
            }
            _ => {
                // The commands on a visit: the sample, the stage the visit must have reached,
                // the action's path and its caller.
                let (file, stage, action, caller) = match function {
                    CANCEL => ("cancel.json", Stage::Queued, "cancel", &callers.reception),
                    CLOSE => ("close.json", Stage::Completed, "close", &callers.reception),
                    START => ("start.json", Stage::Queued, "start", &callers.doctor),
                    PRESCRIBE => ("prescribe.json", Stage::Started, "exams", &callers.doctor),
                    REVIEW => ("review.json", Stage::Recorded, "review", &callers.doctor),
                    COMPLETE => ("complete.json", Stage::Reviewed, "complete", &callers.doctor),
                    REFUSE => ("refuse.json", Stage::Ordered, "refuse", &callers.doctor),
                    other => bail!("the hospital fixture makes no request for {other}"),
                };
                let template = seeder.sample(function, file)?;
                let body = template["body"].as_str().and_then(|b| serde_json::from_str::<Value>(b).ok());
                for _ in 0..count {
                    let case = self.seed(seeder, stage).await?;
                    let path = format!("/visits/{}/{action}", case.visit);
                    let body = match function {
                        REVIEW => Some(json!({ "exam_id": case.exam })),
                        _ => body.clone(),
                    };
                    let mut event = http_event(&template, &path, Some(&case.visit), body.as_ref(), caller);
                    if function == PRESCRIBE {
                        event["headers"]["idempotency-key"] = json!(format!("bench-prescribe-{}", ulid::Ulid::new()));
                    }
                    out.push(event);
                }
            }
        }
        Ok(out)
    }

    /// Reception registers a visit of its own (a phone number of its own); its event is
    /// kept, not delivered.
    async fn open_case(&self, seeder: &Seeder, platform: &Arc<Platform>) -> anyhow::Result<String> {
        let callers = Callers::of(seeder)?;
        let body = visit_body(seeder.next());
        let registered = seeder
            .http(platform, "POST", "/visits", (&callers.reception, RECEPTION_DESK.group), &|| {
                Some(body.clone())
            })
            .await?;
        id_of(&registered)
    }

    /// The doctor takes the settled (queued) patient, prescribes an exam and refuses the
    /// treatment, none of it delivered: the prescription reaches `hospital-exam-order`, the
    /// start `hospital-visit-follow`, and the refusal revokes the exam, whose cancellation
    /// reaches `hospital-exam-outcome`.
    async fn end_case(&self, seeder: &Seeder, id: &str) -> anyhow::Result<()> {
        let callers = Callers::of(seeder)?;
        let doctor = (callers.doctor.as_str(), DOCTOR.group);
        let platform = seeder.platform();
        seeder
            .http(platform, "POST", &format!("/visits/{id}/start"), doctor, &|| None)
            .await?;
        seeder
            .http(platform, "POST", &format!("/visits/{id}/exams"), doctor, &|| {
                Some(json!({ "exam": EXAM }))
            })
            .await?;
        seeder
            .http(platform, "POST", &format!("/visits/{id}/refuse"), doctor, &|| {
                Some(json!({ "reason": "the patient declined the treatment" }))
            })
            .await?;
        Ok(())
    }

    fn handlers(&self, config: &Config) -> anyhow::Result<Box<dyn Handlers>> {
        Ok(Box::new(Samples::load(config)?))
    }

    fn saga(&self) -> &'static SagaSpec {
        &SAGA
    }

    fn model(&self) -> &'static AwsModel {
        &MODEL
    }
}

impl Hospital {
    /// A visit taken to `stage` on the seeder's platform, every event delivered on the way.
    async fn seed(&self, seeder: &Seeder, stage: Stage) -> anyhow::Result<Case> {
        let callers = Callers::of(seeder)?;
        let platform = seeder.platform();
        let doctor = (callers.doctor.as_str(), DOCTOR.group);
        let visit = self.open_case(seeder, platform).await?;
        seeder.settle(None).await?;
        let mut case = Case {
            visit,
            exam: String::new(),
        };
        let visit_id = case.visit.clone();
        let on_visit = |action: &str| format!("/visits/{visit_id}/{action}");
        if stage >= Stage::Started {
            seeder.http(platform, "POST", &on_visit("start"), doctor, &|| None).await?;
            seeder.settle(None).await?;
        }
        if stage >= Stage::Ordered {
            let prescribed = seeder
                .http(platform, "POST", &on_visit("exams"), doctor, &|| Some(json!({ "exam": EXAM })))
                .await?;
            case.exam = id_of(&prescribed)?;
            seeder.settle(None).await?;
        }
        if stage >= Stage::Recorded {
            seeder
                .http(
                    platform,
                    "POST",
                    &format!("/exams/{}/perform", case.exam),
                    (&callers.examiner, EXAMINER.group),
                    &|| Some(json!({ "note": "within normal limits" })),
                )
                .await?;
            seeder.settle(None).await?;
        }
        if stage >= Stage::Reviewed {
            let review = json!({ "exam_id": case.exam });
            seeder
                .http(platform, "POST", &on_visit("review"), doctor, &|| Some(review.clone()))
                .await?;
            seeder.settle(None).await?;
        }
        if stage >= Stage::Completed {
            seeder.http(platform, "POST", &on_visit("complete"), doctor, &|| None).await?;
            seeder.settle(None).await?;
        }
        if stage >= Stage::Closed {
            let desk = (callers.reception.as_str(), RECEPTION_DESK.group);
            seeder.http(platform, "POST", &on_visit("close"), desk, &|| None).await?;
            seeder.settle(None).await?;
        }
        Ok(case)
    }
}

/// The callers of the samples: reception, the doctor, the examiner and the customer team.
struct Callers {
    reception: String,
    doctor: String,
    examiner: String,
    team: String,
}

impl Callers {
    fn of(seeder: &Seeder) -> anyhow::Result<Self> {
        let sub = |function: &str, file: &str| -> anyhow::Result<String> {
            seeder.sample(function, file)?["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{function}/{file} has no caller"))
        };
        Ok(Self {
            reception: sub(REGISTER, "register.json")?,
            doctor: sub(START, "start.json")?,
            examiner: sub(PERFORM, "perform.json")?,
            team: sub(QUERY, "board.json")?,
        })
    }
}

/// The `id` of an answer.
fn id_of(answer: &Value) -> anyhow::Result<String> {
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("an answer without an id: {answer}"))
}

/// The JSON body of a sample HTTP event.
fn sample_body(event: &Value) -> anyhow::Result<Value> {
    let body = event["body"].as_str().context("the sample has no body")?;
    serde_json::from_str(body).context("the sample's body")
}

/// A Korean mobile number of its own for number `n`: `010-HHHH-LLLL` (the subscriber part
/// cannot start with 0) and its E.164 form.
fn phone(n: u64) -> (String, String) {
    let (high, low) = (1000 + (n / 10_000) % 9000, n % 10_000);
    (format!("010-{high:04}-{low:04}"), format!("+8210{high:04}{low:04}"))
}

/// A registration at the fixture's department, with phone number `n`.
fn visit_body(n: u64) -> Value {
    json!({
        "name": "홍길동",
        "phone": phone(n).0,
        "department": DEPARTMENT,
        "locale": "ko",
    })
}

/// The board sample on today's board (Korean date: the visits are registered today), of the
/// fixture's department.
fn board_sample(mut event: Value) -> Value {
    let today = today_in_korea(Utc::now()).to_string();
    event["rawQueryString"] = json!(format!("date={today}&department={DEPARTMENT}"));
    event["queryStringParameters"] = json!({ "date": today, "department": DEPARTMENT });
    event
}

/// The saga: a visit from registration to closing with one exam. Reception registers it;
/// the doctor takes the patient once diagnosis has queued them (404 before), prescribes an
/// exam; the examiner performs it once it is on the work list (404 before); the doctor
/// reviews the result once diagnosis has heard of it (409 before) and completes the
/// treatment; reception's view shows `completed` by itself, and reception closes the visit.
/// The completion's SMS is the saga's last. One caller of each desk for every worker (a
/// desk works any number of visits at once).
static SAGA: SagaSpec = SagaSpec {
    description: "register → queued → start → prescribe → on the work list → perform → review → complete → view completed → close → SMS",
    opener: SAGA_RECEPTION,
    opener_per_worker: false,
    open_path: "/visits",
    open_step: "register",
    setup: None,
    open_body: saga_visit,
    steps: &[
        SagaStep {
            name: "doctor start",
            caller: Some(SAGA_DOCTOR),
            action: SagaAction::Act {
                path: |case| format!("/visits/{}/start", case.id),
                body: None,
                status: 200,
                keep: false,
            },
        },
        SagaStep {
            name: "doctor prescribe",
            caller: Some(SAGA_DOCTOR),
            action: SagaAction::Act {
                path: |case| format!("/visits/{}/exams", case.id),
                body: Some(|_| json!({ "exam": EXAM })),
                status: 201,
                // The exam order's number, for the examiner and the review.
                keep: true,
            },
        },
        SagaStep {
            name: "examiner perform",
            caller: Some(SAGA_EXAMINER),
            action: SagaAction::Act {
                path: |case: &SagaCase| format!("/exams/{}/perform", case.kept),
                body: Some(|_| json!({ "note": "within normal limits" })),
                status: 200,
                keep: false,
            },
        },
        SagaStep {
            name: "doctor review",
            caller: Some(SAGA_DOCTOR),
            action: SagaAction::Act {
                path: |case| format!("/visits/{}/review", case.id),
                body: Some(|case| json!({ "exam_id": case.kept })),
                status: 200,
                keep: false,
            },
        },
        SagaStep {
            name: "doctor complete",
            caller: Some(SAGA_DOCTOR),
            action: SagaAction::Act {
                path: |case| format!("/visits/{}/complete", case.id),
                body: None,
                status: 200,
                keep: false,
            },
        },
        SagaStep {
            name: "view",
            caller: None,
            action: SagaAction::View {
                path: |case| format!("/visits/{}", case.id),
                settled: "completed",
                shown: None,
            },
        },
        SagaStep {
            name: "reception close",
            caller: None,
            action: SagaAction::Act {
                path: |case| format!("/visits/{}/close", case.id),
                body: None,
                status: 200,
                keep: false,
            },
        },
    ],
    // The word of the Korean completion SMS (`진료가 끝났습니다. 수납 창구로 와 주세요(접수번호 …)`).
    sms_word: "진료가 끝났습니다",
    throughput: "local_hospital_sagas_per_s",
    open_latency: "visit_registration_latency_ms",
    saga_latency: "hospital_saga_latency_ms",
};

/// The registration of saga `n`: its own phone number (the saga has no setup).
fn saga_visit(n: u64, _setup: &str) -> anyhow::Result<(Vec<u8>, String)> {
    Ok((serde_json::to_vec(&visit_body(n))?, phone(n).1))
}

/// What one visit saga (register → queued → start → prescribe → ordered → perform →
/// outcome → review → complete → reception follows → view completed → close; three SMS;
/// reception reads the status once) does on AWS.
static MODEL: AwsModel = AwsModel {
    invocations: &[
        (REGISTER, 1.0),
        (QUEUE, 1.0),
        (START, 1.0),
        // TreatmentStarted and TreatmentCompleted.
        (VISIT_FOLLOW, 2.0),
        (PRESCRIBE, 1.0),
        (EXAM_ORDER, 1.0),
        (PERFORM, 1.0),
        (EXAM_OUTCOME, 1.0),
        (REVIEW, 1.0),
        (COMPLETE, 1.0),
        (CLOSE, 1.0),
        (QUERY, 1.0),
        // VisitReceived, TreatmentStarted, TreatmentCompleted.
        (SMS_NOTIFIER, 3.0),
        // Stream batches of the three desks' tables: twelve commits with one event each
        // (reception 4, diagnosis 6, examination 2), and the publish marks after them.
        (STATUS_PROJECTOR, 24.0),
    ],
    // Register, start, prescribe, perform, review, complete, close, one status read.
    http_requests: 8.0,
    // VisitReceived, TreatmentQueued, TreatmentStarted, VisitStarted, ExamPrescribed,
    // ExamOrdered, ExamPerformed, ExamOutcomeRecorded, ExamReviewed, TreatmentCompleted,
    // VisitCompleted, VisitClosed.
    events: 12.0,
    // Items written in transactions count twice: each commit's aggregate and outbox event
    // (24 items), the registration's idempotency record, the start's claim and the five
    // consumers' marks (7): 62; the outbox index's writes (12); the twelve publish marks and
    // their index deletes (24); the projector's fourteen view puts (the visit's view for
    // every event, the exam order's for examination's two) with their indexes (42); the
    // notifier's claim and settlement with the contact and its mark, per SMS (24).
    wru: 164.0,
    // Strongly consistent reads: the idempotency key (1); the aggregate each command and
    // consumer loads (11), the claim (1), the consumers' marks (5); the status read (1); the
    // projector's view reads (14); the notifier's mark, contact and record, per SMS (9).
    rru: 42.0,
    // Register; EventBridge delivers VisitReceived to the doctors' queue; (the doctor takes
    // the patient: human time, not counted) start; prescribe; EventBridge delivers
    // ExamPrescribed to the work list; (the examiner: human time) perform; EventBridge
    // delivers ExamPerformed to diagnosis; review; complete; EventBridge delivers
    // TreatmentCompleted to reception; the stream delivers VisitCompleted to the projector
    // (reception sees `completed`); close. The SMS go through EventBridge meanwhile, in
    // parallel, on shorter paths.
    critical_path: &[
        "hospital_register",
        QUEUE,
        "hospital_start",
        "hospital_prescribe",
        EXAM_ORDER,
        "hospital_perform",
        EXAM_OUTCOME,
        "hospital_review",
        "hospital_complete",
        VISIT_FOLLOW,
        STATUS_PROJECTOR,
        "hospital_close",
    ],
    eventbridge_hops: 4.0,
    stream_hops: 1.0,
    projected: "projected_aws_hospital_saga_ms",
    cost: "aws_usd_per_1000_visits",
};

/// The handler figures' cases, in the order they are reported.
const HTTP_CASES: &[HttpCase] = &[
    HttpCase {
        name: "hospital_register",
        function: REGISTER,
        status: 201,
    },
    HttpCase {
        name: "hospital_start",
        function: START,
        status: 200,
    },
    HttpCase {
        name: "hospital_prescribe",
        function: PRESCRIBE,
        status: 201,
    },
    HttpCase {
        name: "hospital_perform",
        function: PERFORM,
        status: 200,
    },
    HttpCase {
        name: "hospital_review",
        function: REVIEW,
        status: 200,
    },
    HttpCase {
        name: "hospital_complete",
        function: COMPLETE,
        status: 200,
    },
    HttpCase {
        name: "hospital_close",
        function: CLOSE,
        status: 200,
    },
    HttpCase {
        name: "hospital_cancel",
        function: CANCEL,
        status: 200,
    },
    HttpCase {
        name: "hospital_refuse",
        function: REFUSE,
        status: 200,
    },
    HttpCase {
        name: "hospital_exam_cancel",
        function: EXAM_CANCEL,
        status: 200,
    },
    HttpCase {
        name: "hospital_visit",
        function: QUERY,
        status: 200,
    },
    HttpCase {
        name: "hospital_board",
        function: QUERY,
        status: 200,
    },
    HttpCase {
        name: "hospital_queue",
        function: QUERY,
        status: 200,
    },
    HttpCase {
        name: "hospital_work_list",
        function: QUERY,
        status: 200,
    },
];

/// The event each consumer of the slice is measured on: its sample file, and which event
/// of a visit it is (`VisitReceived` opens one; the others are the saga's own steps). The
/// SMS notifier is measured on the first fixture's.
const CONSUMER_SAMPLES: &[(&str, &str, Moment)] = &[
    (QUEUE, "hospital-queue/visit-received.json", Moment::Opens),
    (
        EXAM_ORDER,
        "hospital-exam-order/exam-prescribed.json",
        Moment::Reached("ExamPrescribed"),
    ),
    (
        EXAM_OUTCOME,
        "hospital-exam-outcome/exam-performed.json",
        Moment::Reached("ExamPerformed"),
    ),
    (
        VISIT_FOLLOW,
        "hospital-visit-follow/treatment-completed.json",
        Moment::Reached("TreatmentCompleted"),
    ),
];

/// The sample events of the handler figures, read once.
struct Samples {
    register: Value,
    cancel: Value,
    close: Value,
    start: Value,
    prescribe: Value,
    review: Value,
    complete: Value,
    refuse: Value,
    perform: Value,
    exam_cancel: Value,
    visit: Value,
    /// Today's board of the fixture's department.
    board: String,
    queue: String,
    work_list: String,
    /// The registration of the samples (its department, the fixture's).
    register_input: VisitInput,
    /// The entry event the HTTP floor would echo (the registration sample, as it is).
    entry: String,
    /// The samples' reception desk, doctor and examiner.
    reception: String,
    doctor: String,
    examiner: String,
    /// Each consumer's EventBridge sample and which event it gets.
    consumers: HashMap<&'static str, (Value, Moment)>,
    /// The EventBridge sample the event floor would echo.
    echo_event: String,
    /// The projector's stream batch of a visit (registered, treated, completed, closed).
    stream: String,
}

impl Samples {
    fn load(_config: &Config) -> anyhow::Result<Self> {
        let json = |name: &str| -> anyhow::Result<Value> { Ok(serde_json::from_str(&read(name)?)?) };
        let register = json("hospital-visit-register/register.json")?;
        let register_input: VisitInput = serde_json::from_value(sample_body(&register)?).context("the register sample's body")?;
        ensure!(
            register_input.department.as_deref() == Some(DEPARTMENT),
            "the register sample is not of the {DEPARTMENT} department"
        );
        let mut consumers = HashMap::new();
        for (target, file, moment) in CONSUMER_SAMPLES {
            consumers.insert(*target, (json(file)?, *moment));
        }
        let start = json("hospital-treatment-start/start.json")?;
        let perform = json("hospital-exam-perform/perform.json")?;
        Ok(Self {
            reception: sub_of(&register.to_string())?,
            doctor: sub_of(&start.to_string())?,
            examiner: sub_of(&perform.to_string())?,
            entry: read("hospital-visit-register/register.json")?,
            register,
            cancel: json("hospital-visit-cancel/cancel.json")?,
            close: json("hospital-visit-close/close.json")?,
            start,
            prescribe: json("hospital-exam-prescribe/prescribe.json")?,
            review: json("hospital-exam-review/review.json")?,
            complete: json("hospital-treatment-complete/complete.json")?,
            refuse: json("hospital-treatment-refuse/refuse.json")?,
            perform,
            exam_cancel: json("hospital-exam-cancel/cancel.json")?,
            visit: json("hospital-query/visit.json")?,
            board: serde_json::to_string(&board_sample(json("hospital-query/board.json")?))?,
            queue: read("hospital-query/doctor-queue.json")?,
            work_list: read("hospital-query/work-list.json")?,
            register_input,
            consumers,
            echo_event: read("hospital-queue/visit-received.json")?,
            stream: read("status-projector/hospital-completed-closed.json")?,
        })
    }

    fn reception(&self) -> Actor {
        Actor {
            sub: self.reception.clone(),
        }
    }

    fn doctor(&self) -> Actor {
        Actor { sub: self.doctor.clone() }
    }

    fn examiner(&self) -> Actor {
        Actor {
            sub: self.examiner.clone(),
        }
    }

    /// Runs one use case on `ctx`; returns what it answered and the events it published.
    async fn run<F>(ctx: &Ctx, what: &str, call: F) -> anyhow::Result<(Accepted, Vec<EventEnvelope>)>
    where
        F: std::future::Future<Output = Result<Accepted, AppError>>,
    {
        let accepted = call.await.map_err(|e| anyhow!("setup: {what} failed: {e:?}"))?;
        Ok((accepted, ctx.publisher.take()))
    }

    /// Reception registers the samples' visit; returns its id and the events published.
    async fn register(&self, ctx: &Ctx) -> anyhow::Result<(String, Vec<EventEnvelope>)> {
        ctx.publisher.take();
        let input = self.register_input.clone();
        let (accepted, events) = Self::run(
            ctx,
            "registering",
            usecase::register(&ctx.platform, &self.reception(), input, None, SETUP),
        )
        .await?;
        Ok((id_of(&accepted.body)?, events))
    }

    /// The doctor takes the patient of `visit`.
    async fn start(&self, ctx: &Ctx, visit: &str) -> anyhow::Result<Vec<EventEnvelope>> {
        Ok(
            Self::run(ctx, "starting", usecase::start(&ctx.platform, &self.doctor(), visit, SETUP))
                .await?
                .1,
        )
    }

    /// The doctor prescribes the fixture's exam; returns its order's number and the events.
    async fn prescribe(&self, ctx: &Ctx, visit: &str) -> anyhow::Result<(String, Vec<EventEnvelope>)> {
        let input = ExamInput { exam: Some(EXAM.into()) };
        let (accepted, events) = Self::run(
            ctx,
            "prescribing",
            usecase::prescribe(&ctx.platform, &self.doctor(), visit, input, None, SETUP),
        )
        .await?;
        Ok((id_of(&accepted.body)?, events))
    }

    /// The examiner performs exam order `exam`.
    async fn perform(&self, ctx: &Ctx, exam: &str) -> anyhow::Result<Vec<EventEnvelope>> {
        let work = ExamWork::Perform("within normal limits".into());
        Ok(Self::run(
            ctx,
            "performing",
            usecase::examine(&ctx.platform, &self.examiner(), exam, work, SETUP),
        )
        .await?
        .1)
    }

    /// The doctor decides on `visit`.
    async fn decide(&self, ctx: &Ctx, visit: &str, decision: Decision) -> anyhow::Result<Vec<EventEnvelope>> {
        Ok(Self::run(
            ctx,
            "deciding",
            usecase::decide(&ctx.platform, &self.doctor(), visit, decision, SETUP),
        )
        .await?
        .1)
    }

    /// A visit taken to `stage`, every event delivered to the slice's consumers on the way
    /// (and projected, with `project`).
    async fn at(&self, ctx: &Ctx, stage: Stage, project: bool) -> anyhow::Result<Case> {
        let (visit, events) = self.register(ctx).await?;
        deliver(ctx, events, project).await?;
        let mut case = Case {
            visit,
            exam: String::new(),
        };
        if stage >= Stage::Started {
            let events = self.start(ctx, &case.visit).await?;
            deliver(ctx, events, project).await?;
        }
        if stage >= Stage::Ordered {
            let (exam, events) = self.prescribe(ctx, &case.visit).await?;
            case.exam = exam;
            deliver(ctx, events, project).await?;
        }
        if stage >= Stage::Recorded {
            let events = self.perform(ctx, &case.exam).await?;
            deliver(ctx, events, project).await?;
        }
        if stage >= Stage::Reviewed {
            let events = self.decide(ctx, &case.visit, Decision::Review(case.exam.clone())).await?;
            deliver(ctx, events, project).await?;
        }
        if stage >= Stage::Completed {
            let events = self.decide(ctx, &case.visit, Decision::Complete).await?;
            deliver(ctx, events, project).await?;
        }
        if stage >= Stage::Closed {
            let call = usecase::at_desk(&ctx.platform, &case.visit, Desk::Close, SETUP);
            let (_, events) = Self::run(ctx, "closing", call).await?;
            deliver(ctx, events, project).await?;
        }
        Ok(case)
    }

    /// [`SEEDED`] visits taken to `stage`, projected; returns the first one.
    async fn seed(&self, ctx: &Ctx, stage: Stage) -> anyhow::Result<Case> {
        let mut first = None;
        for _ in 0..SEEDED {
            let case = self.at(ctx, stage, true).await?;
            first.get_or_insert(case);
        }
        first.context("setup: nothing was registered")
    }

    fn event(template: &Value, path: &str, id: Option<&str>, body: Option<&Value>, sub: &str) -> anyhow::Result<String> {
        Ok(serde_json::to_string(&http_event(template, path, id, body, sub))?)
    }
}

/// Delivers `events`, and what they lead to, to the slice's consumers as the bus would (and
/// to the projector, with `project`); the SMS are not sent.
async fn deliver(ctx: &Ctx, events: Vec<EventEnvelope>, project: bool) -> anyhow::Result<()> {
    let ours = |target: &str| hospital::FUNCTIONS.iter().any(|f| f.name == target);
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
        Ok(match case.name {
            "hospital_visit" => {
                let first = self.seed(ctx, Stage::Closed).await?;
                Self::event(
                    &self.visit,
                    &format!("/visits/{}", first.visit),
                    Some(&first.visit),
                    None,
                    &self.reception,
                )?
            }
            "hospital_board" => {
                self.seed(ctx, Stage::Closed).await?;
                self.board.clone()
            }
            "hospital_queue" => {
                self.seed(ctx, Stage::Queued).await?;
                self.queue.clone()
            }
            "hospital_work_list" => {
                self.seed(ctx, Stage::Ordered).await?;
                self.work_list.clone()
            }
            // Each call's event is made for a visit of its own.
            "hospital_register"
            | "hospital_start"
            | "hospital_prescribe"
            | "hospital_perform"
            | "hospital_review"
            | "hospital_complete"
            | "hospital_close"
            | "hospital_cancel"
            | "hospital_refuse"
            | "hospital_exam_cancel" => String::new(),
            other => bail!("no hospital handler case {other}"),
        })
    }

    async fn event(&self, case: &HttpCase, ctx: &Ctx, _prepared: &str) -> anyhow::Result<Option<String>> {
        let on_visit = |template: &Value, visit: &str, action: &str, body: Option<&Value>, sub: &str| {
            Self::event(template, &format!("/visits/{visit}/{action}"), Some(visit), body, sub)
        };
        let event = match case.name {
            "hospital_register" => {
                // A key of its own: the same key again would be answered from the first.
                let mut event = self.register.clone();
                event["headers"]["idempotency-key"] = json!(format!("bench-register-{}", ulid::Ulid::new()));
                serde_json::to_string(&event)?
            }
            "hospital_start" => {
                let visit = self.at(ctx, Stage::Queued, false).await?.visit;
                on_visit(&self.start, &visit, "start", None, &self.doctor)?
            }
            "hospital_cancel" => {
                let visit = self.at(ctx, Stage::Queued, false).await?.visit;
                on_visit(&self.cancel, &visit, "cancel", None, &self.reception)?
            }
            "hospital_prescribe" => {
                let visit = self.at(ctx, Stage::Started, false).await?.visit;
                let body = sample_body(&self.prescribe)?;
                on_visit(&self.prescribe, &visit, "exams", Some(&body), &self.doctor)?
            }
            "hospital_refuse" => {
                let visit = self.at(ctx, Stage::Ordered, false).await?.visit;
                let body = sample_body(&self.refuse)?;
                on_visit(&self.refuse, &visit, "refuse", Some(&body), &self.doctor)?
            }
            "hospital_perform" | "hospital_exam_cancel" => {
                let exam = self.at(ctx, Stage::Ordered, false).await?.exam;
                let (template, action) = if case.name == "hospital_perform" {
                    (&self.perform, "perform")
                } else {
                    (&self.exam_cancel, "cancel")
                };
                let body = sample_body(template)?;
                Self::event(
                    template,
                    &format!("/exams/{exam}/{action}"),
                    Some(&exam),
                    Some(&body),
                    &self.examiner,
                )?
            }
            "hospital_review" => {
                let case = self.at(ctx, Stage::Recorded, false).await?;
                let body = json!({ "exam_id": case.exam });
                on_visit(&self.review, &case.visit, "review", Some(&body), &self.doctor)?
            }
            "hospital_complete" => {
                let visit = self.at(ctx, Stage::Reviewed, false).await?.visit;
                on_visit(&self.complete, &visit, "complete", None, &self.doctor)?
            }
            "hospital_close" => {
                let visit = self.at(ctx, Stage::Completed, false).await?.visit;
                on_visit(&self.close, &visit, "close", None, &self.reception)?
            }
            _ => return Ok(None),
        };
        Ok(Some(event))
    }

    fn check(&self, case: &HttpCase, body: &Value) -> anyhow::Result<()> {
        let found = match case.name {
            "hospital_visit" => usize::from(body.get("id").is_some()),
            "hospital_board" | "hospital_queue" | "hospital_work_list" => body["items"].as_array().map_or(0, Vec::len),
            _ => return Ok(()),
        };
        ensure!(found > 0, "the query found nothing: {body}");
        Ok(())
    }

    fn consumer_sample(&self, target: &str) -> Option<(&Value, Moment)> {
        self.consumers.get(target).map(|(sample, moment)| (sample, *moment))
    }

    /// A visit's first event: its registration, `VisitReceived`.
    async fn opened(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope> {
        find(self.register(ctx).await?.1, "VisitReceived")
    }

    /// A queued visit whose doctor takes the patient, prescribes an exam and refuses the
    /// treatment (as [`Fixture::end_case`] does on the emulator): `TreatmentRefused`.
    async fn ended(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope> {
        let visit = self.at(ctx, Stage::Queued, false).await?.visit;
        self.start(ctx, &visit).await?;
        self.prescribe(ctx, &visit).await?;
        let refusal = Decision::Refuse("the patient declined the treatment".into());
        find(self.decide(ctx, &visit, refusal).await?, "TreatmentRefused")
    }

    /// The saga's own events, each from a visit taken to the step before it.
    async fn reached(&self, ctx: &Ctx, event_type: &str) -> anyhow::Result<EventEnvelope> {
        let events = match event_type {
            "ExamPrescribed" => {
                let visit = self.at(ctx, Stage::Started, false).await?.visit;
                self.prescribe(ctx, &visit).await?.1
            }
            "ExamPerformed" => {
                let exam = self.at(ctx, Stage::Ordered, false).await?.exam;
                self.perform(ctx, &exam).await?
            }
            "TreatmentCompleted" => {
                let visit = self.at(ctx, Stage::Reviewed, false).await?.visit;
                self.decide(ctx, &visit, Decision::Complete).await?
            }
            other => bail!("the hospital fixture makes no {other} of its own"),
        };
        find(events, event_type)
    }

    fn stream_event(&self, id: &str) -> String {
        self.stream.replace(SAMPLE_VISIT, id)
    }

    fn view_key(&self, id: &str) -> String {
        projector::view_id(view::VISITS, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hospital figures are named apart from the other fixtures'.
    #[test]
    fn the_figures_have_their_own_names() {
        let names = crate::handlers::figure_names().expect("the cases");
        for case in HTTP_CASES {
            assert!(case.name.starts_with("hospital_"), "{}", case.name);
            assert!(names.contains(&format!("handler_us.{}", case.name)), "{}", case.name);
        }
        for (target, _, _) in CONSUMER_SAMPLES {
            assert!(names.contains(&format!("handler_us.{target}")), "{target}");
        }
        assert_eq!(
            [SAGA.throughput, SAGA.open_latency, SAGA.saga_latency],
            [
                "local_hospital_sagas_per_s",
                "visit_registration_latency_ms",
                "hospital_saga_latency_ms"
            ]
        );
        assert_eq!(
            [MODEL.projected, MODEL.cost],
            ["projected_aws_hospital_saga_ms", "aws_usd_per_1000_visits"]
        );
        for step in MODEL.critical_path {
            assert!(names.contains(&format!("handler_us.{step}")), "{step} is a handler figure");
        }
    }

    #[test]
    fn every_http_function_and_consumer_of_the_slice_is_measured() {
        for f in hospital::SLICE.functions {
            match f.trigger {
                clinicflow::topology::Trigger::Http => {
                    assert!(Hospital.http_functions().contains(&f.name), "{}", f.name);
                    assert!(HTTP_CASES.iter().any(|c| c.function == f.name), "{} has a handler case", f.name);
                }
                _ => assert!(CONSUMER_SAMPLES.iter().any(|(t, _, _)| *t == f.name), "{} has a sample", f.name),
            }
        }
    }

    #[test]
    fn the_saga_visits_differ_and_their_phones_are_e164() {
        let (a, to_a) = saga_visit(1, "").expect("a body");
        let (b, to_b) = saga_visit(2, "").expect("a body");
        assert_ne!(a, b);
        assert_ne!(to_a, to_b);
        assert!(to_a.starts_with("+8210") && to_a.len() == 13, "{to_a}");
        let body: Value = serde_json::from_slice(&a).expect("JSON");
        assert_eq!(body["department"], DEPARTMENT);
        assert_eq!(SAGA.settled(), "completed");
        assert_eq!(SAGA.essential_requests(), 8);
    }

    /// The projector's case runs on the first fixture's batch; this one's must work too.
    #[tokio::test]
    async fn the_projector_batch_writes_the_visit_view() {
        use aws_lambda_events::dynamodb::Event as StreamEvent;
        use lambda_http::{Context as LambdaContext, LambdaEvent};

        let config = crate::slices::config();
        let samples = Samples::load(&config).expect("samples");
        let ctx = Ctx::new(&config);
        let id = ulid::Ulid::new().to_string();
        let event = samples.stream_event(&id);
        assert!(!event.contains(SAMPLE_VISIT));
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
        assert_eq!(view.status.as_deref(), Some("closed"), "{view:?}");
    }

    /// Every stage a handler case starts from is reached in-process, and the consumers' own
    /// events are the ones they subscribe to.
    #[tokio::test]
    async fn the_stages_and_the_consumers_events_are_made_in_process() {
        let config = crate::slices::config();
        let samples = Samples::load(&config).expect("samples");
        let ctx = Ctx::new(&config);
        let closed = samples.at(&ctx, Stage::Closed, true).await.expect("closed");
        assert!(!closed.exam.is_empty());
        for (target, _, moment) in CONSUMER_SAMPLES {
            let envelope = match moment {
                Moment::Opens => samples.opened(&ctx).await,
                Moment::Ends => samples.ended(&ctx).await,
                Moment::Reached(t) => samples.reached(&ctx, t).await,
            }
            .expect("an event");
            let rule = clinicflow::catalog()
                .rules
                .iter()
                .find(|r| r.target == *target && r.matches(&envelope.source, &envelope.event_type));
            assert!(rule.is_some(), "{target} does not subscribe to {}", envelope.event_type);
        }
        let refused = samples.ended(&ctx).await.expect("refused");
        assert_eq!(refused.event_type, "TreatmentRefused");
    }
}
