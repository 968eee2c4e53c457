//! The `authz` area: every route of `clinicflow::catalog().routes` × every kind of caller, with the
//! status each cell must get, and every way a token can be bad on every route.
//!
//! The matrix is generated, not listed. Its rows are the catalogued routes; its columns are
//! the anonymous caller, a caller with a valid token but no role, the patient who owns the
//! case, another patient, and a staff caller for every other member of `clinicflow::catalog().roles`
//! (and, for a role whose staff each belong to one site, [`Fixture::sites`], a member at
//! another site than the fixtures' cases, and one whose token names no site). The expected
//! status follows from the route's roles and from ownership only:
//!
//! - a public route answers everyone its success (`200`), whatever they present (API
//!   Gateway runs no authorizer there); a slice's public route is called as its fixture
//!   says, the platform's (a `GET` without parameters) generically;
//! - no token → `401`; a token without one of the route's roles → `403`;
//! - on a route naming a case (`{id}`), a patient who does not own it gets `404`: the API
//!   hides other people's cases as if they did not exist (`Access::sees`); staff whose role
//!   sees every case of its flow, and the owner, get the route's success status;
//! - staff at another site get what the route's call says of them ([`RouteCall::elsewhere`]:
//!   `404` for a case of another site, `403` for another site's list), and so do staff whose
//!   token names no site ([`RouteCall::no_site`]), or the same as at their own.
//!
//! Beyond the status, a refused call on a route that changes state must change nothing, and
//! no answer to a caller who is neither the owner nor staff may show any of the owner's cases
//! (the patient's own list, for instance, is filtered to the caller).
//!
//! How to call each route comes from the fixture of the slice that serves it
//! ([`Fixture::route`](crate::slices::Fixture::route)): a valid body, whether it names a
//! case, whether it changes state, its success status, the query it needs. A route naming a
//! case gets a fresh case opened for the owner (by the owner, or by the slice's opener on
//! their behalf) and ready (one per cell on routes that change state, so cells cannot
//! interfere), brought by the steps the call is given to where the route acts
//! ([`RouteCall::given`](crate::slices::RouteCall::given): a patient a doctor took), so that
//! authorization is the only thing that differs between cells. A staff column is the member
//! of its role the fixtures' steps are sent by ([`Who::Staff`]). A place a route's path
//! names besides the case (a site) is resolved by its fixture ([`Fixture::resolve_on`]).
//! A route whose slice has no fixture, or whose fixture has no call for it, is a violation
//! ("untested route"): a new route fails the harness until its fixture learns it. A new
//! `Scope` does not compile until [`sees_every_case`] decides.
//!
//! Bad tokens, on every route: expired, unsigned (`alg: none`), signature stripped, signed
//! with another secret, signed with HS512, tampered claims, wrong audience, wrong issuer, no
//! audience, no issuer, no expiry, empty subject, malformed, the token without `Bearer`,
//! another scheme, an empty bearer. Each must get `401` problem+json with `WWW-Authenticate`
//! and change nothing. (A bare token without `Bearer` is refused by the local gateway; API
//! Gateway's JWT authorizer would accept it, its identity source "can include only the
//! token, or the token prefixed with Bearer". Refusing it is stricter, not weaker.) The
//! stack runs with a dev-token secret the harness chose, so that tokens wrong in exactly one
//! respect can be signed correctly; a control token signed the same way must be accepted,
//! or those cells prove nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clinicflow::http::auth::{DEV_AUDIENCE, DEV_ISSUER, DevTokens};
use clinicflow::ports::AggregateKey;
use clinicflow::topology::{Method, PATIENT, Role, Route, Scope};
use clinicflow_tests::{LocalStack, fast_options};
use futures::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::api::{Answer, Api, Call, SOMEONE, bearer, created_id};
use crate::slices::{self, Body, Fixture, RouteCall, Who};
use crate::{AreaReport, Mode};

/// What the matrix knows about a route: how to call it, and the fixture that said so.
#[derive(Clone, Copy)]
struct Plan<'a> {
    route: &'a Route,
    call: RouteCall,
    /// `None` for the platform's public routes.
    fixture: Option<&'static dyn Fixture>,
}

impl Plan<'_> {
    fn slice(&self) -> &'static str {
        self.fixture.map_or("platform", |f| f.slice())
    }
}

/// How to call `route`: as its slice's fixture says, and the platform's public routes
/// generically (a `GET` without parameters). `Err` says why the route is untested.
fn plan(route: &Route) -> Result<Plan<'_>, String> {
    // A slice's public route (a verifier anyone may ask) is called as its fixture says.
    if route.is_public()
        && let Some(fixture) = slices::of_route(route)
        && let Some(call) = fixture.route(route)
    {
        return Ok(Plan {
            route,
            call,
            fixture: Some(fixture),
        });
    }
    if route.is_public() {
        return (route.method == Method::Get && !route.path.contains('{'))
            .then_some(Plan {
                route,
                call: RouteCall::new(false, false, 200, Body::Empty),
                fixture: None,
            })
            .ok_or_else(|| "a public route the matrix cannot call without parameters".to_owned());
    }
    let slice = clinicflow::catalog().slice_of(route.function).map_or("no slice", |s| s.name);
    let fixture = slices::of_route(route)
        .ok_or_else(|| format!("its slice {slice} has no fixture (reliability/src/slices/, listed in slices::all)"))?;
    let call = fixture
        .route(route)
        .ok_or_else(|| format!("the fixture of {slice} has no call for it (reliability/src/slices/{slice}.rs)"))?;
    Ok(Plan {
        route,
        call,
        fixture: Some(fixture),
    })
}

/// Does a caller with `role`, allowed on a route naming a case, act on every case (staff) or
/// only on their own (patients)? Exhaustive on purpose: a new scope must be decided here.
fn sees_every_case(role: Role) -> bool {
    match role.scope {
        Scope::Own => false,
        Scope::Flow => true,
        // No catalogued route is assigned per caller yet; a flow that has such a role
        // decides its cells here.
        Scope::Assigned => false,
    }
}

/// A column of the matrix.
#[derive(Debug, Clone)]
struct Caller {
    label: String,
    token: Option<String>,
    roles: Vec<Role>,
    owner: bool,
    /// Where a staff member of a role whose staff belong to a site works.
    at: At,
}

/// Where a staff column works, for a role whose staff each belong to one site
/// ([`Fixture::sites`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// At the site of the fixtures' cases (and every caller of a role without sites).
    Home,
    /// At another site ([`slices::Sites::other`]).
    Elsewhere,
    /// Nowhere: the token names no site.
    Nowhere,
}

const OWNER: &str = "authz-owner";

fn callers(stack: &LocalStack) -> Vec<Caller> {
    let mut callers = vec![
        Caller {
            label: "none (no token)".into(),
            token: None,
            roles: vec![],
            owner: false,
            at: At::Home,
        },
        Caller {
            label: "signed in, no role".into(),
            token: Some(stack.token("authz-nobody", &[])),
            roles: vec![],
            owner: false,
            at: At::Home,
        },
        Caller {
            label: "patient who owns the case".into(),
            token: Some(stack.token(OWNER, &[PATIENT.group])),
            roles: vec![PATIENT],
            owner: true,
            at: At::Home,
        },
        Caller {
            label: "another patient".into(),
            token: Some(stack.token("authz-other-patient", &[PATIENT.group])),
            roles: vec![PATIENT],
            owner: false,
            at: At::Home,
        },
    ];
    // A staff column is the member of its role the fixtures' steps are sent by
    // ([`Who::Staff`]), so that a route acting on what an earlier step did finds the same
    // person (the doctor who took the patient); staff who belong to a site work at the one
    // of the fixtures' cases, and two more columns have a member of the role at another
    // site and one whose token names no site.
    for role in clinicflow::catalog().roles.iter().copied().filter(|r| *r != PATIENT) {
        callers.push(Caller {
            label: format!("{} staff", role.group()),
            token: Some(Who::Staff(role).token(stack, "")),
            roles: vec![role],
            owner: false,
            at: At::Home,
        });
        if let Some(sites) = slices::all().iter().find_map(|f| f.sites(role)) {
            let sub = format!("authz-staff-{}-elsewhere", role.group());
            callers.push(Caller {
                label: format!("{} staff at another site", role.group()),
                token: Some(stack.token_at(&sub, &[role.group()], sites.other)),
                roles: vec![role],
                owner: false,
                at: At::Elsewhere,
            });
            let sub = format!("authz-staff-{}-nowhere", role.group());
            callers.push(Caller {
                label: format!("{} staff with no site", role.group()),
                token: Some(stack.token(&sub, &[role.group()])),
                roles: vec![role],
                owner: false,
                at: At::Nowhere,
            });
        }
    }
    callers
}

/// The status `caller` must get from `route`.
fn expected(route: &Route, call: &RouteCall, caller: &Caller) -> u16 {
    if route.is_public() {
        return call.success;
    }
    if caller.token.is_none() {
        return 401;
    }
    let allowed: Vec<Role> = caller.roles.iter().copied().filter(|r| route.roles.contains(r)).collect();
    if allowed.is_empty() {
        return 403;
    }
    let at_their_site = match caller.at {
        At::Home => None,
        At::Elsewhere => call.elsewhere,
        At::Nowhere => call.no_site,
    };
    if let Some(status) = at_their_site {
        return status;
    }
    if !call.case || caller.owner || allowed.iter().any(|r| sees_every_case(*r)) {
        call.success
    } else {
        404
    }
}

/// A valid-looking id that names nothing, for routes without a case.
const NO_SUCH_ID: &str = "01JD3M7Q0000000000000000AB";

fn body_of(plan: &Plan<'_>) -> Option<Value> {
    match (plan.call.body, plan.fixture) {
        (Body::Empty, _) | (Body::Opening, None) => None,
        (Body::Opening, Some(f)) => Some(f.open_body(300, &SOMEONE, "tok_ok")),
        (Body::Json(body), _) => Some(body()),
    }
}

/// Sends the steps the plan's call is given ([`RouteCall::given`]) on case `id`, each by its
/// caller once the case is ready for it, then settles the stack; a step answered otherwise
/// than it says is a violation (the cell then proves less).
async fn given(
    stack: &LocalStack,
    f: &'static dyn Fixture,
    plan: &Plan<'_>,
    id: &str,
    cases: &Cases,
    report: &mut AreaReport,
) -> anyhow::Result<()> {
    if plan.call.given.is_empty() {
        return Ok(());
    }
    let api = Api::new(stack)?;
    let owner = cases.owners.get(id).map_or("", String::as_str);
    let opening = f.open_body(200, &SOMEONE, "tok_ok");
    for step in plan.call.given {
        if !slices::wait_ready_for(f, stack, id, Some(step), Duration::from_secs(10)).await {
            report.violation(format!(
                "authz fixture: {} case {id} never became ready for {} (given to {} {})",
                f.slice(),
                step.name,
                plan.route.method.as_str(),
                plan.route.path
            ));
            return Ok(());
        }
        let (path, body) = slices::step_request(f, &stack.platform, step, id, &opening).await?;
        let token = step.who.token(stack, owner);
        let a = api.send(step.method.as_str(), &path, Some(&token), body.as_ref()).await?;
        if a.status != step.success {
            report.violation(format!(
                "authz fixture: {} on {} case {id} (given to {} {}) got {} ({})",
                step.name,
                f.slice(),
                plan.route.method.as_str(),
                plan.route.path,
                a.status,
                a.body["detail"]
            ));
        }
    }
    stack.settle(Duration::from_secs(10)).await;
    Ok(())
}

/// `body` of a call on case `id`, its placeholders resolved ([`Fixture::resolve_on`]).
async fn resolved(f: &dyn Fixture, stack: &LocalStack, id: &str, body: &Value) -> anyhow::Result<Value> {
    let opening = f.open_body(200, &SOMEONE, "tok_ok");
    let text = f.resolve_on(&stack.platform, &body.to_string(), id, &opening).await?;
    Ok(serde_json::from_str(&text)?)
}

/// The path of a call of `plan` on case `case` (none: an id that names nothing), its
/// placeholders resolved by the route's fixture ([`Fixture::resolve_on`]: a place the path
/// names, such as a site), with the call's query.
async fn path_of(stack: &LocalStack, plan: &Plan<'_>, case: Option<&str>) -> anyhow::Result<String> {
    let id = case.unwrap_or(NO_SUCH_ID);
    let path = match plan.fixture {
        Some(f) => {
            let opening = f.open_body(200, &SOMEONE, "tok_ok");
            f.resolve_on(&stack.platform, plan.route.path, id, &opening).await?
        }
        None => plan.route.path.replace("{id}", id),
    };
    Ok(plan.call.path(&path))
}

/// What a refused call must not change: the case's aggregate version, or (for a route
/// naming no case) the number of the slice's cases and of payments.
async fn footprint(stack: &LocalStack, plan: &Plan<'_>, case: Option<&str>) -> anyhow::Result<u64> {
    let Some(f) = plan.fixture else { return Ok(0) };
    match case {
        Some(id) => Ok(stack
            .platform
            .store
            .load(&AggregateKey::new(f.context(), id))
            .await?
            .map_or(0, |s| s.version)),
        None => {
            let parts = stack.embedded().ok_or_else(|| anyhow::anyhow!("the authz area runs on SQLite"))?;
            let cases = parts.db.all_aggregates(f.context()).await?.len();
            Ok((cases + stack.sandbox.entries().len()) as u64)
        }
    }
}

fn judge(what: &str, expected: u16, answer: &anyhow::Result<Answer>) -> Option<String> {
    let a = match answer {
        Err(e) => return Some(format!("{what}: expected {expected}, the request failed: {e}")),
        Ok(a) => a,
    };
    if a.status != expected {
        return Some(format!("{what}: expected {expected}, got {} ({})", a.status, a.body["detail"]));
    }
    if expected >= 400 && !a.is_problem() {
        return Some(format!("{what}: {expected} without a problem+json body ({:?})", a.content_type));
    }
    if expected == 401 && a.www_authenticate.is_none() {
        return Some(format!("{what}: 401 without WWW-Authenticate"));
    }
    None
}

/// The fresh cases the matrix needs, each opened by an owner of its own ([`OWNER`]`-n`)
/// and ready, per slice.
struct Cases {
    /// The owner of each case: one per case, as a slice may let a patient hold only one
    /// case at a time (one active reservation per vaccine).
    owners: BTreeMap<String, String>,
    ids: BTreeMap<&'static str, Vec<String>>,
    shared: BTreeMap<&'static str, String>,
    /// Every fixture case, taken or not.
    all: Vec<String>,
}

impl Cases {
    /// Opens `needed[slice]` cases of each slice, plus one its read-only routes share.
    async fn open(stack: &LocalStack, api: &Api, needed: &BTreeMap<&'static str, usize>, report: &mut AreaReport) -> anyhow::Result<Self> {
        let mut cases = Self {
            owners: BTreeMap::new(),
            ids: BTreeMap::new(),
            shared: BTreeMap::new(),
            all: Vec::new(),
        };
        for f in slices::all() {
            let n = needed.get(f.slice()).copied().unwrap_or(0) + 1;
            let mut bodies = Vec::new();
            for i in 0..n {
                bodies.push(slices::opening_body(*f, &stack.platform, 200 + i as i64, &SOMEONE, "tok_ok").await?);
            }
            let answers = join_all(bodies.iter().enumerate().map(|(i, body)| {
                let sub = format!("{OWNER}-{}-{i}", f.slice());
                // Opened as the slice opens a case: by its owner, or by staff on their behalf.
                let (opener, body) = slices::opening_token(*f, stack, &sub, body);
                let api = api.clone();
                async move { (sub, api.send_shed_aware("POST", f.opening(), Some(&opener), Some(&body)).await.0) }
            }))
            .await;
            let mut ids = Vec::new();
            for (sub, a) in answers {
                match a.as_ref().ok().and_then(created_id) {
                    Some(id) => {
                        cases.owners.insert(id.clone(), sub);
                        ids.push(id);
                    }
                    None => report.violation(format!(
                        "authz fixture: a {} case could not be opened: {:?}",
                        f.slice(),
                        a.map(|a| a.status).map_err(|e| e.to_string())
                    )),
                }
            }
            stack.settle(Duration::from_secs(30)).await;
            for id in &ids {
                if !slices::wait_ready(*f, stack, id, Duration::from_secs(10)).await {
                    report.violation(format!("authz fixture: {} case {id} never became ready", f.slice()));
                }
            }
            ids.reverse();
            cases.all.extend(ids.iter().cloned());
            if let Some(shared) = ids.pop() {
                cases.shared.insert(f.slice(), shared);
            }
            cases.ids.insert(f.slice(), ids);
        }
        Ok(cases)
    }

    /// A case of the plan's slice: a fresh one for a route that changes it, the shared one
    /// for a route that only reads it, none for a route naming no case.
    fn for_cell(&mut self, plan: &Plan<'_>) -> anyhow::Result<Option<String>> {
        if !plan.call.case {
            return Ok(None);
        }
        let slice = plan.slice();
        if !plan.call.mutates {
            return self
                .shared
                .get(slice)
                .cloned()
                .map(Some)
                .ok_or_else(|| anyhow::anyhow!("the authz area has no shared {slice} case"));
        }
        self.ids
            .get_mut(slice)
            .and_then(Vec::pop)
            .map(Some)
            .ok_or_else(|| anyhow::anyhow!("the authz area ran out of {slice} fixture cases"))
    }
}

/// Runs the area. The matrix is the same in both modes: it is small, and total by design.
pub async fn run(mode: Mode) -> anyhow::Result<AreaReport> {
    let _ = mode;
    let mut report = AreaReport::new("authz");
    let dir = tempfile::tempdir()?;
    let secret: String = std::iter::repeat_with(fastrand::alphanumeric).take(48).collect();
    std::fs::write(dir.path().join("dev-token-secret"), &secret)?;
    let mut options = fast_options();
    options.data_dir = Some(dir.path().to_owned());
    let stack = LocalStack::start(options).await?;
    let api = Api::new(&stack)?;
    let callers = callers(&stack);

    let mut untested = 0;
    let mut plans = Vec::new();
    for route in &clinicflow::catalog().routes {
        match plan(route) {
            Ok(p) => plans.push(p),
            Err(why) => {
                untested += 1;
                report.violation(format!(
                    "untested route: {} {} is not in the authorization matrix: {why}",
                    route.method.as_str(),
                    route.path
                ));
            }
        }
    }
    // One case per cell on routes that change a case, one per route for the bad tokens,
    // one per slice shared by the routes that only read a case.
    let mut needed: BTreeMap<&'static str, usize> = BTreeMap::new();
    for p in plans.iter().filter(|p| p.call.case && p.call.mutates) {
        *needed.entry(p.slice()).or_default() += callers.len() + 1;
    }
    let mut cases = Cases::open(&stack, &api, &needed, &mut report).await?;
    // The opening route's cells open cases in the slot of day 300 (`body_of`).
    for f in slices::all() {
        f.prepare(&stack.platform, &f.open_body(300, &SOMEONE, "tok_ok")).await?;
    }

    let mut cells = 0;
    for plan in &plans {
        let route = plan.route;
        for caller in &callers {
            let case = cases.for_cell(plan)?;
            if let (Some(id), Some(f)) = (case.as_deref(), plan.fixture) {
                given(&stack, f, plan, id, &cases, &mut report).await?;
            }
            let path = path_of(&stack, plan, case.as_deref()).await?;
            let body = match (case.as_deref(), plan.fixture, body_of(plan)) {
                (Some(id), Some(f), Some(b)) => Some(resolved(f, &stack, id, &b).await?),
                (_, _, b) => b,
            };
            let want = expected(route, &plan.call, caller);
            let before = if plan.call.mutates {
                Some(footprint(&stack, plan, case.as_deref()).await?)
            } else {
                None
            };
            // The owner's column is the owner of the cell's case.
            let token = match (caller.owner, case.as_ref().and_then(|id| cases.owners.get(id))) {
                (true, Some(sub)) => Some(stack.token(sub, &[PATIENT.group])),
                _ => caller.token.clone(),
            };
            let answer = api.send(route.method.as_str(), &path, token.as_deref(), body.as_ref()).await;
            let what = format!("{} {} as {}", route.method.as_str(), route.path, caller.label);
            let mut verdict = judge(&what, want, &answer);
            if verdict.is_none() && want >= 400 && before.is_some() && before != Some(footprint(&stack, plan, case.as_deref()).await?) {
                verdict = Some(format!("{what}: refused with {want} but the call changed state"));
            }
            // Whatever a caller may read, it must not show someone else's case.
            let sees_all = caller.roles.iter().any(|r| route.roles.contains(r) && sees_every_case(*r));
            if verdict.is_none()
                && !caller.owner
                && !sees_all
                && let Ok(a) = &answer
                && let Some(id) = cases.all.iter().find(|id| a.body.to_string().contains(id.as_str()))
            {
                verdict = Some(format!("{what}: the answer shows the owner's case {id}"));
            }
            cells += 1;
            report.case(verdict);
        }
    }

    let bad_cells = bad_tokens(&stack, &api, &secret, &plans, &mut cases, &mut report).await?;
    report.figure("routes", clinicflow::catalog().routes.len() as u64);
    report.figure("untested routes", untested);
    report.figure("matrix cells", cells);
    report.figure("bad-token cells", bad_cells);
    report.figure("violations", report.violations);
    stack.shutdown().await;
    Ok(report)
}

/// Claims shaped like the stack's dev tokens, each part overridable.
fn claims(sub: &str, groups: &[&str], ttl: i64) -> serde_json::Map<String, Value> {
    let now = chrono::Utc::now().timestamp();
    let value = json!({
        "sub": sub,
        "cognito:groups": groups,
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "iat": now,
        "exp": now + ttl,
        "token_use": "id",
    });
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

fn sign(alg: Algorithm, claims: &serde_json::Map<String, Value>, secret: &[u8]) -> anyhow::Result<String> {
    Ok(jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))?)
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Every bad `Authorization` header for a caller who would otherwise be allowed (`groups`).
fn bad_headers(stack: &LocalStack, secret: &[u8], groups: &[&str]) -> anyhow::Result<Vec<(&'static str, String)>> {
    let owned: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    let good = claims(OWNER, groups, 600);
    let with = |key: &str, value: Value| {
        let mut c = good.clone();
        c.insert(key.to_owned(), value);
        c
    };
    let without = |key: &str| {
        let mut c = good.clone();
        c.remove(key);
        c
    };
    let valid = sign(Algorithm::HS256, &good, secret)?;
    let header = valid.split('.').next().unwrap_or("");
    let unprivileged = sign(Algorithm::HS256, &claims(OWNER, &[], 600), secret)?;
    let unprivileged_signature = unprivileged.rsplit('.').next().unwrap_or("");
    let payload = b64(&Value::Object(good.clone()));
    Ok(vec![
        ("expired", bearer(&stack.tokens.issue(OWNER, &owned, -600)?)),
        (
            "unsigned (alg none)",
            bearer(&format!("{}.{payload}.", b64(&json!({"alg": "none", "typ": "JWT"})))),
        ),
        ("signature stripped", bearer(&format!("{header}.{payload}."))),
        (
            "signed with another secret",
            bearer(&DevTokens::new(b"not-the-stack-secret-at-all-0123456789").issue(OWNER, &owned, 600)?),
        ),
        ("signed with HS512", bearer(&sign(Algorithm::HS512, &good, secret)?)),
        (
            "claims tampered after signing",
            bearer(&format!("{header}.{payload}.{unprivileged_signature}")),
        ),
        (
            "wrong audience",
            bearer(&stack.tokens.issue_with(OWNER, &owned, 600, "someone-else")?),
        ),
        (
            "wrong issuer",
            bearer(&sign(Algorithm::HS256, &with("iss", json!("https://evil.example/dev")), secret)?),
        ),
        ("no audience", bearer(&sign(Algorithm::HS256, &without("aud"), secret)?)),
        ("no issuer", bearer(&sign(Algorithm::HS256, &without("iss"), secret)?)),
        ("no expiry", bearer(&sign(Algorithm::HS256, &without("exp"), secret)?)),
        ("empty subject", bearer(&sign(Algorithm::HS256, &with("sub", json!("")), secret)?)),
        ("malformed", bearer("not-a-jwt")),
        ("three garbage segments", bearer("eyJhbGciOiJIUzI1NiJ9.garbage.garbage")),
        ("header and payload only", bearer(&format!("{header}.{payload}"))),
        ("token without Bearer", valid.clone()),
        (
            "another scheme",
            format!("Basic {}", URL_SAFE_NO_PAD.encode(format!("{OWNER}:password"))),
        ),
        ("empty bearer", "Bearer ".to_owned()),
        ("signature altered", bearer(&format!("{valid}x"))),
    ])
}

async fn bad_tokens(
    stack: &LocalStack,
    api: &Api,
    secret: &str,
    plans: &[Plan<'_>],
    cases: &mut Cases,
    report: &mut AreaReport,
) -> anyhow::Result<u64> {
    // The control: signed by the harness exactly as the stack signs, it must be accepted on
    // a route a patient may read without a case.
    let control = sign(Algorithm::HS256, &claims(OWNER, &[PATIENT.group], 600), secret.as_bytes())?;
    match plans
        .iter()
        .find(|p| !p.route.is_public() && !p.call.case && !p.call.mutates && p.route.roles.contains(&PATIENT))
    {
        Some(p) => {
            let answer = api.send(p.route.method.as_str(), p.route.path, Some(&control), None).await;
            let what = format!(
                "control token signed with the stack's secret on {} {}",
                p.route.method.as_str(),
                p.route.path
            );
            report.case(judge(&what, p.call.success, &answer));
        }
        None => report.case(Some(
            "no route a patient may read without a case to try the control token on: the bad-token cells prove nothing".into(),
        )),
    }

    let mut cells = 1;
    for route in &clinicflow::catalog().routes {
        let plan = plans.iter().find(|p| p.route == route);
        let groups: Vec<&str> = route.roles.iter().map(|r| r.group()).collect();
        // A route that changes a case gets a case of its own; its footprint is watched.
        let case = match plan {
            Some(p) => cases.for_cell(p)?,
            None => None,
        };
        let path = match plan {
            Some(p) => path_of(stack, p, case.as_deref()).await?,
            None => route.path.replace("{id}", case.as_deref().unwrap_or(NO_SUCH_ID)),
        };
        let body = plan.and_then(body_of);
        // Like API Gateway without an authorizer, a public route ignores whatever is presented.
        let want = if route.is_public() {
            plan.map_or(200, |p| p.call.success)
        } else {
            401
        };
        let watched = case.as_deref().filter(|_| plan.is_some_and(|p| p.call.mutates));
        for (name, authorization) in bad_headers(stack, secret.as_bytes(), &groups)? {
            let before = match plan {
                Some(p) => footprint(stack, p, watched).await?,
                None => 0,
            };
            let answer = api
                .call(Call::json(route.method.as_str(), &path, Some(&authorization), body.as_ref()))
                .await;
            let what = format!("{} {} with a bad token ({name})", route.method.as_str(), route.path);
            let mut verdict = judge(&what, want, &answer);
            if verdict.is_none()
                && !route.is_public()
                && let Some(p) = plan
                && before != footprint(stack, p, watched).await?
            {
                verdict = Some(format!("{what}: refused but the call changed state"));
            }
            cells += 1;
            report.case(verdict);
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(token: bool, roles: &[Role], owner: bool) -> Caller {
        Caller {
            label: "t".into(),
            token: token.then(|| "t".to_owned()),
            roles: roles.to_vec(),
            owner,
            at: At::Home,
        }
    }

    #[test]
    fn every_catalogued_route_has_a_plan() {
        let missing: Vec<_> = clinicflow::catalog()
            .routes
            .iter()
            .filter_map(|r| plan(r).err().map(|why| format!("{}: {why}", r.path)))
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn expectations_follow_roles_and_ownership() {
        let catalog = clinicflow::catalog();
        let staff = catalog
            .roles
            .iter()
            .copied()
            .find(|r| r.scope == Scope::Flow)
            .expect("a staff role");
        let read_case = catalog
            .routes
            .iter()
            .filter_map(|r| plan(r).ok())
            .find(|p| p.call.case && !p.call.mutates && p.route.roles.contains(&PATIENT) && p.route.roles.contains(&staff))
            .expect("a route reading a case, for patients and staff");
        let (route, call) = (read_case.route, &read_case.call);
        assert_eq!(expected(route, call, &caller(false, &[], false)), 401);
        assert_eq!(expected(route, call, &caller(true, &[], false)), 403);
        assert_eq!(expected(route, call, &caller(true, &[PATIENT], true)), call.success);
        assert_eq!(expected(route, call, &caller(true, &[PATIENT], false)), 404);
        assert_eq!(expected(route, call, &caller(true, &[staff], false)), call.success);
        let public = catalog.routes.iter().find(|r| r.is_public()).expect("a public route");
        let p = plan(public).expect("a plan");
        assert_eq!(expected(public, &p.call, &caller(false, &[], false)), 200);
    }
}
