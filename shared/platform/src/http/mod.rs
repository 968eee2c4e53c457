//! The HTTP edge shared by every API function and the local gateway: RFC 9457
//! `application/problem+json` errors, the one mapping from error to status, caller claims
//! (from the local gateway or API Gateway's JWT authorizer), JSON bodies parsed with the
//! field at fault named, the routers built from `topology.rs`, and the OpenAPI document
//! generated from the handlers' types.

pub mod auth;
pub mod openapi;
pub mod routes;

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::AppError;
use crate::app::command::IdempotencyKey;
use crate::domain::{Actor, FieldError};
use crate::topology::Role;

pub use routes::router;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What every problem's `type` starts with; a slug names the kind (`…/problems/not-found`).
pub const PROBLEM_TYPES: &str = "https://clinicflow.dev/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(description = "An RFC 9457 problem document (`application/problem+json`). `type` is \
                        `https://clinicflow.dev/problems/<slug>`; `errors` names the fields at fault when there are any.")]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    #[schema(format = "uri", pattern = "^https://clinicflow\\.dev/problems/[a-z-]+$")]
    pub kind: String,
    /// Short summary of the kind.
    #[schema(min_length = 1)]
    pub title: String,
    /// HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// The fields at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(min_items = 1)]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying (also the `Retry-After` header).
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl Problem {
    /// A problem of `status` with a slug for its type.
    pub fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("{PROBLEM_TYPES}{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: vec![],
            retry_after: None,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| br#"{"title":"internal error","status":500}"#.to_vec());
        (status, headers, body).into_response()
    }
}

/// An `AppError` on its way out as a problem response.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(errors) => {
                let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
                let mut p = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    "Invalid input",
                    format!("invalid field(s): {}", fields.join(", ")),
                );
                p.errors = errors;
                p
            }
            AppError::Malformed(detail) => Problem::new(StatusCode::BAD_REQUEST, "malformed", "Malformed request", detail),
            AppError::Unauthorized => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "a valid bearer token is required",
            ),
            AppError::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail),
            AppError::NotFound => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such resource"),
            AppError::Conflict(detail) => Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail),
            AppError::Gone(detail) => Problem::new(StatusCode::GONE, "gone", "Gone", detail),
            AppError::PaymentDeclined(detail) => {
                let mut p = Problem::new(StatusCode::PAYMENT_REQUIRED, "payment-declined", "Payment declined", detail);
                p.errors = vec![FieldError::new("card_token", "the card was declined")];
                p
            }
            AppError::Unavailable { reason, retry_after } => {
                let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Temporarily unavailable", reason);
                p.retry_after = Some(retry_after);
                p
            }
            AppError::Internal(detail) => {
                tracing::error!(detail = %detail, "internal error");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Problem::from(self.0).into_response()
    }
}

/// Who is calling: the verified token's subject, groups, and site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Subject.
    pub sub: String,
    /// Cognito groups.
    pub groups: Vec<String>,
    /// The staff member's site (a test site, an isolation centre, a store): the
    /// `custom:site` claim, a Cognito custom attribute only an administrator sets.
    pub site: Option<String>,
}

/// The claim that names a staff member's site.
pub const SITE_CLAIM: &str = "custom:site";

impl Claims {
    /// Does the caller have `role`?
    pub fn has(&self, role: Role) -> bool {
        self.groups.iter().any(|g| g == role.group())
    }

    /// The caller as a domain actor.
    pub fn actor(&self) -> Actor {
        Actor { sub: self.sub.clone() }
    }

    /// Does the caller work at `site`?
    pub fn works_at(&self, site: &str) -> bool {
        self.site.as_deref() == Some(site)
    }

    /// Reads claims as API Gateway's JWT authorizer passes them: every value a string, and
    /// `cognito:groups` either a JSON array or `[a b]`.
    pub fn from_authorizer(claims: &std::collections::HashMap<String, String>) -> Option<Self> {
        let sub = claims.get("sub").filter(|s| !s.is_empty())?.clone();
        let groups = claims.get("cognito:groups").map(|raw| parse_groups(raw)).unwrap_or_default();
        let site = claims
            .get(SITE_CLAIM)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Some(Self { sub, groups, site })
    }
}

/// Parses `cognito:groups` as API Gateway flattens it.
pub fn parse_groups(raw: &str) -> Vec<String> {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(raw) {
        return list;
    }
    raw.trim_matches(|c| c == '[' || c == ']')
        .split([' ', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(claims.clone());
        }
        if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) =
            parts.extensions.get::<lambda_http::request::RequestContext>()
            && let Some(claims) = ctx
                .authorizer
                .as_ref()
                .and_then(|a| a.jwt.as_ref())
                .and_then(|jwt| Claims::from_authorizer(&jwt.claims))
        {
            return Ok(claims);
        }
        Err(ApiError(AppError::Unauthorized))
    }
}

/// The request id: API Gateway's, or `x-request-id`, or a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) =
            parts.extensions.get::<lambda_http::request::RequestContext>()
            && let Some(id) = ctx.request_id.as_ref().filter(|id| !id.is_empty())
        {
            return Ok(Self(id.clone()));
        }
        let header = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok());
        match header.filter(|h| !h.is_empty() && h.len() <= 128 && h.bytes().all(|b| b.is_ascii_graphic())) {
            Some(h) => Ok(Self(h.to_owned())),
            None => Ok(Self(ulid::Ulid::new().to_string())),
        }
    }
}

/// The request's `Idempotency-Key` header, bound to the hash of `body`; absent: `None`. A
/// key that is not 1 to 255 visible ASCII characters is a 422 naming the header.
pub fn idempotency_key(headers: &HeaderMap, body: &[u8]) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .map_err(|_| FieldError::new("Idempotency-Key", "must be visible ASCII"))
        .and_then(|k| IdempotencyKey::parse(k, body))
        .map(Some)
        .map_err(|e| ApiError(AppError::Invalid(vec![e])))
}

/// The `Idempotency-Key` header as the OpenAPI document shows it, for every command that
/// takes one: `params(IdempotencyHeader)` beside a route's other parameters.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeader {
    /// 1 to 255 visible ASCII characters, unique per attempt; a retry under the same key is answered as the first request was.
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    pub idempotency_key: Option<String>,
}

/// Parses a JSON body, naming the field at fault: 415 without a JSON content type, 400 for
/// bytes that are not JSON, 422 for JSON of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if mime != "application/json" {
        return Err(ApiError(AppError::Malformed("UNSUPPORTED_MEDIA_TYPE".into())));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end()
                .map_err(|e| ApiError(AppError::Malformed(format!("the body is not valid JSON: {e}"))))?;
            Ok(v)
        }
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let in_a_field = !(path == "." || path.is_empty());
            if inner.is_syntax() && in_a_field && is_not_unicode(&inner) {
                // Well-formed JSON whose string is not text (a lone surrogate escape, bytes
                // that are not UTF-8): the field's value is at fault, not the document.
                return Err(ApiError(AppError::Invalid(vec![FieldError::new(
                    path,
                    "must be valid Unicode text (no lone surrogate escapes, UTF-8 only)",
                )])));
            }
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                return Err(ApiError(AppError::Malformed(format!("the body is not valid JSON: {inner}"))));
            }
            let message = inner.to_string();
            let field = if let Some(rest) = message.strip_prefix("unknown field `") {
                rest.split('`').next().unwrap_or("body").to_owned()
            } else if path == "." || path.is_empty() {
                "body".to_owned()
            } else {
                path
            };
            let detail = message.split(" at line ").next().unwrap_or(&message).to_owned();
            Err(ApiError(AppError::Invalid(vec![FieldError::new(field, detail)])))
        }
    }
}

/// Did parsing stop at a string that is not Unicode text (rather than at broken syntax)?
fn is_not_unicode(e: &serde_json::Error) -> bool {
    let message = e.to_string();
    ["surrogate", "invalid unicode code point", "hex escape"]
        .iter()
        .any(|m| message.contains(m))
}

/// Turns the media-type marker into a 415 problem; every other error maps as usual.
pub fn problem_of(e: ApiError) -> Problem {
    match e.0 {
        AppError::Malformed(m) if m == "UNSUPPORTED_MEDIA_TYPE" => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/json",
        ),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_claim_is_read_as_api_gateway_passes_it() {
        let claims =
            |pairs: &[(&str, &str)]| Claims::from_authorizer(&pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        let staff = claims(&[("sub", "s1"), ("cognito:groups", "[test-site]"), ("custom:site", "mapo")]).expect("claims");
        assert_eq!(staff.site.as_deref(), Some("mapo"));
        assert!(staff.works_at("mapo") && !staff.works_at("gangnam"));
        let patient = claims(&[("sub", "p1"), ("custom:site", " ")]).expect("claims");
        assert_eq!(patient.site, None, "a blank site is no site");
        assert!(!patient.works_at(""));
        assert_eq!(claims(&[("custom:site", "mapo")]), None, "no subject, no caller");
    }

    #[test]
    fn cognito_groups_are_read_in_every_shape_api_gateway_sends() {
        assert_eq!(parse_groups("[patient staff]"), vec!["patient", "staff"]);
        assert_eq!(parse_groups(r#"["patient"]"#), vec!["patient"]);
        assert_eq!(parse_groups("patient"), vec!["patient"]);
        assert!(parse_groups("[]").is_empty());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: Option<String>,
        age: Option<u8>,
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        h
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let err = parse_json::<Body>(&json_headers(), br#"{"age": "old"}"#).expect_err("invalid");
        assert!(matches!(err.0, AppError::Invalid(ref f) if f[0].field == "age"));
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = parse_json::<Body>(&json_headers(), br#"{"nmae": "x"}"#).expect_err("invalid");
        assert!(matches!(err.0, AppError::Invalid(ref f) if f[0].field == "nmae"));
    }

    #[test]
    fn a_string_that_is_not_unicode_names_its_field() {
        for body in [
            &br#"{"name": "\ud800"}"#[..],
            &br#"{"name": "a\udc00"}"#[..],
            b"{\"name\": \"\xff\xfe\"}",
        ] {
            let err = parse_json::<Body>(&json_headers(), body).expect_err("invalid");
            assert!(
                matches!(err.0, AppError::Invalid(ref f) if f[0].field == "name"),
                "{}: {err:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(matches!(
            parse_json::<Body>(&json_headers(), &[0xff, 0xfe, 0x00]).expect_err("bad").0,
            AppError::Malformed(_)
        ));
    }

    #[test]
    fn broken_json_is_a_bad_request_and_other_media_types_are_refused() {
        assert!(matches!(
            parse_json::<Body>(&json_headers(), b"{").expect_err("bad").0,
            AppError::Malformed(_)
        ));
        assert_eq!(
            problem_of(parse_json::<Body>(&HeaderMap::new(), b"{}").expect_err("415")).status,
            415
        );
    }
}
