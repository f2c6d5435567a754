//! The tenant page (`GET /admin/t/{tenant}`) and its own forms: settings,
//! retrying a parked call and placing a demo call.

use super::admission::{admitted, admitted_tenant_post, tenant_of};
use super::{AppState, WebState, back_to, page, storage_failed};
use crate::pipeline::Tenant;
use crate::storage::{RetryRequest, is_call_key};
use crate::web::auth::AdminToken;
use crate::web::live;
use crate::web::settings::SettingsForm;
use crate::web::status::TenantStatus;
use crate::web::templates::{self, Notice, TenantPage};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
/// What the tenant page's address may ask it to say (after a redirect).
#[derive(Deserialize, Default)]
pub(super) struct PageQuery {
    notice: Option<String>,
    call: Option<String>,
}

fn notice_for(query: &PageQuery) -> Option<Notice> {
    // Only a call key is echoed: a crafted link cannot put other words
    // into the page's notice.
    let call = query
        .call
        .as_deref()
        .filter(|c| is_call_key(c))
        .unwrap_or("?");
    let text = match query.notice.as_deref()? {
        "saved" => "Settings saved; they take effect from the next poll.".to_string(),
        "reset" => "Saved settings removed: the configuration's values apply from the next poll."
            .to_string(),
        "retry" => format!("Call {call} will be retried on the next poll."),
        "assigned" => {
            format!("Call {call} is assigned; it is posted to that contact on the next poll.")
        }
        "copy" => format!("Call {call} is logged on that contact too on the next poll."),
        "placed" => format!("Placed call {call} in the 3CX simulator."),
        _ => return None,
    };
    Some(Notice { ok: true, text })
}

/// Render the tenant page with `notice`, the settings form and its errors.
pub(super) fn render_tenant(
    state: &WebState,
    token: &AdminToken,
    tenant: &Tenant,
    notice: Option<Notice>,
    form: Option<(SettingsForm, Vec<crate::web::FieldError>)>,
    status_code: StatusCode,
) -> Response {
    let storage = state.server.pipeline.storage();
    // The charts are read here, for one tenant's page only: the overview
    // reads every tenant's status and shows no chart.
    let read = TenantStatus::read(storage, tenant).and_then(|status| {
        let charts = crate::web::charts::Charts::read(storage, tenant.id(), status.now_ms)?;
        Ok((status, charts))
    });
    let (status, charts) = match read {
        Ok(read) => read,
        Err(error) => return storage_failed(error),
    };
    let (form, errors) =
        form.unwrap_or_else(|| (SettingsForm::showing(&status.effective), Vec::new()));
    let demo = state
        .options
        .demo
        .as_ref()
        .map(|d| d.kinds())
        .unwrap_or_default();
    page(
        status_code,
        templates::tenant(&TenantPage {
            status: &status,
            charts: &charts,
            csrf: token.csrf(),
            notice,
            form,
            errors,
            demo,
        }),
    )
}

pub(super) async fn tenant_page(
    State(state): AppState,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let token = match admitted(&state, &headers, false) {
        Ok(token) => token,
        Err(response) => return *response,
    };
    let tenant = match tenant_of(&state, &id) {
        Ok(tenant) => tenant,
        Err(response) => return *response,
    };
    render_tenant(
        &state,
        token,
        tenant,
        notice_for(&query),
        None,
        StatusCode::OK,
    )
}

/// The tenant page again, saying why a form was refused.
pub(in crate::web) fn refused(
    state: &WebState,
    token: &AdminToken,
    tenant: &Tenant,
    status: StatusCode,
    text: String,
) -> Response {
    render_tenant(
        state,
        token,
        tenant,
        Some(Notice { ok: false, text }),
        None,
        status,
    )
}

pub(super) async fn save_settings(
    State(state): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    let (token, tenant) = match admitted_tenant_post(&state, &headers, &form.csrf, &id) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let storage = state.server.pipeline.storage();
    let now = chrono::Utc::now().timestamp_millis();
    if form.reset.is_some() {
        if let Err(error) = storage.set_web_settings(&id, None, now) {
            return storage_failed(error);
        }
        live::changed();
        tracing::info!(tenant = %id, "status page: saved settings removed");
        return back_to(&id, "notice=reset");
    }
    match form.validate() {
        Ok(saved) => {
            if let Err(error) = saved.save(storage, &id, now) {
                return storage_failed(error);
            }
            live::changed();
            tracing::info!(tenant = %id, settings = ?saved, "status page: settings saved");
            back_to(&id, "notice=saved")
        }
        Err(errors) => render_tenant(
            &state,
            token,
            tenant,
            None,
            Some((form, errors)),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct RetryForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    call_key: String,
}

pub(super) async fn retry(
    State(state): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<RetryForm>,
) -> Response {
    let (token, tenant) = match admitted_tenant_post(&state, &headers, &form.csrf, &id) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let key = form.call_key.trim();
    // Rows 3CX sent unreadable have no ledger entry to release: they are
    // read again from 3CX while inside the overlap window.
    if !is_call_key(key) {
        let notice = Notice {
            ok: false,
            text: format!(
                "{key} is not a call that can be retried: only parked calls (3cx:…) can."
            ),
        };
        return render_tenant(
            &state,
            token,
            tenant,
            Some(notice),
            None,
            StatusCode::BAD_REQUEST,
        );
    }
    let now = chrono::Utc::now().timestamp_millis();
    match state.server.pipeline.storage().request_retry(&id, key, now) {
        Ok(RetryRequest::Queued) => {
            live::changed();
            tracing::info!(tenant = %id, call = %key, "status page: retry of a parked call queued");
            back_to(
                &id,
                &format!("notice=retry&call={}", urlencoding::encode(key)),
            )
        }
        Ok(RetryRequest::NotParked(outcome)) => {
            let text = match outcome {
                Some(outcome) => format!(
                    "Call {key} is not parked (it is {outcome}), so there is nothing to retry: each parked call is retried once per request."
                ),
                None => format!("There is no call {key} for tenant {id}."),
            };
            render_tenant(
                &state,
                token,
                tenant,
                Some(Notice { ok: false, text }),
                None,
                StatusCode::CONFLICT,
            )
        }
        Err(error) => storage_failed(error),
    }
}

#[derive(Deserialize)]
pub(super) struct DemoForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
}

pub(super) async fn demo_call(
    State(state): AppState,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DemoForm>,
) -> Response {
    let (token, tenant) = match admitted_tenant_post(&state, &headers, &form.csrf, &id) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let Some(demo) = &state.options.demo else {
        return (
            StatusCode::NOT_FOUND,
            "demo calls exist only in `connectzero demo`",
        )
            .into_response();
    };
    match demo.place(&form.kind) {
        Ok((key, _)) => back_to(
            &id,
            &format!("notice=placed&call={}", urlencoding::encode(&key)),
        ),
        Err(error) => render_tenant(
            &state,
            token,
            tenant,
            Some(Notice {
                ok: false,
                text: format!("{error:#}"),
            }),
            None,
            StatusCode::BAD_REQUEST,
        ),
    }
}
