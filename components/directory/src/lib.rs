//! # directory-provider: the matcher's contact directory as a component
//!
//! The bundled host implements `connectzero:matcher/directory` natively.
//! On Spin this component is composed (wac) in front of the match stage:
//! the matcher still sees only `directory` — no network, no secrets — and
//! this component does the HighLevel contact search (operationId
//! `search-contacts-advanced`) with tokens from `credentials`.
//!
//! A Spin-side provider: it depends on `guest-support` and its world's
//! imports, never on the host, whose native directory it stands in for.

pub mod search;

use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{ContactRef, StageError};
use guest_support::{Service, config};

wit_bindgen::generate!({
    path: "../../wit",
    world: "connectzero:pipeline/directory-provider",
    with: {
        "connectzero:pipeline/types@0.1.0": guest_support::bindings::connectzero::pipeline::types,
        "connectzero:matcher/types@0.1.0": guest_support::bindings::connectzero::matcher::types,
        "connectzero:pipeline/credentials@0.1.0": guest_support::bindings::connectzero::pipeline::credentials,
        "wasi:config/store@0.2.0-draft-2024-09-27": guest_support::bindings::wasi::config::store,
        "wasi:http/types@0.2.4": guest_support::wasi::http::types,
        "wasi:http/outgoing-handler@0.2.4": guest_support::wasi::http::outgoing_handler,
        "wasi:io/error@0.2.4": guest_support::wasi::io::error,
        "wasi:io/poll@0.2.4": guest_support::wasi::io::poll,
        "wasi:io/streams@0.2.4": guest_support::wasi::io::streams,
        "wasi:clocks/monotonic-clock@0.2.4": guest_support::wasi::clocks::monotonic_clock,
    },
});

/// HighLevel's production API.
const DEFAULT_CRM_BASE_URL: &str = "https://services.leadconnectorhq.com";

struct Provider;

impl exports::connectzero::matcher::directory::Guest for Provider {
    fn find_by_phone(e164: String) -> Result<Vec<ContactRef>, StageError> {
        find("phone", &e164)
    }

    fn find_by_email(email: String) -> Result<Vec<ContactRef>, StageError> {
        find("email", &email)
    }
}

fn find(field: &str, value: &str) -> Result<Vec<ContactRef>, StageError> {
    let base_url = config::get("crm_base_url")?.unwrap_or_else(|| DEFAULT_CRM_BASE_URL.into());
    let location_id = config::require("crm_location_id")?;
    let client =
        ApiClient::new(Service::Crm, &base_url).with_header("Version", search::CONTACTS_VERSION);
    let found: search::SearchResponse = client.post_json(
        "/contacts/search",
        &search::request(&location_id, field, value),
    )?;
    Ok(search::oldest_first(found.contacts))
}

// Exported only when building the component (see the stage crates).
#[cfg(target_arch = "wasm32")]
export!(Provider);
