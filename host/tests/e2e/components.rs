//! Loading components: bundled, replaced with `--components DIR`, and
//! refused when a replacement asks for more than its stage is granted.

use crate::common;

use connectzero::engine::{Runtime, Stage};
use std::path::Path;

/// Where the build put the component files.
const BUILT: &str = connectzero::engine::COMPONENTS_DIR;

fn copy(from: Stage, to: Stage, dir: &Path) -> anyhow::Result<()> {
    std::fs::copy(
        Path::new(BUILT).join(from.file_name()),
        dir.join(to.file_name()),
    )?;
    Ok(())
}

fn error_text(result: anyhow::Result<std::sync::Arc<Runtime>>) -> String {
    match result {
        Ok(_) => panic!("the runtime should have refused the components"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_replacement_directory_overrides_only_the_stages_it_holds() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    copy(Stage::Match, Stage::Match, dir.path())?;
    let runtime = Runtime::new(Some(dir.path()))?;
    let world = connectzero::testbed::World::start(
        runtime,
        connectzero::storage::Storage::in_memory()?,
        common::defaults(),
        false,
    )
    .await?;
    let contacts = connectzero::demo::seed_directory(&world);
    common::place_dana_call(&world, 1);
    common::tick_until(&world, 5, |w| w.crm.messages().len() == 1).await?;
    assert_eq!(world.crm.messages()[0].contact_id, contacts["Dana Fox"]);
    Ok(())
}

#[test]
fn a_matcher_that_wants_the_network_is_refused_at_start_up() -> anyhow::Result<()> {
    // The post component imports wasi:http and credentials; as a matcher it
    // must not get them, so composing the pipeline fails before anything
    // runs, naming the import.
    let dir = tempfile::tempdir()?;
    copy(Stage::Post, Stage::Match, dir.path())?;
    let error = error_text(Runtime::new(Some(dir.path())));
    assert!(
        error.contains("connectzero_match.wasm imports wasi:http/")
            && error.contains("which is not granted to it"),
        "{error}"
    );
    Ok(())
}

#[test]
fn a_component_without_the_stage_exports_is_refused() -> anyhow::Result<()> {
    // The dedup component imports nothing the trigger stage lacks, but it
    // does not export the trigger interface the tick is wired to.
    let dir = tempfile::tempdir()?;
    copy(Stage::Dedup, Stage::Trigger, dir.path())?;
    let error = error_text(Runtime::new(Some(dir.path())));
    assert!(
        error.contains("the export connectzero:pipeline/trigger@0.1.0"),
        "{error}"
    );
    Ok(())
}

#[test]
fn a_file_that_is_not_a_component_gets_a_clear_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join(Stage::Dedup.file_name()), b"not wasm")?;
    let error = error_text(Runtime::new(Some(dir.path())));
    assert!(
        error.contains("reading component connectzero_dedup.wasm")
            && error.contains("is not a binary-encoded WebAssembly component"),
        "{error}"
    );
    Ok(())
}
