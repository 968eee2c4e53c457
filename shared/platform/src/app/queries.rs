//! What every list and status query shares: paging with opaque cursors, the parameters a
//! list takes, and reading views. Queries read the view table only, never the command side.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

use super::projector::View;
use super::{AppError, Platform};
use crate::domain::FieldError;
use crate::ports::{ViewQuery, ViewRecord};

/// Largest page.
pub const MAX_PAGE: usize = 100;

/// A page of views and the cursor to the next one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page<T> {
    /// The views.
    pub items: Vec<T>,
    /// Opaque cursor for the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// A page of `T` is the schema `<T>Page` (`CasePage` for `Case`): its items refer to `T`'s
/// schema rather than repeat it, as utoipa's derive would for a generic type.
impl<T: utoipa::ToSchema> utoipa::PartialSchema for Page<T> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .property(
                "items",
                ArrayBuilder::new()
                    .items(utoipa::openapi::Ref::from_schema_name(T::name()))
                    .max_items(Some(MAX_PAGE)),
            )
            .required("items")
            .property(
                "next_cursor",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .description(Some("Pass as `cursor` for the next page; null on the last one.")),
            )
            .required("next_cursor")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl<T: utoipa::ToSchema> utoipa::ToSchema for Page<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        format!("{}Page", T::name()).into()
    }

    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}

/// Paging parameters as the client sent them. Every list takes `cursor` and `limit`; the
/// filters are each list's own to document.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Staff lists only: a date.
    #[param(ignore)]
    pub date: Option<String>,
    /// Staff lists only: a status.
    #[param(ignore)]
    pub status: Option<String>,
}

fn encode_cursor(r: &ViewRecord) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", r.created_at.to_rfc3339(), r.id))
}

fn decode_cursor(raw: &str) -> Result<(DateTime<Utc>, String), FieldError> {
    let bad = || FieldError::new("cursor", "is not a cursor this API returned");
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?).map_err(|_| bad())?;
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?.with_timezone(&Utc);
    Ok((at, id.to_owned()))
}

fn parse_limit(raw: Option<&str>) -> Result<usize, FieldError> {
    match raw {
        None => Ok(20),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(FieldError::new("limit", format!("must be a whole number from 1 to {MAX_PAGE}"))),
        },
    }
}

/// Parses an optional parameter, collecting its error.
pub fn parsed<T>(raw: Option<&str>, errors: &mut Vec<FieldError>, parse: impl Fn(&str) -> Result<T, FieldError>) -> Option<T> {
    raw.map(parse).transpose().map_err(|e| errors.push(e)).ok().flatten()
}

/// The page size and the position after which to continue.
pub fn paging(params: &ListParams, errors: &mut Vec<FieldError>) -> (Option<usize>, Option<(DateTime<Utc>, String)>) {
    let limit = parse_limit(params.limit.as_deref()).map_err(|e| errors.push(e)).ok();
    (limit, parsed(params.cursor.as_deref(), errors, decode_cursor))
}

/// A page of view `V`'s rows matching `query`, each rendered by `render` (a view not
/// ready to show, `None`, is left out), and the cursor to the next page.
pub async fn page<V: View, T>(p: &Platform, mut query: ViewQuery, render: impl Fn(V) -> Option<T>) -> Result<Page<T>, AppError> {
    let limit = query.limit;
    query.flow = V::NAME.into();
    query.limit = limit + 1;
    let mut rows = p.views.list(&query).await?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = if more { rows.last().map(encode_cursor) } else { None };
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        // Read in place (no copy of the row's JSON).
        if let Some(v) = render(V::deserialize(&r.body)?) {
            items.push(v);
        }
    }
    Ok(Page { items, next_cursor })
}

/// Refuses the filters a list does not take, each naming its parameter.
pub fn refuse_filters(params: &ListParams, errors: &mut Vec<FieldError>) {
    if params.date.is_some() {
        errors.push(FieldError::new("date", "is not a filter of this list"));
    }
    if params.status.is_some() {
        errors.push(FieldError::new("status", "is not a filter of this list"));
    }
}

/// Parses a `date` filter (`YYYY-MM-DD`).
pub fn date_filter(raw: &str) -> Result<chrono::NaiveDate, FieldError> {
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| FieldError::new("date", "must be a date in the form YYYY-MM-DD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T09:30:00.123456Z")
            .expect("ts")
            .with_timezone(&Utc);
        let r = ViewRecord {
            id: "01J".into(),
            flow: "a-view".into(),
            owner: "p".into(),
            date: None,
            status: None,
            queue: None,
            category: None,
            created_at: at,
            revision: 1,
            body: serde_json::json!({}),
        };
        assert_eq!(decode_cursor(&encode_cursor(&r)), Ok((at, "01J".to_owned())));
        assert!(decode_cursor("!!!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("nope")).is_err());
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(parse_limit(None), Ok(20));
        assert!(parse_limit(Some("0")).is_err());
        assert!(parse_limit(Some("101")).is_err());
        assert!(parse_limit(Some("ten")).is_err());
    }
}
