//! HighLevel's calls to the host: the signature rule.

use crate::common::*;
use connectzero::server::HIGHLEVEL_WEBHOOK_KEY;
use connectzero::testbed::ACTION_SECRET;

/// Before, a missing `x-wh-signature` was accepted even where the
/// operator had configured the key HighLevel signs with.
#[tokio::test]
async fn a_configured_key_requires_a_signature() -> anyhow::Result<()> {
    let (mut world, _) = seeded_world(defaults()).await?;
    world.reconfigure(|config| {
        config.actions.signature_public_key = Some(HIGHLEVEL_WEBHOOK_KEY.to_string());
    })?;
    let base = serve_endpoints(&world).await?;
    let http = reqwest::Client::new();
    for path in [
        "/t/demo/triggers/subscription",
        "/t/demo/actions/update-call-record",
    ] {
        let answer = http
            .post(format!("{base}{path}"))
            .header("x-connectzero-secret", ACTION_SECRET)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await?;
        let status = answer.status();
        let text = answer.text().await?;
        assert_eq!(status, 401, "{path}: {text}");
        assert!(text.contains("x-wh-signature"), "{path}: {text}");
    }
    Ok(())
}
