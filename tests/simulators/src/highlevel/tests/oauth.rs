//! `POST /oauth/token` and bearer-token enforcement.

use super::{Fixture, Reply};

fn refresh_form<'a>(fx: &'a Fixture, refresh_token: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", fx.sim.config().client_id.as_str()),
        ("client_secret", fx.sim.config().client_secret.as_str()),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("user_type", "Location"),
    ]
}

async fn contact_lookup(fx: &Fixture, token: &str) -> Reply {
    let path = format!("/contacts/search/duplicate?locationId={}", fx.location());
    let response = fx
        .http
        .get(fx.url(&path))
        .bearer_auth(token)
        .header("Version", "2021-07-28")
        .send()
        .await
        .expect("send");
    Reply::read(response).await
}

#[tokio::test]
async fn authorization_code_grant_returns_location_tokens() {
    let fx = Fixture::new().await;
    let code = fx.sim.authorization_code();
    let config = fx.sim.config().clone();
    let form = [
        ("client_id", config.client_id.as_str()),
        ("client_secret", config.client_secret.as_str()),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("user_type", "Location"),
        ("redirect_uri", "https://app.example/callback"),
    ];
    let reply = fx.token_request(&form).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = &reply.body;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86_399);
    assert_eq!(body["userType"], "Location");
    assert_eq!(body["locationId"], config.location_id.as_str());
    assert_eq!(body["companyId"], config.company_id.as_str());
    assert_eq!(body["userId"], fx.sim.user_id().as_str());
    assert!(
        body["scope"]
            .as_str()
            .unwrap()
            .contains("conversations/message.write")
    );
    assert!(reply.header("x-trace-id").is_some());
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(contact_lookup(&fx, access).await.status, 200);

    // Codes are single-use.
    let again = fx.token_request(&form).await;
    assert_eq!(again.status, 400);
    assert_eq!(
        again.body["message"],
        "Invalid grant: authorization code is invalid"
    );
}

/// A marketplace install's code came to the listing's redirect URL: it is
/// redeemed only with that URL as `redirect_uri`, and a mismatch leaves it
/// unused.
#[tokio::test]
async fn a_code_is_redeemed_only_with_the_redirect_uri_it_was_handed_to() {
    let fx = Fixture::new().await;
    let listing = "https://app.example/oauth/callback";
    let code = fx
        .sim
        .authorization_code_at("otherLocation0000001", listing);
    let config = fx.sim.config().clone();
    let form = |redirect_uri: &'static str| {
        vec![
            ("client_id", config.client_id.clone()),
            ("client_secret", config.client_secret.clone()),
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("user_type", "Location".into()),
            ("redirect_uri", redirect_uri.into()),
        ]
    };
    let send = |form: Vec<(&'static str, String)>| {
        let fx = &fx;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            fx.token_request(&form).await
        }
    };
    let wrong = send(form("https://app.example/t/north/oauth/callback")).await;
    assert_eq!(wrong.status, 400, "{wrong:?}");
    assert_eq!(
        wrong.body["message"],
        "Invalid request: `redirect_uri` is invalid"
    );
    let reply = send(form("https://app.example/oauth/callback")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["locationId"], "otherLocation0000001");
    let refresh = reply.body["refresh_token"].as_str().unwrap();
    assert_eq!(
        fx.sim.refresh_token_location(refresh).as_deref(),
        Some("otherLocation0000001")
    );
    assert!(
        fx.sim
            .valid_tokens()
            .contains(&reply.body["access_token"].as_str().unwrap().to_string())
    );
}

#[tokio::test]
async fn refresh_rotates_and_old_refresh_token_is_rejected() {
    let fx = Fixture::new().await;
    let first = fx.sim.install();
    let reply = fx
        .token_request(&refresh_form(&fx, &first.refresh_token))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let new_refresh = reply.body["refresh_token"].as_str().unwrap().to_owned();
    let new_access = reply.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, first.refresh_token);
    assert_ne!(new_access, first.access_token);

    let reused = fx
        .token_request(&refresh_form(&fx, &first.refresh_token))
        .await;
    assert_eq!(reused.status, 400);
    assert_eq!(
        reused.body,
        serde_json::json!({"statusCode": 400, "message": "Invalid grant: refresh token is invalid"})
    );
    // The old access token stays valid until it expires; the new pair works.
    assert_eq!(contact_lookup(&fx, &first.access_token).await.status, 200);
    assert_eq!(contact_lookup(&fx, &new_access).await.status, 200);
    assert_eq!(
        fx.token_request(&refresh_form(&fx, &new_refresh))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn expired_access_tokens_get_401_until_refreshed() {
    let fx = Fixture::new().await;
    let pair = fx.sim.install();
    fx.sim.expire_access_tokens();
    let reply = contact_lookup(&fx, &pair.access_token).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.body,
        serde_json::json!({
            "statusCode": 401,
            "message": "Invalid token: access token is invalid",
            "error": "Unauthorized",
        })
    );
    let refreshed = fx
        .token_request(&refresh_form(&fx, &pair.refresh_token))
        .await;
    let access = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(contact_lookup(&fx, access).await.status, 200);
}

#[tokio::test]
async fn revoked_grant_rejects_access_and_refresh_tokens() {
    let fx = Fixture::new().await;
    let pair = fx.sim.install();
    fx.sim.revoke_grant();
    assert_eq!(contact_lookup(&fx, &pair.access_token).await.status, 401);
    let reply = fx
        .token_request(&refresh_form(&fx, &pair.refresh_token))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body["message"],
        "Invalid grant: refresh token is invalid"
    );
    // A reinstall starts a new grant.
    let fresh = fx.sim.install();
    assert_eq!(contact_lookup(&fx, &fresh.access_token).await.status, 200);
}

#[tokio::test]
async fn bad_client_and_malformed_token_requests() {
    let fx = Fixture::new().await;
    let pair = fx.sim.install();
    let mut form = refresh_form(&fx, &pair.refresh_token);
    form[1].1 = "wrong-secret";
    let reply = fx.token_request(&form).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["error"], "Unauthorized");

    let reply = fx.token_request(&[("grant_type", "password")]).await;
    assert_eq!(reply.status, 422);
    let messages = reply.body["message"]
        .as_array()
        .expect("422 message is an array");
    assert_eq!(messages.len(), 3, "{messages:?}");

    // The wrong secret did not burn the refresh token.
    assert_eq!(
        fx.token_request(&refresh_form(&fx, &pair.refresh_token))
            .await
            .status,
        200
    );
    fx.sim.violations().expect(&[
        "\"client_id\" is a required",
        "\"client_secret\" is a required",
        "`/grant_type`",
    ]);
}

#[tokio::test]
async fn missing_or_malformed_bearer_is_401() {
    let fx = Fixture::new().await;
    let path = format!("/contacts/search/duplicate?locationId={}", fx.location());
    let no_auth = fx
        .http
        .get(fx.url(&path))
        .header("Version", "2021-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), 401);
    assert_eq!(contact_lookup(&fx, "not-a-token").await.status, 401);
}

#[tokio::test]
async fn token_responses_report_the_granted_scopes() {
    let fx = Fixture::new().await;
    let pair = fx.sim.install();
    let reply = fx
        .token_request(&refresh_form(&fx, &pair.refresh_token))
        .await;
    let scope = reply.body["scope"].as_str().unwrap().to_owned();
    assert!(
        scope.split(' ').any(|s| s == "workflows.readonly"),
        "{scope}"
    );
    fx.sim.set_granted_scopes("contacts.readonly");
    let refresh = reply.body["refresh_token"].as_str().unwrap();
    let reply = fx.token_request(&refresh_form(&fx, refresh)).await;
    assert_eq!(reply.body["scope"], "contacts.readonly");
}
