//! The `concurrency` area: no overbooking and one outcome per decision, under real contention.
//!
//! 1. **The last places.** A date whose capacity is pre-filled until only [`REMAINING`] places
//!    are left is booked by `mode.pick(1000, 200)` distinct patients at once (every request
//!    built first, then all sent together). Exactly [`REMAINING`] get `201`; every other one gets
//!    the documented refusal, `409` problem+json; nobody gets a 5xx. The slot's counter ends
//!    at the capacity, the store holds exactly capacity bookings for the date, one "booked" SMS
//!    each and no other, and once the stack settles no refused contender's payment is kept:
//!    `book` charges before the booking exists, so a contender that passed the early capacity
//!    check and then lost the race in the transaction must find its charge voided
//!    (ADR 0002).
//! 2. **Contested decisions.** `mode.pick(100, 20)` bookings, each hit at once by one to
//!    three confirms and rejects (centre staff) and cancels (the patient): half of them by all
//!    three kinds, the others by confirm and reject only, or reject and cancel only, so that
//!    every outcome is contested. All bookings are contested together. Confirm and reject
//!    exclude each other, reject and cancel exclude each other, a confirmed booking may still
//!    be cancelled; repeating a decision that already holds is answered as a success; every
//!    other loser gets `409` problem+json. After settling, each booking's view, place,
//!    payment and SMS must agree with the decisions that won.
//! 3. **One `Idempotency-Key` at once.** `mode.pick(40, 10)` keys, each sent four times at
//!    once: a double submit (identical bodies), or a key reused for another package. At most
//!    one booking per key, every `201` names it, the provider keeps exactly what the stored
//!    bookings recorded, and cancelling them refunds everything. The same race with the first
//!    charge's answer held after capture is staged on the use cases in [`super::held_charge`].
//!
//! Cases: one per request (contenders, decisions, same-key copies) and one for the staged
//! race. Violations: overbookings, under-bookings, 5xx, statuses outside the allowed set,
//! outcomes no serial order explains, and side effects (places, money, SMS) that disagree
//! with the outcome.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use clinicflow::adapters::sandbox::LedgerStatus;
use clinicflow::domain::short_ref;
use clinicflow::flows::checkup::availability::slot_key;
use clinicflow::flows::checkup::domain::{self as checkup, Booking, Package};
use clinicflow_tests::{LocalOptions, LocalStack, fast_options};
use futures::future::join_all;
use serde_json::json;

use super::api::{Answer, Api, CONTENDER, Call, bearer, booking_for, created_id, date_in, wait_for_view};
use crate::invariants::aggregates;
use crate::{AreaReport, Mode};

/// Places left when the contenders arrive.
pub const REMAINING: i64 = 10;
/// The date's capacity in the first part.
const CAPACITY: i64 = 30;

/// Runs the area.
pub async fn run(mode: Mode) -> anyhow::Result<AreaReport> {
    let mut report = AreaReport::new("concurrency");
    let mut tally = Tally::default();
    last_places(mode, &mut report, &mut tally).await?;
    contested_decisions(mode, &mut report, &mut tally).await?;
    same_key_at_once(mode, &mut report, &mut tally).await?;
    super::held_charge::run(&mut report).await?;
    report.figure("contenders", tally.contenders);
    report.figure("overbookings", tally.overbookings);
    report.figure("5xx", tally.server_errors);
    report.figure("charges voided after a lost race", tally.voided);
    report.figure("contested bookings", tally.contested);
    report.figure("decisions sent", tally.decisions);
    report.figure("same-key requests", tally.same_key);
    for (status, n) in &tally.same_key_statuses {
        report.figure(&format!("same-key copies answered {status}"), *n);
    }
    report.figure(
        "same-key charges whose provider reference names a booking never stored",
        tally.foreign_references,
    );
    for (outcome, n) in &tally.outcomes {
        report.figure(&format!("contests ending {outcome}"), *n);
    }
    Ok(report)
}

#[derive(Debug, Default)]
struct Tally {
    contenders: u64,
    overbookings: u64,
    server_errors: u64,
    voided: u64,
    contested: u64,
    decisions: u64,
    same_key: u64,
    same_key_statuses: BTreeMap<u16, u64>,
    foreign_references: u64,
    outcomes: BTreeMap<&'static str, u64>,
}

/// A stack whose payment provider never times out under load: this area is about places and
/// decisions, and a breaker opened by the harness's own CPU starvation would only blur it.
fn options(capacity: i64) -> LocalOptions {
    let mut options = fast_options();
    clinicflow_tests::set_daily_capacity(&mut options, capacity);
    options.config.payment.timeout = Duration::from_secs(60);
    options.config.payment.failure_threshold = 1_000_000;
    options
}

/// Every booking stored for `date`, by id.
async fn stored_bookings(stack: &LocalStack, date: &str) -> anyhow::Result<HashSet<String>> {
    let parts = stack
        .embedded()
        .ok_or_else(|| anyhow::anyhow!("the concurrency area runs on SQLite"))?;
    let bookings: BTreeMap<String, Booking> = aggregates(&parts.db, checkup::CONTEXT).await?;
    Ok(bookings
        .into_values()
        .filter(|b| b.date.to_string() == date)
        .map(|b| b.id)
        .collect())
}

async fn counter(stack: &LocalStack, date: &str) -> anyhow::Result<i64> {
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")?;
    Ok(stack.platform.store.counter(&slot_key(date, Package::Basic)).await?)
}

fn judge_contender(answer: &anyhow::Result<Answer>) -> Option<String> {
    match answer {
        Err(e) => Some(format!("last places: a contender's request failed in transport: {e}")),
        Ok(a) if a.is_5xx() => Some(format!("last places: a contender got {} ({})", a.status, a.body["detail"])),
        Ok(a) if a.status == 201 => None,
        Ok(a) if a.status == 409 && a.is_problem() => None,
        Ok(a) => Some(format!(
            "last places: a contender got {} {:?}; allowed: 201, or 409 problem+json",
            a.status, a.content_type
        )),
    }
}

async fn last_places(mode: Mode, report: &mut AreaReport, tally: &mut Tally) -> anyhow::Result<()> {
    let contenders = mode.pick(1000, 200);
    let stack = LocalStack::start(options(CAPACITY)).await?;
    let api = Api::new(&stack)?;
    let date = date_in(50);
    let body = booking_for(&date, &CONTENDER, "tok_ok");

    let early = stack.token("early-bird", &["patient"]);
    for _ in 0..CAPACITY - REMAINING {
        let a = api.send("POST", "/checkups", Some(&early), Some(&body)).await?;
        if a.status != 201 {
            report.violation(format!("last places: pre-filling the date got {} ({})", a.status, a.body["detail"]));
            stack.shutdown().await;
            return Ok(());
        }
    }

    // Every caller and request is built before the first one is sent.
    let bytes = body.to_string().into_bytes();
    let authorizations: Vec<String> = (0..contenders)
        .map(|i| bearer(&stack.token(&format!("contender-{i}"), &["patient"])))
        .collect();
    let requests: Vec<_> = authorizations
        .iter()
        .map(|auth| {
            api.call(Call {
                method: "POST",
                path: "/checkups",
                authorization: Some(auth),
                body: Some(("application/json", bytes.clone())),
                headers: &[],
            })
        })
        .collect();
    let answers = join_all(requests).await;

    let mut winners = Vec::new();
    for answer in &answers {
        tally.contenders += 1;
        if answer.as_ref().is_ok_and(Answer::is_5xx) {
            tally.server_errors += 1;
        }
        if let Some(id) = answer.as_ref().ok().and_then(created_id) {
            winners.push(id);
        }
        report.case(judge_contender(answer));
    }
    let won = winners.len() as i64;
    if won > REMAINING {
        report.violation(format!("last places: {won} contenders won {REMAINING} places"));
    } else if won < REMAINING {
        report.violation(format!(
            "last places: only {won} of the {REMAINING} free places were taken by {contenders} contenders"
        ));
    }

    if !stack.settle(Duration::from_secs(60)).await {
        report.violation("last places: the stack did not settle within 60 s".into());
    }
    let taken = counter(&stack, &date).await?;
    if taken != CAPACITY {
        report.violation(format!("last places: the slot's counter is {taken}, its capacity {CAPACITY}"));
    }
    let stored = stored_bookings(&stack, &date).await?;
    let stored_n = stored.len() as i64;
    tally.overbookings += stored_n.saturating_sub(CAPACITY).max(0) as u64;
    if stored_n != CAPACITY {
        report.violation(format!("last places: {stored_n} bookings stored for a date of {CAPACITY} places"));
    }
    if let Some(missing) = winners.iter().find(|id| !stored.contains(*id)) {
        report.violation(format!("last places: winner {missing} got 201 but its booking is not stored"));
    }

    // Money: kept for each stored booking, released for every refused contender.
    let price = clinicflow_tests::basic_price(&stack);
    let mut kept_for_refused = 0;
    let mut captured_for_stored: BTreeMap<String, u32> = BTreeMap::new();
    for entry in stack.sandbox.entries() {
        match (stored.contains(&entry.reference), entry.status) {
            (true, LedgerStatus::Captured) => *captured_for_stored.entry(entry.reference.clone()).or_default() += 1,
            (true, other) => report.violation(format!(
                "last places: the payment of stored booking {} is {other:?}, not captured",
                entry.reference
            )),
            (false, LedgerStatus::Captured) => kept_for_refused += 1,
            (false, LedgerStatus::Voided) => tally.voided += 1,
            (false, LedgerStatus::Refunded) => {}
        }
    }
    if kept_for_refused > 0 {
        report.violation(format!(
            "last places: {kept_for_refused} refused contender(s) were charged and the charge was never voided"
        ));
    }
    if captured_for_stored.len() != stored.len() || captured_for_stored.values().any(|n| *n != 1) {
        report.violation(format!(
            "last places: {} stored bookings but {} of them with exactly one captured payment",
            stored.len(),
            captured_for_stored.values().filter(|n| **n == 1).count()
        ));
    }
    let kept = stack.sandbox.kept().0;
    if kept != CAPACITY as u64 * price {
        report.violation(format!(
            "last places: the provider keeps {kept}, the bookings paid {}",
            CAPACITY as u64 * price
        ));
    }

    // One "booked" SMS per stored booking; a refused contender hears nothing.
    let sent = stack.sms_sent().await?;
    if sent.len() as i64 != stored_n {
        report.violation(format!(
            "last places: {} SMS sent for {stored_n} stored bookings (refused contenders must get none)",
            sent.len()
        ));
    }
    stack.shutdown().await;
    Ok(())
}

/// A decision sent in a contest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Confirm,
    Reject,
    Cancel,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Reject => "reject",
            Self::Cancel => "cancel",
        }
    }

    /// The status of a decision that moved the booking or found it already there.
    fn success(self) -> u16 {
        match self {
            Self::Confirm | Self::Reject => 200,
            Self::Cancel => 202,
        }
    }
}

/// The booking's final state, as the decisions that won imply.
fn implied_outcome(confirmed: bool, rejected: bool, cancelled: bool) -> Result<&'static str, String> {
    match (confirmed, rejected, cancelled) {
        (true, true, _) => Err("both a confirm and a reject succeeded".into()),
        (_, true, true) => Err("both a reject and a cancel succeeded".into()),
        (false, false, false) => Err("no decision succeeded".into()),
        (_, true, false) => Ok("rejected"),
        (_, false, true) => Ok("cancelled"),
        (true, false, false) => Ok("confirmed"),
    }
}

struct Contest {
    id: String,
    patient: String,
    date: String,
}

async fn contested_decisions(mode: Mode, report: &mut AreaReport, tally: &mut Tally) -> anyhow::Result<()> {
    let bookings = mode.pick(100, 20);
    let stack = LocalStack::start(options(20)).await?;
    let api = Api::new(&stack)?;
    let staff = stack.token("staff-contest", &["centre"]);

    let patients: Vec<String> = (0..bookings)
        .map(|i| stack.token(&format!("contest-patient-{i}"), &["patient"]))
        .collect();
    let dates: Vec<String> = (0..bookings).map(|i| date_in(100 + i as i64)).collect();
    let answers = join_all(patients.iter().zip(&dates).map(|(token, date)| {
        let body = booking_for(date, &CONTENDER, "tok_ok");
        let api = api.clone();
        async move { api.send("POST", "/checkups", Some(token), Some(&body)).await }
    }))
    .await;
    let mut contests = Vec::new();
    for ((answer, patient), date) in answers.into_iter().zip(&patients).zip(&dates) {
        match answer.as_ref().ok().and_then(created_id) {
            Some(id) => contests.push(Contest {
                id,
                patient: patient.clone(),
                date: date.clone(),
            }),
            None => report.violation(format!(
                "contest: a booking could not be made: {:?}",
                answer.map(|a| (a.status, a.body["detail"].clone())).map_err(|e| e.to_string())
            )),
        }
    }
    // Confirm and reject need the booking on the centre's work list.
    stack.settle(Duration::from_secs(30)).await;
    for c in &contests {
        let received = wait_for_view(&api, &c.patient, &c.id, Duration::from_secs(10), |v| {
            v["reservation"]["status"] == "received"
        })
        .await;
        if received.is_none() {
            report.violation(format!("contest: booking {} never reached the centre's work list", c.id));
        }
    }

    // Several of each decision per booking, all bookings at once, in a shuffled order.
    let reject_body = json!({"reason": "the doctor is unavailable that day"});
    let staff_auth = bearer(&staff);
    let patient_auths: Vec<String> = contests.iter().map(|c| bearer(&c.patient)).collect();
    let mut plan: Vec<(usize, Kind, String)> = Vec::new();
    for (i, c) in contests.iter().enumerate() {
        // Half the bookings see all three decisions; the others one pair each, so that every
        // outcome (confirmed too) gets contested.
        let kinds: &[Kind] = match i % 4 {
            0 | 1 => &[Kind::Confirm, Kind::Reject, Kind::Cancel],
            2 => &[Kind::Confirm, Kind::Reject],
            _ => &[Kind::Reject, Kind::Cancel],
        };
        for &kind in kinds {
            for _ in 0..1 + fastrand::usize(..3) {
                let path = match kind {
                    Kind::Confirm => format!("/centre/checkups/{}/confirm", c.id),
                    Kind::Reject => format!("/centre/checkups/{}/reject", c.id),
                    Kind::Cancel => format!("/checkups/{}/cancel", c.id),
                };
                plan.push((i, kind, path));
            }
        }
    }
    fastrand::shuffle(&mut plan);
    let reject_bytes = reject_body.to_string().into_bytes();
    let requests: Vec<_> = plan
        .iter()
        .map(|(i, kind, path)| {
            let (authorization, body) = match kind {
                Kind::Confirm => (staff_auth.as_str(), None),
                Kind::Reject => (staff_auth.as_str(), Some(("application/json", reject_bytes.clone()))),
                Kind::Cancel => (patient_auths[*i].as_str(), None),
            };
            api.call(Call {
                method: "POST",
                path,
                authorization: Some(authorization),
                body,
                headers: &[],
            })
        })
        .collect();
    let answers = join_all(requests).await;

    // Which decisions won, per booking.
    let mut won = vec![(false, false, false); contests.len()];
    for ((i, kind, _), answer) in plan.iter().zip(&answers) {
        tally.decisions += 1;
        let c = &contests[*i];
        let verdict = match answer {
            Err(e) => Some(format!("contest {}: a {} failed in transport: {e}", c.id, kind.name())),
            Ok(a) if a.is_5xx() => {
                tally.server_errors += 1;
                Some(format!(
                    "contest {}: a {} got {} ({})",
                    c.id,
                    kind.name(),
                    a.status,
                    a.body["detail"]
                ))
            }
            Ok(a) if a.status == kind.success() => {
                let w = &mut won[*i];
                match kind {
                    Kind::Confirm => w.0 = true,
                    Kind::Reject => w.1 = true,
                    Kind::Cancel => w.2 = true,
                }
                None
            }
            Ok(a) if a.status == 409 && a.is_problem() => None,
            Ok(a) => Some(format!(
                "contest {}: a {} got {} {:?}; allowed: {} or 409 problem+json",
                c.id,
                kind.name(),
                a.status,
                a.content_type,
                kind.success()
            )),
        };
        report.case(verdict);
    }

    if !stack.settle(Duration::from_secs(60)).await {
        report.violation("contest: the stack did not settle within 60 s".into());
    }
    let ledger = stack.sandbox.entries();
    let sms = stack.sms_sent().await?;
    for (c, (confirmed, rejected, cancelled)) in contests.iter().zip(won) {
        tally.contested += 1;
        let outcome = match implied_outcome(confirmed, rejected, cancelled) {
            Ok(o) => o,
            Err(why) => {
                report.violation(format!("contest {}: illegal outcome: {why}", c.id));
                continue;
            }
        };
        *tally.outcomes.entry(outcome).or_default() += 1;
        let ended = outcome != "confirmed";
        let mut wrong = Vec::new();

        let (payment, reservation) = match outcome {
            "confirmed" => ("paid", "confirmed"),
            "rejected" => ("refunded", "rejected"),
            _ => ("refunded", "withdrawn"),
        };
        let view = wait_for_view(&api, &c.patient, &c.id, Duration::from_secs(5), |v| {
            v["status"] == outcome && v["payment"]["status"] == payment && v["reservation"]["status"] == reservation
        })
        .await;
        if view.is_none() {
            let seen = api.send("GET", &format!("/checkups/{}", c.id), Some(&c.patient), None).await?;
            wrong.push(format!(
                "view shows status {}, payment {}, reservation {} (expected {outcome}, {payment}, {reservation})",
                seen.body["status"], seen.body["payment"]["status"], seen.body["reservation"]["status"]
            ));
        }

        let taken = counter(&stack, &c.date).await?;
        if taken != i64::from(!ended) {
            wrong.push(format!("{taken} place(s) taken on its date"));
        }

        let entries: Vec<_> = ledger.iter().filter(|e| e.reference == c.id).collect();
        let money_right = match entries.as_slice() {
            [e] if ended => e.status == LedgerStatus::Refunded && e.refunds == 1,
            [e] => e.status == LedgerStatus::Captured && e.refunds == 0,
            _ => false,
        };
        if !money_right {
            let seen: Vec<_> = entries.iter().map(|e| (e.status, e.refunds)).collect();
            wrong.push(format!("payment ledger {seen:?}"));
        }

        let texts: Vec<&str> = sms
            .iter()
            .filter(|s| s.body.contains(short_ref(&c.id)))
            .map(|s| s.body.as_str())
            .collect();
        let count = |needle: &str| texts.iter().filter(|t| t.contains(needle)).count();
        let expected = [
            ("booked", "is booked", 1),
            ("confirmed", "is confirmed", usize::from(confirmed)),
            ("rejected", "could not accept", usize::from(rejected)),
            ("cancelled", "is cancelled", usize::from(cancelled)),
            ("refunded", "has been refunded", usize::from(ended)),
        ];
        let total: usize = expected.iter().map(|(_, _, n)| n).sum();
        for (what, needle, n) in expected {
            if count(needle) != n {
                wrong.push(format!("{} '{what}' SMS (expected {n})", count(needle)));
            }
        }
        if texts.len() != total {
            wrong.push(format!("{} SMS in all (expected {total})", texts.len()));
        }

        if !wrong.is_empty() {
            report.violation(format!(
                "contest {} (won: confirm {confirmed}, reject {rejected}, cancel {cancelled}; ended {outcome}): {}",
                c.id,
                wrong.join("; ")
            ));
        }
    }
    stack.shutdown().await;
    Ok(())
}

/// Several copies of one booking request with one `Idempotency-Key` at once: a double
/// submit (identical bodies) and a key reused for another package while the first request
/// is in flight. Per key: one booking at most, every `201` names it, a copy with another
/// body gets `422`, a copy that arrives while the first is being processed may get `409`;
/// the provider keeps exactly the stored booking's price, and cancelling it refunds it.
async fn same_key_at_once(mode: Mode, report: &mut AreaReport, tally: &mut Tally) -> anyhow::Result<()> {
    let keys = mode.pick(40, 10);
    let stack = LocalStack::start(options(20)).await?;
    let api = Api::new(&stack)?;
    let parts = stack
        .embedded()
        .ok_or_else(|| anyhow::anyhow!("the concurrency area runs on SQLite"))?;

    struct Key {
        patient: String,
        auth: String,
        key: String,
        bodies: [Vec<u8>; 2],
        mixed: bool,
    }
    let plans: Vec<Key> = (0..keys)
        .map(|i| {
            let patient = stack.token(&format!("idem-patient-{i}"), &["patient"]);
            let date = date_in(250 + i as i64);
            let basic = booking_for(&date, &CONTENDER, "tok_ok");
            let mut other = basic.clone();
            let mixed = i % 2 == 1;
            if mixed {
                other["package"] = json!("premium");
            }
            Key {
                auth: bearer(&patient),
                patient,
                key: format!("idem-{i}-{}", fastrand::u64(..)),
                bodies: [basic.to_string().into_bytes(), other.to_string().into_bytes()],
                mixed,
            }
        })
        .collect();
    let mut sends: Vec<(usize, usize)> = (0..keys).flat_map(|k| [(k, 0), (k, 0), (k, 1), (k, 1)]).collect();
    fastrand::shuffle(&mut sends);
    let headers: Vec<[(&str, &str); 1]> = plans.iter().map(|k| [("idempotency-key", k.key.as_str())]).collect();
    let requests: Vec<_> = sends
        .iter()
        .map(|(k, b)| {
            api.call(Call {
                method: "POST",
                path: "/checkups",
                authorization: Some(&plans[*k].auth),
                body: Some(("application/json", plans[*k].bodies[*b].clone())),
                headers: &headers[*k],
            })
        })
        .collect();
    let answers = join_all(requests).await;

    let mut created: Vec<HashSet<String>> = vec![HashSet::new(); keys];
    for ((k, _), answer) in sends.iter().zip(&answers) {
        tally.same_key += 1;
        if let Ok(a) = answer {
            *tally.same_key_statuses.entry(a.status).or_default() += 1;
        }
        let plan = &plans[*k];
        let verdict = match answer {
            Err(e) => Some(format!("same key {}: a request failed in transport: {e}", plan.key)),
            Ok(a) if a.is_5xx() => {
                tally.server_errors += 1;
                Some(format!("same key {}: a copy got {} ({})", plan.key, a.status, a.body["detail"]))
            }
            Ok(a) if a.status == 201 => {
                created[*k].extend(created_id(a));
                None
            }
            Ok(a) if a.status == 409 && a.is_problem() => None,
            Ok(a) if a.status == 422 && a.is_problem() && plan.mixed => None,
            Ok(a) => Some(format!(
                "same key {}: a copy got {} {:?} ({})",
                plan.key, a.status, a.content_type, a.body["detail"]
            )),
        };
        report.case(verdict);
    }
    stack.settle(Duration::from_secs(30)).await;

    // One booking per key, and the provider holds exactly what that booking recorded.
    let bookings: Vec<Booking> = aggregates(&parts.db, checkup::CONTEXT).await?.into_values().collect();
    let payments: Vec<clinicflow::contexts::payment::Payment> = aggregates(&parts.db, clinicflow::contexts::payment::CONTEXT)
        .await?
        .into_values()
        .collect();
    let ledger = stack.sandbox.entries();
    let mut stored_ids = Vec::new();
    for (k, plan) in plans.iter().enumerate() {
        let sub = format!("idem-patient-{k}");
        let stored: Vec<&Booking> = bookings.iter().filter(|b| b.patient_sub == sub).collect();
        let mut wrong = Vec::new();
        if created[k].len() > 1 {
            wrong.push(format!("{} different bookings answered 201", created[k].len()));
        }
        if stored.len() != usize::from(!created[k].is_empty()) {
            wrong.push(format!("{} bookings stored", stored.len()));
        }
        for b in &stored {
            if !created[k].is_empty() && !created[k].contains(&b.id) {
                wrong.push("the stored booking is not the one the 201 named".into());
            }
            let payment = payments.iter().find(|p| p.id == b.payment_id);
            let entry = payment.and_then(|p| ledger.iter().find(|e| e.provider_ref == p.provider_ref));
            match (payment, entry) {
                (Some(p), Some(e)) => {
                    if p.amount != b.price || e.amount != p.amount {
                        wrong.push(format!(
                            "the booking's price is {}, its payment records {}, the provider captured {}",
                            b.price, p.amount, e.amount
                        ));
                    }
                    // Not a broken promise (the money is right), but reconciliation by
                    // reference will not find the booking: counted, not a violation.
                    if e.reference != b.id {
                        tally.foreign_references += 1;
                    }
                }
                _ => wrong.push("the booking's payment is missing from the store or from the provider".into()),
            }
            stored_ids.push((b.id.clone(), plan.patient.clone()));
        }
        if !wrong.is_empty() {
            report.violation(format!(
                "same key {} ({}): {}",
                plan.key,
                if plan.mixed {
                    "reused for another package"
                } else {
                    "double submit"
                },
                wrong.join("; ")
            ));
        }
    }
    let kept_for_stored: u64 = bookings.iter().map(|b| b.price.0).sum();
    if stack.sandbox.kept().0 != kept_for_stored {
        report.violation(format!(
            "same key: the provider keeps {}, the stored bookings paid {kept_for_stored}",
            stack.sandbox.kept().0
        ));
    }

    // Cancelling gives every booking's money back.
    for (id, patient) in &stored_ids {
        let a = api.send("POST", &format!("/checkups/{id}/cancel"), Some(patient), None).await?;
        if a.status != 202 {
            report.violation(format!("same key: cancelling {id} got {} ({})", a.status, a.body["detail"]));
        }
    }
    stack.settle(Duration::from_secs(30)).await;
    for (id, patient) in &stored_ids {
        let refunded = wait_for_view(&api, patient, id, Duration::from_secs(5), |v| v["payment"]["status"] == "refunded").await;
        if refunded.is_none() {
            report.violation(format!("same key: booking {id} was cancelled but its payment was never refunded"));
        }
    }
    for dead in stack.dead_letters().await? {
        report.violation(format!(
            "same key: {} on {} {} was dead-lettered: {}",
            dead.target, dead.event.event_type, dead.event.aggregate_id, dead.error
        ));
    }
    if stack.sandbox.kept().0 != 0 {
        report.violation(format!(
            "same key: the provider still keeps {} after every booking was cancelled",
            stack.sandbox.kept().0
        ));
    }
    stack.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_serial_order_of_decisions_implies_one_outcome() {
        assert_eq!(implied_outcome(true, false, false), Ok("confirmed"));
        assert_eq!(implied_outcome(true, false, true), Ok("cancelled"));
        assert_eq!(implied_outcome(false, false, true), Ok("cancelled"));
        assert_eq!(implied_outcome(false, true, false), Ok("rejected"));
        assert!(implied_outcome(true, true, false).is_err());
        assert!(implied_outcome(false, true, true).is_err());
        assert!(implied_outcome(false, false, false).is_err());
    }
}
