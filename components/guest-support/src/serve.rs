//! `wasi:http/incoming-handler` plumbing shared by the HTTP components
//! (write-back, app): read a request whole, send an answer whole. No
//! decisions are made here.

use crate::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use std::io::{Read, Write};

/// An incoming request, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    /// Upper-case method, e.g. "POST".
    pub method: String,
    /// Path and query as sent, e.g. "/tick?x=1".
    pub path_with_query: String,
    /// The authority the request was sent to (`host[:port]`), when the
    /// runtime tells it (Spin passes it here rather than as a header).
    pub authority: Option<String>,
    /// Headers as (lower-case name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// Up to one byte more than the limit given to [`read_request`] (enough
    /// to tell the body is too large), or why it could not be read.
    pub body: Result<Vec<u8>, String>,
}

impl Incoming {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_with_query
            .split('?')
            .next()
            .unwrap_or(&self.path_with_query)
    }
}

/// Read method, path, headers and, for POST and PUT, up to `max_body + 1`
/// bytes of the body.
pub fn read_request(request: &IncomingRequest, max_body: usize) -> Incoming {
    let method = match request.method() {
        Method::Get => "GET".to_string(),
        Method::Head => "HEAD".to_string(),
        Method::Post => "POST".to_string(),
        Method::Put => "PUT".to_string(),
        Method::Delete => "DELETE".to_string(),
        Method::Connect => "CONNECT".to_string(),
        Method::Options => "OPTIONS".to_string(),
        Method::Trace => "TRACE".to_string(),
        Method::Patch => "PATCH".to_string(),
        Method::Other(other) => other.to_ascii_uppercase(),
    };
    let headers = crate::http::header_pairs(&request.headers());
    let body = if method == "POST" || method == "PUT" {
        read_body(request, max_body)
    } else {
        Ok(Vec::new())
    };
    Incoming {
        method,
        path_with_query: request.path_with_query().unwrap_or_else(|| "/".into()),
        authority: request.authority(),
        headers,
        body,
    }
}

fn read_body(request: &IncomingRequest, max_body: usize) -> Result<Vec<u8>, String> {
    let body = request
        .consume()
        .map_err(|()| "body already taken".to_string())?;
    let mut bytes = Vec::new();
    {
        // The stream is a child of the body: it must go first.
        let stream = body
            .stream()
            .map_err(|()| "body stream already taken".to_string())?;
        stream
            .take(max_body as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

/// Answer with `status`, a JSON `body` and any extra `headers`.
pub fn send_json(out: ResponseOutparam, status: u16, headers: Vec<(String, String)>, body: &[u8]) {
    let mut fields: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("content-length".into(), body.len().to_string().into_bytes()),
    ];
    fields.extend(headers.into_iter().map(|(n, v)| (n, v.into_bytes())));
    let fields = Fields::from_list(&fields).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    // Callers only use valid statuses; an invalid one falls back to 200.
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        let _ = stream.write_all(body);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}
