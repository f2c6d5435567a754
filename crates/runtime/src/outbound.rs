//! Per-component outbound HTTP policy for `wasi:http`.
//!
//! Each store carries the list of `host:port` authorities its component may
//! reach (as Spin's `allowed_outbound_hosts`). Anything else is refused with
//! `HTTP-request-denied` before a connection is opened. Plain `http://` is
//! only allowed to loopback addresses (the simulators); real 3CX and CRM
//! traffic must use HTTPS.
//!
//! Requests to the tenant's CRM also pass its location's rate limiter
//! ([`crate::ratelimit`]) here, the one place the host sees a component's
//! requests: they wait for their slot, a 429 from HighLevel holds back
//! every user of the location, and a request the limiter refuses is
//! answered 429 without leaving the host.
//!
//! Requests go out over kept-alive connections shared by the whole
//! process ([`pool`]).
//!
//! Nothing leaves before what led to it is on disk: a component's writes
//! do not wait for the disk at their commit (`Storage::deferred`), so each
//! request first waits for [`on_disk_before_leaving`], one `fsync` shared
//! by every write made before it.

pub use crate::authority::authority_of_url;
use crate::authority::{is_loopback, normalise_authority};
use crate::ratelimit::{Admission, LocationLimiter};
use crate::storage::Storage;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The authorities one component may call.
#[derive(Clone, Debug, Default)]
pub struct OutboundPolicy {
    allowed: Vec<String>,
    /// The CRM's authority and its location's limiter.
    crm: Option<(String, Arc<LocationLimiter>)>,
    /// The invocation's time allowance: each request is an upstream wait
    /// on it from send to the end of its answer (`crate::allowance`).
    allowance: Option<crate::allowance::Allowance>,
    /// The database the component writes to: its writes are on disk
    /// before a request leaves.
    writes: Option<Storage>,
}

/// The bounds on every request's waits, whatever the component asks for.
pub use connectzero_outbound_pool::{
    MAX_BETWEEN_BYTES_TIME, MAX_CONNECT_TIME, MAX_FIRST_BYTE_TIME,
};

impl OutboundPolicy {
    /// Allow exactly these base URLs' authorities (`https://pbx.example.com`
    /// → `pbx.example.com:443`).
    pub fn allow_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            allowed: urls.into_iter().filter_map(authority_of_url).collect(),
            ..Self::default()
        }
    }

    /// Requests to `crm_base_url` pass `limiter` (none: no limit).
    pub fn with_crm_limiter(
        mut self,
        crm_base_url: &str,
        limiter: Option<Arc<LocationLimiter>>,
    ) -> Self {
        self.crm = limiter.and_then(|limiter| Some((authority_of_url(crm_base_url)?, limiter)));
        self
    }

    /// The same policy, its requests credited to `allowance`.
    pub fn crediting(mut self, allowance: crate::allowance::Allowance) -> Self {
        self.allowance = Some(allowance);
        self
    }

    /// The same policy, each request leaving only once every write made
    /// to `storage` before it is on disk.
    pub fn after_writes_to(mut self, storage: Storage) -> Self {
        self.writes = Some(storage);
        self
    }

    /// Nothing may be reached.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Whether a request to `authority` over `https` (or not) may go out.
    pub fn permits(&self, authority: &str, https: bool) -> bool {
        let Some(normalised) = normalise_authority(authority, https) else {
            return false;
        };
        if !https && !is_loopback(&normalised) {
            return false;
        }
        self.allowed.contains(&normalised)
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let https = request.uri().scheme_str() == Some("https");
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        if !self.permits(&authority, https) {
            tracing::warn!(%authority, https, "outbound request refused: not in this component's allow-list");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        drop(fut);
        // Waiting for the limiter and the answer's head is not the
        // component's time; nor is waiting for its body's next frame
        // (`WaitedBody`).
        let allowance = self.allowance.clone();
        let wait = allowance.as_ref().map(|a| a.credited());
        let options = bounded_options(options);
        let counted_as = normalise_authority(&authority, https).unwrap_or_default();
        let limiter = self
            .crm
            .as_ref()
            .filter(|(crm, _)| *crm == counted_as)
            .filter(|_| crate::ratelimit::counts_against_limit(request.uri().path()))
            .map(|(_, limiter)| limiter.clone());
        let writes = self.writes.clone();
        Box::new(async move {
            use http_body_util::BodyExt;
            if let Some(limiter) = &limiter {
                match limiter.acquire().await {
                    Admission::Go(_) => {}
                    Admission::Refused(retry) => return Ok(limited_response(retry)),
                }
            }
            if let Some(storage) = &writes
                && let Err(error) = on_disk_before_leaving(storage).await
            {
                // What the request follows from may not survive a power
                // cut: it must not leave (the component retries later).
                tracing::error!(%error, "the database could not be synced; outbound request held back");
                return Err(Error::InternalError(Some(
                    "the host's database could not be synced to disk".into(),
                )));
            }
            let sent = connectzero_outbound_pool::send(request, options).await;
            let status = sent.as_ref().ok().map(|r| r.status().as_u16());
            crate::telemetry::sink().http_answer(&counted_as, status);
            if let Err(error) = &sent {
                tracing::debug!(authority = %counted_as, %error, "outbound request got no answer");
            }
            let response = sent?;
            if let Some(limiter) = &limiter
                && response.status().as_u16() == 429
            {
                let retry = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok());
                limiter.note_429(crate::ratelimit::parse_retry_after(retry));
            }
            Ok((
                response.map(|body| {
                    drop(wait);
                    WaitedBody {
                        body,
                        allowance,
                        wait: None,
                    }
                    .boxed_unsync()
                }),
                // The pool drives its connections itself: nothing for the
                // request's constructor to wait for.
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// Wait until every commit made to `storage` so far is on disk: at once
/// when nothing is unsynced, else one `fsync` on tokio's blocking pool,
/// shared by every write made before it (`connectzero_storage`'s
/// `durability`). Called before anything a component's writes lead to
/// leaves the host: an outbound request, an answer to an inbound one.
pub async fn on_disk_before_leaving(storage: &Storage) -> std::io::Result<()> {
    if storage.nothing_to_sync() {
        return Ok(());
    }
    let storage = storage.clone();
    tokio::task::spawn_blocking(move || storage.sync())
        .await
        .map_err(std::io::Error::other)?
}

/// The component's request options, each timeout no longer than the
/// host's bound (and set when the component left it unset).
fn bounded_options(options: Option<RequestOptions>) -> RequestOptions {
    let options = options.unwrap_or_default();
    let bound = |asked: Option<Duration>, max: Duration| Some(asked.map_or(max, |a| a.min(max)));
    RequestOptions {
        connect_timeout: bound(options.connect_timeout, MAX_CONNECT_TIME),
        first_byte_timeout: bound(options.first_byte_timeout, MAX_FIRST_BYTE_TIME),
        between_bytes_timeout: bound(options.between_bytes_timeout, MAX_BETWEEN_BYTES_TIME),
    }
}

/// An answer's body, credited while the host waits for its next frame
/// from upstream (from a poll that found none ready to the next poll),
/// not while it sits read or unread: a component keeping an answer open
/// gets no credit for sleeping meanwhile.
struct WaitedBody<B> {
    body: B,
    allowance: Option<crate::allowance::Allowance>,
    wait: Option<crate::allowance::Credited>,
}

impl<B: http_body::Body + Unpin> http_body::Body for WaitedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if polled.is_pending() {
            if self.wait.is_none() {
                self.wait = self.allowance.as_ref().map(|a| a.credited());
            }
        } else {
            self.wait = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

type Answer = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// The 429 the limiter answers for a request it holds back, shaped like
/// HighLevel's (NOTES §6.1), so components handle it as they handle
/// HighLevel's: release the call and wait `Retry-After`.
fn limited_response(retry: std::time::Duration) -> Answer {
    use http_body_util::BodyExt;
    // Whole seconds, rounded up: waiting less would only be refused again.
    let secs = retry.as_millis().div_ceil(1000).max(1);
    let body = serde_json::json!({
        "statusCode": 429,
        "message": "Too Many Requests (held back by ConnectZero: the location's rate limit is spent)",
    })
    .to_string();
    let body = http_body_util::Full::from(body)
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync();
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    response
        .headers_mut()
        .insert("retry-after", http::HeaderValue::from(secs as u64));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    (
        response,
        Box::new(async { Ok(()) }) as Box<dyn Future<Output = Result<(), Error>> + Send>,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_authorities_are_permitted() {
        let policy =
            OutboundPolicy::allow_urls(["https://pbx.example.com", "http://127.0.0.1:8080/x"]);
        assert!(policy.permits("pbx.example.com", true));
        assert!(policy.permits("PBX.example.com:443", true));
        assert!(policy.permits("127.0.0.1:8080", false));
        assert!(!policy.permits("evil.example.com", true));
        assert!(!policy.permits("127.0.0.1:9090", false));
        assert!(!OutboundPolicy::deny_all().permits("pbx.example.com", true));
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        let policy = OutboundPolicy::allow_urls([
            "http://pbx.example.com",
            "http://[::1]:81",
            "http://localhost:82",
        ]);
        assert!(!policy.permits("pbx.example.com", false));
        assert!(policy.permits("[::1]:81", false));
        assert!(policy.permits("localhost:82", false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_leaves_only_once_the_writes_before_it_are_on_disk() {
        use http_body_util::BodyExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("cz.db")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // The CRM's side: was the write on disk when the request arrived?
        let seen = storage.clone();
        let crm = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended before its head");
                head.extend_from_slice(&buf[..n]);
            }
            let synced = seen.nothing_to_sync();
            socket
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            synced
        });
        // A component's send marker, written just before its request.
        let deferred = storage.deferred();
        deferred.kv_set("t", "post/sending/1", b"x").unwrap();
        assert!(!storage.nothing_to_sync());
        let mut policy = OutboundPolicy::allow_urls([url.as_str()]).after_writes_to(deferred);
        let body = http_body_util::Empty::new()
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync();
        let request = http::Request::post(format!("{url}/conversations/messages"))
            .body(body)
            .unwrap();
        let sent = policy.send_request(request, None, Box::new(async { Ok(()) }));
        let (answer, _) = Box::into_pin(sent).await.unwrap();
        assert_eq!(answer.status(), 204);
        assert!(
            crm.await.unwrap(),
            "the send marker was on disk before the request left"
        );
    }
}
