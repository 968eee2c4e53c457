//! The check-up slice's bench fixture: a case is a booking. It is opened by `POST /checkups`
//! as the samples' patient, settled when the centre has it on its work list and its view
//! exists, and ended by the patient's cancellation. The saga measured end to end is book →
//! the centre confirms → the view shows `confirmed` → the confirmation SMS.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail, ensure};
use async_trait::async_trait;
use chrono::Utc;
use clinicflow::app::{Platform, consumers, projector};
use clinicflow::config::Config;
use clinicflow::domain::{Actor, parse_future_date, today_in_korea};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::checkup::commands::{self as usecase, BookInput};
use clinicflow::flows::checkup::config::CheckupConfig;
use clinicflow::flows::checkup::faults::{AVAILABILITY_RELEASE, BOOK, CANCEL, CENTRE_WORKLIST, CONFIRM, PAYMENT_REFUND, QUERY, REJECT};
use clinicflow::flows::checkup::{self, view};
use clinicflow::topology::{PATIENT, SMS_NOTIFIER, STATUS_PROJECTOR, Slice};
use serde_json::{Value, json};

use super::{AwsModel, Fixture, Handlers, HttpCase, Moment, SagaAction, SagaCaller, SagaSpec, SagaStep};
use crate::handlers::{Ctx, find, read, sub_of};
use crate::lambda::seed::{Seeder, http_event};

/// The check-up slice's fixture.
pub struct Checkup;

/// The case id the sample events name.
const SAMPLE_ID: &str = "01JD3M7Q0000000000000000AB";
/// Bookings (of the sample patient, on the sample date) behind the handler figures' list
/// queries.
const SEEDED: usize = 20;
/// Bookings of the saga are spread over this many dates (from 2 days ahead, well within the
/// default 365-day horizon).
const DATES: u64 = 300;

#[async_trait]
impl Fixture for Checkup {
    fn slice(&self) -> &'static Slice {
        &checkup::SLICE
    }

    /// Places that never run out (each day's capacity is a counter in the check-up table).
    fn configure(&self, config: &mut Config) {
        config.slice_mut::<CheckupConfig>().daily_capacity = 1_000_000_000;
    }

    fn entry(&self) -> &'static str {
        BOOK
    }

    fn http_functions(&self) -> &'static [&'static str] {
        &[BOOK, QUERY, CANCEL, CONFIRM, REJECT]
    }

    async fn http_events(&self, seeder: &Seeder, function: &str, count: usize) -> anyhow::Result<Vec<Value>> {
        let callers = Callers::of(seeder)?;
        let mut out = Vec::with_capacity(count);
        match function {
            BOOK => {
                let template = seeder.sample(function, "book-basic.json")?;
                for _ in 0..count {
                    out.push(http_event(
                        &template,
                        "/checkups",
                        None,
                        Some(&booking_body(seeder)),
                        &callers.patient,
                    ));
                }
            }
            QUERY => {
                let id = self.settled(seeder).await?;
                let one = seeder.sample(function, "get-one.json")?;
                let mine = seeder.sample(function, "list-mine.json")?;
                for i in 0..count {
                    out.push(if i % 2 == 0 {
                        http_event(&one, &format!("/checkups/{id}"), Some(&id), None, &callers.patient)
                    } else {
                        http_event(&mine, "/checkups", None, None, &callers.patient)
                    });
                }
            }
            CANCEL | CONFIRM | REJECT => {
                let (file, caller, action) = match function {
                    CANCEL => ("cancel.json", &callers.patient, "/checkups/{}/cancel"),
                    CONFIRM => ("confirm.json", &callers.centre, "/centre/checkups/{}/confirm"),
                    _ => ("reject.json", &callers.centre, "/centre/checkups/{}/reject"),
                };
                let template = seeder.sample(function, file)?;
                let body = template["body"].as_str().and_then(|b| serde_json::from_str::<Value>(b).ok());
                for _ in 0..count {
                    let id = self.settled(seeder).await?;
                    let path = action.replace("{}", &id);
                    out.push(http_event(&template, &path, Some(&id), body.as_ref(), caller));
                }
            }
            other => bail!("the check-up fixture makes no request for {other}"),
        }
        Ok(out)
    }

    /// Books a check-up as the samples' patient; its events are kept, not delivered.
    async fn open_case(&self, seeder: &Seeder, platform: &Arc<Platform>) -> anyhow::Result<String> {
        let callers = Callers::of(seeder)?;
        let booked = seeder
            .http(platform, "POST", "/checkups", (&callers.patient, PATIENT.group), &|| {
                Some(booking_body(seeder))
            })
            .await?;
        booked["id"].as_str().map(str::to_owned).context("a booking without an id")
    }

    /// The patient cancels the booking.
    async fn end_case(&self, seeder: &Seeder, id: &str) -> anyhow::Result<()> {
        let callers = Callers::of(seeder)?;
        seeder
            .http(
                seeder.platform(),
                "POST",
                &format!("/checkups/{id}/cancel"),
                (&callers.patient, PATIENT.group),
                &|| None,
            )
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

impl Checkup {
    /// A settled booking (the centre has it; its view exists).
    async fn settled(&self, seeder: &Seeder) -> anyhow::Result<String> {
        let id = self.open_case(seeder, seeder.platform()).await?;
        seeder.settle(None).await?;
        Ok(id)
    }
}

/// The callers of the samples: the patient who books, the centre staff member who decides.
struct Callers {
    patient: String,
    centre: String,
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
            patient: sub(BOOK, "book-basic.json")?,
            centre: sub(CONFIRM, "confirm.json")?,
        })
    }
}

/// A booking request with a date and phone number of its own (the dates stay within the
/// booking horizon; the capacity is raised so that none fills up).
fn booking_body(seeder: &Seeder) -> Value {
    let n = seeder.next();
    let date = Utc::now().date_naive() + chrono::Duration::days(30 + (n % 300) as i64);
    json!({
        "date": date.to_string(),
        "package": "basic",
        "name": "홍길동",
        "phone": format!("010-{:04}-{:04}", 1000 + (n / 10_000) % 9000, n % 10_000),
        "card_token": "tok_ok",
        "locale": "ko",
    })
}

/// The saga: book → the centre confirms → the view shows `confirmed` → the confirmation SMS.
static SAGA: SagaSpec = SagaSpec {
    description: "book → confirm → view confirmed → SMS",
    opener: ("bench-patient", PATIENT.group),
    // A patient may hold several bookings at once: every worker books as the same one.
    opener_per_worker: false,
    open_path: "/checkups",
    open_step: "book",
    setup: None,
    open_body: saga_booking,
    steps: &[
        SagaStep {
            name: "centre confirm",
            caller: Some(SagaCaller::new("bench-centre-staff", checkup::CENTRE.group)),
            action: SagaAction::Act {
                path: |case| format!("/centre/checkups/{}/confirm", case.id),
                body: None,
                status: 200,
                keep: false,
            },
        },
        SagaStep {
            name: "view",
            caller: None,
            action: SagaAction::View {
                path: |case| format!("/checkups/{}", case.id),
                settled: "confirmed",
                shown: None,
            },
        },
    ],
    // The word of the Korean confirmation SMS (`… 확정되었습니다`).
    sms_word: "확정",
    throughput: "local_sagas_per_s",
    open_latency: "booking_latency_ms",
    saga_latency: "saga_latency_ms",
};

/// The booking request of saga `n`: its own phone number, one of [`DATES`] dates (the saga
/// has no setup).
fn saga_booking(n: u64, _setup: &str) -> anyhow::Result<(Vec<u8>, String)> {
    // A Korean mobile number `010-HHHH-LLLL` (the subscriber part cannot start with 0).
    let (high, low) = (1000 + (n / 10_000) % 9000, n % 10_000);
    let date = Utc::now().date_naive() + chrono::Duration::days(2 + (n % DATES) as i64);
    let body = serde_json::to_vec(&json!({
        "date": date.to_string(),
        "package": "basic",
        "name": "홍길동",
        "phone": format!("010-{high:04}-{low:04}"),
        "card_token": "tok_ok",
    }))?;
    Ok((body, format!("+8210{high:04}{low:04}")))
}

/// What one booking saga (book → the centre confirms → view confirmed → two SMS; the
/// patient reads the status once) does on AWS.
static MODEL: AwsModel = AwsModel {
    invocations: &[
        (BOOK, 1.0),
        (CENTRE_WORKLIST, 1.0),
        (CONFIRM, 1.0),
        (SMS_NOTIFIER, 2.0),
        (QUERY, 1.0),
        // Stream batches of the check-up, payment and centre tables: the booking's, the
        // worklist's and the confirmation's commits, and the publish marks after them.
        (STATUS_PROJECTOR, 6.0),
    ],
    // Book, confirm, one status read.
    http_requests: 3.0,
    events: 4.0,
    // Items written in transactions count twice (booking, payment, place, outbox events,
    // contact, idempotency; worklist entry, mark and event; confirmation, centre decision
    // and event), plus the projector's view puts, the notifier's records and marks, and the
    // publish marks.
    wru: 60.0,
    // Strongly consistent reads of aggregates, views, marks.
    rru: 20.0,
    // Book; EventBridge delivers CheckupBooked to the centre's worklist; (the centre decides:
    // human time, not counted); confirm; the stream delivers the confirmation to the
    // projector while EventBridge delivers it to the notifier, in parallel (the stream is the
    // slower hop).
    critical_path: &["book", CENTRE_WORKLIST, "confirm", STATUS_PROJECTOR, SMS_NOTIFIER],
    eventbridge_hops: 1.0,
    stream_hops: 1.0,
    projected: "projected_aws_saga_ms",
    cost: "aws_usd_per_1000_bookings",
};

/// The handler figures' cases, in the order they are reported.
const HTTP_CASES: &[HttpCase] = &[
    HttpCase {
        name: "book",
        function: BOOK,
        status: 201,
    },
    HttpCase {
        name: "cancel",
        function: CANCEL,
        status: 202,
    },
    HttpCase {
        name: "confirm",
        function: CONFIRM,
        status: 200,
    },
    HttpCase {
        name: "reject",
        function: REJECT,
        status: 200,
    },
    HttpCase {
        name: "get",
        function: QUERY,
        status: 200,
    },
    HttpCase {
        name: "list",
        function: QUERY,
        status: 200,
    },
    HttpCase {
        name: "centre_list",
        function: QUERY,
        status: 200,
    },
];

/// The event each consumer is measured on: its sample file, and which event of a booking it
/// is (`CheckupBooked` opens it, `CheckupCancelled` ends it).
const CONSUMER_SAMPLES: &[(&str, &str, Moment)] = &[
    (CENTRE_WORKLIST, "centre-worklist/checkup-booked.json", Moment::Opens),
    (AVAILABILITY_RELEASE, "availability-release/checkup-cancelled.json", Moment::Ends),
    (PAYMENT_REFUND, "payment-refund/checkup-cancelled.json", Moment::Ends),
    (SMS_NOTIFIER, "sms-notifier/checkup-booked.json", Moment::Opens),
];

/// The sample events of the handler figures, read once.
struct Samples {
    book: String,
    cancel: String,
    confirm: String,
    reject: String,
    get: String,
    list: String,
    centre_list: String,
    /// The body of `book`, for the bookings made in setup.
    book_input: BookInput,
    /// The caller of `book` (who books in setup).
    patient: String,
    /// The caller of `cancel` (who owns the bookings it cancels).
    canceller: String,
    /// Each consumer's EventBridge sample and which event it gets.
    consumers: HashMap<&'static str, (Value, Moment)>,
    /// The EventBridge sample the event floor echoes.
    echo_event: String,
    /// The projector's stream batch (two events to project, two items skipped).
    stream: String,
}

impl Samples {
    fn load(config: &Config) -> anyhow::Result<Self> {
        let mut book = read("checkup-book/book-basic.json")?;
        let mut centre_list = read("checkup-query/centre-list.json")?;
        let event: Value = serde_json::from_str(&book)?;
        let body = event["body"].as_str().context("the book sample has no body")?;
        let input: BookInput = serde_json::from_str(body).context("the book sample's body")?;
        let date = input.date.clone().context("the book sample has no date")?;
        // A sample date that has passed (or is beyond the horizon) moves to a month ahead,
        // in the booking and in the centre's list alike.
        if parse_future_date("date", &date, Utc::now(), config.slice::<CheckupConfig>().booking_horizon_days).is_err() {
            let moved = (today_in_korea(Utc::now()) + chrono::Days::new(30)).to_string();
            book = book.replace(&date, &moved);
            centre_list = centre_list.replace(&date, &moved);
        }
        let event: Value = serde_json::from_str(&book)?;
        let book_input: BookInput = serde_json::from_str(event["body"].as_str().context("the book sample has no body")?)?;
        let mut consumers = HashMap::new();
        for (target, file, moment) in CONSUMER_SAMPLES {
            consumers.insert(*target, (serde_json::from_str(&read(file)?)?, *moment));
        }
        let cancel = read("checkup-cancel/cancel.json")?;
        Ok(Self {
            patient: sub_of(&book)?,
            canceller: sub_of(&cancel)?,
            book,
            cancel,
            confirm: read("centre-confirm/confirm.json")?,
            reject: read("centre-reject/reject.json")?,
            get: read("checkup-query/get-one.json")?,
            list: read("checkup-query/list-mine.json")?,
            centre_list,
            book_input,
            consumers,
            echo_event: read("centre-worklist/checkup-booked.json")?,
            stream: read("status-projector/booked-and-paid.json")?,
        })
    }

    /// Books the sample check-up as `sub`; returns the events it published.
    async fn book(&self, ctx: &Ctx, sub: &str) -> anyhow::Result<Vec<EventEnvelope>> {
        ctx.publisher.take();
        let actor = Actor { sub: sub.to_owned() };
        usecase::book(&ctx.platform, &actor, self.book_input.clone(), None, "bench-setup")
            .await
            .map_err(|e| anyhow!("setup: booking failed: {e}"))?;
        Ok(ctx.publisher.take())
    }

    /// Books as `sub` and returns the `CheckupBooked` event.
    async fn booked(&self, ctx: &Ctx, sub: &str) -> anyhow::Result<EventEnvelope> {
        find(self.book(ctx, sub).await?, "CheckupBooked")
    }

    /// Books as `sub` and puts the booking on the centre's work list; returns its id.
    async fn received(&self, ctx: &Ctx, sub: &str) -> anyhow::Result<String> {
        let booked = self.booked(ctx, sub).await?;
        consumers::dispatch(&ctx.platform, CENTRE_WORKLIST, &booked)
            .await
            .map_err(|e| anyhow!("setup: {CENTRE_WORKLIST} failed: {e}"))?;
        ctx.publisher.take();
        Ok(booked.aggregate_id)
    }
}

#[async_trait(?Send)]
impl Handlers for Samples {
    fn http_cases(&self) -> &[HttpCase] {
        HTTP_CASES
    }

    fn entry_event(&self) -> &str {
        &self.book
    }

    fn echo_event(&self) -> &str {
        &self.echo_event
    }

    async fn prepare(&self, case: &HttpCase, ctx: &Ctx) -> anyhow::Result<String> {
        Ok(match case.name {
            "book" => self.book.clone(),
            "cancel" => self.cancel.clone(),
            "confirm" => self.confirm.clone(),
            "reject" => self.reject.clone(),
            "get" | "list" | "centre_list" => {
                let patient = sub_of(&self.list)?;
                let mut first = None;
                for _ in 0..SEEDED {
                    for e in self.book(ctx, &patient).await? {
                        first.get_or_insert_with(|| e.correlation_id.clone());
                        projector::project(&ctx.platform, &e)
                            .await
                            .map_err(|err| anyhow!("setup: projecting {} failed: {err}", e.event_type))?;
                    }
                }
                let first = first.context("setup: nothing was booked")?;
                match case.name {
                    "get" => self.get.replace(SAMPLE_ID, &first),
                    "list" => self.list.clone(),
                    _ => self.centre_list.clone(),
                }
            }
            other => bail!("no check-up handler case {other}"),
        })
    }

    async fn event(&self, case: &HttpCase, ctx: &Ctx, prepared: &str) -> anyhow::Result<Option<String>> {
        Ok(match case.name {
            "cancel" => {
                let booked = self.booked(ctx, &self.canceller).await?;
                Some(prepared.replace(SAMPLE_ID, &booked.aggregate_id))
            }
            "confirm" | "reject" => {
                let id = self.received(ctx, &self.patient).await?;
                Some(prepared.replace(SAMPLE_ID, &id))
            }
            _ => None,
        })
    }

    fn check(&self, case: &HttpCase, body: &Value) -> anyhow::Result<()> {
        let found = match case.name {
            "get" => usize::from(body.get("id").is_some()),
            "list" | "centre_list" => body["items"].as_array().map_or(0, Vec::len),
            _ => return Ok(()),
        };
        ensure!(found > 0, "the query found nothing: {body}");
        Ok(())
    }

    fn consumer_sample(&self, target: &str) -> Option<(&Value, Moment)> {
        self.consumers.get(target).map(|(sample, moment)| (sample, *moment))
    }

    async fn opened(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope> {
        self.booked(ctx, &self.patient).await
    }

    async fn ended(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope> {
        let booked = self.booked(ctx, &self.patient).await?;
        let actor = Actor { sub: self.patient.clone() };
        usecase::cancel(&ctx.platform, &actor, &booked.aggregate_id, "bench-setup")
            .await
            .map_err(|e| anyhow!("setup: cancelling failed: {e}"))?;
        find(ctx.publisher.take(), "CheckupCancelled")
    }

    fn stream_event(&self, id: &str) -> String {
        self.stream.replace(SAMPLE_ID, id)
    }

    fn view_key(&self, id: &str) -> String {
        view::view_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check-up figures keep the names BENCHMARKS.md and earlier results use (the other
    /// fixtures' figures set aside: their HTTP cases and their slices' consumers).
    #[test]
    fn the_figures_keep_their_names() {
        let config = crate::slices::config();
        let mut others = Vec::new();
        for fixture in crate::slices::all().iter().filter(|f| f.slice().name != checkup::SLICE.name) {
            let handlers = fixture.handlers(&config).expect("samples");
            others.extend(handlers.http_cases().iter().map(|c| format!("handler_us.{}", c.name)));
            others.extend(fixture.slice().functions.iter().map(|f| format!("handler_us.{}", f.name)));
        }
        let mut names = crate::handlers::figure_names().expect("the cases");
        names.retain(|n| !others.contains(n));
        names.sort();
        let mut expected: Vec<String> = [
            "book",
            "cancel",
            "confirm",
            "reject",
            "get",
            "list",
            "centre_list",
            "availability-release",
            "payment-refund",
            "centre-worklist",
            "sms-notifier",
            "status-projector",
            "outbox-sweeper",
            "platform-api",
            "echo_http",
            "echo_event",
        ]
        .iter()
        .map(|n| format!("handler_us.{n}"))
        .collect();
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(
            [SAGA.throughput, SAGA.open_latency, SAGA.saga_latency],
            ["local_sagas_per_s", "booking_latency_ms", "saga_latency_ms"]
        );
        assert_eq!(
            [MODEL.projected, MODEL.cost],
            ["projected_aws_saga_ms", "aws_usd_per_1000_bookings"]
        );
    }

    #[test]
    fn the_saga_bookings_differ_and_their_phones_are_e164() {
        let (a, to_a) = saga_booking(1, "").expect("a body");
        let (b, to_b) = saga_booking(2, "").expect("a body");
        assert_ne!(a, b);
        assert_ne!(to_a, to_b);
        assert!(to_a.starts_with("+8210") && to_a.len() == 13, "{to_a}");
    }

    #[test]
    fn every_http_function_of_the_slice_gets_requests() {
        for f in checkup::SLICE.functions {
            if f.trigger == clinicflow::topology::Trigger::Http {
                assert!(Checkup.http_functions().contains(&f.name), "{}", f.name);
            }
        }
    }
}
