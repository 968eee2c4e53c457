//! The `authz` area: every route of `clinicflow::catalog().routes` × every kind of caller, with the
//! status each cell must get, and every way a token can be bad on every route.
//!
//! The matrix is generated, not listed. Its rows are the catalogued routes; its columns are
//! the anonymous caller, a caller with a valid token but no role, the patient who owns the
//! case, another patient, and a staff caller for every other member of `clinicflow::catalog().roles`. The
//! expected status follows from the route's roles and from ownership only:
//!
//! - a public route answers everyone `200`, whatever they present (API Gateway runs no
//!   authorizer there);
//! - no token → `401`; a token without one of the route's roles → `403`;
//! - on a route naming a case (`{id}`), a patient who does not own it gets `404`: the API
//!   hides other people's cases as if they did not exist (`app::queries::checkup`,
//!   `app::checkup::cancel`); staff whose role sees every case, and the owner, get the route's
//!   success status.
//!
//! Beyond the status, a refused call on a route that changes state must change nothing, and
//! no answer to a caller who is neither the owner nor staff may show any of the owner's cases
//! (the patient's own list, for instance, is filtered to the caller).
//!
//! Each route needs a fixture: a valid body, and for a route naming a case a fresh booking
//! owned by the owner (one per cell on routes that change state, so cells cannot interfere),
//! so that authorization is the only thing that differs between cells. A route this module
//! has no fixture for is a violation ("untested route"): a new route fails the harness until
//! the matrix learns it. A new `Role` does not compile until [`sees_every_case`] decides.
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

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clinicflow::flows::checkup::domain as checkup;
use clinicflow::http::auth::{DEV_AUDIENCE, DEV_ISSUER, DevTokens};
use clinicflow::ports::AggregateKey;
use clinicflow::topology::{Method, Role, Route, Scope};
use clinicflow_tests::{LocalStack, fast_options};
use futures::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::api::{Answer, Api, Call, SOMEONE, bearer, booking_for, created_id, date_in, wait_for_view};
use crate::{AreaReport, Mode};

/// Where a route's `{id}` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The route names no case.
    Nothing,
    /// A check-up booking owned by the owner patient.
    Case,
}

/// The body a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// None.
    Empty,
    /// A valid booking request.
    Booking,
    /// A valid rejection reason.
    Reason,
}

/// What a route needs so that only authorization can make a cell fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fixture {
    target: Target,
    /// Changes state: every cell gets its own booking.
    mutates: bool,
    /// The status of a caller allowed to succeed.
    success: u16,
    body: Body,
}

impl Fixture {
    const fn new(target: Target, mutates: bool, success: u16, body: Body) -> Self {
        Self {
            target,
            mutates,
            success,
            body,
        }
    }
}

/// The fixture of a route, if the matrix knows how to call it. Public routes are called
/// generically (a `GET` without parameters); every other route must be listed here.
fn fixture(route: &Route) -> Option<Fixture> {
    use Target::{Case, Nothing};
    if route.is_public() {
        return (route.method == Method::Get && !route.path.contains('{')).then_some(Fixture::new(Nothing, false, 200, Body::Empty));
    }
    match (route.method, route.path) {
        (Method::Post, "/checkups") => Some(Fixture::new(Nothing, true, 201, Body::Booking)),
        (Method::Get, "/checkups") => Some(Fixture::new(Nothing, false, 200, Body::Empty)),
        (Method::Get, "/checkups/{id}") => Some(Fixture::new(Case, false, 200, Body::Empty)),
        (Method::Post, "/checkups/{id}/cancel") => Some(Fixture::new(Case, true, 202, Body::Empty)),
        (Method::Get, "/centre/checkups") => Some(Fixture::new(Nothing, false, 200, Body::Empty)),
        (Method::Post, "/centre/checkups/{id}/confirm") => Some(Fixture::new(Case, true, 200, Body::Empty)),
        (Method::Post, "/centre/checkups/{id}/reject") => Some(Fixture::new(Case, true, 200, Body::Reason)),
        _ => None,
    }
}

/// Does a caller with `role`, allowed on a route naming a case, act on every case (staff) or
/// only on their own (patients)? Exhaustive on purpose: a new role must be decided here.
fn sees_every_case(role: Role) -> bool {
    match role.scope {
        Scope::Own => false,
        Scope::Flow => true,
        // No route of the check-up flow is assigned per caller yet; a flow that has such a
        // role decides its cells here.
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
}

const OWNER: &str = "authz-owner";

fn callers(stack: &LocalStack) -> Vec<Caller> {
    let mut callers = vec![
        Caller {
            label: "none (no token)".into(),
            token: None,
            roles: vec![],
            owner: false,
        },
        Caller {
            label: "signed in, no role".into(),
            token: Some(stack.token("authz-nobody", &[])),
            roles: vec![],
            owner: false,
        },
        Caller {
            label: "patient who owns the case".into(),
            token: Some(stack.token(OWNER, &[clinicflow::topology::PATIENT.group])),
            roles: vec![clinicflow::topology::PATIENT],
            owner: true,
        },
        Caller {
            label: "another patient".into(),
            token: Some(stack.token("authz-other-patient", &[clinicflow::topology::PATIENT.group])),
            roles: vec![clinicflow::topology::PATIENT],
            owner: false,
        },
    ];
    for role in clinicflow::catalog()
        .roles
        .iter()
        .copied()
        .filter(|r| *r != clinicflow::topology::PATIENT)
    {
        callers.push(Caller {
            label: format!("{} staff", role.group()),
            token: Some(stack.token(&format!("authz-{}", role.group()), &[role.group()])),
            roles: vec![role],
            owner: false,
        });
    }
    callers
}

/// The status `caller` must get from `route`.
fn expected(route: &Route, fixture: &Fixture, caller: &Caller) -> u16 {
    if route.is_public() {
        return fixture.success;
    }
    if caller.token.is_none() {
        return 401;
    }
    let allowed: Vec<Role> = caller.roles.iter().copied().filter(|r| route.roles.contains(r)).collect();
    if allowed.is_empty() {
        return 403;
    }
    match fixture.target {
        Target::Nothing => fixture.success,
        Target::Case if caller.owner || allowed.iter().any(|r| sees_every_case(*r)) => fixture.success,
        Target::Case => 404,
    }
}

/// A valid-looking id that names nothing, for routes without a fixture.
const NO_SUCH_ID: &str = "01JD3M7Q0000000000000000AB";

fn body_of(body: Body, date: &str) -> Option<Value> {
    match body {
        Body::Empty => None,
        Body::Booking => Some(booking_for(date, &SOMEONE, "tok_ok")),
        Body::Reason => Some(json!({"reason": "the centre is closed for maintenance"})),
    }
}

/// What a refused call must not change: the booking's version, or (for a route naming no
/// case) the number of bookings and payments.
async fn footprint(stack: &LocalStack, case: Option<&str>) -> anyhow::Result<u64> {
    match case {
        Some(id) => Ok(stack
            .platform
            .store
            .load(&AggregateKey::new(checkup::CONTEXT, id))
            .await?
            .map_or(0, |s| s.version)),
        None => {
            let parts = stack.embedded().ok_or_else(|| anyhow::anyhow!("the authz area runs on SQLite"))?;
            let bookings = parts.db.all_aggregates(checkup::CONTEXT).await?.len();
            Ok((bookings + stack.sandbox.entries().len()) as u64)
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

/// The fresh bookings the matrix needs, all owned by [`OWNER`] and on the centre's list.
struct Cases {
    ids: Vec<String>,
    /// Every fixture booking, taken or not.
    all: Vec<String>,
}

impl Cases {
    async fn book(stack: &LocalStack, api: &Api, n: usize, report: &mut AreaReport) -> anyhow::Result<Self> {
        let owner = stack.token(OWNER, &[clinicflow::topology::PATIENT.group]);
        let answers = join_all((0..n).map(|i| {
            let body = booking_for(&date_in(200 + i as i64), &SOMEONE, "tok_ok");
            let (api, owner) = (api.clone(), owner.clone());
            async move { api.send("POST", "/checkups", Some(&owner), Some(&body)).await }
        }))
        .await;
        let mut ids = Vec::new();
        for a in answers {
            match a.as_ref().ok().and_then(created_id) {
                Some(id) => ids.push(id),
                None => report.violation(format!(
                    "authz fixture: a booking could not be made: {:?}",
                    a.map(|a| a.status).map_err(|e| e.to_string())
                )),
            }
        }
        stack.settle(Duration::from_secs(30)).await;
        for id in &ids {
            let ready = wait_for_view(api, &owner, id, Duration::from_secs(10), |v| {
                v["reservation"]["status"] == "received"
            })
            .await;
            if ready.is_none() {
                report.violation(format!("authz fixture: booking {id} never reached the centre's work list"));
            }
        }
        ids.reverse();
        Ok(Self { all: ids.clone(), ids })
    }

    fn take(&mut self) -> anyhow::Result<String> {
        self.ids
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the authz area ran out of fixture bookings"))
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
    let mut plan = Vec::new();
    for route in &clinicflow::catalog().routes {
        match fixture(route) {
            Some(f) => plan.push((route, f)),
            None => {
                untested += 1;
                report.violation(format!(
                    "untested route: {} {} has no fixture in the authorization matrix (areas/authz.rs)",
                    route.method.as_str(),
                    route.path
                ));
            }
        }
    }
    // One booking per cell on routes that change a case, one per route for the bad tokens,
    // one shared by the routes that only read a case.
    let mutating_case_routes = plan.iter().filter(|(_, f)| f.target == Target::Case && f.mutates).count();
    let needed = mutating_case_routes * (callers.len() + 1) + 1;
    let mut cases = Cases::book(&stack, &api, needed, &mut report).await?;
    let shared_case = cases.take()?;

    let mut cells = 0;
    for (route, f) in &plan {
        for caller in &callers {
            let case = match (f.target, f.mutates) {
                (Target::Nothing, _) => None,
                (Target::Case, false) => Some(shared_case.clone()),
                (Target::Case, true) => Some(cases.take()?),
            };
            let path = route.path.replace("{id}", case.as_deref().unwrap_or(NO_SUCH_ID));
            let body = body_of(f.body, &date_in(300));
            let want = expected(route, f, caller);
            let before = if f.mutates {
                Some(footprint(&stack, case.as_deref()).await?)
            } else {
                None
            };
            let answer = api.send(route.method.as_str(), &path, caller.token.as_deref(), body.as_ref()).await;
            let what = format!("{} {} as {}", route.method.as_str(), route.path, caller.label);
            let mut verdict = judge(&what, want, &answer);
            if verdict.is_none() && want >= 400 && before.is_some() && before != Some(footprint(&stack, case.as_deref()).await?) {
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

    let bad_cells = bad_tokens(&stack, &api, &secret, &plan, (&shared_case, &mut cases), &mut report).await?;
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
    plan: &[(&Route, Fixture)],
    (shared_case, cases): (&str, &mut Cases),
    report: &mut AreaReport,
) -> anyhow::Result<u64> {
    // The control: signed by the harness exactly as the stack signs, it must be accepted.
    let control = sign(
        Algorithm::HS256,
        &claims(OWNER, &[clinicflow::topology::PATIENT.group], 600),
        secret.as_bytes(),
    )?;
    let answer = api.send("GET", "/checkups", Some(&control), None).await;
    report.case(judge("control token signed with the stack's secret on GET /checkups", 200, &answer));

    let mut cells = 1;
    for route in &clinicflow::catalog().routes {
        let f = plan.iter().find(|(r, _)| r == &route).map(|(_, f)| *f);
        let groups: Vec<&str> = route.roles.iter().map(|r| r.group()).collect();
        // A route that changes a case gets a booking of its own; its footprint is watched.
        let case = match f {
            Some(f) if f.target == Target::Case && f.mutates => Some(cases.take()?),
            _ => None,
        };
        let id = match (f, &case) {
            (_, Some(id)) => id.as_str(),
            (Some(f), None) if f.target == Target::Case => shared_case,
            _ => NO_SUCH_ID,
        };
        let path = route.path.replace("{id}", id);
        let body = f.and_then(|f| body_of(f.body, &date_in(300)));
        // Like API Gateway without an authorizer, a public route ignores whatever is presented.
        let want = if route.is_public() { f.map_or(200, |f| f.success) } else { 401 };
        for (name, authorization) in bad_headers(stack, secret.as_bytes(), &groups)? {
            let before = footprint(stack, case.as_deref()).await?;
            let answer = api
                .call(Call::json(route.method.as_str(), &path, Some(&authorization), body.as_ref()))
                .await;
            let what = format!("{} {} with a bad token ({name})", route.method.as_str(), route.path);
            let mut verdict = judge(&what, want, &answer);
            if verdict.is_none() && !route.is_public() && before != footprint(stack, case.as_deref()).await? {
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
        }
    }

    #[test]
    fn every_catalogued_route_has_a_fixture() {
        let missing: Vec<_> = clinicflow::catalog()
            .routes
            .iter()
            .filter(|r| fixture(r).is_none())
            .map(|r| r.path)
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn expectations_follow_roles_and_ownership() {
        let get_case = clinicflow::catalog()
            .routes
            .iter()
            .find(|r| r.method == Method::Get && r.path == "/checkups/{id}")
            .expect("route");
        let f = fixture(get_case).expect("fixture");
        assert_eq!(expected(get_case, &f, &caller(false, &[], false)), 401);
        assert_eq!(expected(get_case, &f, &caller(true, &[], false)), 403);
        assert_eq!(expected(get_case, &f, &caller(true, &[clinicflow::topology::PATIENT], true)), 200);
        assert_eq!(expected(get_case, &f, &caller(true, &[clinicflow::topology::PATIENT], false)), 404);
        assert_eq!(
            expected(get_case, &f, &caller(true, &[clinicflow::flows::checkup::CENTRE], false)),
            200
        );
        let public = clinicflow::catalog().routes.iter().find(|r| r.is_public()).expect("a public route");
        let f = fixture(public).expect("fixture");
        assert_eq!(expected(public, &f, &caller(false, &[], false)), 200);
    }
}
