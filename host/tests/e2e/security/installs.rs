//! OAuth install states: anonymous install starts cannot push out an
//! admin's pending link.

use crate::common::*;
use anyhow::Context;

/// Start an install as `client` (its `X-Forwarded-For`); the status and,
/// when issued, the link's state.
async fn start(base: &str, client: &str) -> anyhow::Result<(u16, Option<String>)> {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(format!("{base}/t/demo/oauth/install"))
        .header("x-forwarded-for", client)
        .send()
        .await?;
    let state = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.split("state=").nth(1))
        .map(|s| s.split('&').next().unwrap_or(s).to_string());
    Ok((response.status().as_u16(), state))
}

/// Before, each anonymous start dropped the tenant's oldest state once it
/// had 100: 100 requests made the admin's link useless.
#[tokio::test]
async fn two_hundred_anonymous_starts_leave_the_admins_link_working() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (world, _, _) = world_with_secrets(dir.path(), defaults()).await?;
    let base = serve_endpoints(&world).await?;

    let (status, admin) = start(&base, "198.51.100.7").await?;
    assert_eq!(status, 302);
    let admin = admin.context("a state")?;
    let mut refused = 0;
    for i in 0..200 {
        // One address a hundred times, then a hundred addresses.
        let client = if i < 100 {
            "203.0.113.1".to_string()
        } else {
            format!("203.0.113.{}", i - 98)
        };
        if start(&base, &client).await?.0 == 429 {
            refused += 1;
        }
    }
    assert!(refused > 0, "the tenant's pending quota fills");
    let code = world.crm.authorization_code();
    let callback = reqwest::Client::new()
        .get(format!("{base}/t/demo/oauth/callback"))
        .query(&[("code", code.as_str()), ("state", admin.as_str())])
        .send()
        .await?;
    let status = callback.status();
    let body = callback.text().await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("authorised"), "{body}");
    Ok(())
}
