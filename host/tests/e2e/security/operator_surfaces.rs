//! The operator's surfaces: `/metrics` and the status page's sign-in.

use crate::common::*;
use anyhow::Context;

const TOKEN: &str = "security-admin-token-0123456789";

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Before, anyone could read every tenant's id and call volumes.
#[tokio::test]
async fn metrics_name_no_tenant_to_anonymous_callers() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let http = client()?;
    let anonymous = http.get(format!("{base}/metrics")).send().await?;
    assert_eq!(anonymous.status(), 401);
    let text = anonymous.text().await?;
    assert!(!text.contains("demo"), "{text}");
    assert!(text.contains("CONNECTZERO_METRICS_TOKEN"), "{text}");
    let wrong = http
        .get(format!("{base}/metrics"))
        .bearer_auth("not-the-token-0123456789")
        .send()
        .await?;
    assert_eq!(wrong.status(), 401);
    let admin = http
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(admin.status(), 200);
    assert!(admin.text().await?.contains("tenant=\"demo\""));
    Ok(())
}

/// Sign in: the session cookie from the answer.
async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(http
        .post(format!("{base}/admin/login"))
        .form(&[("token", token)])
        .send()
        .await?)
}

fn session_of(response: &reqwest::Response) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("a session cookie")?
        .to_string())
}

/// Before, the cookie was derived from the token: it never expired on the
/// server and a copy outlived signing out.
#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let http = client()?;
    let signed_in = sign_in(&http, &base, TOKEN).await?;
    assert_eq!(signed_in.status(), 303);
    let cookie = session_of(&signed_in)?;
    assert!(!cookie.contains(TOKEN));
    let page = |cookie: String| {
        http.get(format!("{base}/admin"))
            .header("cookie", cookie)
            .send()
    };
    let overview = page(cookie.clone()).await?;
    assert_eq!(overview.status(), 200);
    let html = overview.text().await?;
    let at = html
        .find("name=\"csrf\" value=\"")
        .context("a form with a CSRF token")?
        + 19;
    let csrf = html[at..].split('"').next().unwrap().to_string();
    let out = http
        .post(format!("{base}/admin/logout"))
        .header("cookie", cookie.clone())
        .form(&[("csrf", csrf)])
        .send()
        .await?;
    assert_eq!(out.status(), 303);
    // A copy of the cookie kept from before signs nobody in any more.
    let after = page(cookie).await?;
    assert_eq!(after.status(), 303, "sent to sign in");
    assert_eq!(after.headers()["location"], "/admin/login");
    Ok(())
}

/// Before, the token could be guessed as fast as the host answered.
#[tokio::test]
async fn wrong_tokens_are_throttled_per_address() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let http = client()?;
    for _ in 0..5 {
        let wrong = sign_in(&http, &base, "guess-guess-guess-guess").await?;
        assert_eq!(wrong.status(), 401);
    }
    // Even the right token waits now: the address is held.
    let held = sign_in(&http, &base, TOKEN).await?;
    assert_eq!(held.status(), 429);
    assert!(held.text().await?.contains("try again in"));
    // Held, it presents no token anywhere: the bearer header included.
    let page = http
        .get(format!("{base}/admin"))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(page.status(), 429);
    Ok(())
}

/// Guessing through the bearer header (`/metrics`, any `/admin` page) is
/// throttled the same way.
#[tokio::test]
async fn wrong_bearer_tokens_are_throttled_too() -> anyhow::Result<()> {
    let (world, _) = seeded_world(defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let http = client()?;
    let metrics = |token: &'static str| {
        http.get(format!("{base}/metrics"))
            .bearer_auth(token)
            .send()
    };
    for _ in 0..5 {
        assert_eq!(metrics("guess-guess-guess-guess").await?.status(), 401);
    }
    assert_eq!(metrics(TOKEN).await?.status(), 429);
    Ok(())
}
