//! Conversation endpoints.

use serde_json::json;

use super::Fixture;
use crate::highlevel::SimContact;

#[tokio::test]
async fn create_conversation_is_201_and_a_second_one_is_400() {
    let fx = Fixture::new().await;
    let contact_id = fx.sim.add_contact(
        SimContact::with_phone("Ada", "Lovelace", "5550100001").email("ada@example.com"),
    );
    let body = json!({"locationId": fx.location(), "contactId": contact_id});
    let reply = fx.post("/conversations/", &body).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.body["success"], true);
    let conversation = &reply.body["conversation"];
    for field in [
        "id",
        "dateUpdated",
        "dateAdded",
        "deleted",
        "contactId",
        "locationId",
        "lastMessageDate",
    ] {
        assert!(
            !conversation[field].is_null(),
            "missing {field}: {conversation}"
        );
    }
    assert_eq!(conversation["contactId"], contact_id.as_str());
    let conversation_id = conversation["id"].as_str().unwrap().to_owned();

    let second = fx.post("/conversations/", &body).await;
    assert_eq!(second.status, 400);
    assert_eq!(second.body["statusCode"], 400);
    assert_eq!(fx.sim.conversations().len(), 1);

    let unknown = fx
        .post(
            "/conversations/",
            &json!({"locationId": fx.location(), "contactId": "noSuchContact0000000"}),
        )
        .await;
    assert_eq!(unknown.status, 400);

    let path = format!(
        "/conversations/search?locationId={}&contactId={contact_id}",
        fx.location()
    );
    let search = fx.get(&path).await;
    assert_eq!(search.status, 200, "{search:?}");
    assert_eq!(search.body["total"], 1);
    let found = &search.body["conversations"][0];
    assert_eq!(found["id"], conversation_id.as_str());
    assert_eq!(found["type"], "TYPE_PHONE");
    assert_eq!(found["phone"], "+15550100001");
    assert_eq!(found["email"], "ada@example.com");
    assert_eq!(found["fullName"], "Ada Lovelace");
    for field in [
        "lastMessageBody",
        "lastMessageType",
        "unreadCount",
        "contactName",
    ] {
        assert!(found.get(field).is_some(), "missing {field}");
    }

    let other = fx.sim.add_contact(SimContact::new("No", "Conversation"));
    let path = format!(
        "/conversations/search?locationId={}&contactId={other}",
        fx.location()
    );
    let none = fx.get(&path).await;
    assert_eq!(none.body, json!({"conversations": [], "total": 0}));

    let by_id = fx.get(&format!("/conversations/{conversation_id}")).await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.body["id"], conversation_id.as_str());
    assert_eq!(by_id.body["type"], 1);
    assert_eq!(by_id.body["deleted"], false);
    assert_eq!(
        fx.get("/conversations/noSuchConversation00").await.status,
        404
    );
}

#[tokio::test]
async fn conversation_for_another_location_is_403() {
    let fx = Fixture::new().await;
    let contact_id = fx.sim.add_contact(SimContact::new("Ada", "Lovelace"));
    let reply = fx
        .post(
            "/conversations/",
            &json!({"locationId": "someOtherLocation001", "contactId": contact_id}),
        )
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.body,
        json!({"statusCode": 403, "message": "The token does not have access to this location"})
    );
}
