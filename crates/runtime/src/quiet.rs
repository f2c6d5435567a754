//! What the scheduler asks before an idle tenant's tick: whether its 3CX
//! shows anything new since the last quiet tick (`crate::scheduler`). A
//! leaf, so the tenant (`crate::pipeline`) can hold one and the scheduler
//! use it without either importing the other.

use crate::credentials::TokenSource;
use crate::report::QuietWindow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Asks the tenant's 3CX whether the next tick would find anything new
/// (`guest_support::protocol::quiet`); the host implements it over its
/// own HTTP client and the tenant's token.
pub trait QuietProbe: Send + Sync + 'static {
    /// True only when 3CX answered that nothing changed since the quiet
    /// tick that read `window`; any failure is `false` (the tick runs).
    /// `credentials` are the tenant's as its ticks use them (the same 3CX
    /// token: 3CX keeps one active token per API client).
    fn unchanged(
        self: Arc<Self>,
        window: QuietWindow,
        credentials: Arc<dyn TokenSource>,
    ) -> Pin<Box<dyn Future<Output = bool> + Send>>;
}
