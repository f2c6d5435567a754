//! Secrets never follow a redirect: every client that carries a client
//! secret or a token is `connectzero::upstream::client`, which reads a 3xx
//! as the answer it is.

use crate::common::*;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use connectzero::bindings::types::{Service, StageError};
use connectzero::credentials::Credentials;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A loopback server answering every request with `answer`; counts them.
async fn listener(
    answer: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let answer = answer.clone();
        async move { answer() }
    });
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    tokio::spawn(async move { axum::serve(socket, app).await });
    Ok((format!("http://{addr}"), seen))
}

/// A token endpoint answering 307 to another listener: before, the
/// client followed it and posted the 3CX client secret (and the HighLevel
/// refresh token) there.
#[tokio::test]
async fn a_token_endpoint_redirecting_elsewhere_sends_no_secret_there() -> anyhow::Result<()> {
    let (elsewhere, stolen) = listener(|| "{}".into_response()).await?;
    let target = format!("{elsewhere}/collect");
    let (redirector, asked) = listener(move || {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, target.clone())],
        )
            .into_response()
    })
    .await?;
    let (world, _) = seeded_world(defaults()).await?;
    let mut config = world.config().clone();
    config.pbx.base_url = redirector.clone();
    config.crm.base_url = redirector;
    config.crm.access_token = None;
    let http = connectzero::upstream::client(Duration::from_secs(5))?;
    let credentials = Credentials::new(http, &config);
    for service in [Service::Pbx, Service::Crm] {
        let error = credentials.access_token(service).await.unwrap_err();
        let text = format!("{error:?}");
        assert!(
            matches!(&error, StageError::Upstream(e) if e.status == 307),
            "the 307 is the answer: {text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }
    assert_eq!(asked.load(Ordering::SeqCst), 2, "both token requests asked");
    assert_eq!(stolen.load(Ordering::SeqCst), 0, "nothing followed the 307");
    Ok(())
}

/// A token endpoint answering an endless body: the host reads at most
/// `MAX_ANSWER_BYTES` and refuses the answer, rather than buffer it until
/// memory runs out or the request times out.
#[tokio::test]
async fn an_endless_token_answer_is_cut_and_refused() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A raw server: a 200 whose body never ends (no length, no chunks: it
    // lasts until the connection closes), written until the client hangs
    // up.
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endless = format!("http://{}", socket.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = socket.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'a'; 64 * 1024];
                while stream.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    let (world, _) = seeded_world(defaults()).await?;
    let mut config = world.config().clone();
    config.pbx.base_url = endless;
    // Without the cap the read would buffer until the timeout (or memory)
    // ran out, and fail as a timeout, not as unreadable data.
    let http = connectzero::upstream::client(Duration::from_secs(20))?;
    let error = Credentials::new(http, &config)
        .access_token(Service::Pbx)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StageError::InvalidData(m) if m.contains("not a token response")),
        "{error:?}"
    );
    Ok(())
}
