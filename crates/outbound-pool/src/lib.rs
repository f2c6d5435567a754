//! Sending components' `wasi:http` requests over kept-alive connections.
//!
//! wasmtime's `default_send_request` opens a new TCP connection for every
//! request, and for HTTPS builds a TLS configuration from the whole root
//! store and runs a full handshake each time. A tick makes a handful of
//! requests to the same 3CX and HighLevel hosts, every second, for every
//! tenant: connecting again each time costs more than the request (on
//! loopback about half of a request's CPU; to HighLevel a TLS handshake
//! per request). One client per process keeps idle connections per host
//! (scheme, host and port) and reuses them; requests of different tenants
//! to the same host may share a connection, as they would through any
//! HTTP client — each carries its own credentials.
//!
//! hyper resends a request on a reused connection only when the
//! connection closed before any of it was written, so a POST is never
//! sent twice by this layer.

use http_body_util::BodyExt;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Longest wait for a connection, whatever the component asks for.
pub const MAX_CONNECT_TIME: Duration = Duration::from_secs(10);

/// Longest wait for an answer's first byte, whatever the component asks for.
pub const MAX_FIRST_BYTE_TIME: Duration = Duration::from_secs(60);

/// Longest pause between an answer's frames, whatever the component asks
/// for (wasmtime's own default is ten minutes).
pub const MAX_BETWEEN_BYTES_TIME: Duration = Duration::from_secs(30);

/// How long an idle connection is kept for the next request. Below the
/// usual server keep-alive (nginx and Cloudflare: 60 s and more), so a
/// connection the server already closed is rarely picked.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle connections kept per host: ticks running at once each hold one
/// while their request is out, so enough for the pipeline's concurrent
/// ticks; more would only be sockets held open.
const MAX_IDLE_PER_HOST: usize = 32;

type Pooled = Client<HttpsConnector<HttpConnector>, WasiBody>;

/// The process's client, built on first use.
fn client() -> &'static Pooled {
    static CLIENT: OnceLock<Pooled> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut http = HttpConnector::new();
        // The scheme is the TLS layer's business: it wraps https, passes
        // http (only ever to loopback: `OutboundPolicy::permits`).
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(MAX_CONNECT_TIME));
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("ring offers rustls' default protocol versions")
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https)
    })
}

/// Send `request` on a pooled connection, within `options`' timeouts
/// (each at most this crate's `MAX_*`: the runtime bounds them first). The answer's
/// body fails when no frame comes for `between_bytes_timeout`.
pub async fn send(
    request: http::Request<WasiBody>,
    options: RequestOptions,
) -> Result<http::Response<WasiBody>, Error> {
    let connect = options.connect_timeout.unwrap_or(MAX_CONNECT_TIME);
    let first_byte = options.first_byte_timeout.unwrap_or(MAX_FIRST_BYTE_TIME);
    let between = options
        .between_bytes_timeout
        .unwrap_or(MAX_BETWEEN_BYTES_TIME)
        .max(Duration::from_millis(1));
    // The connection (when a new one is needed) and the answer's head share
    // one deadline: the pool does not say which of the two it is waiting for.
    let response = tokio::time::timeout(connect + first_byte, client().request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(error_of)?;
    Ok(response.map(|incoming| {
        FrameDeadline {
            incoming,
            between,
            deadline: Box::pin(tokio::time::sleep(between)),
        }
        .boxed_unsync()
    }))
}

/// What the pool's error means to the component: the most specific cause
/// in its chain (a refused or timed-out connection, a name that does not
/// resolve, a certificate rustls refused), logged whole at debug level.
fn error_of(error: hyper_util::client::legacy::Error) -> Error {
    let mut chain = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    tracing::debug!(error = %chain.join(": "), "outbound request failed");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(tls) = rustls_error(cause) {
            return match tls {
                rustls::Error::InvalidCertificate(_) => Error::TlsCertificateError,
                rustls::Error::AlertReceived(_) => Error::TlsAlertReceived {
                    alert_id: None,
                    alert_message: Some(tls.to_string()),
                },
                _ => Error::TlsProtocolError,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Error::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return Error::ConnectionTimeout,
                _ => {}
            }
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() || hyper.is_canceled() {
                return Error::ConnectionTerminated;
            }
            return Error::HttpProtocolError;
        }
        source = cause.source();
    }
    if error.is_connect() {
        // hyper-util's resolver says "dns error" and nothing typed.
        if chain.iter().any(|c| c.contains("dns error")) {
            return Error::DnsError {
                rcode: None,
                info_code: None,
            };
        }
        return Error::Connect(std::io::Error::other(chain.join(": ")));
    }
    Error::InternalError(Some(chain.join(": ")))
}

/// The rustls error inside `cause`: tokio-rustls wraps it in an io::Error
/// and hyper-rustls that in another, and an io::Error's `source` skips
/// what it wraps, so each layer is opened here.
fn rustls_error<'a>(mut cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    loop {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = cause.downcast_ref::<std::io::Error>()?.get_ref()?;
        cause = inner;
    }
}

/// An answer's body that fails when its next frame takes longer than
/// `between`.
struct FrameDeadline {
    incoming: hyper::body::Incoming,
    between: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for FrameDeadline {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.between;
                self.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Error::from(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A loopback server answering every request on a connection with
    /// `body`, counting the connections it accepted.
    async fn server(body: &'static str) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_request| async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(body.as_bytes())),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("http://{address}/"), accepted)
    }

    fn get(url: &str) -> http::Request<WasiBody> {
        let body = http_body_util::Empty::new()
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync();
        http::Request::get(url).body(body).unwrap()
    }

    #[tokio::test]
    async fn requests_in_turn_reuse_one_connection() {
        let (url, accepted) = server("pong").await;
        for _ in 0..5 {
            let response = send(get(&url), RequestOptions::default()).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"pong");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "five requests one after another need one connection"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_says_so() {
        // Bound and dropped: nothing listens there any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = send(
            get(&format!("http://127.0.0.1:{port}/")),
            RequestOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, Error::ConnectionRefused), "{error:?}");
    }

    #[tokio::test]
    async fn a_failed_tls_handshake_is_a_tls_error() {
        // A plain-HTTP server spoken to over TLS answers the handshake
        // with text rustls cannot read.
        let (url, _) = server("x").await;
        let https = url.replacen("http://", "https://", 1);
        let error = send(get(&https), RequestOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                Error::TlsProtocolError | Error::TlsCertificateError | Error::ConnectionTerminated
            ),
            "a failed handshake is a TLS failure, not a refused connection: {error:?}"
        );
    }
}
