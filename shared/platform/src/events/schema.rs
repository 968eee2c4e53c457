//! The JSON Schemas of the events (draft 2020-12), generated from the Rust types with
//! `schemars`: one document per event type describing the whole envelope, with the event's
//! own `data` taken from the slice's event enum (an adjacently tagged enum, one variant per
//! type). `docs/events/<Type>.schema.json` holds them; a test keeps those files equal to
//! what this module generates, and checks real events against them.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::EventEnvelope;

/// Where the documents say they live.
pub const ID_BASE: &str = "https://clinicflow.dev/events/";

/// How a slice's event enum describes itself: [`of::<Event>`](of).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` (a slice's event enum), for [`crate::topology::Emits::schema`]. With
/// the `docs` feature off (a Lambda function, which serves no schema) it is an empty schema
/// and `T`'s `JsonSchema` code is never called, so the linker leaves it out.
pub fn of<T: schemars::JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    #[cfg(feature = "docs")]
    {
        T::json_schema(generator)
    }
    #[cfg(not(feature = "docs"))]
    {
        let _ = generator;
        Schema::default()
    }
}

/// A generator with every subschema inlined, so that each document stands alone.
fn generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    settings.into_generator()
}

/// Every object of an event is closed: a field the Rust types would not produce is refused.
fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let is_object = map.get("type").and_then(Value::as_str) == Some("object") || map.contains_key("properties");
            if is_object && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".to_owned(), Value::Bool(false));
            }
            if is_object && !map.contains_key("properties") {
                map.insert("properties".to_owned(), json!({}));
            }
            for (key, v) in map.iter_mut() {
                // The envelope's `data` is described per type, not left open as `true`.
                if key != "const" && key != "enum" && key != "examples" {
                    close_objects(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// The variants of an adjacently tagged enum's schema: `(type, description, data schema)`.
fn variants(schema: &Value) -> Result<Vec<(String, Option<String>, Value)>, String> {
    let branches = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
        .ok_or("the event type is not an enum of variants (`#[serde(tag = \"type\", content = \"data\")]`)")?;
    branches
        .iter()
        .map(|b| {
            let properties = &b["properties"];
            let name = properties["type"]["const"]
                .as_str()
                .or_else(|| properties["type"]["enum"][0].as_str())
                .ok_or("a variant without a `type` tag (the enum must be adjacently tagged)")?;
            let data = properties.get("data").cloned().unwrap_or_else(|| json!({"type": "object"}));
            let description = b.get("description").and_then(Value::as_str).map(str::to_owned);
            Ok((name.to_owned(), description, data))
        })
        .collect()
}

/// The types an event enum's schema declares, in order.
pub fn types_of(schema: SchemaFn) -> Result<Vec<String>, String> {
    let mut generator = generator();
    let schema = schema(&mut generator);
    Ok(variants(schema.as_value())?.into_iter().map(|(t, _, _)| t).collect())
}

/// The envelope's schema, for events from `source` of type `event_type` with `data`.
fn envelope(source: &str, event_type: &str, description: Option<String>, data: Value) -> Value {
    let mut generator = generator();
    let mut doc = generator.root_schema_for::<EventEnvelope>().to_value();
    let properties = doc["properties"].as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut properties: Map<String, Value> = properties;
    let keep = |p: &Map<String, Value>, name: &str| p.get(name).and_then(|v| v.get("description")).cloned();
    let type_description = keep(&properties, "type");
    let source_description = keep(&properties, "source");
    properties.insert("type".to_owned(), json!({"const": event_type, "description": type_description}));
    properties.insert("source".to_owned(), json!({"const": source, "description": source_description}));
    properties.insert("data".to_owned(), data);
    let mut out = Map::new();
    out.insert("$schema".to_owned(), doc["$schema"].take());
    out.insert("$id".to_owned(), json!(format!("{ID_BASE}{event_type}.schema.json")));
    out.insert("title".to_owned(), json!(event_type));
    if let Some(d) = description {
        out.insert(
            "description".to_owned(),
            json!(format!(
                "{d} The whole envelope, as it travels in the outbox, on the bus (EventBridge `Detail`) and in the stream."
            )),
        );
    }
    out.insert("type".to_owned(), json!("object"));
    out.insert("required".to_owned(), doc["required"].take());
    out.insert("properties".to_owned(), Value::Object(properties));
    let mut out = Value::Object(out);
    tidy_descriptions(&mut out);
    close_objects(&mut out);
    out
}

/// Drops empty descriptions and joins the lines of wrapped doc comments.
fn tidy_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| !(k == "description" && v.is_null()));
            if let Some(Value::String(d)) = map.get_mut("description") {
                *d = d
                    .split("\n\n")
                    .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            map.values_mut().for_each(tidy_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy_descriptions),
        _ => {}
    }
}

/// One document per event type of the enum described by `schema`, whose events come from
/// `source`, by type.
pub fn documents(source: &str, schema: SchemaFn) -> Result<BTreeMap<String, Value>, String> {
    let mut generator = generator();
    let schema = schema(&mut generator);
    Ok(variants(schema.as_value())?
        .into_iter()
        .map(|(t, description, data)| {
            let doc = envelope(source, &t, description, data);
            (t, doc)
        })
        .collect())
}

/// Every event type's document, from every slice of `catalog`. Two slices may emit from
/// one shared context (a payment): its documents are the same and are kept once.
pub fn catalog_documents(catalog: &crate::topology::Catalog) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for slice in &catalog.slices {
        for e in slice.events {
            let docs = documents(e.source, e.schema).map_err(|why| format!("slice {}, {}: {why}", slice.name, e.source))?;
            for (t, doc) in docs {
                match out.get(&t) {
                    Some(known) if *known != doc => {
                        return Err(format!("slice {}: event {t} is described twice, differently", slice.name));
                    }
                    _ => {
                        out.insert(t, doc);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The text a document is kept in: pretty JSON with a final newline.
pub fn to_text(document: &Value) -> String {
    let mut text = serde_json::to_string_pretty(document).unwrap_or_default();
    text.push('\n');
    text
}

/// A [`JsonSchema`] for a string type that checks itself on parse (`try_from = "String"`):
/// its wire form, as a pattern or lengths.
pub fn string_schema(pattern: Option<&str>, min: Option<u64>, max: Option<u64>, description: &str) -> Schema {
    let mut schema = json!({"type": "string", "description": description});
    if let Some(p) = pattern {
        schema["pattern"] = json!(p);
    }
    if let Some(n) = min {
        schema["minLength"] = json!(n);
    }
    if let Some(n) = max {
        schema["maxLength"] = json!(n);
    }
    Schema::try_from(schema).unwrap_or_default()
}

/// The pattern of a ULID (the ids of aggregates and events).
pub const ULID_PATTERN: &str = "^[0-7][0-9A-HJKMNP-TV-Z]{25}$";

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;

    #[allow(dead_code)]
    #[derive(JsonSchema)]
    #[serde(tag = "type", content = "data")]
    enum Sample {
        /// Something was opened.
        SampleOpened {
            /// How many.
            count: u32,
            /// Optional note.
            note: Option<String>,
        },
        /// Closed.
        SampleClosed {},
    }

    #[derive(serde::Serialize)]
    #[serde(tag = "type", content = "data")]
    enum SampleWire {
        SampleOpened { count: u32, note: Option<String> },
    }

    #[test]
    fn one_closed_document_per_variant_with_the_envelope_around_its_data() {
        let docs = documents("clinicflow.sample", <Sample as JsonSchema>::json_schema).expect("documents");
        assert_eq!(docs.keys().collect::<Vec<_>>(), ["SampleClosed", "SampleOpened"]);
        let opened = &docs["SampleOpened"];
        assert_eq!(opened["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(opened["$id"], "https://clinicflow.dev/events/SampleOpened.schema.json");
        assert_eq!(opened["properties"]["type"]["const"], "SampleOpened");
        assert_eq!(opened["properties"]["source"]["const"], "clinicflow.sample");
        assert_eq!(opened["additionalProperties"], false);
        assert_eq!(opened["properties"]["data"]["additionalProperties"], false);
        assert_eq!(opened["properties"]["id"]["pattern"], ULID_PATTERN);
        assert_eq!(opened["properties"]["version"]["minimum"], 1);
        assert!(
            opened["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("Something was opened."))
        );
        let required: Vec<&str> = opened["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for field in [
            "id",
            "type",
            "source",
            "aggregate_id",
            "version",
            "correlation_id",
            "causation_id",
            "occurred_at",
            "data",
        ] {
            assert!(required.contains(&field), "{field} is required");
        }
        assert_eq!(docs["SampleClosed"]["properties"]["data"]["properties"], json!({}));
        assert_eq!(
            types_of(<Sample as JsonSchema>::json_schema).expect("types"),
            ["SampleOpened", "SampleClosed"]
        );
        let wire = serde_json::to_value(SampleWire::SampleOpened { count: 1, note: None }).expect("json");
        assert_eq!(wire["type"], "SampleOpened");
    }

    #[test]
    fn a_type_that_is_not_a_tagged_enum_is_refused() {
        assert!(documents("clinicflow.sample", <u32 as JsonSchema>::json_schema).is_err());
    }
}
