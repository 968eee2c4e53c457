//! The vaccine slice's bench fixture: a case is a reservation. It is opened by an
//! administrator registering a fresh slot (`POST /vaccine/slots`) and a citizen of its own
//! reserving a dose of it (`POST /vaccine/reservations`): a citizen holds at most one active
//! reservation per vaccine, so every case has its own. It is settled once its slot's notice
//! and its booking SMS went out and its view exists, and ended by the citizen's
//! cancellation (whose dose `vaccine-dose-return` gives back). The saga measured end to end
//! is reserve → the hospital marks the dose given → the view shows `fulfilled` → the
//! reservation's SMS (fulfilment sends none: the reservation's confirmation is the saga's
//! last SMS).
//!
//! A waiting list can only be joined on an empty slot, and a dose is only held for a
//! waiting entry when a reservation of its slot is cancelled while it waits: the waiting
//! list's and the acceptance's requests are each made on a one-dose slot of their own that a
//! filler citizen took (and, for the acceptance, gave back).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail, ensure};
use async_trait::async_trait;
use chrono::Utc;
use clinicflow::app::command::{self, Accepted};
use clinicflow::app::{Platform, consumers, projector};
use clinicflow::config::Config;
use clinicflow::domain::{Actor, today_in_korea};
use clinicflow::events::EventEnvelope;
use clinicflow::flows::vaccine::commands::{self as usecase, MAX_QUANTITY, Outcome, ReserveInput, SlotInput, WaitlistInput};
use clinicflow::flows::vaccine::config::VaccineConfig;
use clinicflow::flows::vaccine::faults::{
    ACCEPT, CANCEL, DOSE_RETURN, FULFIL, NOSHOW, QUERY, RESERVE, SLOT_CLOSE, SLOT_DOSES, SLOT_NOTICE, SLOT_OPEN, SUBSCRIBE, WAITLIST,
};
use clinicflow::flows::vaccine::reservation::Reservation;
use clinicflow::flows::vaccine::{self, VACCINE_ADMIN, view};
use clinicflow::topology::{PATIENT, SMS_NOTIFIER, STATUS_PROJECTOR, Slice};
use serde_json::{Value, json};

use super::{AwsModel, Fixture, Handlers, HttpCase, Moment, SagaAction, SagaCaller, SagaSetup, SagaSpec, SagaStep};
use crate::handlers::{Ctx, find, read, sub_of};
use crate::lambda::seed::{Seeder, http_event};

/// The vaccine slice's fixture.
pub struct Vaccine;

/// The reservation the sample events name.
const SAMPLE_RESERVATION: &str = "01KBVAC0000000000000000005";
/// The hospital and vaccine of the fixture's slots (the samples' own; the slot list sample
/// filters on them).
const HOSPITAL: &str = "seoul-central";
const VACCINE: &str = "pfizer";
/// The shard counters of the saga's slot, and of the slots the handler figures reserve on:
/// several, as a slot a rush hits is registered (a reservation reads them all first).
const SHARDS: u8 = 8;
/// The doses of a case's slot on the emulator (one of them its reservation's).
const CASE_DOSES: u32 = 10;
/// Reservations (of the samples' citizen) and slots behind the handler figures' queries.
const SEEDED: usize = 20;
/// Slots are spread over this many dates (from 30 days ahead, well within the default
/// 365-day horizon).
const DATES: u64 = 300;
/// Reservations one platform instance works on at once: far above the saga's 32 workers,
/// so that none of them is ever shed (the gate is the local stack's stand-in for a Lambda
/// function's reserved concurrency).
const IN_FLIGHT: usize = 1024;
/// The administrator of the saga's setup and fulfilment.
const SAGA_ADMIN: (&str, &str) = ("bench-vaccine-admin", VACCINE_ADMIN.group);
/// The causation of the setup made in-process.
const SETUP: &str = "bench-setup";

#[async_trait]
impl Fixture for Vaccine {
    fn slice(&self) -> &'static Slice {
        &vaccine::SLICE
    }

    /// No shedding under the bench's load. The doses never run out: a slot's quantity is the
    /// request's (the saga's slot has the most a slot may hold), not a setting.
    fn configure(&self, config: &mut Config) {
        config.slice_mut::<VaccineConfig>().max_in_flight = IN_FLIGHT;
    }

    fn entry(&self) -> &'static str {
        RESERVE
    }

    fn http_functions(&self) -> &'static [&'static str] {
        &[
            SLOT_OPEN, SLOT_DOSES, SLOT_CLOSE, QUERY, SUBSCRIBE, RESERVE, CANCEL, WAITLIST, ACCEPT, FULFIL, NOSHOW,
        ]
    }

    async fn http_events(&self, seeder: &Seeder, function: &str, count: usize) -> anyhow::Result<Vec<Value>> {
        let admin = Callers::of(seeder)?.admin;
        let mut out = Vec::with_capacity(count);
        match function {
            SLOT_OPEN => {
                let template = seeder.sample(function, "open.json")?;
                let mut body = sample_body(&template)?;
                for _ in 0..count {
                    body["date"] = json!(slot_date(seeder.next()));
                    out.push(http_event(&template, "/vaccine/slots", None, Some(&body), &admin));
                }
            }
            SLOT_DOSES | SLOT_CLOSE => {
                let (file, action) = if function == SLOT_DOSES {
                    ("add.json", "doses")
                } else {
                    ("close.json", "close")
                };
                let template = seeder.sample(function, file)?;
                let body = template["body"].as_str().and_then(|b| serde_json::from_str::<Value>(b).ok());
                for _ in 0..count {
                    let slot = self.seed_slot(seeder, seeder.platform(), CASE_DOSES, 1).await?;
                    seeder.settle(None).await?;
                    let path = format!("/vaccine/slots/{slot}/{action}");
                    out.push(http_event(&template, &path, Some(&slot), body.as_ref(), &admin));
                }
            }
            QUERY => {
                let get = seeder.sample(function, "reservation.json")?;
                let mine = seeder.sample(function, "my-reservations.json")?;
                let slot = seeder.sample(function, "slot.json")?;
                let slots = seeder.sample(function, "slots.json")?;
                for i in 0..count {
                    let id = self.settled(seeder).await?;
                    let case = owner(seeder, &id).await?;
                    out.push(match i % 4 {
                        0 => http_event(&get, &format!("/vaccine/reservations/{id}"), Some(&id), None, &case.patient_sub),
                        1 => http_event(&mine, "/vaccine/reservations", None, None, &case.patient_sub),
                        2 => http_event(
                            &slot,
                            &format!("/vaccine/slots/{}", case.slot_id),
                            Some(&case.slot_id),
                            None,
                            &admin,
                        ),
                        _ => http_event(&slots, "/vaccine/slots", None, None, &case.patient_sub),
                    });
                }
            }
            SUBSCRIBE => {
                let template = seeder.sample(function, "subscribe.json")?;
                let body = sample_body(&template)?;
                for _ in 0..count {
                    out.push(http_event(
                        &template,
                        "/vaccine/subscriptions",
                        None,
                        Some(&body),
                        &citizen(seeder.next()),
                    ));
                }
            }
            RESERVE => {
                // One slot with a dose for each, reserved by a citizen of its own.
                let template = seeder.sample(function, "reserve.json")?;
                let slot = self.seed_slot(seeder, seeder.platform(), count.max(1) as u32, 1).await?;
                seeder.settle(None).await?;
                for _ in 0..count {
                    let n = seeder.next();
                    let mut event = http_event(
                        &template,
                        "/vaccine/reservations",
                        None,
                        Some(&reservation_body(&slot, n)),
                        &citizen(n),
                    );
                    event["headers"]["idempotency-key"] = json!(format!("bench-reserve-{}", ulid::Ulid::new()));
                    out.push(event);
                }
            }
            CANCEL => {
                let template = seeder.sample(function, "cancel.json")?;
                for _ in 0..count {
                    let id = self.settled(seeder).await?;
                    let case = owner(seeder, &id).await?;
                    let path = format!("/vaccine/reservations/{id}/cancel");
                    out.push(http_event(&template, &path, Some(&id), None, &case.patient_sub));
                }
            }
            FULFIL | NOSHOW => {
                let (file, action) = if function == FULFIL {
                    ("fulfil.json", "fulfil")
                } else {
                    ("noshow.json", "noshow")
                };
                let template = seeder.sample(function, file)?;
                for _ in 0..count {
                    let id = self.settled(seeder).await?;
                    let path = format!("/vaccine/reservations/{id}/{action}");
                    out.push(http_event(&template, &path, Some(&id), None, &admin));
                }
            }
            WAITLIST => {
                let template = seeder.sample(function, "join.json")?;
                let body = sample_body(&template)?;
                for _ in 0..count {
                    let slot = self.seed_full_slot(seeder).await?.0;
                    seeder.settle(None).await?;
                    let path = format!("/vaccine/slots/{slot}/waitlist");
                    out.push(http_event(&template, &path, Some(&slot), Some(&body), &citizen(seeder.next())));
                }
            }
            ACCEPT => {
                let template = seeder.sample(function, "nothing-held-yet.json")?;
                let join = sample_body(&seeder.sample(WAITLIST, "join.json")?)?;
                for _ in 0..count {
                    // A full slot, a citizen waiting on it, the filler's cancellation: its
                    // dose is held for the waiting entry once settled.
                    let (slot, filler, held) = self.seed_full_slot(seeder).await?;
                    let waiter = citizen(seeder.next());
                    let path = format!("/vaccine/slots/{slot}/waitlist");
                    let entry = id_of(
                        &seeder
                            .http(seeder.platform(), "POST", &path, (&waiter, PATIENT.group), &|| Some(join.clone()))
                            .await?,
                    )?;
                    seeder.settle(None).await?;
                    let cancel = format!("/vaccine/reservations/{held}/cancel");
                    seeder
                        .http(seeder.platform(), "POST", &cancel, (&filler, PATIENT.group), &|| None)
                        .await?;
                    seeder.settle(None).await?;
                    let path = format!("/vaccine/offers/{entry}/accept");
                    out.push(http_event(&template, &path, Some(&entry), None, &waiter));
                }
            }
            other => bail!("the vaccine fixture makes no request for {other}"),
        }
        Ok(out)
    }

    /// An administrator registers a slot of its own, and a citizen of its own reserves a dose
    /// of it; their events are kept, not delivered.
    async fn open_case(&self, seeder: &Seeder, platform: &Arc<Platform>) -> anyhow::Result<String> {
        let slot = self.seed_slot(seeder, platform, CASE_DOSES, 1).await?;
        let n = seeder.next();
        self.seed_reservation(seeder, platform, &citizen(n), &slot, n).await
    }

    /// The citizen cancels the reservation.
    async fn end_case(&self, seeder: &Seeder, id: &str) -> anyhow::Result<()> {
        let case = owner(seeder, id).await?;
        seeder
            .http(
                seeder.platform(),
                "POST",
                &format!("/vaccine/reservations/{id}/cancel"),
                (&case.patient_sub, PATIENT.group),
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

impl Vaccine {
    /// A settled reservation (its slot announced, its SMS sent, its view written).
    async fn settled(&self, seeder: &Seeder) -> anyhow::Result<String> {
        let id = self.open_case(seeder, seeder.platform()).await?;
        seeder.settle(None).await?;
        Ok(id)
    }

    /// Registers a slot on `platform` as the samples' administrator; returns its id.
    async fn seed_slot(&self, seeder: &Seeder, platform: &Arc<Platform>, quantity: u32, shards: u8) -> anyhow::Result<String> {
        let admin = Callers::of(seeder)?.admin;
        let body = slot_body(&slot_date(seeder.next()), quantity, shards);
        let opened = seeder
            .http(platform, "POST", "/vaccine/slots", (&admin, VACCINE_ADMIN.group), &|| {
                Some(body.clone())
            })
            .await?;
        id_of(&opened)
    }

    /// Citizen `sub` reserves a dose of `slot` on `platform`; returns the reservation's id.
    async fn seed_reservation(&self, seeder: &Seeder, platform: &Arc<Platform>, sub: &str, slot: &str, n: u64) -> anyhow::Result<String> {
        let body = reservation_body(slot, n);
        let reserved = seeder
            .http(platform, "POST", "/vaccine/reservations", (sub, PATIENT.group), &|| {
                Some(body.clone())
            })
            .await?;
        id_of(&reserved)
    }

    /// A one-dose slot whose dose a filler citizen reserved (not settled): the slot, the
    /// filler and its reservation.
    async fn seed_full_slot(&self, seeder: &Seeder) -> anyhow::Result<(String, String, String)> {
        let slot = self.seed_slot(seeder, seeder.platform(), 1, 1).await?;
        let n = seeder.next();
        let filler = citizen(n);
        let held = self.seed_reservation(seeder, seeder.platform(), &filler, &slot, n).await?;
        Ok((slot, filler, held))
    }
}

/// The callers of the samples the fixture keeps: the administrator (the citizens are each
/// case's own).
struct Callers {
    admin: String,
}

impl Callers {
    fn of(seeder: &Seeder) -> anyhow::Result<Self> {
        Ok(Self {
            admin: seeder.sample(SLOT_OPEN, "open.json")?["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
                .as_str()
                .map(str::to_owned)
                .context("vaccine-slot-open/open.json has no caller")?,
        })
    }
}

/// A case's reservation as stored: who made it, on which slot.
async fn owner(seeder: &Seeder, id: &str) -> anyhow::Result<Reservation> {
    command::load::<Reservation>(seeder.platform(), id)
        .await
        .map_err(|e| anyhow!("reading reservation {id}: {e}"))?
        .state
        .with_context(|| format!("reservation {id} does not exist"))
}

/// The subject of citizen `n`.
fn citizen(n: u64) -> String {
    format!("bench-citizen-{n}")
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

/// One of [`DATES`] dates from 30 days ahead (Korean time), for number `n`.
fn slot_date(n: u64) -> String {
    (today_in_korea(Utc::now()) + chrono::Days::new(30 + n % DATES)).to_string()
}

/// A registration of a slot at the fixture's hospital, of its vaccine.
fn slot_body(date: &str, quantity: u32, shards: u8) -> Value {
    json!({
        "date": date,
        "hospital": HOSPITAL,
        "vaccine": VACCINE,
        "quantity": quantity,
        "shards": shards,
    })
}

/// A Korean mobile number of its own for number `n`: `010-HHHH-LLLL` (the subscriber part
/// cannot start with 0) and its E.164 form.
fn phone(n: u64) -> (String, String) {
    let (high, low) = (1000 + (n / 10_000) % 9000, n % 10_000);
    (format!("010-{high:04}-{low:04}"), format!("+8210{high:04}{low:04}"))
}

/// A reservation request on `slot`, with phone number `n`.
fn reservation_body(slot: &str, n: u64) -> Value {
    json!({
        "slot_id": slot,
        "name": "홍길동",
        "phone": phone(n).0,
        "locale": "ko",
    })
}

/// The saga: reserve → the hospital marks the dose given → the view shows `fulfilled` → the
/// reservation's SMS. Every worker reserves as a citizen of its own (one active reservation
/// per vaccine and citizen; the fulfilment ends the hold, so the worker's next saga may
/// reserve again), all on the one slot the setup registers.
static SAGA: SagaSpec = SagaSpec {
    description: "reserve → hospital fulfil → view fulfilled → SMS",
    opener: ("bench-citizen", PATIENT.group),
    opener_per_worker: true,
    open_path: "/vaccine/reservations",
    open_step: "reserve",
    setup: Some(SagaSetup {
        caller: SAGA_ADMIN,
        path: "/vaccine/slots",
        body: saga_slot,
    }),
    open_body: saga_reservation,
    steps: &[
        SagaStep {
            name: "hospital fulfil",
            caller: Some(SagaCaller::new(SAGA_ADMIN.0, SAGA_ADMIN.1)),
            action: SagaAction::Act {
                path: |case| format!("/vaccine/reservations/{}/fulfil", case.id),
                body: None,
                status: 200,
                keep: false,
            },
        },
        SagaStep {
            name: "view",
            caller: None,
            action: SagaAction::View {
                path: |case| format!("/vaccine/reservations/{}", case.id),
                settled: "fulfilled",
                shown: None,
            },
        },
    ],
    // The word of the Korean reservation SMS (`백신 접종이 예약되었습니다. … 예약번호 …`).
    sms_word: "예약되었습니다",
    throughput: "local_vaccine_sagas_per_s",
    open_latency: "reservation_latency_ms",
    saga_latency: "vaccine_saga_latency_ms",
};

/// The saga's slot: the most doses a slot may hold, a month ahead, over [`SHARDS`] counters.
fn saga_slot() -> anyhow::Result<Value> {
    Ok(slot_body(&slot_date(0), MAX_QUANTITY, SHARDS))
}

/// The reservation request of saga `n` on the setup's slot: its own phone number.
fn saga_reservation(n: u64, slot: &str) -> anyhow::Result<(Vec<u8>, String)> {
    let body = serde_json::to_vec(&reservation_body(slot, n))?;
    Ok((body, phone(n).1))
}

/// What one reservation saga (reserve → the hospital marks the dose given → view
/// fulfilled → one SMS; the citizen reads the status once) does on AWS.
static MODEL: AwsModel = AwsModel {
    invocations: &[
        (RESERVE, 1.0),
        (FULFIL, 1.0),
        // The reservation's SMS (the fulfilment has none).
        (SMS_NOTIFIER, 1.0),
        (QUERY, 1.0),
        // Stream batches of the reservations table (the reservation's and the fulfilment's
        // commits, and the publish marks after them) and of slot management's (the shard
        // counter the reservation took its dose from).
        (STATUS_PROJECTOR, 5.0),
    ],
    // Reserve, fulfil, one status read.
    http_requests: 3.0,
    // ReservationBooked, ReservationFulfilled.
    events: 2.0,
    // Items written in transactions count twice: the reservation, its outbox event, the
    // shard counter, the citizen's hold and the idempotency record (10); the fulfilment, its
    // event and the hold released (6); the outbox index's writes (2); the two publish marks
    // and their index deletes (4); the projector's two view puts with their indexes (6); the
    // notifier's claim and settlement with the contact and its mark (8).
    wru: 36.0,
    // Strongly consistent reads: the idempotency key, the slot and each of its shard
    // counters (2 + SHARDS); the reservation the fulfilment loads (1); the status read (1);
    // the projector's two view reads (2); the notifier's mark, contact and record (3).
    rru: 9.0 + SHARDS as f64,
    // Reserve; fulfil (the hospital's decision is human time, not counted; nothing has to
    // reach it through the bus first); the stream delivers the fulfilment to the projector.
    // The reservation's SMS goes through EventBridge meanwhile, in parallel: its hop is
    // shorter than the stream's plus the fulfilment.
    critical_path: &["vaccine_reserve", "vaccine_fulfil", STATUS_PROJECTOR],
    eventbridge_hops: 0.0,
    stream_hops: 1.0,
    projected: "projected_aws_vaccine_saga_ms",
    cost: "aws_usd_per_1000_reservations",
};

/// The handler figures' cases, in the order they are reported.
const HTTP_CASES: &[HttpCase] = &[
    HttpCase {
        name: "vaccine_reserve",
        function: RESERVE,
        status: 201,
    },
    HttpCase {
        name: "vaccine_cancel",
        function: CANCEL,
        status: 202,
    },
    HttpCase {
        name: "vaccine_fulfil",
        function: FULFIL,
        status: 200,
    },
    HttpCase {
        name: "vaccine_noshow",
        function: NOSHOW,
        status: 200,
    },
    HttpCase {
        name: "vaccine_waitlist",
        function: WAITLIST,
        status: 201,
    },
    HttpCase {
        name: "vaccine_accept",
        function: ACCEPT,
        status: 201,
    },
    HttpCase {
        name: "vaccine_slot_open",
        function: SLOT_OPEN,
        status: 201,
    },
    HttpCase {
        name: "vaccine_slot_doses",
        function: SLOT_DOSES,
        status: 200,
    },
    HttpCase {
        name: "vaccine_slot_close",
        function: SLOT_CLOSE,
        status: 200,
    },
    HttpCase {
        name: "vaccine_subscribe",
        function: SUBSCRIBE,
        status: 201,
    },
    HttpCase {
        name: "vaccine_get",
        function: QUERY,
        status: 200,
    },
    HttpCase {
        name: "vaccine_list",
        function: QUERY,
        status: 200,
    },
    HttpCase {
        name: "vaccine_slots",
        function: QUERY,
        status: 200,
    },
];

/// The event each consumer of the slice is measured on: its sample file, and which event of
/// a case it is (`SlotOpened` opens one, its slot being registered first;
/// `ReservationCancelled` ends it). The SMS notifier is measured on the first fixture's.
const CONSUMER_SAMPLES: &[(&str, &str, Moment)] = &[
    (SLOT_NOTICE, "vaccine-slot-notice/slot-opened.json", Moment::Opens),
    (DOSE_RETURN, "vaccine-dose-return/reservation-cancelled.json", Moment::Ends),
];

/// The slot the handler figures' reservations take their doses from, on the platform of the
/// criterion sample being prepared, and the doses it has left.
#[derive(Debug, Default)]
struct Pool {
    slot: String,
    left: u32,
}

/// The sample events of the handler figures, read once, and the state of the sample being
/// measured.
struct Samples {
    reserve: Value,
    cancel: Value,
    fulfil: Value,
    noshow: Value,
    waitlist: Value,
    accept: Value,
    /// The registration, its date moved to a valid one.
    slot_open: String,
    slot_doses: Value,
    slot_close: Value,
    subscribe: String,
    get: Value,
    list: String,
    slots: String,
    /// The entry event the HTTP floor would echo (the reservation sample, as it is).
    entry: String,
    /// The administrator of the samples.
    admin: String,
    /// The citizen of the query samples (who owns the reservations they read).
    patient: String,
    /// Each consumer's EventBridge sample and which event it gets.
    consumers: HashMap<&'static str, (Value, Moment)>,
    /// The EventBridge sample the event floor would echo.
    echo_event: String,
    /// The projector's stream batch of a reservation (booked, then cancelled).
    stream: String,
    /// The number of the next citizen of their own that a call needs.
    citizens: Cell<u64>,
    /// The slot the reservations of the current criterion sample are made on; emptied by
    /// [`Handlers::prepare`], so that each sample's first reservation opens one on its own
    /// platform.
    pool: RefCell<Pool>,
}

impl Samples {
    fn load(config: &Config) -> anyhow::Result<Self> {
        let json = |name: &str| -> anyhow::Result<Value> { Ok(serde_json::from_str(&read(name)?)?) };
        let mut open = json("vaccine-slot-open/open.json")?;
        let mut body = sample_body(&open)?;
        // The sample's date moves to a month ahead, or to the horizon if it is nearer (the
        // sample's may have passed).
        let ahead = config.slice::<VaccineConfig>().horizon_days.clamp(1, 30) as u64;
        body["date"] = json!((today_in_korea(Utc::now()) + chrono::Days::new(ahead)).to_string());
        open["body"] = json!(body.to_string());
        let mut consumers = HashMap::new();
        for (target, file, moment) in CONSUMER_SAMPLES {
            consumers.insert(*target, (json(file)?, *moment));
        }
        let list = read("vaccine-query/my-reservations.json")?;
        Ok(Self {
            admin: sub_of(&open.to_string())?,
            patient: sub_of(&list)?,
            reserve: json("vaccine-reserve/reserve.json")?,
            cancel: json("vaccine-cancel/cancel.json")?,
            fulfil: json("vaccine-fulfil/fulfil.json")?,
            noshow: json("vaccine-noshow/noshow.json")?,
            waitlist: json("vaccine-waitlist/join.json")?,
            accept: json("vaccine-accept/nothing-held-yet.json")?,
            slot_open: serde_json::to_string(&open)?,
            slot_doses: json("vaccine-slot-doses/add.json")?,
            slot_close: json("vaccine-slot-close/close.json")?,
            subscribe: read("vaccine-subscription/subscribe.json")?,
            get: json("vaccine-query/reservation.json")?,
            list,
            slots: read("vaccine-query/slots.json")?,
            entry: read("vaccine-reserve/reserve.json")?,
            consumers,
            echo_event: read("vaccine-dose-return/reservation-cancelled.json")?,
            stream: read("status-projector/vaccine-booked-cancelled.json")?,
            citizens: Cell::new(0),
            pool: RefCell::new(Pool::default()),
        })
    }

    /// A citizen of their own.
    fn citizen(&self) -> String {
        let n = self.citizens.get();
        self.citizens.set(n + 1);
        citizen(n)
    }

    /// Registers a slot of `quantity` doses over `shards` counters; returns its id and the
    /// events it published.
    async fn open_slot(&self, ctx: &Ctx, quantity: u32, shards: u8) -> anyhow::Result<(String, Vec<EventEnvelope>)> {
        ctx.publisher.take();
        let input = SlotInput {
            date: Some(slot_date(0)),
            hospital: Some(HOSPITAL.into()),
            vaccine: Some(VACCINE.into()),
            quantity: Some(json!(quantity)),
            shards: Some(json!(shards)),
        };
        let opened = usecase::open_slot(&ctx.platform, input, SETUP)
            .await
            .map_err(|e| anyhow!("setup: registering a slot failed: {e}"))?;
        Ok((id_of(&opened.body)?, ctx.publisher.take()))
    }

    /// A slot with a dose left for the current criterion sample: the pool's, or a new one
    /// once it is empty (or was emptied for a new sample).
    async fn dose(&self, ctx: &Ctx) -> anyhow::Result<String> {
        let taken = {
            let mut pool = self.pool.borrow_mut();
            (pool.left > 0).then(|| {
                pool.left -= 1;
                pool.slot.clone()
            })
        };
        if let Some(slot) = taken {
            return Ok(slot);
        }
        let (slot, _) = self.open_slot(ctx, MAX_QUANTITY, SHARDS).await?;
        *self.pool.borrow_mut() = Pool {
            slot: slot.clone(),
            left: MAX_QUANTITY - 1,
        };
        Ok(slot)
    }

    /// `sub` reserves a dose of `slot`; returns the reservation's id and the events it
    /// published.
    async fn reserve_on(&self, ctx: &Ctx, sub: &str, slot: &str) -> anyhow::Result<(String, Vec<EventEnvelope>)> {
        ctx.publisher.take();
        let input = ReserveInput {
            slot_id: Some(slot.to_owned()),
            name: Some("홍길동".into()),
            phone: Some("010-1234-5678".into()),
            locale: None,
        };
        let reserved = usecase::reserve(&ctx.platform, &Actor { sub: sub.to_owned() }, input, None, SETUP)
            .await
            .map_err(|e| anyhow!("setup: reserving failed: {e}"))?;
        Ok((id_of(&reserved.body)?, ctx.publisher.take()))
    }

    /// `sub` reserves a dose of the pool's slot; returns the reservation's id.
    async fn reserved(&self, ctx: &Ctx, sub: &str) -> anyhow::Result<String> {
        let slot = self.dose(ctx).await?;
        Ok(self.reserve_on(ctx, sub, &slot).await?.0)
    }

    /// A one-dose slot whose dose a filler citizen reserved: the slot, the filler and the
    /// reservation.
    async fn full_slot(&self, ctx: &Ctx) -> anyhow::Result<(String, String, String)> {
        let (slot, _) = self.open_slot(ctx, 1, 1).await?;
        let filler = self.citizen();
        let (held, _) = self.reserve_on(ctx, &filler, &slot).await?;
        Ok((slot, filler, held))
    }

    /// A waiting-list entry of a citizen of their own with a dose held for it: returns the
    /// entry and the citizen.
    async fn offered(&self, ctx: &Ctx) -> anyhow::Result<(String, String)> {
        let (slot, filler, held) = self.full_slot(ctx).await?;
        let waiter = self.citizen();
        let input = WaitlistInput {
            name: Some("Jane Doe".into()),
            phone: Some("+14155550123".into()),
            locale: Some("en".into()),
        };
        let joined = usecase::join_waitlist(&ctx.platform, &Actor { sub: waiter.clone() }, &slot, input, None, SETUP)
            .await
            .map_err(|e| anyhow!("setup: joining the waiting list failed: {e}"))?;
        let entry = id_of(&joined.body)?;
        ctx.publisher.take();
        let cancelled = self.cancelled(ctx, &filler, &held).await?;
        consumers::dispatch(&ctx.platform, DOSE_RETURN, &cancelled)
            .await
            .map_err(|e| anyhow!("setup: {DOSE_RETURN} failed: {e}"))?;
        ensure!(
            ctx.publisher.take().iter().any(|e| e.event_type == "DoseOffered"),
            "setup: the dose given back was not offered to the waiting entry"
        );
        Ok((entry, waiter))
    }

    /// `sub` cancels reservation `id`; returns the `ReservationCancelled` event.
    async fn cancelled(&self, ctx: &Ctx, sub: &str, id: &str) -> anyhow::Result<EventEnvelope> {
        ctx.publisher.take();
        usecase::cancel(&ctx.platform, &Actor { sub: sub.to_owned() }, id, SETUP)
            .await
            .map_err(|e| anyhow!("setup: cancelling failed: {e}"))?;
        find(ctx.publisher.take(), "ReservationCancelled")
    }

    /// Projects `events`.
    async fn project(ctx: &Ctx, events: &[EventEnvelope]) -> anyhow::Result<()> {
        for e in events {
            projector::project(&ctx.platform, e)
                .await
                .map_err(|err| anyhow!("setup: projecting {} failed: {err}", e.event_type))?;
        }
        Ok(())
    }

    /// [`SEEDED`] reservations of the query samples' citizen, each fulfilled (which ends its
    /// hold, so that the next may be made), projected; returns the first one's id.
    async fn seed_reservations(&self, ctx: &Ctx) -> anyhow::Result<String> {
        let mut first = None;
        for _ in 0..SEEDED {
            let slot = self.dose(ctx).await?;
            let (id, events) = self.reserve_on(ctx, &self.patient, &slot).await?;
            Self::project(ctx, &events).await?;
            mark(ctx, &id, Outcome::Fulfilled).await?;
            Self::project(ctx, &ctx.publisher.take()).await?;
            first.get_or_insert(id);
        }
        first.context("setup: nothing was reserved")
    }

    /// [`SEEDED`] open slots at the samples' hospital, of their vaccine, projected.
    async fn seed_slots(&self, ctx: &Ctx) -> anyhow::Result<()> {
        for _ in 0..SEEDED {
            let (_, events) = self.open_slot(ctx, 100, SHARDS).await?;
            Self::project(ctx, &events).await?;
        }
        Ok(())
    }

    fn event(template: &Value, path: &str, id: Option<&str>, body: Option<&Value>, sub: &str) -> anyhow::Result<String> {
        Ok(serde_json::to_string(&http_event(template, path, id, body, sub))?)
    }
}

/// The hospital marks reservation `id`.
async fn mark(ctx: &Ctx, id: &str, outcome: Outcome) -> anyhow::Result<Accepted> {
    usecase::mark(&ctx.platform, id, outcome, SETUP)
        .await
        .map_err(|e| anyhow!("setup: marking the reservation failed: {e}"))
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
        // A new sample, a new platform: its reservations take their doses from a slot of
        // its own.
        *self.pool.borrow_mut() = Pool::default();
        Ok(match case.name {
            "vaccine_slot_open" => self.slot_open.clone(),
            "vaccine_subscribe" => self.subscribe.clone(),
            "vaccine_get" => {
                let first = self.seed_reservations(ctx).await?;
                Self::event(
                    &self.get,
                    &format!("/vaccine/reservations/{first}"),
                    Some(&first),
                    None,
                    &self.patient,
                )?
            }
            "vaccine_list" => {
                self.seed_reservations(ctx).await?;
                self.list.clone()
            }
            "vaccine_slots" => {
                self.seed_slots(ctx).await?;
                self.slots.clone()
            }
            // Each call's event is made for a case of its own.
            "vaccine_reserve" | "vaccine_cancel" | "vaccine_fulfil" | "vaccine_noshow" | "vaccine_waitlist" | "vaccine_accept"
            | "vaccine_slot_doses" | "vaccine_slot_close" => String::new(),
            other => bail!("no vaccine handler case {other}"),
        })
    }

    async fn event(&self, case: &HttpCase, ctx: &Ctx, _prepared: &str) -> anyhow::Result<Option<String>> {
        let event = match case.name {
            "vaccine_reserve" => {
                // A citizen of their own (one active reservation each), with a key of their own.
                let sub = self.citizen();
                let slot = self.dose(ctx).await?;
                let body = reservation_body(&slot, self.citizens.get());
                let mut event = http_event(&self.reserve, "/vaccine/reservations", None, Some(&body), &sub);
                event["headers"]["idempotency-key"] = json!(format!("bench-reserve-{sub}"));
                serde_json::to_string(&event)?
            }
            "vaccine_cancel" => {
                let sub = self.citizen();
                let id = self.reserved(ctx, &sub).await?;
                Self::event(&self.cancel, &format!("/vaccine/reservations/{id}/cancel"), Some(&id), None, &sub)?
            }
            "vaccine_fulfil" | "vaccine_noshow" => {
                let id = self.reserved(ctx, &self.citizen()).await?;
                let (template, action) = if case.name == "vaccine_fulfil" {
                    (&self.fulfil, "fulfil")
                } else {
                    (&self.noshow, "noshow")
                };
                Self::event(
                    template,
                    &format!("/vaccine/reservations/{id}/{action}"),
                    Some(&id),
                    None,
                    &self.admin,
                )?
            }
            "vaccine_waitlist" => {
                let (slot, _, _) = self.full_slot(ctx).await?;
                let body = sample_body(&self.waitlist)?;
                Self::event(
                    &self.waitlist,
                    &format!("/vaccine/slots/{slot}/waitlist"),
                    Some(&slot),
                    Some(&body),
                    &self.citizen(),
                )?
            }
            "vaccine_accept" => {
                let (entry, waiter) = self.offered(ctx).await?;
                Self::event(
                    &self.accept,
                    &format!("/vaccine/offers/{entry}/accept"),
                    Some(&entry),
                    None,
                    &waiter,
                )?
            }
            "vaccine_slot_doses" | "vaccine_slot_close" => {
                let (slot, _) = self.open_slot(ctx, 100, SHARDS).await?;
                let (template, action) = if case.name == "vaccine_slot_doses" {
                    (&self.slot_doses, "doses")
                } else {
                    (&self.slot_close, "close")
                };
                let body = template["body"].as_str().and_then(|b| serde_json::from_str::<Value>(b).ok());
                Self::event(
                    template,
                    &format!("/vaccine/slots/{slot}/{action}"),
                    Some(&slot),
                    body.as_ref(),
                    &self.admin,
                )?
            }
            _ => return Ok(None),
        };
        Ok(Some(event))
    }

    fn check(&self, case: &HttpCase, body: &Value) -> anyhow::Result<()> {
        let found = match case.name {
            "vaccine_get" => usize::from(body.get("id").is_some()),
            "vaccine_list" | "vaccine_slots" => body["items"].as_array().map_or(0, Vec::len),
            _ => return Ok(()),
        };
        ensure!(found > 0, "the query found nothing: {body}");
        Ok(())
    }

    fn consumer_sample(&self, target: &str) -> Option<(&Value, Moment)> {
        self.consumers.get(target).map(|(sample, moment)| (sample, *moment))
    }

    /// A case's first event: its slot's registration, `SlotOpened`.
    async fn opened(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope> {
        let (_, events) = self.open_slot(ctx, 100, SHARDS).await?;
        find(events, "SlotOpened")
    }

    /// A reservation on a slot of its own, cancelled: `ReservationCancelled`.
    async fn ended(&self, ctx: &Ctx) -> anyhow::Result<EventEnvelope> {
        let (slot, _) = self.open_slot(ctx, 100, SHARDS).await?;
        let sub = self.citizen();
        let (id, _) = self.reserve_on(ctx, &sub, &slot).await?;
        self.cancelled(ctx, &sub, &id).await
    }

    fn stream_event(&self, id: &str) -> String {
        self.stream.replace(SAMPLE_RESERVATION, id)
    }

    fn view_key(&self, id: &str) -> String {
        projector::view_id(view::RESERVATIONS, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vaccine figures are named apart from the check-up's.
    #[test]
    fn the_figures_have_their_own_names() {
        let names = crate::handlers::figure_names().expect("the cases");
        for case in HTTP_CASES {
            assert!(case.name.starts_with("vaccine_"), "{}", case.name);
            assert!(names.contains(&format!("handler_us.{}", case.name)), "{}", case.name);
        }
        for (target, _, _) in CONSUMER_SAMPLES {
            assert!(names.contains(&format!("handler_us.{target}")), "{target}");
        }
        assert_eq!(
            [SAGA.throughput, SAGA.open_latency, SAGA.saga_latency],
            ["local_vaccine_sagas_per_s", "reservation_latency_ms", "vaccine_saga_latency_ms"]
        );
        assert_eq!(
            [MODEL.projected, MODEL.cost],
            ["projected_aws_vaccine_saga_ms", "aws_usd_per_1000_reservations"]
        );
        for step in MODEL.critical_path {
            assert!(names.contains(&format!("handler_us.{step}")), "{step} is a handler figure");
        }
    }

    #[test]
    fn the_saga_reservations_differ_name_the_setup_slot_and_their_phones_are_e164() {
        let slot = "01KBVAC0000000000000000002";
        let (a, to_a) = saga_reservation(1, slot).expect("a body");
        let (b, to_b) = saga_reservation(2, slot).expect("a body");
        assert_ne!(a, b);
        assert_ne!(to_a, to_b);
        assert!(to_a.starts_with("+8210") && to_a.len() == 13, "{to_a}");
        let body: Value = serde_json::from_slice(&a).expect("JSON");
        assert_eq!(body["slot_id"], slot);
    }

    #[test]
    fn the_saga_slot_is_the_largest_a_slot_may_be_and_valid() {
        let setup = SAGA.setup.as_ref().expect("the saga registers its slot");
        let body = (setup.body)().expect("a body");
        assert_eq!(body["quantity"], MAX_QUANTITY);
        assert!(u8::try_from(body["shards"].as_u64().expect("shards")).is_ok_and(|s| s > 1 && s <= 32));
        let date = chrono::NaiveDate::parse_from_str(body["date"].as_str().expect("a date"), "%Y-%m-%d").expect("a date");
        assert!(date > today_in_korea(Utc::now()));
        assert!(SAGA.opener_per_worker, "one citizen holds one reservation at a time");
    }

    #[test]
    fn every_http_function_of_the_slice_gets_requests() {
        for f in vaccine::SLICE.functions {
            if f.trigger == clinicflow::topology::Trigger::Http {
                assert!(Vaccine.http_functions().contains(&f.name), "{}", f.name);
                assert!(HTTP_CASES.iter().any(|c| c.function == f.name), "{} has a handler case", f.name);
            }
        }
    }

    /// The projector's case runs on the first fixture's batch; this one's must work too.
    #[tokio::test]
    async fn the_projector_batch_writes_the_reservation_view() {
        use aws_lambda_events::dynamodb::Event as StreamEvent;
        use lambda_http::{Context as LambdaContext, LambdaEvent};

        let config = crate::slices::config();
        let samples = Samples::load(&config).expect("samples");
        let ctx = Ctx::new(&config);
        let id = ulid::Ulid::new().to_string();
        let event = samples.stream_event(&id);
        assert!(!event.contains(SAMPLE_RESERVATION));
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
        assert_eq!(view.status.as_deref(), Some("cancelled"), "{view:?}");
    }
}
