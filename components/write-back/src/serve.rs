//! `wasi:http/incoming-handler` plumbing: read the request into a
//! [`Request`], answer with a [`Reply`]. No decisions are made here.

use crate::handler::{MAX_BODY_BYTES, Request};
use crate::reply::Reply;
use guest_support::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use std::io::{Read, Write};

/// Read method, headers and up to one byte more than [`MAX_BODY_BYTES`]
/// of the body (enough to tell that it is too large).
pub fn read_request(request: &IncomingRequest) -> Request {
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
    let headers = guest_support::http::header_pairs(&request.headers());
    let body = if method == "POST" {
        read_body(request)
    } else {
        Ok(Vec::new())
    };
    Request {
        method,
        headers,
        body,
    }
}

fn read_body(request: &IncomingRequest) -> Result<Vec<u8>, String> {
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
            .take(MAX_BODY_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

/// Send `reply` as the response.
pub fn send(out: ResponseOutparam, reply: Reply) {
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), b"application/json".to_vec()),
        (
            "content-length".into(),
            reply.body.len().to_string().into_bytes(),
        ),
    ];
    headers.extend(reply.headers.into_iter().map(|(n, v)| (n, v.into_bytes())));
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    // Every status the handler produces is valid.
    let _ = response.set_status_code(reply.status);
    let Ok(body) = response.body() else {
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = body.write() {
        let _ = stream.write_all(&reply.body);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(body, None);
}
