//! Upgrades from a real previous release. The fixture is what release
//! 8fe53d6's own binary left behind (`fixtures/upgrade/8fe53d6/`, made by
//! `make.sh` there): its demo killed mid-flight, then a tenant added and
//! the secrets key rotated.
//!
//! - [`schema`]: the database is migrated without losing or changing a
//!   row, its secrets open and its key-value layout is stamped;
//! - [`replay`]: the demo resumes on this release against simulators
//!   holding what that run left in 3CX and HighLevel, and every call,
//!   recording and trigger ends up in the CRM exactly once.

mod replay;
mod schema;

use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade/8fe53d6")
}

/// The fixture copied into `dir`: the database and its key file (owner
/// only, as the host requires; git keeps no such mode).
fn copy_fixture(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let db = dir.join("connectzero.db");
    std::fs::copy(fixture_dir().join("connectzero.db"), &db)?;
    let key = dir.join("connectzero.db.key");
    std::fs::copy(fixture_dir().join("connectzero.db.key"), &key)?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    Ok(db)
}
