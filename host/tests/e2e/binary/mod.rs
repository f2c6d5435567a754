//! The `connectzero` binary as the CLI tests run it: in a directory of
//! the test's, with none of the caller's settings that would change where
//! it looks, what secrets it holds or what it prints.

use std::path::Path;
use std::process::Command;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_connectzero");

/// Environment variables the binary reads that a developer's shell may
/// have set.
const CALLER_SETTINGS: [&str; 11] = [
    "CONNECTZERO_CONFIG",
    "CONNECTZERO_DB",
    "CONNECTZERO_KEY",
    "CONNECTZERO_PBX_CLIENT_SECRET",
    "CONNECTZERO_CRM_CLIENT_SECRET",
    "CONNECTZERO_ACTION_SECRET",
    "CONNECTZERO_ADMIN_TOKEN",
    "CONNECTZERO_ADMIN_TOKEN_FILE",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "RUST_LOG",
];

/// The binary, run in `dir`, without [`CALLER_SETTINGS`].
pub fn in_dir(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir);
    for name in CALLER_SETTINGS {
        command.env_remove(name);
    }
    command
}

/// A child process a test started (the binary, chromedriver…), killed and
/// reaped when the guard is dropped: also when the test fails half-way or
/// returns early with `?`, so nothing a test starts outlives it.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
