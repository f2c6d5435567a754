//! `wasi:http/incoming-handler` plumbing: read the request into a
//! [`Request`], answer with a [`Reply`]. No decisions are made here; the
//! reading and writing are `guest_support::serve`'s.

use crate::handler::{MAX_BODY_BYTES, Request};
use crate::reply::Reply;
use guest_support::wasi::http::types::{IncomingRequest, ResponseOutparam};

/// Read method, headers and up to one byte more than [`MAX_BODY_BYTES`]
/// of the body (enough to tell that it is too large).
pub fn read_request(request: &IncomingRequest) -> Request {
    let incoming = guest_support::serve::read_request(request, MAX_BODY_BYTES);
    Request {
        method: incoming.method,
        headers: incoming.headers,
        body: incoming.body,
    }
}

/// Send `reply` as the response.
pub fn send(out: ResponseOutparam, reply: Reply) {
    guest_support::serve::send_json(out, reply.status, reply.headers, &reply.body);
}
