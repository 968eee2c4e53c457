//! What the harness's areas need from a slice, and the registry of the slices' fixtures.
//!
//! The areas know no flow: they derive what is generic from `clinicflow::catalog()` (routes
//! with their roles and functions, consumers and rules, failure points, functions, tables)
//! and ask each slice's [`Fixture`] only what the catalog cannot say: how to open a case (and
//! who opens it: its owner, or staff on the owner's behalf, [`Fixture::opener`]) and what
//! its journeys do ([`Journey`], each step waiting for what it depends on,
//! [`Fixture::ready_for`]), how to call each of its routes ([`RouteCall`]), what its
//! aggregates must hold once settled ([`Fixture::check`]), how to read its views, which of
//! its commands contend (the `concurrency` area), where its staff work when each belongs to
//! one site ([`Fixture::sites`], carried by every staff token the areas make, [`token`]),
//! and how to open and end a case on its use cases directly (the staged held-charge race).
//!
//! A slice is tested once its fixture is listed in [`all`]. A catalogued route of a slice
//! whose fixture has no entry for it is a violation of the `authz` and `fuzz` areas, and a
//! failure point no fixture's journeys are armed at is a violation of the `failpoints` area,
//! so a new slice cannot escape the harness silently.
//!
//! To add one: write `slices/<flow>.rs` with a unit struct implementing [`Fixture`] (the
//! check-up one, [`checkup`], is the model) and list it in [`all`].

pub mod checkup;
pub mod covid;
pub mod hospital;
pub mod vaccine;

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use clinicflow::adapters::embedded::Embedded;
use clinicflow::app::Platform;
use clinicflow::config::Config;
use clinicflow::domain::Won;
use clinicflow::events::EventEnvelope;
use clinicflow::topology::{Method, PATIENT, Role, Route};
use clinicflow_tests::{LocalOptions, LocalStack};
use serde_json::Value;

use crate::areas::api::{Api, Person};
use crate::invariants::Case;

/// Every slice's fixture, in the catalog's order of slices.
pub fn all() -> &'static [&'static dyn Fixture] {
    static ALL: &[&dyn Fixture] = &[&checkup::CHECKUP, &vaccine::VACCINE, &hospital::HOSPITAL, &covid::COVID];
    ALL
}

/// The fixture of the slice named `slice`, if it has one.
pub fn of(slice: &str) -> Option<&'static dyn Fixture> {
    all().iter().copied().find(|f| f.slice() == slice)
}

/// The fixture of the slice that serves `route` (`None` for the platform's public routes and
/// for a slice without a fixture).
pub fn of_route(route: &Route) -> Option<&'static dyn Fixture> {
    clinicflow::catalog().slice_of(route.function).and_then(|s| of(s.name))
}

/// Where the members of a staff role work, for a slice whose staff each belong to one site
/// (a test site, an isolation centre), named by their token's `custom:site` claim
/// ([`Fixture::sites`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sites {
    /// The site every member of the role the areas send works at: where the fixtures' cases
    /// are.
    pub home: &'static str,
    /// Another site of the same kind, whose staff must not act on the home site's cases (the
    /// `authz` area's column of the role's staff elsewhere, [`RouteCall::elsewhere`]; another
    /// column has the role's staff with no site, [`RouteCall::no_site`]).
    pub other: &'static str,
}

/// The home site of the staff in `groups`: the first a fixture names for one of those roles
/// ([`Fixture::sites`]); `None` for a patient, and for staff who belong to no site.
pub fn site_of(groups: &[&str]) -> Option<&'static str> {
    let roles = &clinicflow::catalog().roles;
    groups.iter().find_map(|group| {
        let role = roles.iter().copied().find(|r| r.group == *group)?;
        all().iter().find_map(|f| f.sites(role)).map(|s| s.home)
    })
}

/// A dev token for `sub` in `groups` on `stack`, valid for an hour, carrying the site its
/// staff work at when they belong to one ([`site_of`]): every token the areas send as staff.
pub fn token(stack: &LocalStack, sub: &str, groups: &[&str]) -> String {
    match site_of(groups) {
        Some(site) => stack.token_at(sub, groups, site),
        None => stack.token(sub, groups),
    }
}

/// The catalog's slices that no fixture tests.
pub fn untested() -> Vec<&'static str> {
    clinicflow::catalog()
        .slices
        .iter()
        .map(|s| s.name)
        .filter(|name| of(name).is_none())
        .collect()
}

/// Who sends a step of a journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The case's owner (a [`PATIENT`]), who opened it unless the fixture's opener did.
    Owner,
    /// A member of a staff role of the slice.
    Staff(Role),
    /// Another member of a staff role, named: not [`Who::Staff`]'s member, nor another
    /// name's (a second doctor racing the first for one patient).
    Colleague(Role, &'static str),
}

impl Who {
    /// The subject and groups of the caller, `owner` being the case's owner.
    pub fn caller(self, owner: &str) -> (String, Vec<&'static str>) {
        match self {
            Self::Owner => (owner.to_owned(), vec![PATIENT.group]),
            Self::Staff(role) => (format!("staff-{}", role.group), vec![role.group]),
            Self::Colleague(role, name) => (format!("staff-{}-{name}", role.group), vec![role.group]),
        }
    }

    /// The role the caller acts in.
    pub fn role(self) -> Role {
        match self {
            Self::Owner => PATIENT,
            Self::Staff(role) | Self::Colleague(role, _) => role,
        }
    }

    /// A token of the caller on `stack`, `owner` being the case's owner's subject; a staff
    /// member's carries their site, if they belong to one ([`token`]).
    pub fn token(self, stack: &LocalStack, owner: &str) -> String {
        let (sub, groups) = self.caller(owner);
        token(stack, &sub, &groups)
    }
}

/// One request of a journey, on a case that is [`Fixture::ready`].
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// What it does, in reports (`confirm`).
    pub name: &'static str,
    /// Who sends it.
    pub who: Who,
    /// Its method.
    pub method: Method,
    /// Its path; `{id}` is the case, other placeholders are the fixture's
    /// ([`Fixture::resolve`]).
    pub path: &'static str,
    /// Its JSON body, if it takes one.
    pub body: Option<fn() -> Value>,
    /// The status of a step that moved the case (or found it already there).
    pub success: u16,
}

/// A journey whose case is opened by another request than the fixture's opening (a citizen
/// joining a waiting list rather than reserving).
#[derive(Debug, Clone, Copy)]
pub struct Opening {
    /// Its path, placeholders resolved by [`Fixture::resolve`].
    pub path: &'static str,
    /// From the fixture's opening body: the body the case is opened on (prepared, and what
    /// the placeholders of the opening's and the steps' paths are resolved on), and the
    /// request's body.
    pub bodies: fn(&Value) -> (Value, Value),
}

/// How the request that opens a journey's case is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opens {
    /// `201` with the case's `id`; the case must end in this state.
    Case(&'static str),
    /// Refused with this status, and no case (a declined payment, `402`).
    Refused(u16),
    /// Refused with this server error by design (a dependency down, `503`): the answer is
    /// expected, but it trips breakers, so no area runs it alongside other journeys.
    Unavailable(u16),
}

/// One way a case goes, from the request that opens it to its last step.
#[derive(Debug, Clone, Copy)]
pub struct Journey {
    /// Its name in reports (`book→confirm`).
    pub name: &'static str,
    /// The sandbox card token the case is opened with (`tok_ok`, `tok_declined`, `tok_down`).
    pub card: &'static str,
    /// How the opening request is answered.
    pub opens: Opens,
    /// The request that opens the case, when it is not the fixture's opening
    /// ([`Fixture::opening`] with the opening body).
    pub opening: Option<Opening>,
    /// What follows once the case is ready.
    pub steps: &'static [Step],
    /// The failure points the `failpoints` area arms on this journey: those it passes
    /// through. A journey whose points others already cover may list none.
    pub armed_at: fn(&str) -> bool,
}

impl Journey {
    /// The state the case ends in, if the journey opens one.
    pub fn outcome(&self) -> Option<&'static str> {
        match self.opens {
            Opens::Case(outcome) => Some(outcome),
            Opens::Refused(_) | Opens::Unavailable(_) => None,
        }
    }
}

/// The body a route needs.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// None.
    Empty,
    /// A valid opening request ([`Fixture::open_body`]); the route takes an
    /// `Idempotency-Key`.
    Opening,
    /// This valid JSON body.
    Json(fn() -> Value),
}

/// How to call one route so that only authorization (or the input under test) can make
/// the call fail.
#[derive(Debug, Clone, Copy)]
pub struct RouteCall {
    /// Names a case (`{id}`): one opened by the owner, and ready.
    pub case: bool,
    /// Changes state: every call gets a case of its own, and a refused call must change nothing.
    pub mutates: bool,
    /// The status of a caller allowed to succeed.
    pub success: u16,
    /// Its body.
    pub body: Body,
    /// A field of the body holding free text (a reason), if any.
    pub text: Option<&'static str>,
    /// The query filters a list route accepts.
    pub filters: &'static [&'static str],
    /// The query string (without `?`) a valid call needs, if any (a list that must name a
    /// department): appended to the path of every call the areas make to the route.
    pub query: Option<&'static str>,
    /// Steps of the slice's journeys that bring the call's case to where the route acts (a
    /// patient a doctor took, before a prescription): sent in order on the case, each by its
    /// caller once the case is ready for it ([`Fixture::ready_for`]), the stack then settled,
    /// before the call. Only on a route naming a case.
    pub given: &'static [Step],
    /// The status the route's staff get when they work at another site than the fixtures'
    /// cases ([`Sites::other`]): a case of another site is not found, another site's list is
    /// forbidden. `None`: the same as at their own (or the route's roles belong to no site).
    pub elsewhere: Option<u16>,
    /// The status the route's staff get when their token names no site at all (no
    /// `custom:site`), for roles whose staff belong to one ([`Fixture::sites`]). `None`: the
    /// same as at their own.
    pub no_site: Option<u16>,
}

impl RouteCall {
    /// A call with no free text, no filters, no query and nothing given.
    pub const fn new(case: bool, mutates: bool, success: u16, body: Body) -> Self {
        Self {
            case,
            mutates,
            success,
            body,
            text: None,
            filters: &[],
            query: None,
            given: &[],
            elsewhere: None,
            no_site: None,
        }
    }

    /// `path` (the route's, its placeholders resolved) with the call's query.
    pub fn path(&self, path: &str) -> String {
        match self.query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        }
    }
}

/// The fields of an opening body that carry personal data.
#[derive(Debug, Clone, Copy)]
pub struct Personal {
    /// The person's name.
    pub name: &'static str,
    /// The person's phone number.
    pub phone: &'static str,
    /// The card token, when the slice takes a payment.
    pub card: Option<&'static str>,
}

/// What a slice's cases owe in money, for the shared refund invariant: a case's payment is
/// refunded exactly once iff the case ended without completing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The case.
    pub case: String,
    /// Its state, for reports.
    pub state: &'static str,
    /// The payment that paid for it.
    pub payment_id: String,
    /// Must it be refunded?
    pub refunded: bool,
}

/// A stored case, as the `concurrency` area and the held-charge race judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Its id.
    pub id: String,
    /// Its owner's subject.
    pub owner: String,
    /// The payment that paid for it.
    pub payment_id: String,
    /// What it recorded as paid.
    pub price: Won,
    /// Which variant of the opening request it was opened with ([`Fixture::variants`]).
    pub variant: &'static str,
}

/// How a case takes a place of a capacity when its opening takes none ([`Fixture::taking`]):
/// a later step takes it (a dispatch taking a bed).
#[derive(Debug, Clone, Copy)]
pub struct Taking {
    /// Steps of the slice's journeys that bring a case to where it may take a place, sent
    /// in order, each by its caller once the case is ready for it ([`Fixture::ready_for`]).
    pub given: &'static [Step],
    /// The step that takes the place: answered its success, or `409` problem+json once no
    /// place is left. The case is ready for it ([`Fixture::ready_for`]) before it is sent.
    pub step: Step,
}

/// The decisions that race on one case in the `concurrency` area.
#[derive(Debug, Clone, Copy)]
pub struct Contest {
    /// The contending steps.
    pub decisions: &'static [Step],
    /// Which of them hit the n-th contested case (indices into `decisions`, cycled), so that
    /// every outcome is contested.
    pub mixes: &'static [&'static [usize]],
}

/// A slice's fixture: everything an area needs from it that the catalog cannot say.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The slice it tests (its `Slice::name`).
    fn slice(&self) -> &'static str;

    /// The context of its cases' aggregate (a refused call must not move it).
    fn context(&self) -> &'static str;

    /// The path of the `POST` that opens a case (answered `201` with the case's `id`).
    fn opening(&self) -> &'static str;

    /// Who sends the opening request: the case's owner, a patient (default), or a member of
    /// a staff role who opens it on the owner's behalf, the owner then named in the body
    /// ([`Fixture::owned_by`]). Every area opens cases through [`opening_as`].
    fn opener(&self) -> Who {
        Who::Owner
    }

    /// Opening body `body` for a case owned by subject `owner`. Default: as it is (the owner
    /// is who sends it).
    fn owned_by(&self, body: &Value, owner: &str) -> Value {
        let _ = owner;
        body.clone()
    }

    /// Makes what an opening with `body` needs exist beforehand (a slot an administrator
    /// registers), on `p`; idempotent, and called before every opening of a case (see
    /// [`opening_body`]). Default: nothing.
    async fn prepare(&self, p: &Platform, body: &Value) -> anyhow::Result<()> {
        let _ = (p, body);
        Ok(())
    }

    /// What the fixture does itself once `journey` opened case `id` with `body`, before the
    /// case is awaited ready: a third party's move the journey's steps depend on. Default:
    /// nothing.
    async fn after_opening(&self, p: &Platform, journey: &Journey, id: &str, body: &Value) -> anyhow::Result<()> {
        let _ = (p, journey, id, body);
        Ok(())
    }

    /// `path` of a step of case `id` opened with `body`, its placeholders resolved. Default:
    /// `{id}` is the case.
    fn resolve(&self, path: &str, id: &str, body: &Value) -> String {
        let _ = body;
        path.replace("{id}", id)
    }

    /// `text` (a step's path, or its body as JSON text) of case `id` opened with `body`, its
    /// placeholders resolved on `p`: those of [`Fixture::resolve`], and those naming what an
    /// earlier step made (an exam order's id), read from the store. Default:
    /// [`Fixture::resolve`]. See [`step_request`].
    async fn resolve_on(&self, p: &Platform, text: &str, id: &str, body: &Value) -> anyhow::Result<String> {
        let _ = p;
        Ok(self.resolve(text, id, body))
    }

    /// Is case `id`, [`Fixture::ready`] once, ready for `step`, a later step of one of its
    /// journeys: has what it depends on of an earlier step's asynchronous effects happened
    /// (an exam order on the work list, an outcome heard by another desk)? Default: yes.
    async fn ready_for(&self, stack: &LocalStack, id: &str, step: &Step) -> bool {
        let _ = (stack, id, step);
        true
    }

    /// Free texts the fixture's steps send that are confidential (result notes, reasons):
    /// the `privacy` area looks for them in every log line and every SMS. Default: none.
    fn confidential(&self) -> &'static [&'static str] {
        &[]
    }

    /// Do the slice's cases take places of a capacity (per slot or day)? A slice whose cases
    /// take none opts out of the `concurrency` area's last places, and its capacity methods
    /// ([`Fixture::set_capacity`], [`Fixture::places_taken`], [`Fixture::cases_like`]) are
    /// never asked. Default: yes.
    fn has_places(&self) -> bool {
        true
    }

    /// How a case takes its place, when a later step takes it rather than the opening (a bed
    /// a dispatch takes): the `concurrency` area then brings every contender's case to that
    /// step and races the step for the last places. Default: the opening takes it.
    fn taking(&self) -> Option<Taking> {
        None
    }

    /// Where the fixture's staff of `role`, one of the slice's roles, work, when the slice's
    /// staff each belong to one site (their token's `custom:site`): every staff token the
    /// areas make carries the home site ([`token`]), and the `authz` area adds columns of
    /// the role's staff at the other site and with no site. Default: the role's staff belong
    /// to no site.
    fn sites(&self, role: Role) -> Option<Sites> {
        let _ = role;
        None
    }

    /// Does a member of staff role `role`, one the slice's read routes allow, see case `id`
    /// once its asynchronous effects settled, as the `privacy` area reads it back (`404`
    /// otherwise)? For a slice whose staff see only the cases that reached their desk (the
    /// transfer centre a positive case, an isolation centre the citizens sent to it).
    /// Default: yes, staff see every case of their flow.
    async fn staff_sees(&self, stack: &LocalStack, id: &str, role: Role) -> bool {
        let _ = (stack, id, role);
        true
    }

    /// Does the slice take a payment with the opening (the money invariants apply)?
    fn pays(&self) -> bool {
        self.personal().card.is_some()
    }

    /// A valid opening body in the `day`-th distinct slot (one day apart: cases in different
    /// slots never compete for places), for `person`, paid with `card`: variant 0.
    fn open_body(&self, day: i64, person: &Person<'_>, card: &str) -> Value;

    /// `body` as the other variant of the opening request (another price): variant 1.
    fn other_body(&self, body: &Value) -> Value;

    /// The names of the two variants, for reports.
    fn variants(&self) -> [&'static str; 2];

    /// The fields of the opening body that carry personal data.
    fn personal(&self) -> Personal;

    /// Opening bodies that must be refused with `422` although their personal data is valid.
    fn invalid_openings(&self, valid: &Value) -> Vec<(&'static str, Value)>;

    /// The view row of case `id` (`platform.views`).
    fn view_key(&self, id: &str) -> String;

    /// Is case `id` ready for its journeys' steps (read once, from the views)?
    async fn ready(&self, stack: &LocalStack, id: &str) -> bool;

    /// The journeys, each area runs those it can.
    fn journeys(&self) -> &'static [Journey];

    /// How to call `route`, one of the slice's; `None`: the harness does not know it (a
    /// violation).
    fn route(&self, route: &Route) -> Option<RouteCall>;

    /// The slice's own invariants on a settled stack for its `cases` (every case's terminal
    /// state, places, views against aggregates), one line `invariant: what broke` each;
    /// `events` is the whole change feed.
    async fn check(&self, stack: &LocalStack, cases: &[&Case], events: &[EventEnvelope]) -> anyhow::Result<Vec<String>>;

    /// What every stored case owes in money.
    async fn dues(&self, db: &Embedded) -> anyhow::Result<Vec<Due>>;

    /// Every counter the stored cases hold (places), by key.
    async fn counters(&self, stack: &LocalStack) -> anyhow::Result<Vec<(String, i64)>>;

    /// Sets the places per slot.
    fn set_capacity(&self, options: &mut LocalOptions, places: i64);

    /// The price of variant `variant` under `config`.
    fn price(&self, config: &Config, variant: usize) -> Won;

    /// Places taken in the slot of opening body `body`.
    async fn places_taken(&self, stack: &LocalStack, body: &Value) -> anyhow::Result<i64>;

    /// The stored cases in the slot of opening body `body`.
    async fn cases_like(&self, db: &Embedded, body: &Value) -> anyhow::Result<HashSet<String>>;

    /// Every stored case.
    async fn opened(&self, db: &Embedded) -> anyhow::Result<Vec<Opened>>;

    /// The decisions that contend on one case.
    fn contest(&self) -> Contest;

    /// The state a contested case must end in, given which decisions of the contest
    /// succeeded (by index); an error says why no serial order explains them.
    fn implied_outcome(&self, won: &[bool]) -> Result<&'static str, String>;

    /// What disagrees, once settled, with a contest that ended in `outcome`: the case's view,
    /// places, money and SMS. `owner` is the owner's token, `body` the opening body.
    #[allow(clippy::too_many_arguments)]
    async fn judge_contest(
        &self,
        stack: &LocalStack,
        api: &Api,
        id: &str,
        owner: &str,
        body: &Value,
        won: &[bool],
        outcome: &str,
    ) -> anyhow::Result<Vec<String>>;

    /// The step that ends a case (its owner's, or the staff's who opened it) and gives its
    /// money back.
    fn ending(&self) -> &'static Step;

    /// Opens a case of variant `variant` in slot `day` on the use cases directly (no HTTP),
    /// under `Idempotency-Key` `key`; answers the status, or the error.
    async fn open_direct(&self, p: &Platform, owner: &str, day: i64, variant: usize, key: &str, request_id: &str) -> Result<u16, String>;

    /// The owner ends case `id` on the use cases directly.
    async fn end_direct(&self, p: &Platform, owner: &str, id: &str, request_id: &str) -> anyhow::Result<()>;
}

/// A request of a journey, as a [`Driver`] sends it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method.
    pub method: &'a str,
    /// Path.
    pub path: &'a str,
    /// JSON body.
    pub body: Option<&'a Value>,
    /// `Idempotency-Key`.
    pub key: Option<&'a str>,
    /// Server errors taken as the answer (not retried).
    pub accept: &'a [u16],
}

/// An answer, as a journey judges it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Status.
    pub status: u16,
    /// JSON body (`Null` if none).
    pub body: Value,
    /// Whether the driver had to send it more than once.
    pub retried: bool,
}

/// How an area sends a journey's requests and waits for its case.
#[async_trait]
pub trait Driver: Send {
    /// Sends one request as `sub` in `groups`.
    async fn send(&mut self, sub: &str, groups: &[&str], request: Request<'_>) -> anyhow::Result<Sent>;

    /// Waits (a while of the area's choosing) until case `id` is [`Fixture::ready`] (`step`
    /// `None`), or ready for `step` ([`Fixture::ready_for`]): see [`is_ready`].
    async fn ready(&mut self, fixture: &'static dyn Fixture, id: &str, step: Option<&Step>) -> anyhow::Result<bool>;

    /// The platform of the stack the requests go to (after a crash, the restarted one).
    async fn platform(&mut self) -> anyhow::Result<&Platform>;
}

/// [`Fixture::open_body`], prepared on `p` ([`Fixture::prepare`]): what every area opens a
/// case with.
pub async fn opening_body(f: &dyn Fixture, p: &Platform, day: i64, person: &Person<'_>, card: &str) -> anyhow::Result<Value> {
    let body = f.open_body(day, person, card);
    f.prepare(p, &body).await?;
    Ok(body)
}

/// [`Fixture::other_body`] of `body`, prepared on `p`.
pub async fn other_opening_body(f: &dyn Fixture, p: &Platform, body: &Value) -> anyhow::Result<Value> {
    let other = f.other_body(body);
    f.prepare(p, &other).await?;
    Ok(other)
}

/// Polls [`Fixture::ready`] every 25 ms for at most `within`.
pub async fn wait_ready(fixture: &dyn Fixture, stack: &LocalStack, id: &str, within: Duration) -> bool {
    wait_ready_for(fixture, stack, id, None, within).await
}

/// Is case `id` ready: for its steps (`step` `None`, [`Fixture::ready`]) or for `step`
/// ([`Fixture::ready_for`])?
pub async fn is_ready(fixture: &dyn Fixture, stack: &LocalStack, id: &str, step: Option<&Step>) -> bool {
    match step {
        None => fixture.ready(stack, id).await,
        Some(step) => fixture.ready_for(stack, id, step).await,
    }
}

/// Polls [`is_ready`] every 25 ms for at most `within`.
pub async fn wait_ready_for(fixture: &dyn Fixture, stack: &LocalStack, id: &str, step: Option<&Step>, within: Duration) -> bool {
    clinicflow_tests::eventually(within, || async { is_ready(fixture, stack, id, step).await.then_some(()) })
        .await
        .is_some()
}

/// Who sends the opening of a case owned by `owner` (a subject) with opening body `body`,
/// and what they send: the owner with `body`, or the fixture's opener with `body` naming
/// the owner ([`Fixture::opener`], [`Fixture::owned_by`]).
pub fn opening_as(f: &dyn Fixture, owner: &str, body: &Value) -> (String, Vec<&'static str>, Value) {
    let (sub, groups) = f.opener().caller(owner);
    (sub, groups, f.owned_by(body, owner))
}

/// A token of the opener of a case owned by `owner` on `stack`, and the body it sends.
pub fn opening_token(f: &dyn Fixture, stack: &LocalStack, owner: &str, body: &Value) -> (String, Value) {
    let (sub, groups, body) = opening_as(f, owner, body);
    (token(stack, &sub, &groups), body)
}

/// The path and body of `step` on case `id` opened with `body`, placeholders resolved on `p`
/// ([`Fixture::resolve_on`]).
pub async fn step_request(f: &dyn Fixture, p: &Platform, step: &Step, id: &str, body: &Value) -> anyhow::Result<(String, Option<Value>)> {
    let path = f.resolve_on(p, step.path, id, body).await?;
    let json = match step.body {
        Some(b) => {
            let text = f.resolve_on(p, &b().to_string(), id, body).await?;
            Some(serde_json::from_str(&text)?)
        }
        None => None,
    };
    Ok((path, json))
}

/// What a walk left: the case the harness expects, and what went wrong on the way.
#[derive(Debug, Clone)]
pub struct Walked {
    /// The case.
    pub case: Case,
    /// One line per request answered otherwise than the journey says.
    pub problems: Vec<String>,
}

/// Walks `journey` of `fixture` through `driver`: prepares `body` ([`Fixture::prepare`]),
/// opens a case as `owner` with it (or with the journey's own [`Opening`]) and `key`, lets
/// the fixture do its part ([`Fixture::after_opening`]), waits until the case is ready, then sends
/// its steps. A step answered `409` after the
/// driver had to resend it counts as a success (the first attempt won).
pub async fn walk(
    fixture: &'static dyn Fixture,
    journey: &Journey,
    driver: &mut dyn Driver,
    owner: &str,
    body: &Value,
    key: Option<&str>,
) -> anyhow::Result<Walked> {
    let mut problems = Vec::new();
    let accept: Vec<u16> = match journey.opens {
        Opens::Unavailable(status) => vec![status],
        Opens::Case(_) | Opens::Refused(_) => vec![],
    };
    let (on, request, path) = match journey.opening {
        Some(o) => {
            let (on, request) = (o.bodies)(body);
            let path = fixture.resolve(o.path, "", &on);
            (on, request, path)
        }
        None => (body.clone(), body.clone(), fixture.opening().to_owned()),
    };
    let body = &on;
    fixture.prepare(driver.platform().await?, body).await?;
    let (opener, groups, request) = opening_as(fixture, owner, &request);
    let opening = Request {
        method: "POST",
        path: &path,
        body: Some(&request),
        key,
        accept: &accept,
    };
    let sent = driver.send(&opener, &groups, opening).await?;
    let id = match (journey.opens, sent.status) {
        (Opens::Case(_), 201) => sent.body["id"].as_str().map(str::to_owned),
        (Opens::Refused(s) | Opens::Unavailable(s), got) if got == s => None,
        (_, got) => {
            problems.push(format!("{}: opening answered {got}", journey.name));
            None
        }
    };
    let case = Case {
        slice: fixture.slice(),
        id: id.clone(),
        owner: owner.to_owned(),
        outcome: id.as_ref().and(journey.outcome()),
    };
    let Some(id) = id else {
        return Ok(Walked { case, problems });
    };
    fixture.after_opening(driver.platform().await?, journey, &id, body).await?;
    if !driver.ready(fixture, &id, None).await? {
        problems.push(format!("{}: case {id} never became ready for its steps", journey.name));
        return Ok(Walked { case, problems });
    }
    for step in journey.steps {
        if !driver.ready(fixture, &id, Some(step)).await? {
            problems.push(format!("{}: case {id} never became ready for {}", journey.name, step.name));
            return Ok(Walked { case, problems });
        }
        let (sub, groups) = step.who.caller(owner);
        let (path, body) = step_request(fixture, driver.platform().await?, step, &id, body).await?;
        let request = Request {
            method: step.method.as_str(),
            path: &path,
            body: body.as_ref(),
            key: None,
            accept: &[],
        };
        let sent = driver.send(&sub, &groups, request).await?;
        if sent.status != step.success && !(sent.retried && sent.status == 409) {
            let title = sent.body["title"].as_str().unwrap_or_default();
            problems.push(format!("{}: {path} answered {} {title}", journey.name, sent.status));
        }
    }
    Ok(Walked { case, problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slice_of_the_catalog_has_one_fixture_and_every_fixture_a_slice() {
        assert!(untested().is_empty(), "slices without a fixture: {:?}", untested());
        let catalog = clinicflow::catalog();
        let mut seen = HashSet::new();
        for f in all() {
            assert!(seen.insert(f.slice()), "two fixtures for {}", f.slice());
            assert!(
                catalog.slices.iter().any(|s| s.name == f.slice()),
                "fixture {} names no slice",
                f.slice()
            );
        }
    }

    #[test]
    fn every_route_of_a_slice_has_a_call_in_its_fixture() {
        let missing: Vec<_> = clinicflow::catalog()
            .routes
            .iter()
            .filter(|r| !r.is_public())
            .filter(|r| of_route(r).and_then(|f| f.route(r)).is_none())
            .map(|r| format!("{} {}", r.method.as_str(), r.path))
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }

    /// A path with every placeholder `{...}` as `{}`.
    fn shape(path: &str) -> String {
        let mut out = String::new();
        let mut inside = false;
        for c in path.chars() {
            match (c, inside) {
                ('{', _) => {
                    inside = true;
                    out.push_str("{}");
                }
                ('}', _) => inside = false,
                (_, true) => {}
                (c, false) => out.push(c),
            }
        }
        out
    }

    #[test]
    fn every_journey_opening_is_a_catalogued_post_its_opener_may_send() {
        let catalog = clinicflow::catalog();
        for f in all() {
            for o in f.journeys().iter().filter_map(|j| j.opening) {
                let route = catalog
                    .routes
                    .iter()
                    .find(|r| r.method == Method::Post && shape(r.path) == shape(o.path))
                    .unwrap_or_else(|| panic!("{}: opening {} on no route", f.slice(), o.path));
                assert!(route.roles.contains(&f.opener().role()), "{}: {}", f.slice(), o.path);
            }
        }
    }

    #[test]
    fn every_journey_steps_on_catalogued_routes_allowed_to_its_caller() {
        let catalog = clinicflow::catalog();
        for f in all() {
            let opening = catalog
                .routes
                .iter()
                .find(|r| r.method == Method::Post && r.path == f.opening())
                .expect("the opening route is catalogued");
            assert!(opening.roles.contains(&f.opener().role()), "{}", f.slice());
            let given: Vec<&Step> = catalog
                .routes
                .iter()
                .filter(|r| of_route(r).is_some_and(|g| g.slice() == f.slice()))
                .filter_map(|r| f.route(r))
                .flat_map(|c| c.given)
                .collect();
            let steps = f
                .journeys()
                .iter()
                .flat_map(|j| j.steps)
                .chain(f.contest().decisions)
                .chain([f.ending()])
                .chain(given);
            for step in steps {
                let route = catalog
                    .routes
                    .iter()
                    .find(|r| r.method == step.method && shape(r.path) == shape(step.path))
                    .unwrap_or_else(|| panic!("{}: step {} on no route", f.slice(), step.name));
                let role = step.who.role();
                assert!(
                    route.roles.contains(&role),
                    "{}: {} not allowed to {}",
                    f.slice(),
                    step.name,
                    role.group
                );
            }
        }
    }
}
