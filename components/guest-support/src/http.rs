//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Stages make a handful of JSON requests per batch, so a blocking call per
//! request keeps the code obvious. Which hosts a component may reach is not
//! decided here: the runtime (bundled host or Spin) enforces its allow-list
//! and the request then fails with a network error.

use std::io::{Read, Write};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, FutureIncomingResponse, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};

/// Largest response body read into memory. API answers are small JSON; a
/// larger body means something is wrong, and reading it all would let a
/// hostile server exhaust the component's memory.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Time allowed to connect, and to wait for the first byte of the answer.
const CONNECT_TIMEOUT_NS: u64 = 10_000_000_000;
const FIRST_BYTE_TIMEOUT_NS: u64 = 30_000_000_000;

/// An HTTP method this client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
}

/// A request to send.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: HttpMethod,
    /// Absolute URL: `http://` or `https://`, authority, path and query.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// Body bytes; empty for none.
    pub body: Vec<u8>,
}

/// A response, with the body read whole (up to [`MAX_RESPONSE_BYTES`]).
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The parts of an absolute URL that `wasi:http` wants separately.
#[derive(Debug, PartialEq, Eq)]
pub struct UrlParts<'a> {
    /// True for `https`.
    pub https: bool,
    /// `host[:port]`.
    pub authority: &'a str,
    /// Path and query, starting with `/`.
    pub path_and_query: &'a str,
}

/// Split an absolute URL, e.g. `https://pbx.example.com:5001/xapi/v1/Users?$top=1`.
pub fn split_url(url: &str) -> Result<UrlParts<'_>, String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!(
            "URL {url:?} must start with https:// (or http:// for a loopback test server)"
        ));
    };
    let (authority, path_and_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("URL {url:?} has no host"));
    }
    Ok(UrlParts {
        https,
        authority,
        path_and_query,
    })
}

/// Send `request` and read the whole answer. `Err` carries a readable reason
/// for a transport failure (the request never got an HTTP answer).
pub fn send(request: &Request) -> Result<Response, String> {
    let (outgoing, body) = prepare(request)?;
    let future = dispatch(outgoing, request)?;
    // A server may answer (say, 401) without reading the body; its answer
    // is what counts then, so a failed write only matters without one.
    let written = write_body(body, &request.body);
    let incoming = match await_response(&future, request) {
        Ok(incoming) => incoming,
        Err(e) => {
            written?;
            return Err(e);
        }
    };
    read_response(&incoming)
}

/// Why [`stream_to_upload`] failed.
#[derive(Debug)]
pub enum StreamError {
    /// The download answered with a non-200 status (the body is kept).
    DownloadStatus(Response),
    /// A transport failure on either side, or the download broke off.
    Transport(String),
}

/// Size of the chunks copied from the download to the upload. The only
/// audio held in the component at any time is one chunk.
pub const STREAM_CHUNK: u64 = 64 * 1024;

/// GET `download`, and stream its body into the body of `upload` between
/// `prefix` and `suffix` (a multipart envelope), chunk by chunk. Returns
/// the upload's answer and the number of body bytes copied. If the
/// download breaks off, the upload is aborted (its body is never finished),
/// so the server never receives a truncated file as complete.
pub fn stream_to_upload(
    download: &Request,
    upload: &Request,
    prefix: &[u8],
    suffix: &[u8],
) -> Result<(Response, u64), StreamError> {
    let (outgoing, body) = prepare(download).map_err(StreamError::Transport)?;
    let future = dispatch(outgoing, download).map_err(StreamError::Transport)?;
    write_body(body, &[]).map_err(StreamError::Transport)?;
    let incoming = await_response(&future, download).map_err(StreamError::Transport)?;
    if incoming.status() != 200 {
        return Err(StreamError::DownloadStatus(
            read_response(&incoming).map_err(StreamError::Transport)?,
        ));
    }
    let source_body = incoming
        .consume()
        .map_err(|()| StreamError::Transport("download body already taken".into()))?;
    let source = source_body
        .stream()
        .map_err(|()| StreamError::Transport("download stream already taken".into()))?;

    // With the download's length known, the upload declares its own: its
    // last byte then ends the request, so the server cannot answer (and
    // close) while a chunked body's terminator is still on its way.
    let mut upload = upload.clone();
    if let Some(length) = content_length(&incoming) {
        let total = prefix.len() as u64 + length + suffix.len() as u64;
        upload
            .headers
            .push(("content-length".into(), total.to_string()));
    }
    let upload = &upload;
    let (outgoing, body) = prepare(upload).map_err(StreamError::Transport)?;
    let future = dispatch(outgoing, upload).map_err(StreamError::Transport)?;
    let mut flush_error = None;
    let copied = {
        let mut sink = body
            .write()
            .map_err(|()| StreamError::Transport("upload stream already taken".into()))?;
        let mut copy = || -> Result<u64, String> {
            sink.write_all(prefix)
                .map_err(|e| format!("writing upload: {e}"))?;
            let mut copied = 0u64;
            loop {
                match source.blocking_read(STREAM_CHUNK) {
                    Ok(chunk) => {
                        sink.write_all(&chunk)
                            .map_err(|e| format!("writing upload: {e}"))?;
                        copied += chunk.len() as u64;
                    }
                    Err(wasi::io::streams::StreamError::Closed) => break,
                    Err(wasi::io::streams::StreamError::LastOperationFailed(e)) => {
                        return Err(format!(
                            "the download broke off after {copied} bytes: {}",
                            e.to_debug_string()
                        ));
                    }
                }
            }
            sink.write_all(suffix)
                .map_err(|e| format!("writing upload: {e}"))?;
            // Every byte is written. A server that has read the whole
            // multipart body may answer and close before our flush: the
            // flush then fails though the upload is complete, so its
            // answer, not the flush, decides (retrying would upload twice).
            if let Err(e) = sink.flush() {
                flush_error = Some(format!("flushing upload: {e}"));
            }
            Ok(copied)
        };
        copy()
    };
    drop(source);
    drop(source_body);
    let copied = match copied {
        Ok(copied) => copied,
        // Dropping the body unfinished tells the runtime the request is
        // broken; the server sees an aborted upload, never a short file.
        Err(e) => {
            drop(body);
            drop(future);
            return Err(StreamError::Transport(e));
        }
    };
    let finished = OutgoingBody::finish(body, None);
    let incoming = match await_response(&future, upload) {
        Ok(incoming) => incoming,
        // No answer: the first failure on our side is the better reason.
        Err(e) => {
            let ours =
                flush_error.or_else(|| finished.err().map(|f| format!("finishing upload: {f:?}")));
            return Err(StreamError::Transport(match ours {
                Some(ours) => format!("{ours}; then {e}"),
                None => e,
            }));
        }
    };
    Ok((
        read_response(&incoming).map_err(StreamError::Transport)?,
        copied,
    ))
}

/// The `content-length` of a response, when it states one.
fn content_length(response: &IncomingResponse) -> Option<u64> {
    header_pairs(&response.headers())
        .into_iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.trim().parse().ok())
}

/// Build the `wasi:http` request and take its body handle.
fn prepare(request: &Request) -> Result<(OutgoingRequest, OutgoingBody), String> {
    let parts = split_url(&request.url)?;
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&headers).map_err(|e| format!("invalid header: {e:?}"))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match request.method {
        HttpMethod::Get => Method::Get,
        HttpMethod::Post => Method::Post,
        HttpMethod::Put => Method::Put,
    };
    let scheme = if parts.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing
        .set_method(&method)
        .and_then(|()| outgoing.set_scheme(Some(&scheme)))
        .and_then(|()| outgoing.set_authority(Some(parts.authority)))
        .and_then(|()| outgoing.set_path_with_query(Some(parts.path_and_query)))
        .map_err(|()| format!("URL {:?} was refused by wasi:http", request.url))?;
    let body = outgoing
        .body()
        .map_err(|()| "request body already taken".to_string())?;
    Ok((outgoing, body))
}

/// Hand the request to the runtime.
fn dispatch(
    outgoing: OutgoingRequest,
    request: &Request,
) -> Result<FutureIncomingResponse, String> {
    let options = RequestOptions::new();
    // Both setters only fail when the runtime does not support timeouts; the
    // request then simply runs without them.
    let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_NS));
    let _ = options.set_first_byte_timeout(Some(FIRST_BYTE_TIMEOUT_NS));
    outgoing_handler::handle(outgoing, Some(options))
        .map_err(|e| format!("request to {} failed: {e:?}", authority(request)))
}

/// Wait for the response head.
fn await_response(
    future: &FutureIncomingResponse,
    request: &Request,
) -> Result<IncomingResponse, String> {
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(resp))) => Ok(resp),
        Some(Ok(Err(code))) => Err(format!(
            "request to {} failed: {code:?}",
            authority(request)
        )),
        Some(Err(())) | None => Err("response already taken".to_string()),
    }
}

fn authority(request: &Request) -> &str {
    split_url(&request.url).map(|p| p.authority).unwrap_or("?")
}

/// Header names (lower case) and values of `fields`, as text.
pub fn header_pairs(fields: &Fields) -> Vec<(String, String)> {
    fields
        .entries()
        .into_iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

/// Read status, headers and the whole (bounded) body.
fn read_response(incoming: &IncomingResponse) -> Result<Response, String> {
    let status = incoming.status();
    let headers = header_pairs(&incoming.headers());
    let body = read_body(incoming)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), String> {
    // A request without a body only needs the end-of-body marker: writing
    // (or flushing) an empty body can fail once the server has answered.
    if !bytes.is_empty() {
        let mut stream = body
            .write()
            .map_err(|()| "request body stream already taken".to_string())?;
        // The std Write impl splits the bytes into writes the stream accepts.
        stream
            .write_all(bytes)
            .map_err(|e| format!("writing request body: {e}"))?;
        stream
            .flush()
            .map_err(|e| format!("flushing request body: {e}"))?;
    }
    OutgoingBody::finish(body, None).map_err(|e| format!("finishing request body: {e:?}"))
}

fn read_body(incoming: &wasi::http::types::IncomingResponse) -> Result<Vec<u8>, String> {
    let body = incoming
        .consume()
        .map_err(|()| "response body already taken".to_string())?;
    let mut out = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| "response stream already taken".to_string())?;
        // Read one byte past the cap so an oversized body is detected.
        let mut limited = stream.take(MAX_RESPONSE_BYTES as u64 + 1);
        limited
            .read_to_end(&mut out)
            .map_err(|e| format!("reading response body: {e}"))?;
    }
    if out.len() > MAX_RESPONSE_BYTES {
        return Err(format!(
            "response body is larger than {MAX_RESPONSE_BYTES} bytes"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_url_separates_scheme_authority_and_path() {
        let parts = split_url("https://pbx.example.com:5001/xapi/v1/Users?$top=1").unwrap();
        assert!(parts.https);
        assert_eq!(parts.authority, "pbx.example.com:5001");
        assert_eq!(parts.path_and_query, "/xapi/v1/Users?$top=1");
        let bare = split_url("http://127.0.0.1:8080").unwrap();
        assert!(!bare.https);
        assert_eq!(bare.path_and_query, "/");
    }

    #[test]
    fn split_url_rejects_other_schemes_and_empty_hosts() {
        assert!(split_url("ftp://x/y").unwrap_err().contains("https://"));
        assert!(split_url("https:///path").unwrap_err().contains("no host"));
    }
}
