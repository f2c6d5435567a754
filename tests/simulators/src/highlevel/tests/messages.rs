//! Inbound/outbound call messages, reading them back, attachments.

use serde_json::{Value, json};

use super::Fixture;

fn call(fx: &Fixture, conversation_id: &str, contact_id: &str, status: &str) -> Value {
    json!({
        "type": "Call",
        "conversationId": conversation_id,
        "contactId": contact_id,
        "conversationProviderId": fx.provider(),
        "call": {"to": "+15550199999", "from": "+15550100005", "status": status},
        "date": "2024-03-27T18:13:49.000Z",
        "altId": "3cx-call-1",
        "direction": "inbound",
    })
}

#[tokio::test]
async fn inbound_call_is_recorded_and_read_back() {
    let fx = Fixture::new().await;
    let (contact_id, conversation_id) = fx.contact_with_conversation("5550100005").await;
    let reply = fx
        .post(
            "/conversations/messages/inbound",
            &call(&fx, &conversation_id, &contact_id, "completed"),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["success"], true);
    assert_eq!(reply.body["conversationId"], conversation_id.as_str());
    assert_eq!(reply.body["contactId"], contact_id.as_str());
    assert!(reply.body["message"].is_string());
    let message_id = reply.body["messageId"].as_str().unwrap().to_owned();

    let messages = fx.sim.messages();
    assert_eq!(messages.len(), 1);
    let stored = &messages[0];
    assert_eq!(stored.id, message_id);
    assert_eq!(stored.direction, "inbound");
    assert_eq!(stored.message_type, "Call");
    assert_eq!(stored.call_status.as_deref(), Some("completed"));
    assert_eq!(stored.call_from.as_deref(), Some("+15550100005"));
    assert_eq!(stored.alt_id.as_deref(), Some("3cx-call-1"));
    assert_eq!(
        stored.date.map(|d| d.to_rfc3339()),
        Some("2024-03-27T18:13:49+00:00".to_owned())
    );

    let fetched = fx
        .get(&format!("/conversations/messages/{message_id}"))
        .await;
    assert_eq!(fetched.status, 200, "{fetched:?}");
    assert_eq!(fetched.body["type"], 1);
    assert_eq!(fetched.body["messageType"], "TYPE_CALL");
    assert_eq!(fetched.body["direction"], "inbound");
    assert_eq!(fetched.body["meta"]["callStatus"], "completed");
    assert_eq!(fetched.body["contactId"], contact_id.as_str());

    let list = fx
        .get(&format!(
            "/conversations/{conversation_id}/messages?type=TYPE_CALL"
        ))
        .await;
    assert_eq!(list.status, 200);
    // Nested, as the live API answers (NOTES.md §8).
    let page = &list.body["messages"];
    assert_eq!(page["lastMessageId"], message_id.as_str());
    assert_eq!(page["nextPage"], false);
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["altId"], "3cx-call-1");
    assert_eq!(
        fx.sim.conversations()[0].last_message_type.as_deref(),
        Some("TYPE_CALL")
    );
}

#[tokio::test]
async fn inbound_call_with_bad_status_is_422() {
    let fx = Fixture::new().await;
    let (contact_id, conversation_id) = fx.contact_with_conversation("5550100006").await;
    let reply = fx
        .post(
            "/conversations/messages/inbound",
            &call(&fx, &conversation_id, &contact_id, "missed"),
        )
        .await;
    assert_eq!(reply.status, 422, "{reply:?}");
    assert_eq!(reply.body["statusCode"], 422);
    assert_eq!(reply.body["error"], "Unprocessable Entity");
    let messages = reply.body["message"].as_array().unwrap();
    assert!(
        messages[0].as_str().unwrap().contains("`/call/status`"),
        "{messages:?}"
    );

    let missing = fx
        .post(
            "/conversations/messages/inbound",
            &json!({"type": "Call", "call": {}}),
        )
        .await;
    assert_eq!(missing.status, 422);
    assert_eq!(
        missing.body["message"].as_array().unwrap().len(),
        3,
        "{missing:?}"
    );
    assert!(fx.sim.messages().is_empty());
    fx.sim.violations().expect(&[
        "`/call/status`",
        "\"conversationId\" is a required",
        "\"contactId\" is a required",
        "\"conversationProviderId\" is a required",
    ]);
}

#[tokio::test]
async fn user_id_is_refused_with_the_whitelist_error_only_when_switched_on() {
    let fx = Fixture::new().await;
    let (contact_id, conversation_id) = fx.contact_with_conversation("5550100009").await;
    let mut body = call(&fx, &conversation_id, &contact_id, "completed");
    body["userId"] = json!("someUser000000000001");
    fx.sim.set_reject_message_user_id(true);
    let refused = fx.post("/conversations/messages/inbound", &body).await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert_eq!(
        refused.body["message"],
        json!(["property userId should not exist"])
    );
    assert!(fx.sim.messages().is_empty());
    let without = call(&fx, &conversation_id, &contact_id, "completed");
    let accepted = fx.post("/conversations/messages/inbound", &without).await;
    assert_eq!(accepted.status, 200, "{accepted:?}");
    fx.sim.set_reject_message_user_id(false);
    let kept = fx.post("/conversations/messages/inbound", &body).await;
    assert_eq!(kept.status, 200, "{kept:?}");
    assert_eq!(
        fx.sim.messages()[1].user_id.as_deref(),
        Some("someUser000000000001")
    );
}

#[tokio::test]
async fn inbound_call_semantic_checks_are_400() {
    let fx = Fixture::new().await;
    let (contact_id, conversation_id) = fx.contact_with_conversation("5550100007").await;
    let (other_contact, _) = fx.contact_with_conversation("5550100008").await;

    let mut wrong_provider = call(&fx, &conversation_id, &contact_id, "busy");
    wrong_provider["conversationProviderId"] = json!("000000000000000000000000");
    let mismatch = call(&fx, &conversation_id, &other_contact, "busy");
    let unknown = call(&fx, "noSuchConversation00", &contact_id, "busy");
    for body in [wrong_provider, mismatch, unknown] {
        let reply = fx.post("/conversations/messages/inbound", &body).await;
        assert_eq!(reply.status, 400, "{body} -> {reply:?}");
    }
    assert!(fx.sim.messages().is_empty());
}

#[tokio::test]
async fn outbound_call_derives_contact_from_conversation() {
    let fx = Fixture::new().await;
    let (contact_id, conversation_id) = fx.contact_with_conversation("5550100009").await;
    let body = json!({
        "type": "Call",
        "conversationId": conversation_id,
        "conversationProviderId": fx.provider(),
        "call": {"to": "+15550100009", "from": "+15550199999", "status": "no-answer"},
        "altId": "3cx-call-2",
    });
    let reply = fx.post("/conversations/messages/outbound", &body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["contactId"], contact_id.as_str());
    let stored = &fx.sim.messages()[0];
    assert_eq!(stored.contact_id, contact_id);
    assert_eq!(stored.direction, "outbound");
    assert_eq!(stored.call_status.as_deref(), Some("no-answer"));
    assert_eq!(stored.conversation_provider_id, fx.provider());

    let mut sms = body.clone();
    sms["type"] = json!("SMS");
    assert_eq!(
        fx.post("/conversations/messages/outbound", &sms)
            .await
            .status,
        422
    );
    fx.sim.violations().expect(&["`/type`: \"SMS\""]);
}

#[tokio::test]
async fn attachments_are_replaced_and_capped_at_five() {
    let fx = Fixture::new().await;
    let (contact_id, conversation_id) = fx.contact_with_conversation("5550100010").await;
    let reply = fx
        .post(
            "/conversations/messages/inbound",
            &call(&fx, &conversation_id, &contact_id, "voicemail"),
        )
        .await;
    let message_id = reply.body["messageId"].as_str().unwrap().to_owned();
    let path = format!("/conversations/messages/{message_id}/attachments");

    let urls = json!({"attachments": ["https://files.example/rec-1.mp3"]});
    let reply = fx.send_json(reqwest::Method::PUT, &path, &urls).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(
        fx.sim.messages()[0].attachments,
        ["https://files.example/rec-1.mp3"]
    );

    let six: Vec<String> = (0..6)
        .map(|i| format!("https://files.example/{i}.mp3"))
        .collect();
    let reply = fx
        .send_json(reqwest::Method::PUT, &path, &json!({"attachments": six}))
        .await;
    assert_eq!(reply.status, 400);
    let missing = fx
        .send_json(
            reqwest::Method::PUT,
            "/conversations/messages/noSuchMessage0000000/attachments",
            &urls,
        )
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(fx.sim.messages()[0].attachments.len(), 1);
}
