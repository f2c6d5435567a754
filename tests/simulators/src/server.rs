//! The server task behind a simulator's handles.

use tokio::task::JoinHandle;

use crate::spec::Violations;

/// Owned by every clone of a simulator's handle: when the last clone goes,
/// the server stops, and a test that broke the official API document
/// fails (see [`Violations`]).
#[derive(Debug)]
pub(crate) struct ServerTask {
    pub task: JoinHandle<()>,
    pub violations: Violations,
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.task.abort();
        self.violations.fail_if_any();
    }
}
