//! The `concurrency` area: no case over capacity and one outcome per decision, under real
//! contention, for every slice's fixture ([`crate::slices`]).
//!
//! Cases are opened as each slice opens them: by their owner, or by staff on the owner's
//! behalf ([`slices::opening_token`]); every decision and ending is sent by its caller
//! ([`Who::caller`]).
//!
//! 1. **The last places** (a slice whose cases take places, [`Fixture::has_places`]; the
//!    others are counted and skipped). A slot whose capacity is pre-filled until only [`REMAINING`]
//!    places are left is opened by `mode.pick(1000, 200)` distinct owners at once (every
//!    request built first, then all sent together). Exactly [`REMAINING`] get `201`; every
//!    other one gets the documented refusal, `409` problem+json; nobody gets a 5xx. The
//!    slot's counter ends at the capacity, the store holds exactly capacity cases for the
//!    slot, the SMS are exactly those of the stored cases' status changes (a refused
//!    contender hears nothing), and once the stack settles no refused contender's payment is
//!    kept: a case is charged before it exists, so a contender that passed the early
//!    capacity check and then lost the race in the transaction must find its charge voided
//!    (ADR 0002). A slice whose places a later step takes rather than the opening (a bed a
//!    dispatch takes, [`Fixture::taking`]) opens every contender's case first and brings it
//!    to that step; the step is then sent for the first `CAPACITY - REMAINING` cases one by
//!    one, and for every other case at once. The same holds: exactly [`REMAINING`] succeed,
//!    the others get `409` problem+json, the counter ends at the capacity, exactly capacity
//!    cases hold a place, and the SMS are exactly those of every case's status changes.
//! 2. **Contested decisions.** `mode.pick(100, 20)` cases, each hit at once by one to three
//!    copies of each decision of the slice's [`Contest`](crate::slices::Contest) (staff and
//!    owner alike), in the mixes the fixture gives so that every outcome is contested. All
//!    cases are contested together. Repeating a decision that already holds is answered as a
//!    success; every other loser gets `409` problem+json; the decisions that won must be
//!    explained by a serial order (the fixture's `implied_outcome`). After settling, each
//!    case's view, places, payment and SMS must agree with the decisions that won (the
//!    fixture's `judge_contest`).
//! 3. **One `Idempotency-Key` at once.** `mode.pick(40, 10)` keys, each sent four times at
//!    once: a double submit (identical bodies), or a key reused for the other variant of the
//!    opening request. At most one case per key, every `201` names it, the provider keeps
//!    exactly what the stored cases recorded, and ending them (the owner's
//!    [`Fixture::ending`]) refunds everything. The same race with the first charge's answer
//!    held after capture is staged on the use cases in [`super::held_charge`].
//!
//! Cases: one per request (contenders, decisions, same-key copies) and one per slice for the
//! staged race. Violations: cases over capacity, places left free, 5xx, statuses outside the allowed
//! set, outcomes no serial order explains, and side effects (places, money, SMS) that
//! disagree with the outcome. Every description starts with the slice's name.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use clinicflow::adapters::sandbox::LedgerStatus;
use clinicflow::contexts::payment::{self, Payment, PaymentStatus};
use clinicflow::topology::{PATIENT, SMS_NOTIFIER};
use clinicflow_tests::{LocalOptions, LocalStack, fast_options};
use futures::StreamExt;
use futures::future::join_all;

use super::api::{Answer, Api, CONTENDER, Call, bearer, created_id};
use crate::invariants::{aggregates, feed};
use crate::slices::{self, Fixture, Taking, Who};
use crate::{AreaReport, Mode};

/// Places left when the contenders arrive.
pub const REMAINING: i64 = 10;
/// The slot's capacity in the first part.
const CAPACITY: i64 = 30;

/// Runs the area.
pub async fn run(mode: Mode) -> anyhow::Result<AreaReport> {
    let mut report = AreaReport::new("concurrency");
    let mut tally = Tally::default();
    let mut without_places = 0;
    for f in slices::all() {
        // A slice whose cases take no places has no last places to contend for; one whose
        // places a later step takes races that step.
        if f.has_places() {
            match f.taking() {
                Some(taking) => last_places_by_step(*f, taking, mode, &mut report, &mut tally).await?,
                None => last_places(*f, mode, &mut report, &mut tally).await?,
            }
        } else {
            without_places += 1;
        }
        contested_decisions(*f, mode, &mut report, &mut tally).await?;
        same_key_at_once(*f, mode, &mut report, &mut tally).await?;
    }
    super::held_charge::run(&mut report).await?;
    report.figure("contenders", tally.contenders);
    report.figure("slices without places (no last places)", without_places);
    report.figure("requests shed (503 + Retry-After, sent again)", tally.shed);
    report.figure("cases over capacity", tally.over_capacity);
    report.figure("5xx", tally.server_errors);
    report.figure("charges voided after a lost race", tally.voided);
    report.figure("contested cases", tally.contested);
    report.figure("decisions sent", tally.decisions);
    report.figure("same-key requests", tally.same_key);
    for (status, n) in &tally.same_key_statuses {
        report.figure(&format!("same-key copies answered {status}"), *n);
    }
    report.figure(
        "same-key charges whose provider reference names a case never stored",
        tally.foreign_references,
    );
    for ((slice, outcome), n) in &tally.outcomes {
        report.figure(&format!("{slice} contests ending {outcome}"), *n);
    }
    Ok(report)
}

#[derive(Debug, Default)]
struct Tally {
    contenders: u64,
    shed: u64,
    over_capacity: u64,
    server_errors: u64,
    voided: u64,
    contested: u64,
    decisions: u64,
    same_key: u64,
    same_key_statuses: BTreeMap<u16, u64>,
    foreign_references: u64,
    outcomes: BTreeMap<(&'static str, &'static str), u64>,
}

/// A stack whose payment provider never times out under load: this area is about places and
/// decisions, and a breaker opened by the harness's own CPU starvation would only blur it.
fn options(f: &dyn Fixture, capacity: i64) -> LocalOptions {
    let mut options = fast_options();
    f.set_capacity(&mut options, capacity);
    options.config.payment.timeout = Duration::from_secs(60);
    options.config.payment.failure_threshold = 1_000_000;
    options
}

fn db(stack: &LocalStack) -> anyhow::Result<&clinicflow::adapters::embedded::Embedded> {
    Ok(&stack
        .embedded()
        .ok_or_else(|| anyhow::anyhow!("the concurrency area runs on SQLite"))?
        .db)
}

fn judge_contender(slice: &str, answer: &anyhow::Result<Answer>) -> Option<String> {
    match answer {
        Err(e) => Some(format!("{slice} last places: a contender's request failed in transport: {e}")),
        Ok(a) if a.is_5xx() => Some(format!("{slice} last places: a contender got {} ({})", a.status, a.body["detail"])),
        Ok(a) if a.status == 201 => None,
        Ok(a) if a.status == 409 && a.is_problem() => None,
        Ok(a) => Some(format!(
            "{slice} last places: a contender got {} {:?}; allowed: 201, or 409 problem+json",
            a.status, a.content_type
        )),
    }
}

async fn last_places(f: &'static dyn Fixture, mode: Mode, report: &mut AreaReport, tally: &mut Tally) -> anyhow::Result<()> {
    let slice = f.slice();
    let contenders = mode.pick(1000, 200);
    let stack = LocalStack::start(options(f, CAPACITY)).await?;
    let api = Api::new(&stack)?;
    let body = slices::opening_body(f, &stack.platform, 50, &CONTENDER, "tok_ok").await?;
    let opening = f.opening();

    // The early birds are distinct people: a slice may let one hold a single case at a time.
    for i in 0..CAPACITY - REMAINING {
        let early = stack.token(&format!("early-bird-{i}"), &[PATIENT.group]);
        let a = api.send("POST", opening, Some(&early), Some(&body)).await?;
        if a.status != 201 {
            report.violation(format!(
                "{slice} last places: pre-filling the slot got {} ({})",
                a.status, a.body["detail"]
            ));
            stack.shutdown().await;
            return Ok(());
        }
    }

    // Every caller and request is built before the first one is sent.
    let bytes = body.to_string().into_bytes();
    let authorizations: Vec<String> = (0..contenders)
        .map(|i| bearer(&stack.token(&format!("contender-{i}"), &[PATIENT.group])))
        .collect();
    let requests: Vec<_> = authorizations
        .iter()
        .map(|auth| {
            let (api, bytes) = (api.clone(), bytes.clone());
            async move {
                let call = || Call {
                    method: "POST",
                    path: opening,
                    authorization: Some(auth),
                    body: Some(("application/json", bytes.clone())),
                    headers: &[],
                };
                api.call_shed_aware(call).await
            }
        })
        .collect();
    let sent = join_all(requests).await;
    let mut answers = Vec::new();
    for (answer, sheds) in sent {
        tally.shed += sheds;
        answers.push(answer);
    }

    let mut winners = Vec::new();
    for answer in &answers {
        tally.contenders += 1;
        if answer.as_ref().is_ok_and(Answer::is_5xx) {
            tally.server_errors += 1;
        }
        if let Some(id) = answer.as_ref().ok().and_then(created_id) {
            winners.push(id);
        }
        report.case(judge_contender(slice, answer));
    }
    let won = winners.len() as i64;
    if won > REMAINING {
        report.violation(format!("{slice} last places: {won} contenders won {REMAINING} places"));
    } else if won < REMAINING {
        report.violation(format!(
            "{slice} last places: only {won} of the {REMAINING} free places were taken by {contenders} contenders"
        ));
    }

    if !stack.settle(Duration::from_secs(60)).await {
        report.violation(format!("{slice} last places: the stack did not settle within 60 s"));
    }
    let taken = f.places_taken(&stack, &body).await?;
    if taken != CAPACITY {
        report.violation(format!(
            "{slice} last places: the slot's counter is {taken}, its capacity {CAPACITY}"
        ));
    }
    let stored = f.cases_like(db(&stack)?, &body).await?;
    let stored_n = stored.len() as i64;
    tally.over_capacity += stored_n.saturating_sub(CAPACITY).max(0) as u64;
    if stored_n != CAPACITY {
        report.violation(format!(
            "{slice} last places: {stored_n} cases stored for a slot of {CAPACITY} places"
        ));
    }
    if let Some(missing) = winners.iter().find(|id| !stored.contains(*id)) {
        report.violation(format!("{slice} last places: winner {missing} got 201 but its case is not stored"));
    }

    // Money: kept for each stored case, released for every refused contender.
    if f.pays() {
        last_places_money(f, &stack, &stored, report, tally);
    }

    // The SMS are those of the stored cases' status changes; a refused contender hears nothing.
    let sent = stack.sms_sent().await?;
    let notifying = feed(db(&stack)?)
        .await?
        .iter()
        .filter(|e| stored.contains(&e.correlation_id))
        .filter(|e| {
            clinicflow::catalog()
                .rules
                .iter()
                .any(|r| r.target == SMS_NOTIFIER && r.matches(&e.source, &e.event_type))
        })
        .count();
    if sent.len() != notifying {
        report.violation(format!(
            "{slice} last places: {} SMS sent for {stored_n} stored cases, whose status changes send {notifying} \
             (refused contenders must get none)",
            sent.len()
        ));
    }
    stack.shutdown().await;
    Ok(())
}

/// Sends the steps `taking` is given on case `id` of `f` opened with `body` for `owner` (a
/// subject), each by its caller once the case is ready for it, then waits until the case is
/// ready for the step that takes a place; says what went wrong, if anything.
async fn bring(
    f: &'static dyn Fixture,
    stack: &LocalStack,
    api: &Api,
    id: &str,
    owner: &str,
    body: &serde_json::Value,
    taking: &Taking,
) -> anyhow::Result<Option<String>> {
    let then = &taking.step;
    if !slices::wait_ready(f, stack, id, Duration::from_secs(30)).await {
        return Ok(Some(format!("case {id} never became ready")));
    }
    for step in taking.given {
        if !slices::wait_ready_for(f, stack, id, Some(step), Duration::from_secs(30)).await {
            return Ok(Some(format!("case {id} never became ready for {}", step.name)));
        }
        let (path, json) = slices::step_request(f, &stack.platform, step, id, body).await?;
        let token = step.who.token(stack, owner);
        let (answer, _) = api.send_shed_aware(step.method.as_str(), &path, Some(&token), json.as_ref()).await;
        let answer = answer?;
        if answer.status != step.success {
            return Ok(Some(format!(
                "{} on case {id} got {} ({})",
                step.name, answer.status, answer.body["detail"]
            )));
        }
    }
    if !slices::wait_ready_for(f, stack, id, Some(then), Duration::from_secs(30)).await {
        return Ok(Some(format!("case {id} never became ready for {}", then.name)));
    }
    Ok(None)
}

/// The last places when a later step takes them ([`Fixture::taking`]): every case is opened
/// by an owner of its own and brought to the step ([`Taking::given`]); the step is sent for
/// the first `CAPACITY - REMAINING` one by one, then for every contender's at once (every
/// request built first).
async fn last_places_by_step(
    f: &'static dyn Fixture,
    taking: Taking,
    mode: Mode,
    report: &mut AreaReport,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let slice = f.slice();
    let contenders = mode.pick(1000, 200);
    let early = usize::try_from(CAPACITY - REMAINING).unwrap_or_default();
    let stack = LocalStack::start(options(f, CAPACITY)).await?;
    let api = Api::new(&stack)?;
    let body = slices::opening_body(f, &stack.platform, 50, &CONTENDER, "tok_ok").await?;
    let step = taking.step;

    // Every case, each by an owner of its own (a slice may let one hold a single case).
    let subs: Vec<String> = (0..early + contenders).map(|i| format!("taker-{i}")).collect();
    let openings: Vec<(String, serde_json::Value)> = subs.iter().map(|sub| slices::opening_token(f, &stack, sub, &body)).collect();
    let answers: Vec<_> = futures::stream::iter(openings.iter().map(|(token, body)| {
        let api = api.clone();
        async move { api.send_shed_aware("POST", f.opening(), Some(token), Some(body)).await }
    }))
    .buffered(64)
    .collect()
    .await;
    let mut cases: Vec<(String, &str)> = Vec::new();
    for ((answer, sheds), sub) in answers.into_iter().zip(&subs) {
        tally.shed += sheds;
        match answer.as_ref().ok().and_then(created_id) {
            Some(id) => cases.push((id, sub.as_str())),
            None => report.violation(format!(
                "{slice} last places: a case could not be opened: {:?}",
                answer.map(|a| (a.status, a.body["detail"].clone())).map_err(|e| e.to_string())
            )),
        }
    }

    // Each brought to the step that takes a place.
    let brought: Vec<anyhow::Result<Option<String>>> = futures::stream::iter(cases.iter().map(|(id, sub)| {
        let (stack, api, body, taking) = (&stack, &api, &body, &taking);
        async move { bring(f, stack, api, id, sub, body, taking).await }
    }))
    .buffered(32)
    .collect()
    .await;
    let mut ready = Vec::new();
    for (brought, case) in brought.into_iter().zip(&cases) {
        match brought? {
            None => ready.push(case.clone()),
            Some(why) => report.violation(format!("{slice} last places: {why}")),
        }
    }
    if ready.len() < early + contenders {
        report.violation(format!(
            "{slice} last places: only {} of the {} cases reached {}",
            ready.len(),
            early + contenders,
            step.name
        ));
    }
    let (firsts, rest) = ready.split_at(early.min(ready.len()));

    // Each step sent by its caller: the case's owner, or staff (at their site).
    let request = |id: &str, sub: &str| -> (String, Option<serde_json::Value>, String) {
        let json = step.body.map(|b| b());
        (f.resolve(step.path, id, &body), json, bearer(&step.who.token(&stack, sub)))
    };
    // The first places, one by one.
    for (id, sub) in firsts {
        let (path, json, auth) = request(id, sub);
        let a = api
            .call(Call::json(step.method.as_str(), &path, Some(&auth), json.as_ref()))
            .await?;
        if a.status != step.success {
            report.violation(format!(
                "{slice} last places: pre-filling with {} on case {id} got {} ({})",
                step.name, a.status, a.body["detail"]
            ));
            stack.shutdown().await;
            return Ok(());
        }
    }

    // The last places: every contender's step built first, then all sent together.
    let built: Vec<(String, Option<serde_json::Value>, String)> = rest.iter().map(|(id, sub)| request(id, sub)).collect();
    let answers = join_all(built.iter().map(|(path, json, auth)| {
        let api = api.clone();
        async move { api.call(Call::json(step.method.as_str(), path, Some(auth), json.as_ref())).await }
    }))
    .await;
    let mut winners = Vec::new();
    for (answer, (id, _)) in answers.iter().zip(rest) {
        tally.contenders += 1;
        if answer.as_ref().is_ok_and(Answer::is_5xx) {
            tally.server_errors += 1;
        }
        let verdict = match answer {
            Err(e) => Some(format!("{slice} last places: a contender's {} failed in transport: {e}", step.name)),
            Ok(a) if a.status == step.success => {
                winners.push(id.clone());
                None
            }
            Ok(a) if a.status == 409 && a.is_problem() => None,
            Ok(a) => Some(format!(
                "{slice} last places: a contender's {} got {} {:?} ({}); allowed: {}, or 409 problem+json",
                step.name, a.status, a.content_type, a.body["detail"], step.success
            )),
        };
        report.case(verdict);
    }
    let won = winners.len() as i64;
    if won > REMAINING {
        report.violation(format!("{slice} last places: {won} contenders won {REMAINING} places"));
    } else if won < REMAINING {
        report.violation(format!(
            "{slice} last places: only {won} of the {REMAINING} free places were taken by {} contenders",
            rest.len()
        ));
    }

    if !stack.settle(Duration::from_secs(60)).await {
        report.violation(format!("{slice} last places: the stack did not settle within 60 s"));
    }
    let taken = f.places_taken(&stack, &body).await?;
    if taken != CAPACITY {
        report.violation(format!("{slice} last places: the counter is {taken}, the capacity {CAPACITY}"));
    }
    let holding = f.cases_like(db(&stack)?, &body).await?;
    let holding_n = holding.len() as i64;
    tally.over_capacity += holding_n.saturating_sub(CAPACITY).max(0) as u64;
    if holding_n != CAPACITY {
        report.violation(format!("{slice} last places: {holding_n} cases hold a place of {CAPACITY}"));
    }
    if let Some(missing) = firsts.iter().map(|(id, _)| id).chain(&winners).find(|id| !holding.contains(*id)) {
        report.violation(format!("{slice} last places: case {missing} got its place but does not hold it"));
    }

    // The SMS are those of every case's status changes: a contender that lost hears nothing of it.
    let opened: HashSet<&str> = cases.iter().map(|(id, _)| id.as_str()).collect();
    let sent = stack.sms_sent().await?;
    let notifying = feed(db(&stack)?)
        .await?
        .iter()
        .filter(|e| opened.contains(e.correlation_id.as_str()))
        .filter(|e| {
            clinicflow::catalog()
                .rules
                .iter()
                .any(|r| r.target == SMS_NOTIFIER && r.matches(&e.source, &e.event_type))
        })
        .count();
    if sent.len() != notifying {
        report.violation(format!(
            "{slice} last places: {} SMS sent for {} cases, whose status changes send {notifying}",
            sent.len(),
            cases.len()
        ));
    }
    stack.shutdown().await;
    Ok(())
}

/// The money of the last places: kept for each stored case, released for every refused
/// contender.
fn last_places_money(f: &dyn Fixture, stack: &LocalStack, stored: &HashSet<String>, report: &mut AreaReport, tally: &mut Tally) {
    let slice = f.slice();
    let price = f.price(&stack.platform.config, 0).0;
    let mut kept_for_refused = 0;
    let mut captured_for_stored: BTreeMap<String, u32> = BTreeMap::new();
    for entry in stack.sandbox.entries() {
        match (stored.contains(&entry.reference), entry.status) {
            (true, LedgerStatus::Captured) => *captured_for_stored.entry(entry.reference.clone()).or_default() += 1,
            (true, other) => report.violation(format!(
                "{slice} last places: the payment of stored case {} is {other:?}, not captured",
                entry.reference
            )),
            (false, LedgerStatus::Captured) => kept_for_refused += 1,
            (false, LedgerStatus::Voided) => tally.voided += 1,
            (false, LedgerStatus::Refunded) => {}
        }
    }
    if kept_for_refused > 0 {
        report.violation(format!(
            "{slice} last places: {kept_for_refused} refused contender(s) were charged and the charge was never voided"
        ));
    }
    if captured_for_stored.len() != stored.len() || captured_for_stored.values().any(|n| *n != 1) {
        report.violation(format!(
            "{slice} last places: {} stored cases but {} of them with exactly one captured payment",
            stored.len(),
            captured_for_stored.values().filter(|n| **n == 1).count()
        ));
    }
    let kept = stack.sandbox.kept().0;
    if kept != CAPACITY as u64 * price {
        report.violation(format!(
            "{slice} last places: the provider keeps {kept}, the cases paid {}",
            CAPACITY as u64 * price
        ));
    }
}

struct Contested {
    id: String,
    /// The owner's token.
    owner: String,
    body: serde_json::Value,
}

async fn contested_decisions(f: &'static dyn Fixture, mode: Mode, report: &mut AreaReport, tally: &mut Tally) -> anyhow::Result<()> {
    let slice = f.slice();
    let contest = f.contest();
    let cases = mode.pick(100, 20);
    let stack = LocalStack::start(options(f, 20)).await?;
    let api = Api::new(&stack)?;

    let subs: Vec<String> = (0..cases).map(|i| format!("contest-patient-{i}")).collect();
    let owners: Vec<String> = subs.iter().map(|sub| stack.token(sub, &[PATIENT.group])).collect();
    let mut bodies: Vec<serde_json::Value> = Vec::new();
    for i in 0..cases {
        bodies.push(slices::opening_body(f, &stack.platform, 100 + i as i64, &CONTENDER, "tok_ok").await?);
    }
    // Opened as the slice opens a case: by its owner, or by staff on the owner's behalf.
    let openings: Vec<(String, serde_json::Value)> = subs
        .iter()
        .zip(&bodies)
        .map(|(sub, body)| slices::opening_token(f, &stack, sub, body))
        .collect();
    let answers = join_all(openings.iter().map(|(token, body)| {
        let api = api.clone();
        async move { api.send_shed_aware("POST", f.opening(), Some(token), Some(body)).await }
    }))
    .await;
    let mut contests = Vec::new();
    for (((answer, sheds), owner), body) in answers.into_iter().zip(&owners).zip(&bodies) {
        tally.shed += sheds;
        match answer.as_ref().ok().and_then(created_id) {
            Some(id) => contests.push(Contested {
                id,
                owner: owner.clone(),
                body: body.clone(),
            }),
            None => report.violation(format!(
                "{slice} contest: a case could not be opened: {:?}",
                answer.map(|a| (a.status, a.body["detail"].clone())).map_err(|e| e.to_string())
            )),
        }
    }
    // The decisions need the case ready.
    stack.settle(Duration::from_secs(30)).await;
    for c in &contests {
        if !slices::wait_ready(f, &stack, &c.id, Duration::from_secs(10)).await {
            report.violation(format!("{slice} contest: case {} never became ready for its decisions", c.id));
        }
    }

    // Several of each decision per case, all cases at once, in a shuffled order. Each staff
    // decision is sent by its caller ([`Who::caller`]): one member of a role, or a named
    // colleague (two doctors racing for one patient are two people).
    let staff: Vec<Option<String>> = contest
        .decisions
        .iter()
        .map(|d| match d.who {
            Who::Owner => None,
            who => Some(bearer(&who.token(&stack, ""))),
        })
        .collect();
    let owner_auths: Vec<String> = contests.iter().map(|c| bearer(&c.owner)).collect();
    let mut plan: Vec<(usize, usize, String)> = Vec::new();
    for (i, c) in contests.iter().enumerate() {
        let mix = contest.mixes[i % contest.mixes.len()];
        for &d in mix {
            for _ in 0..1 + fastrand::usize(..3) {
                plan.push((i, d, f.resolve(contest.decisions[d].path, &c.id, &c.body)));
            }
        }
    }
    fastrand::shuffle(&mut plan);
    let bodies: Vec<Option<Vec<u8>>> = contest
        .decisions
        .iter()
        .map(|d| d.body.map(|b| b().to_string().into_bytes()))
        .collect();
    let requests: Vec<_> = plan
        .iter()
        .map(|(i, d, path)| {
            let decision = &contest.decisions[*d];
            let authorization = match &staff[*d] {
                Some(auth) => auth.as_str(),
                None => owner_auths[*i].as_str(),
            };
            api.call(Call {
                method: decision.method.as_str(),
                path,
                authorization: Some(authorization),
                body: bodies[*d].clone().map(|b| ("application/json", b)),
                headers: &[],
            })
        })
        .collect();
    let answers = join_all(requests).await;

    // Which decisions won, per case.
    let mut won = vec![vec![false; contest.decisions.len()]; contests.len()];
    for ((i, d, _), answer) in plan.iter().zip(&answers) {
        tally.decisions += 1;
        let c = &contests[*i];
        let decision = &contest.decisions[*d];
        let verdict = match answer {
            Err(e) => Some(format!("{slice} contest {}: a {} failed in transport: {e}", c.id, decision.name)),
            Ok(a) if a.is_5xx() => {
                tally.server_errors += 1;
                Some(format!(
                    "{slice} contest {}: a {} got {} ({})",
                    c.id, decision.name, a.status, a.body["detail"]
                ))
            }
            Ok(a) if a.status == decision.success => {
                won[*i][*d] = true;
                None
            }
            Ok(a) if a.status == 409 && a.is_problem() => None,
            Ok(a) => Some(format!(
                "{slice} contest {}: a {} got {} {:?}; allowed: {} or 409 problem+json",
                c.id, decision.name, a.status, a.content_type, decision.success
            )),
        };
        report.case(verdict);
    }

    if !stack.settle(Duration::from_secs(60)).await {
        report.violation(format!("{slice} contest: the stack did not settle within 60 s"));
    }
    for (c, won) in contests.iter().zip(won) {
        tally.contested += 1;
        let names: Vec<String> = contest.decisions.iter().zip(&won).map(|(d, w)| format!("{} {w}", d.name)).collect();
        let outcome = match f.implied_outcome(&won) {
            Ok(o) => o,
            Err(why) => {
                report.violation(format!("{slice} contest {}: illegal outcome: {why}", c.id));
                continue;
            }
        };
        *tally.outcomes.entry((slice, outcome)).or_default() += 1;
        let wrong = f.judge_contest(&stack, &api, &c.id, &c.owner, &c.body, &won, outcome).await?;
        if !wrong.is_empty() {
            report.violation(format!(
                "{slice} contest {} (won: {}; ended {outcome}): {}",
                c.id,
                names.join(", "),
                wrong.join("; ")
            ));
        }
    }
    stack.shutdown().await;
    Ok(())
}

/// Several copies of one opening request with one `Idempotency-Key` at once: a double
/// submit (identical bodies) and a key reused for the other variant while the first request
/// is in flight. Per key: one case at most, every `201` names it, a copy with another body
/// gets `422`, a copy that arrives while the first is being processed may get `409`; the
/// provider keeps exactly the stored case's price, and ending it refunds it.
/// A copy the service sheds (`503` with `Retry-After`) is sent again after the delay, as a
/// client does; a `503` without one, or any other `5xx`, is a violation.
async fn same_key_at_once(f: &'static dyn Fixture, mode: Mode, report: &mut AreaReport, tally: &mut Tally) -> anyhow::Result<()> {
    let slice = f.slice();
    let keys = mode.pick(40, 10);
    let stack = LocalStack::start(options(f, 20)).await?;
    let api = Api::new(&stack)?;

    struct Key {
        /// The owner's token.
        owner: String,
        /// The owner's subject.
        sub: String,
        /// The opener's.
        auth: String,
        key: String,
        first: serde_json::Value,
        bodies: [Vec<u8>; 2],
        mixed: bool,
    }
    let mut plans: Vec<Key> = Vec::new();
    for i in 0..keys {
        let sub = format!("idem-patient-{i}");
        let owner = stack.token(&sub, &[PATIENT.group]);
        let first = slices::opening_body(f, &stack.platform, 250 + i as i64, &CONTENDER, "tok_ok").await?;
        let mixed = i % 2 == 1;
        let other = if mixed {
            slices::other_opening_body(f, &stack.platform, &first).await?
        } else {
            first.clone()
        };
        let (opener, first) = slices::opening_token(f, &stack, &sub, &first);
        let other = f.owned_by(&other, &sub);
        plans.push(Key {
            auth: bearer(&opener),
            owner,
            sub,
            key: format!("idem-{i}-{}", fastrand::u64(..)),
            first: first.clone(),
            bodies: [first.to_string().into_bytes(), other.to_string().into_bytes()],
            mixed,
        });
    }
    let mut sends: Vec<(usize, usize)> = (0..keys).flat_map(|k| [(k, 0), (k, 0), (k, 1), (k, 1)]).collect();
    fastrand::shuffle(&mut sends);
    let headers: Vec<[(&str, &str); 1]> = plans.iter().map(|k| [("idempotency-key", k.key.as_str())]).collect();
    // Each copy is sent as a well-behaved client sends it: shed (503 + Retry-After), it is
    // sent again with the same key after the delay asked for.
    let requests: Vec<_> = sends
        .iter()
        .map(|(k, b)| {
            let call = || Call {
                method: "POST",
                path: f.opening(),
                authorization: Some(&plans[*k].auth),
                body: Some(("application/json", plans[*k].bodies[*b].clone())),
                headers: &headers[*k],
            };
            let api = &api;
            async move { api.call_shed_aware(call).await }
        })
        .collect();
    let mut answers = Vec::new();
    for (answer, sheds) in join_all(requests).await {
        tally.shed += sheds;
        answers.push(answer);
    }

    let mut created: Vec<HashSet<String>> = vec![HashSet::new(); keys];
    for ((k, _), answer) in sends.iter().zip(&answers) {
        tally.same_key += 1;
        if let Ok(a) = answer {
            *tally.same_key_statuses.entry(a.status).or_default() += 1;
        }
        let plan = &plans[*k];
        let verdict = match answer {
            Err(e) => Some(format!("{slice} same key {}: a request failed in transport: {e}", plan.key)),
            Ok(a) if a.is_5xx() => {
                tally.server_errors += 1;
                Some(format!(
                    "{slice} same key {}: a copy got {} ({})",
                    plan.key, a.status, a.body["detail"]
                ))
            }
            Ok(a) if a.status == 201 => {
                created[*k].extend(created_id(a));
                None
            }
            Ok(a) if a.status == 409 && a.is_problem() => None,
            Ok(a) if a.status == 422 && a.is_problem() && plan.mixed => None,
            Ok(a) => Some(format!(
                "{slice} same key {}: a copy got {} {:?} ({})",
                plan.key, a.status, a.content_type, a.body["detail"]
            )),
        };
        report.case(verdict);
    }
    stack.settle(Duration::from_secs(30)).await;

    // One case per key, and the provider holds exactly what that case recorded.
    let db = db(&stack)?;
    let opened = f.opened(db).await?;
    let payments: Vec<Payment> = aggregates(db, payment::CONTEXT).await?.into_values().collect();
    let ledger = stack.sandbox.entries();
    let mut stored_ids = Vec::new();
    for (k, plan) in plans.iter().enumerate() {
        let stored: Vec<_> = opened.iter().filter(|c| c.owner == plan.sub).collect();
        let mut wrong = Vec::new();
        if created[k].len() > 1 {
            wrong.push(format!("{} different cases answered 201", created[k].len()));
        }
        if stored.len() != usize::from(!created[k].is_empty()) {
            wrong.push(format!("{} cases stored", stored.len()));
        }
        for c in &stored {
            if !created[k].is_empty() && !created[k].contains(&c.id) {
                wrong.push("the stored case is not the one the 201 named".into());
            }
            let payment = payments.iter().find(|p| p.id == c.payment_id);
            let entry = payment.and_then(|p| ledger.iter().find(|e| e.provider_ref == p.provider_ref));
            match (payment, entry) {
                _ if !f.pays() => {}
                (Some(p), Some(e)) => {
                    if p.amount != c.price || e.amount != p.amount {
                        wrong.push(format!(
                            "the case's price is {}, its payment records {}, the provider captured {}",
                            c.price, p.amount, e.amount
                        ));
                    }
                    // Not a broken promise (the money is right), but reconciliation by
                    // reference will not find the case: counted, not a violation.
                    if e.reference != c.id {
                        tally.foreign_references += 1;
                    }
                }
                _ => wrong.push("the case's payment is missing from the store or from the provider".into()),
            }
            stored_ids.push((
                c.id.clone(),
                c.payment_id.clone(),
                plan.owner.clone(),
                plan.first.clone(),
                plan.sub.clone(),
            ));
        }
        if !wrong.is_empty() {
            report.violation(format!(
                "{slice} same key {} ({}): {}",
                plan.key,
                if plan.mixed {
                    "reused for the other variant"
                } else {
                    "double submit"
                },
                wrong.join("; ")
            ));
        }
    }
    let kept_for_stored: u64 = opened.iter().map(|c| c.price.0).sum();
    if stack.sandbox.kept().0 != kept_for_stored {
        report.violation(format!(
            "{slice} same key: the provider keeps {}, the stored cases paid {kept_for_stored}",
            stack.sandbox.kept().0
        ));
    }

    // Ending every case gives its money back; the ending is sent by its caller (the owner,
    // or the staff who end a case).
    let ending = f.ending();
    for (id, _, owner, first, sub) in &stored_ids {
        let body = ending.body.map(|b| b());
        let token = match ending.who {
            Who::Owner => owner.clone(),
            who => who.token(&stack, sub),
        };
        let a = api
            .send(
                ending.method.as_str(),
                &f.resolve(ending.path, id, first),
                Some(&token),
                body.as_ref(),
            )
            .await?;
        if a.status != ending.success {
            report.violation(format!(
                "{slice} same key: the {} of {id} got {} ({})",
                ending.name, a.status, a.body["detail"]
            ));
        }
    }
    stack.settle(Duration::from_secs(30)).await;
    for (id, payment_id, ..) in stored_ids.iter().filter(|_| f.pays()) {
        let refunded = super::api::poll(Duration::from_secs(5), || async {
            let payments: BTreeMap<String, Payment> = aggregates(db, payment::CONTEXT).await.ok()?;
            payments
                .get(payment_id)
                .is_some_and(|p| p.status == PaymentStatus::Refunded)
                .then_some(())
        })
        .await;
        if refunded.is_none() {
            report.violation(format!(
                "{slice} same key: case {id} ended ({}) but its payment was never refunded",
                ending.name
            ));
        }
    }
    for dead in stack.dead_letters().await? {
        report.violation(format!(
            "{slice} same key: {} on {} {} was dead-lettered: {}",
            dead.target, dead.event.event_type, dead.event.aggregate_id, dead.error
        ));
    }
    if stack.sandbox.kept().0 != 0 {
        report.violation(format!(
            "{slice} same key: the provider still keeps {} after every case ended",
            stack.sandbox.kept().0
        ));
    }
    stack.shutdown().await;
    Ok(())
}
