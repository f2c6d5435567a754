//! The middleware that referees every exchange of a simulator, and the
//! record of what it found.

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::Response;

use super::check::{RequestParts, Violation};
use super::{ApiSpec, Operation};

/// The largest body the referee reads; larger ones are refused (413), as a
/// real API caps uploads too. Recordings uploaded to the CRM stay far below.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Every violation one simulator recorded, shared by its clones.
///
/// A simulator whose last handle is dropped with violations still
/// recorded panics, naming each: so a test that made the client break the
/// official document fails even if the client coped with the refusal.
/// A test that breaks the document on purpose takes them with
/// [`Violations::take`] and asserts on them.
#[derive(Clone, Debug, Default)]
pub struct Violations(Arc<Mutex<Vec<Violation>>>);

impl Violations {
    /// What has been recorded so far, emptying the record.
    pub fn take(&self) -> Vec<Violation> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// What has been recorded so far.
    pub fn list(&self) -> Vec<Violation> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes what was recorded and asserts it is exactly one violation
    /// per entry of `expected`, each naming its text, in order: for tests
    /// that break the document on purpose.
    pub fn expect(&self, expected: &[&str]) {
        let taken = self.take();
        let texts: Vec<String> = taken.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), expected.len(), "violations: {texts:#?}");
        for (text, want) in texts.iter().zip(expected) {
            assert!(text.contains(want), "`{want}` not in violation: {text}");
        }
    }

    fn push(&self, violation: Violation) {
        tracing::error!(%violation, "request or answer outside the official API document");
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(violation);
    }

    /// Panics with every recorded violation, unless already unwinding.
    pub(crate) fn fail_if_any(&self) {
        let left = self.take();
        if left.is_empty() || std::thread::panicking() {
            return;
        }
        let lines: Vec<String> = left.iter().map(|v| format!("  - {v}")).collect();
        panic!(
            "{} exchange(s) broke the official API document:\n{}",
            left.len(),
            lines.join("\n")
        );
    }
}

/// What the [`referee`] middleware needs to know about its simulator.
#[derive(Clone)]
pub(crate) struct Referee {
    /// The document, or `None` when it could not be found (see the
    /// module docs of `spec`).
    pub spec: Option<&'static ApiSpec>,
    pub violations: Violations,
    /// Path prefixes the simulator serves that the document does not list
    /// (e.g. the 3CX token endpoint, from NOTES.md); not refereed.
    pub unlisted: &'static [&'static str],
    /// Operations whose answers follow NOTES.md §8 (the live API) instead
    /// of the document: `(operation id, JSON pointer)` to the part of the
    /// live answer shaped as the document's answer, which is checked.
    pub live_shapes: &'static [(&'static str, &'static str)],
    /// The status the API answers a body that breaks its schema with
    /// (parameters: 400).
    pub body_status: u16,
    /// The API's own error answer for a refused request.
    pub refuse: fn(u16, Vec<String>) -> Response,
}

/// Checks the request against the document (refusing it, 400, when it
/// breaks it), then checks a successful answer's status and JSON body.
pub(crate) async fn referee(State(r): State<Referee>, request: Request, next: Next) -> Response {
    let Some(spec) = r.spec.filter(|_| super::enabled()) else {
        return next.run(request).await;
    };
    let path = request.uri().path().to_owned();
    if r.unlisted.iter().any(|prefix| path.starts_with(prefix)) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // Uploads stream to their handler: their form is the handler's to read.
    let streamed = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/"));
    let (body, bytes) = if streamed {
        (body, None)
    } else {
        match to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => (Body::empty(), Some(bytes)),
            Err(_) => return (r.refuse)(413, vec!["request body too large or unreadable".into()]),
        }
    };
    let method = parts.method.as_str().to_owned();
    let (op, problems, body_problems) = spec.check_request(&RequestParts {
        method: &method,
        path: &path,
        query: parts.uri.query(),
        headers: &parts.headers,
        body: bytes.as_deref(),
    });
    let record = |problem: String| {
        r.violations.push(Violation {
            api: spec.name,
            request: format!("{method} {path}"),
            operation: op.map(|o| o.id.clone()),
            problem,
        })
    };
    let body = bytes.map_or(body, Body::from);
    let Some(op) = op else {
        // Not an operation of the document: recorded, and answered as the
        // simulator's router answers unknown paths (404).
        problems.into_iter().for_each(record);
        return next.run(Request::from_parts(parts, body)).await;
    };
    if !problems.is_empty() || !body_problems.is_empty() {
        let status = if problems.is_empty() {
            r.body_status
        } else {
            400
        };
        let all: Vec<String> = problems.into_iter().chain(body_problems).collect();
        all.iter().cloned().for_each(record);
        return (r.refuse)(status, all);
    }
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return check_error_answer(spec, op, status, response, &record).await;
    }
    if !is_json(&response) {
        // Streams (recordings) pass untouched: only the status is checked.
        spec.check_response(op, status, None)
            .into_iter()
            .for_each(record);
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return (r.refuse)(500, vec!["the simulator's answer could not be read".into()]);
    };
    // Read once; a live shape (NOTES.md §8) is checked at its part shaped
    // as the document's answer.
    let live = r.live_shapes.iter().find(|(id, _)| *id == op.id);
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Err(e) => vec![format!("the answer body is not JSON: {e}")],
        Ok(answer) => match live {
            None => spec.check_response(op, status, Some(&answer)),
            Some((_, pointer)) => match answer.pointer(pointer) {
                Some(part) => spec.check_response(op, status, Some(part)),
                None => vec![format!(
                    "the answer has no `{pointer}` in the live shape (NOTES.md §8)"
                )],
            },
        },
    }
    .into_iter()
    .for_each(record);
    Response::from_parts(parts, Body::from(bytes))
}

/// An error answer checked against the document's schema for it (when it
/// gives one), then passed on unchanged.
async fn check_error_answer(
    spec: &ApiSpec,
    op: &Operation,
    status: u16,
    response: Response,
    record: &impl Fn(String),
) -> Response {
    if !is_json(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        record("the simulator's error answer could not be read".into());
        return Response::from_parts(parts, Body::empty());
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(answer) => spec
            .check_error_response(op, status, &answer)
            .into_iter()
            .for_each(record),
        Err(e) => record(format!("the error answer body is not JSON: {e}")),
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Whether an answer says its body is JSON.
fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
