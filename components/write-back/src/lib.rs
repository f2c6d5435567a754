//! # Stage 8b: write-back — the Update Call Record action (placeholder)
//!
//! Builds and is loaded by the host. Validating and applying notes, tags and
//! sentiment (and serving the action over `wasi:http/incoming-handler`)
//! comes with issue 4; until then `apply` answers `not-implemented` with
//! that explanation instead of pretending to succeed.

use guest_support::StageError;
use guest_support::bindings::connectzero::pipeline::types::TenantSettings;

guest_support::stage_bindings!(http "write-back-stage");

use exports::connectzero::pipeline::write_back::{CallUpdate, Guest};

struct WriteBack;

impl Guest for WriteBack {
    fn apply(_settings: TenantSettings, _update: CallUpdate) -> Result<(), StageError> {
        Err(StageError::NotImplemented(
            "the Update Call Record action is not available in this release (see issue 4)".into(),
        ))
    }
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(WriteBack);
