//! The bundled matcher pre-initialised (`connectzero_preinit`): tests here,
//! where the bundled component is.

use crate::engine::{Stage, bundled};
use connectzero_preinit::{matcher, offers_init};

#[test]
fn the_bundled_matcher_is_snapshotted_the_same_way_on_every_start() {
    let engine = crate::engine::load::new_engine(0).unwrap();
    let original = bundled(Stage::Match).to_vec();
    assert!(
        offers_init(&original),
        "the bundled matcher offers the hook"
    );
    let initialised = matcher(&engine, original.clone());
    // The snapshot's data segments hold the loaded metadata.
    assert!(
        initialised.len() > original.len() + 100_000,
        "not pre-initialised: {} bytes, {} before",
        initialised.len(),
        original.len()
    );
    assert!(
        matcher(&engine, original) == initialised,
        "another start must give the same bytes, or nothing is cached"
    );
}

#[test]
fn a_component_without_the_hook_is_used_as_it_is() {
    let engine = crate::engine::load::new_engine(0).unwrap();
    let trigger = bundled(Stage::Trigger).to_vec();
    assert!(!offers_init(&trigger));
    assert_eq!(matcher(&engine, trigger.clone()), trigger);
}
