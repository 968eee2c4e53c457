//! The catalog's self-check: what a slice forgot or contradicts, each problem naming the
//! slice and the place. [`check`] looks at the catalog alone (the OpenAPI document, which is
//! generated from it, included); [`check_files`] at what the repository must hold for it
//! (each function's entry point, each event's schema and sample).

use std::collections::BTreeSet;
#[cfg(feature = "docs")]
use std::path::Path;

#[cfg(feature = "docs")]
use crate::http::openapi;
use crate::topology::{Catalog, PUBLIC_PATHS, Route, Trigger};

/// Who declared a part: its slice, or the platform.
fn owner(catalog: &Catalog, function: &str) -> String {
    match catalog.slice_of(function) {
        Some(s) => format!("slice {}", s.name),
        None => "the platform".to_owned(),
    }
}

fn route_name(r: &Route) -> String {
    format!("route {} {}", r.method.as_str(), r.path)
}

/// Every `(source, type)` some slice emits.
fn emitted(catalog: &Catalog) -> BTreeSet<(&'static str, &'static str)> {
    catalog
        .slices
        .iter()
        .flat_map(|s| s.events)
        .flat_map(|e| e.types.iter().map(move |t| (e.source, *t)))
        .collect()
}

fn duplicates<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    names.into_iter().filter(|n| !seen.insert(*n)).collect()
}

/// The catalog's problems, as sentences naming the slice and the place.
pub fn check(catalog: &Catalog) -> Vec<String> {
    let mut problems = Vec::new();
    let mut say = |p: String| problems.push(p);

    for (what, names) in [
        ("slice", catalog.slices.iter().map(|s| s.name).collect::<Vec<_>>()),
        ("function", catalog.functions.iter().map(|f| f.name).collect()),
        ("rule", catalog.rules.iter().map(|r| r.name).collect()),
        ("table", catalog.tables.iter().map(|t| t.name).collect()),
        ("role", catalog.roles.iter().map(|r| r.group).collect()),
        ("consumer", catalog.consumers.iter().map(|(n, _)| *n).collect()),
        ("view", catalog.projections.iter().map(|p| p.view).collect()),
    ] {
        for d in duplicates(names) {
            say(format!("the catalog has two of {what} {d}"));
        }
    }
    let routes: Vec<String> = catalog.routes.iter().map(route_name).collect();
    for d in duplicates(routes.iter().map(String::as_str)) {
        say(format!("the catalog has two of {d}"));
    }

    for f in &catalog.functions {
        let who = owner(catalog, f.name);
        match f.trigger {
            Trigger::Http if catalog.routes_of(f.name).next().is_none() => {
                say(format!("{who}: function {} is triggered by HTTP but serves no route", f.name));
            }
            Trigger::Events => {
                if catalog.consumer(f.name).is_none() {
                    say(format!(
                        "{who}: function {} is triggered by events but has no consumer handler",
                        f.name
                    ));
                }
                if !catalog.rules.iter().any(|r| r.target == f.name) {
                    say(format!("{who}: function {} is triggered by events but no rule targets it", f.name));
                }
            }
            Trigger::Stream if !catalog.streams.iter().any(|s| s.function == f.name) => {
                say(format!("{who}: function {} is triggered by a stream but has none", f.name));
            }
            Trigger::Schedule(expression) => {
                if let Err(e) = crate::schedule::Schedule::parse(expression) {
                    say(format!("{who}: function {}: {e}", f.name));
                }
                if f.name != crate::topology::OUTBOX_SWEEPER && catalog.job(f.name).is_none() {
                    say(format!("{who}: function {} runs on a schedule but has no job", f.name));
                }
            }
            _ => {}
        }
        for t in f.uses.reads.iter().chain(f.uses.writes).chain(f.uses.counts) {
            if catalog.table(t).is_none() {
                say(format!("{who}: function {} uses table {t}, which no slice declares", f.name));
            }
        }
    }

    for s in &catalog.slices {
        for j in s.jobs {
            if !s
                .functions
                .iter()
                .any(|f| f.name == j.function && matches!(f.trigger, Trigger::Schedule(_)))
            {
                say(format!(
                    "slice {}: job {} is not one of the slice's scheduled functions",
                    s.name, j.function
                ));
            }
        }
        for c in s.consumers {
            if !s.functions.iter().any(|f| f.name == c.function && f.trigger == Trigger::Events) {
                say(format!(
                    "slice {}: consumer {} is not one of the slice's event-triggered functions",
                    s.name, c.function
                ));
            }
        }
    }

    for r in &catalog.routes {
        let who = owner(catalog, r.function);
        match catalog.function(r.function) {
            Some(f) if f.trigger == Trigger::Http => {}
            _ => say(format!(
                "{who}: {} is served by {}, which is not an HTTP function",
                route_name(r),
                r.function
            )),
        }
        let declared_public = PUBLIC_PATHS.contains(&r.path) || catalog.slice_of(r.function).is_some_and(|s| s.public.contains(&r.path));
        if r.is_public() != declared_public {
            say(format!(
                "{who}: {} must require a role unless it is a public path (the slice's `public`)",
                route_name(r)
            ));
        }
        for role in r.roles {
            if catalog.role(role.group) != Some(*role) {
                say(format!(
                    "{who}: {} allows role {}, which no slice declares",
                    route_name(r),
                    role.group
                ));
            }
        }
    }
    for role in &catalog.roles {
        if !catalog.routes.iter().any(|r| r.roles.contains(role)) {
            say(format!("role {} has no authorization cell: no route allows it", role.group));
        }
    }

    #[cfg(feature = "docs")]
    check_documents(catalog, &mut say);

    let emitted = emitted(catalog);
    for rule in &catalog.rules {
        let who = owner(catalog, rule.target);
        for source in &rule.sources {
            for t in &rule.detail_types {
                if !emitted.contains(&(*source, *t)) {
                    say(format!(
                        "{who}: consumer {} subscribes (rule {}) to {t} from {source}, which no slice emits",
                        rule.target, rule.name
                    ));
                }
            }
        }
        if catalog.consumer(rule.target).is_none() {
            say(format!(
                "{who}: rule {} targets {}, which has no consumer handler",
                rule.name, rule.target
            ));
        }
    }
    for slice in &catalog.slices {
        for n in slice.notifications {
            if !emitted.contains(&(n.source, n.event_type)) {
                say(format!(
                    "slice {}: a notification waits for {} from {}, which no slice emits",
                    slice.name, n.event_type, n.source
                ));
            }
        }
        for p in slice.projections {
            for c in p.contexts {
                if !catalog.context_tables().any(|t| t == *c) {
                    say(format!(
                        "slice {}: view {} folds context {c}, which has no streamed table",
                        slice.name, p.view
                    ));
                }
            }
        }
    }
    problems
}

/// The documents generated from the slices' types: each declared event type is a variant
/// of its source's event enum and the reverse; the OpenAPI document has an operation for
/// each route, and a slice's part describes only its own routes.
#[cfg(feature = "docs")]
fn check_documents(catalog: &Catalog, say: &mut impl FnMut(String)) {
    for slice in &catalog.slices {
        for e in slice.events {
            match crate::events::schema::types_of(e.schema) {
                Err(why) => say(format!(
                    "slice {}: the event type of {} has no usable schema: {why}",
                    slice.name, e.source
                )),
                Ok(variants) => {
                    for t in e.types.iter().filter(|t| !variants.iter().any(|v| v == *t)) {
                        say(format!(
                            "slice {}: event {t} from {} has no schema: it is not a variant of the event type",
                            slice.name, e.source
                        ));
                    }
                    for v in variants.iter().filter(|v| !e.types.contains(&v.as_str())) {
                        say(format!(
                            "slice {}: the event type of {} has variant {v}, which the slice does not declare",
                            slice.name, e.source
                        ));
                    }
                }
            }
        }
    }

    // The OpenAPI document (served at `GET /openapi.json`, committed as docs/openapi.json)
    // has an operation for each route, and a slice's part describes only its own routes.
    let document = catalog.openapi();
    for r in &catalog.routes {
        if openapi::operation(&document, r).is_none() {
            say(format!(
                "{}: {} has no operation in the OpenAPI document (docs/openapi.json): give its handler a \
                 #[utoipa::path] and list it in the slice's openapi",
                owner(catalog, r.function),
                route_name(r)
            ));
        }
    }
    for s in &catalog.slices {
        for (method, path) in openapi::operations(&(s.openapi)()) {
            if !s.routes.iter().any(|r| r.method.as_str() == method && r.path == path) {
                say(format!(
                    "slice {}: its part of the OpenAPI document describes {method} {path}, which is none of its routes",
                    s.name
                ));
            }
        }
    }
}

/// What the repository at `root` lacks for the catalog: a bootstrap per slice and one for
/// the platform (`functions/<bootstrap>/`, serving its functions by handler name), and a
/// schema (`docs/events/<Type>.schema.json`, the one generated from the Rust types) and a
/// sample (in `events/`) per event type.
#[cfg(feature = "docs")]
pub fn check_files(catalog: &Catalog, root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for b in catalog.bootstraps() {
        if !root.join("functions").join(b).join("Cargo.toml").is_file() {
            let served: Vec<&str> = catalog.served_by(b).map(|f| f.name).collect();
            problems.push(format!(
                "bootstrap {b} (serving {}) has no package (functions/{b}/)",
                served.join(", ")
            ));
        }
    }
    let samples = read_all(&root.join("events"));
    let schemas = crate::events::schema::catalog_documents(catalog).unwrap_or_default();
    for slice in &catalog.slices {
        for e in slice.events {
            for t in e.types {
                let path = root.join("docs").join("events").join(format!("{t}.schema.json"));
                match (std::fs::read_to_string(&path), schemas.get(*t)) {
                    (Err(_), _) => problems.push(format!(
                        "slice {}: event {t} has no schema (docs/events/{t}.schema.json)",
                        slice.name
                    )),
                    (Ok(text), Some(doc)) if text != crate::events::schema::to_text(doc) => problems.push(format!(
                        "slice {}: docs/events/{t}.schema.json is not the schema of the Rust types \
                         (CLINICFLOW_UPDATE_SCHEMAS=1 cargo test -p clinicflow --test samples writes it)",
                        slice.name
                    )),
                    _ => {}
                }
                if !samples.iter().any(|s| s.contains(&format!("\"{t}\""))) {
                    problems.push(format!("slice {}: event {t} has no sample under events/", slice.name));
                }
            }
        }
    }
    problems
}

#[cfg(feature = "docs")]
fn read_all(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(read_all(&path));
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.push(text);
        }
    }
    out
}
