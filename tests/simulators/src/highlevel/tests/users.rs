//! Users of the location (`get-user-by-location`).

use super::Fixture;

#[tokio::test]
async fn the_location_users_are_listed_and_the_location_is_required_and_checked() {
    let fx = Fixture::new().await;
    let id = fx.sim.add_user("Bob", "Jones", "bob@acme.example");
    let reply = fx
        .get(&format!("/users/?locationId={}", fx.location()))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let users = reply.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["id"], id.as_str());
    assert_eq!(users[0]["email"], "bob@acme.example");
    assert_eq!(users[0]["name"], "Bob Jones");
    assert_eq!(users[0]["firstName"], "Bob");

    assert_eq!(fx.get("/users/").await.status, 400);
    assert_eq!(fx.get("/users/?locationId=someoneElse").await.status, 403);
    fx.sim.violations().expect(&["`locationId` is missing"]);
}

#[tokio::test]
async fn a_contacts_assigned_user_and_a_conversations_last_message_date_are_served() {
    let fx = Fixture::new().await;
    let user = fx.sim.add_user("Bob", "Jones", "bob@acme.example");
    let contact = fx.sim.add_contact(
        crate::highlevel::SimContact::with_phone("Hal", "Ivy", "+14155550104").assigned_to(&user),
    );
    let at = chrono::Utc::now() - chrono::Duration::days(2);
    fx.sim.add_conversation_message_at(&contact, at);
    let found = fx
        .get(&format!(
            "/conversations/search?locationId={}&contactId={contact}",
            fx.location()
        ))
        .await;
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(
        found.body["conversations"][0]["lastMessageDate"],
        at.timestamp_millis().to_string(),
        "a string of epoch milliseconds (NOTES.md §8)"
    );
    assert_eq!(
        fx.sim.contacts()[0].assigned_to.as_deref(),
        Some(user.as_str())
    );
}
