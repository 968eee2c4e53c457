//! The API's OpenAPI 3.1 document, generated from the handlers' types with `utoipa`. The
//! platform contributes what every flow shares ([`PlatformApi`]): the info, the servers, the
//! bearer scheme, the problem schemas and the shared error responses ([`responses`]), and its
//! public routes. Each slice contributes its operations and their schemas
//! ([`Slice::openapi`](crate::topology::Slice::openapi)). [`document`] merges them and then
//! derives from each route of the catalog what the platform itself does around its handler:
//! its tags (the route's roles, or `ops`), its security (none on the public paths, the
//! bearer JWT elsewhere) and the authorizer's 401 and 403.
//!
//! `GET /openapi.json` serves [`crate::topology::Catalog::openapi_json`], and
//! `docs/openapi.json` is that document committed for readers and for schemathesis; a test
//! holds the file to the code.

// Without the `docs` feature only the types the handlers' annotations name are used.
#![cfg_attr(not(feature = "docs"), allow(dead_code, unused_imports))]

use std::borrow::Cow;

use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{AdditionalProperties, AllOfBuilder, ArrayItems, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToResponse, ToSchema};

use super::{PROBLEM_JSON, PROBLEM_TYPES, Problem};
use crate::topology::{Catalog, Method, Route};

/// The name of the bearer JWT scheme every protected operation requires.
pub const BEARER: &str = "bearer";

/// The tag of the public routes.
pub const PUBLIC_TAG: &str = "ops";

/// The description of the (optional) body of a command that takes no fields ([`NoBody`]).
pub const NO_BODY: &str = "None, or a JSON object whose fields are ignored; anything else is refused (415, 400, 413, 422).";

/// The platform's part of the document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "clinicflow API",
        description = "Every route but `GET /health` and `GET /openapi.json` needs `Authorization: Bearer <JWT>` whose \
                       `cognito:groups` holds the route's role. Every error is an RFC 9457 `application/problem+json` \
                       document naming the fields at fault. This document is generated from the handlers' types and the \
                       catalog's routes (each flow's part and the platform's); `docs/openapi.json` is a copy that a test \
                       holds to the code.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers(
        (url = "http://127.0.0.1:3000", description = "clinicflow-local (`cargo run -p clinicflow-local`)"),
        (
            url = "https://{apiId}.execute-api.{region}.amazonaws.com",
            description = "The HTTP API deployed with SAM or CDK (output `ApiUrl`)",
            variables(("apiId" = (default = "example")), ("region" = (default = "ap-northeast-2"))),
        ),
    ),
    security(("bearer" = [])),
    paths(super::routes::health_handler, super::routes::openapi_handler),
    components(
        // The schemas the shared responses refer to; utoipa collects the others from the
        // operations that use them.
        schemas(Problem, GatewayMessage),
        responses(
            responses::Malformed,
            responses::Unauthorized,
            responses::PaymentDeclined,
            responses::Forbidden,
            responses::NotFound,
            responses::Conflict,
            responses::Gone,
            responses::TooLarge,
            responses::UnsupportedMediaType,
            responses::Invalid,
            responses::Throttled,
            responses::Unavailable,
        ),
    ),
    modifiers(&BearerScheme),
)]
pub struct PlatformApi;

/// The `bearer` security scheme: a Cognito ID token (utoipa's derive has no syntax for one).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A Cognito ID token (locally, a dev token from `POST /_local/token`); the role comes from `cognito:groups`, \
                 the identity from `sub`, a staff member's site from `custom:site`.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// A slice's part of the document, for [`crate::topology::Slice::openapi`]: `T`'s
/// operations and schemas (`#[derive(utoipa::OpenApi)]`). With the `docs` feature off (a
/// Lambda function, which serves the committed document) it is empty and `T`'s generated
/// code is never called, so the linker leaves it out.
pub fn part<T: utoipa::OpenApi>() -> OpenApi {
    #[cfg(feature = "docs")]
    {
        T::openapi()
    }
    #[cfg(not(feature = "docs"))]
    {
        OpenApi::default()
    }
}

/// What `GET /openapi.json` serves from a catalog that was given no document and cannot
/// generate one (no `docs` feature): a valid, empty document.
pub const UNDOCUMENTED: &str = "{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"clinicflow\",\"version\":\"0\"},\"paths\":{}}\n";

/// The whole document for `catalog`: the platform's part merged with each slice's, the
/// slices' descriptions before the platform's, and each route's operation given its tags,
/// its security and the authorizer's answers.
#[cfg(feature = "docs")]
pub fn document(catalog: &Catalog) -> OpenApi {
    use utoipa::OpenApi as _;
    let mut doc = PlatformApi::openapi();
    let mut descriptions = Vec::new();
    for slice in &catalog.slices {
        let part = (slice.openapi)();
        descriptions.extend(part.info.description.clone().filter(|d| !d.is_empty()));
        doc.merge(part);
    }
    descriptions.extend(doc.info.description.take());
    doc.info.description = Some(descriptions.join(" "));

    let mut tags: Vec<&str> = Vec::new();
    for route in &catalog.routes {
        let Some(op) = operation_mut(&mut doc, route) else {
            continue;
        };
        if route.is_public() {
            op.tags = Some(vec![PUBLIC_TAG.to_owned()]);
            op.security = Some(Vec::new());
            continue;
        }
        op.tags = Some(route.roles.iter().map(|r| r.group.to_owned()).collect());
        // Inherited from the document's `security`: the bearer JWT.
        op.security = None;
        for (status, response) in [("401", responses::Unauthorized::NAME), ("403", responses::Forbidden::NAME)] {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| Ref::from_response_name(response).into());
        }
        tags.extend(route.roles.iter().map(|r| r.group));
    }
    doc.tags = Some(
        catalog
            .roles
            .iter()
            .filter(|r| tags.contains(&r.group))
            .map(|r| {
                TagBuilder::new()
                    .name(r.group)
                    .description(Some(format!("Routes for the `{}` group.", r.group)))
                    .build()
            })
            .chain([TagBuilder::new().name(PUBLIC_TAG).description(Some("Public routes.")).build()])
            .collect(),
    );
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            optional_no_body(op);
            sort_examples(op);
        }
    }
    if let Some(components) = doc.components.as_mut() {
        for schema in components.schemas.values_mut() {
            close(schema);
        }
    }
    doc
}

/// A [`NoBody`] body (`request_body(content = NoBody)`) may be left out: utoipa would say so
/// only of an `Option`, which it writes as a schema that allows `null`, a body that
/// [`super::routes::ignored_body`] refuses.
fn optional_no_body(op: &mut Operation) {
    let no_body = Ref::from_schema_name(NoBody::name());
    if let Some(body) = op.request_body.as_mut()
        && body
            .content
            .values()
            .all(|c| matches!(&c.schema, Some(RefOr::Ref(r)) if *r == no_body))
    {
        body.required = Some(Required::False);
    }
}

/// The document as served and committed: pretty-printed JSON with a trailing newline.
pub fn to_json(doc: &OpenApi) -> String {
    match serde_json::to_string_pretty(doc) {
        Ok(json) => json + "\n",
        // Unreachable: the document is made of strings, numbers and string-keyed maps.
        Err(e) => {
            tracing::error!(error = %e, "the OpenAPI document could not be serialized");
            String::from("{}\n")
        }
    }
}

/// The operation of `route` in `doc`, if the document has one.
pub fn operation<'a>(doc: &'a OpenApi, route: &Route) -> Option<&'a Operation> {
    let item: &PathItem = doc.paths.paths.get(route.path)?;
    match route.method {
        Method::Get => item.get.as_ref(),
        Method::Post => item.post.as_ref(),
        Method::Delete => item.delete.as_ref(),
    }
}

fn operation_mut<'a>(doc: &'a mut OpenApi, route: &Route) -> Option<&'a mut Operation> {
    let item: &mut PathItem = doc.paths.paths.get_mut(route.path)?;
    match route.method {
        Method::Get => item.get.as_mut(),
        Method::Post => item.post.as_mut(),
        Method::Delete => item.delete.as_mut(),
    }
}

/// Every operation of `doc`: (method in upper case, path).
pub fn operations(doc: &OpenApi) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("OPTIONS", &item.options),
            ("HEAD", &item.head),
            ("PATCH", &item.patch),
            ("TRACE", &item.trace),
        ] {
            if op.is_some() {
                out.push((method, path.as_str()));
            }
        }
    }
    out
}

/// Puts the keys of the operation's examples in order. An example is a `serde_json::Value`,
/// whose objects keep their keys sorted or in insertion order depending on serde_json's
/// `preserve_order` feature, which another crate of the build may turn on: sorted, they are
/// the same in every build, so the document is too.
fn sort_examples(op: &mut Operation) {
    fn sorted(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<(String, serde_json::Value)> = std::mem::take(map).into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                for (key, mut v) in entries {
                    sorted(&mut v);
                    map.insert(key, v);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(sorted),
            _ => {}
        }
    }
    let bodies = op.request_body.iter_mut().flat_map(|b| b.content.values_mut());
    let answers = op.responses.responses.values_mut().flat_map(|r| match r {
        RefOr::T(response) => Some(response.content.values_mut()),
        RefOr::Ref(_) => None,
    });
    for content in bodies.chain(answers.flatten()) {
        content.example.iter_mut().for_each(sorted);
        for example in content.examples.values_mut() {
            if let RefOr::T(example) = example {
                example.value.iter_mut().for_each(sorted);
            }
        }
    }
}

/// Closes an object schema generated from a type, and the objects inlined in it: a request
/// type refuses unknown fields (`#[serde(deny_unknown_fields)]`, which utoipa reads), and
/// serde serializes a response type as exactly its fields. Schemas that say otherwise
/// (`additionalProperties: true`, for what API Gateway or this document may add) stay open.
fn close(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(object)) => {
            if !object.properties.is_empty() && object.additional_properties.is_none() {
                object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
            object.properties.values_mut().for_each(close);
        }
        RefOr::T(Schema::Array(array)) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                close(items);
            }
        }
        // Each alternative stands alone (unlike `allOf`'s parts, which closing would break).
        RefOr::T(Schema::OneOf(one_of)) => one_of.items.iter_mut().for_each(close),
        _ => {}
    }
}

/// The schema of a field that is always `"ok"`.
pub fn ok() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["ok"])).into()
}

/// A command that takes no fields: no body, or a JSON object whose fields are ignored
/// ([`super::routes::ignored_body`]).
#[derive(Debug)]
pub struct NoBody;

impl PartialSchema for NoBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "This command takes no fields: send no body, or a JSON object (`{}`), whose fields are ignored.",
            ))
            .into()
    }
}

impl ToSchema for NoBody {
    fn name() -> Cow<'static, str> {
        "NoBody".into()
    }
}

/// What API Gateway itself answers (in AWS only): `{"message": "Unauthorized"}`.
#[derive(Debug)]
pub struct GatewayMessage;

impl PartialSchema for GatewayMessage {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "What API Gateway itself answers (in AWS only) when its JWT authorizer refuses a token or its throttling \
                 refuses a request.",
            ))
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("message")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl ToSchema for GatewayMessage {
    fn name() -> Cow<'static, str> {
        "GatewayMessage".into()
    }
}

/// This document, as `GET /openapi.json` answers it.
#[derive(Debug)]
pub struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "openapi",
                ObjectBuilder::new().schema_type(Type::String).pattern(Some("^3\\.1\\.\\d+$")),
            )
            .required("openapi")
            .property("info", ObjectBuilder::new().schema_type(Type::Object))
            .required("info")
            .property("paths", ObjectBuilder::new().schema_type(Type::Object))
            .required("paths")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl ToSchema for OpenApiDocument {
    fn name() -> Cow<'static, str> {
        "OpenApiDocument".into()
    }
}

/// The error responses every flow's operations share, referenced by `$ref`
/// (`#/components/responses/<Name>`): `(status = 404, response = NotFound)`. Each is a
/// problem of one status and type, but `Throttled`, API Gateway's own.
pub mod responses {
    use super::*;

    /// A problem response: [`Problem`] narrowed to one status and one type (and to having
    /// `errors` when `errors` is set).
    fn problem(status: u16, slug: &str, errors: bool, description: &str) -> ResponseBuilder {
        let mut narrowed = ObjectBuilder::new()
            .property(
                "status",
                ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some([status])),
            )
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([format!("{PROBLEM_TYPES}{slug}")])),
            );
        if errors {
            narrowed = narrowed.required("errors");
        }
        let schema = AllOfBuilder::new().item(Ref::from_schema_name(Problem::name())).item(narrowed);
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(schema)).build())
    }

    /// API Gateway's own `{"message"}` as JSON.
    fn gateway_message() -> utoipa::openapi::Content {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(GatewayMessage::name())))
            .build()
    }

    macro_rules! shared_response {
        ($(#[$doc:meta])* $name:ident => $response:expr) => {
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;

            impl $name {
                /// The response's name in `components.responses`.
                pub const NAME: &'static str = stringify!($name);
            }

            impl<'s> ToResponse<'s> for $name {
                fn response() -> (&'s str, RefOr<Response>) {
                    (Self::NAME, $response.build().into())
                }
            }
        };
    }

    shared_response! {
        /// 400: the body is not JSON.
        Malformed => problem(400, "malformed", false, "The body is not JSON (broken syntax, invalid UTF-8, nesting deeper than 128).")
    }

    shared_response! {
        /// 401: no valid bearer token, from the local gateway and the handlers (a problem) or
        /// from API Gateway's authorizer (its `{"message"}`).
        Unauthorized => problem(
            401,
            "unauthorized",
            false,
            "No bearer token, or one that is invalid, expired, foreign or for another audience. The local gateway and \
             the handlers answer a problem; in AWS, API Gateway's JWT authorizer answers `{\"message\":\"Unauthorized\"}` \
             itself.",
        )
        .header("WWW-Authenticate", HeaderBuilder::new().description(Some("`Bearer`.")).build())
        .content("application/json", gateway_message())
    }

    shared_response! {
        /// 402: the card was declined.
        PaymentDeclined => problem(402, "payment-declined", true, "The card was declined; nothing was stored. `errors` names `card_token`.")
    }

    shared_response! {
        /// 403: the token lacks the route's role.
        Forbidden => problem(403, "forbidden", false, "The token is valid but lacks the route's group (`cognito:groups`).")
    }

    shared_response! {
        /// 404: no such case, or not the caller's.
        NotFound => problem(
            404,
            "not-found",
            false,
            "No such case, or not the caller's (another person's case is not found, as if it did not exist).",
        )
    }

    shared_response! {
        /// 409: the command does not apply now.
        Conflict => problem(
            409,
            "conflict",
            false,
            "The command does not apply now: what it needs is used up, the case's state forbids it (an illegal \
             transition), or the case changed concurrently.",
        )
    }

    shared_response! {
        /// 410: what the command acts on existed and is over for good.
        Gone => problem(
            410,
            "gone",
            false,
            "What the command acts on existed and is over for good (an offer whose hold expired); asking again cannot \
             succeed.",
        )
    }

    shared_response! {
        /// 413: the body is over [`super::super::routes::MAX_BODY_BYTES`].
        TooLarge => problem(413, "too-large", false, "The body is larger than 16 KiB.")
    }

    shared_response! {
        /// 415: a body that is not `application/json`.
        UnsupportedMediaType => problem(415, "unsupported-media-type", false, "A body sent as anything but `application/json`.")
    }

    shared_response! {
        /// 422: JSON of the wrong shape or invalid values.
        Invalid => problem(422, "validation", true, "JSON of the wrong shape or invalid values; `errors` names every field at fault.")
    }

    shared_response! {
        /// 429: API Gateway's throttling.
        Throttled => ResponseBuilder::new()
            .description("API Gateway's throttling (in AWS only).")
            .content("application/json", gateway_message())
    }

    shared_response! {
        /// 503: a dependency is slow or down; retry after `Retry-After`.
        Unavailable => problem(
            503,
            "unavailable",
            false,
            "A dependency is slow or down (the payment provider, its circuit breaker open, the store); nothing was \
             done. Retry after `Retry-After` seconds.",
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .description(Some("Seconds to wait before retrying."))
                .schema(ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[1-9][0-9]*$")))
                .build(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::app::AppError;

    /// Each shared problem response names the status and type that the error mapping gives.
    #[test]
    fn each_problem_response_is_what_its_error_answers() {
        let narrowed = |response: RefOr<Response>| -> serde_json::Value {
            let json = serde_json::to_value(response).expect("serializable");
            json["content"][PROBLEM_JSON]["schema"]["allOf"][1]["properties"].clone()
        };
        let cases: Vec<(RefOr<Response>, Problem)> = vec![
            (responses::Malformed::response().1, AppError::Malformed("x".into()).into()),
            (responses::Unauthorized::response().1, AppError::Unauthorized.into()),
            (
                responses::PaymentDeclined::response().1,
                AppError::PaymentDeclined("x".into()).into(),
            ),
            (responses::Forbidden::response().1, AppError::Forbidden("x".into()).into()),
            (responses::NotFound::response().1, AppError::NotFound.into()),
            (responses::Conflict::response().1, AppError::Conflict("x".into()).into()),
            (responses::Gone::response().1, AppError::Gone("x".into()).into()),
            (responses::Invalid::response().1, AppError::Invalid(vec![]).into()),
            (
                responses::Unavailable::response().1,
                AppError::Unavailable {
                    reason: "x".into(),
                    retry_after: Duration::from_secs(1),
                }
                .into(),
            ),
            (
                responses::UnsupportedMediaType::response().1,
                super::super::problem_of(super::super::ApiError(AppError::Malformed("UNSUPPORTED_MEDIA_TYPE".into()))),
            ),
        ];
        for (response, problem) in cases {
            let p = narrowed(response);
            assert_eq!(p["status"]["enum"], serde_json::json!([problem.status]), "{}", problem.kind);
            assert_eq!(p["type"]["enum"], serde_json::json!([problem.kind]), "{}", problem.kind);
        }
        let too_large = narrowed(responses::TooLarge::response().1);
        assert_eq!(too_large["type"]["enum"][0], format!("{PROBLEM_TYPES}too-large"));
        assert_eq!(super::super::routes::MAX_BODY_BYTES, 16 * 1024, "TooLarge says 16 KiB");
    }

    #[test]
    fn the_list_parameters_hold_the_largest_page() {
        use utoipa::IntoParams;
        let params = crate::app::queries::ListParams::into_params(|| None);
        let json = serde_json::to_value(&params).expect("serializable");
        let limit = json
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
            .expect("a limit parameter");
        assert_eq!(limit["schema"]["maximum"], crate::app::queries::MAX_PAGE);
        assert!(
            json.as_array()
                .is_some_and(|ps| ps.iter().all(|p| p["name"] != "date" && p["name"] != "status"))
        );
    }
}
