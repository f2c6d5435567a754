//! The status and settings page: server-rendered HTML (maud templates),
//! plain HTML forms, no JavaScript.
//!
//! | route | what |
//! |---|---|
//! | `GET /admin` | every tenant at a glance: last poll, calls today, parked calls, re-authorisation |
//! | `GET /admin/t/{tenant}` | one tenant: health (open diagnostics incidents), status, parked and failed calls (with a retry button), recordings, recent calls, settings |
//! | `POST /admin/t/{tenant}/settings` | save settings (applied from the tenant's next tick) or say what to fix |
//! | `POST /admin/t/{tenant}/retry` | retry one parked call, once |
//! | `POST /admin/t/{tenant}/review` | assign a "needs review" call (shared number) to one of its contacts, once |
//! | `POST /admin/t/{tenant}/copy` | log a call posted to one of several contacts with its number on another of them too, once |
//! | `POST /admin/t/{tenant}/demo-call` | `connectzero demo` only: place a call in the 3CX simulator |
//! | `GET`/`POST /admin/login`, `POST /admin/logout` | sign in with the admin token (wrong tokens throttled per address); sign out ends the session on the server |
//! | `GET /metrics` | Prometheus metrics, for a bearer of the admin token or `CONNECTZERO_METRICS_TOKEN` only |
//!
//! Every route but the login form needs the admin token
//! (`CONNECTZERO_ADMIN_TOKEN`), either as `Authorization: Bearer <token>`
//! or through the login form, which sets an `HttpOnly; SameSite=Strict`
//! session cookie. Every POST carries a CSRF token. Neither the token nor
//! any tenant secret is ever written into a page or a log line.
//!
//! Settings saved here are stored in the database (`web_settings`) as
//! overrides of the tenant's configuration; [`LiveTenant`] applies them
//! (and pending retries) before each tick in `crate::scheduler`.

mod auth;
mod charts;
mod handlers;
mod health;
mod live;
mod review;
mod settings;
mod shared;
mod status;
mod templates;

pub use auth::{ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV, AdminToken, TokenError};
pub use live::{LiveTenant, note_tick, run_tenant};
pub use settings::{FieldError, SettingsOverride};

use crate::server::ServerState;
use axum::Router;
use std::sync::Arc;

/// Where the page lives.
pub const PAGE_PATH: &str = "/admin";

/// Calls a demo can place from the page (`connectzero demo` only).
pub trait DemoCalls: Send + Sync {
    /// `(kind, button label)` of each call it can place.
    fn kinds(&self) -> Vec<(&'static str, &'static str)>;
    /// Place a call of `kind` in the 3CX simulator, as if it just ended.
    /// Returns its call key and what it is.
    fn place(&self, kind: &str) -> anyhow::Result<(String, String)>;
}

/// What the page needs besides the server's state.
#[derive(Clone, Default)]
pub struct WebOptions {
    /// The admin token; `None` turns the page off (it then says how to
    /// turn it on).
    pub token: Option<AdminToken>,
    /// Demo calls the page offers to place.
    pub demo: Option<Arc<dyn DemoCalls>>,
    /// A token for `/metrics` scrapers besides the admin token
    /// ([`METRICS_TOKEN_ENV`]): `/metrics` names tenants and their
    /// counts, so it answers only a bearer of either.
    pub metrics_token: Option<AdminToken>,
}

/// Environment variable holding the `/metrics` scrapers' token.
pub const METRICS_TOKEN_ENV: &str = "CONNECTZERO_METRICS_TOKEN";

/// The page's routes, to merge into the host's router.
pub fn router(state: Arc<ServerState>, options: WebOptions) -> Router {
    // This process serves `/metrics`: count its runtime's reports.
    crate::metrics::install();
    handlers::routes(Arc::new(handlers::WebState {
        server: state,
        options,
        throttle: auth::SignInThrottle::new(),
    }))
}
