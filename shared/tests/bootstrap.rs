//! One bootstrap per slice and one for the platform: every function of the catalog is
//! served by exactly one, which starts it when `_HANDLER` names it, and refuses at init a
//! handler it does not serve, naming the handler and the functions it does serve.

use clinicflow::bootstrap::{BootstrapError, catalog_of, platform_catalog, select};
use clinicflow::topology::{PLATFORM_BOOTSTRAP, PLATFORM_FUNCTIONS, SMS_NOTIFIER};

#[test]
fn every_function_is_served_by_exactly_one_bootstrap_under_its_own_name() {
    let catalog = clinicflow::catalog();
    for f in &catalog.functions {
        let bootstrap = catalog.bootstrap_of(f.name);
        let serving: Vec<&str> = catalog
            .slices
            .iter()
            .map(|s| s.name)
            .chain([PLATFORM_BOOTSTRAP])
            .filter(|b| catalog.served_by(b).any(|g| g.name == f.name))
            .collect();
        assert_eq!(serving, [bootstrap], "{} is served by exactly its bootstrap", f.name);
        let selected = select(catalog, bootstrap, Some(f.name)).expect("its bootstrap serves it");
        assert_eq!(selected.name, f.name);
    }
    for f in PLATFORM_FUNCTIONS {
        assert_eq!(catalog.bootstrap_of(f.name), PLATFORM_BOOTSTRAP);
    }
    for s in &catalog.slices {
        assert!(s.functions.iter().all(|f| catalog.bootstrap_of(f.name) == s.name));
    }
}

#[test]
fn an_unknown_handler_is_an_init_error_naming_it_and_what_the_bootstrap_serves() {
    let catalog = clinicflow::catalog();
    let slice = catalog.slices[0];
    let e = select(catalog, slice.name, Some("no-such-function")).expect_err("unknown");
    let text = e.to_string();
    assert!(matches!(e, BootstrapError::Unknown { .. }), "{e:?}");
    assert!(
        text.contains("\"no-such-function\"") && text.contains(&format!("bootstrap {}", slice.name)),
        "{text}"
    );
    for f in slice.functions {
        assert!(text.contains(f.name), "names {}: {text}", f.name);
    }

    // A function of another bootstrap is unknown here too: a flow's binary never runs the
    // platform's functions, nor the platform's a flow's.
    let e = select(catalog, slice.name, Some(PLATFORM_FUNCTIONS[0].name)).expect_err("not this bootstrap's");
    assert!(matches!(e, BootstrapError::Unknown { .. }), "{e:?}");
    let e = select(catalog, PLATFORM_BOOTSTRAP, Some(slice.functions[0].name)).expect_err("not the platform's");
    assert!(matches!(e, BootstrapError::Unknown { .. }), "{e:?}");
}

#[test]
fn a_missing_handler_is_an_init_error_saying_what_to_set() {
    let catalog = clinicflow::catalog();
    for handler in [None, Some(""), Some("  ")] {
        let e = select(catalog, PLATFORM_BOOTSTRAP, handler).expect_err("no handler");
        assert!(matches!(e, BootstrapError::NoHandler { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("_HANDLER") && text.contains("status-projector"), "{text}");
    }
}

#[test]
fn a_slices_bootstrap_runs_on_that_slice_alone_and_serves_the_whole_document() {
    for slice in clinicflow::SLICES {
        let c = catalog_of(slice);
        assert_eq!(c.slices.iter().map(|s| s.name).collect::<Vec<_>>(), [slice.name]);
        for f in slice.functions {
            assert_eq!(select(&c, slice.name, Some(f.name)).expect("served").name, f.name);
        }
        assert_eq!(c.openapi_json(), clinicflow::OPENAPI_JSON);
        assert_eq!(clinicflow::catalog().openapi_json(), clinicflow::OPENAPI_JSON);
    }
}

#[test]
fn a_slices_bootstrap_has_none_of_the_platforms_consumers() {
    for slice in clinicflow::SLICES {
        let c = catalog_of(slice);
        assert!(c.consumer(SMS_NOTIFIER).is_none(), "the notifier runs in the platform's bootstrap");
        for consumer in slice.consumers {
            assert!(c.consumer(consumer.function).is_some(), "{}", consumer.function);
        }
    }
    assert!(
        clinicflow::catalog().consumer(SMS_NOTIFIER).is_some(),
        "the whole catalog (the local runtime) has it"
    );
}

#[test]
fn the_platforms_bootstrap_has_every_slices_views_texts_and_tables_and_no_slices_commands() {
    let whole = clinicflow::catalog();
    let c = platform_catalog();
    let names = |slices: &[&clinicflow::topology::Slice]| slices.iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(names(&c.slices), names(clinicflow::SLICES), "one part per slice, in order");
    let projections = |c: &clinicflow::topology::Catalog| c.projections.iter().map(|p| p.view).collect::<Vec<_>>();
    assert_eq!(projections(&c), projections(whole));
    assert_eq!(c.notifications, whole.notifications);
    assert_eq!(
        c.tables.iter().map(|t| t.name).collect::<Vec<_>>(),
        whole.tables.iter().map(|t| t.name).collect::<Vec<_>>()
    );
    assert_eq!(c.streams, whole.streams, "the projector reads every context table's stream");
    let to_notifier = |c: &clinicflow::topology::Catalog| c.rules.iter().filter(|r| r.target == SMS_NOTIFIER).cloned().collect::<Vec<_>>();
    assert_eq!(to_notifier(&c), to_notifier(whole));
    assert!(c.consumer(SMS_NOTIFIER).is_some());
    for f in PLATFORM_FUNCTIONS {
        assert_eq!(select(&c, PLATFORM_BOOTSTRAP, Some(f.name)).expect("served").name, f.name);
    }
    assert!(
        c.slices
            .iter()
            .all(|s| s.functions.is_empty() && s.routes.is_empty() && s.consumers.is_empty() && s.jobs.is_empty())
    );
    assert!(c.jobs.is_empty());
    assert_eq!(c.routes.len(), 2, "the public routes alone");
    assert_eq!(c.openapi_json(), clinicflow::OPENAPI_JSON);
}
