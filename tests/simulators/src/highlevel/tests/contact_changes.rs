//! Notes, tags and contact updates (custom fields).

use reqwest::Method;
use serde_json::{Value, json};

use super::Fixture;
use crate::highlevel::SimContact;

fn seeded(fx: &Fixture) -> String {
    fx.sim
        .add_contact(SimContact::with_phone("Ada", "Lovelace", "5550100001"))
}

#[tokio::test]
async fn notes_are_created_listed_and_validated() {
    let fx = Fixture::new().await;
    let contact_id = seeded(&fx);
    let path = format!("/contacts/{contact_id}/notes");
    let reply = fx
        .post(
            &path,
            &json!({"body": "Call summary", "userId": "user000000000000001"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let note = &reply.body["note"];
    assert_eq!(note["id"].as_str().map(str::len), Some(20));
    assert_eq!(
        (note["body"].as_str(), note["userId"].as_str()),
        (Some("Call summary"), Some("user000000000000001"))
    );
    assert_eq!(note["contactId"], contact_id.as_str());
    assert_eq!(note["pinned"], false);
    assert!(note["dateAdded"].as_str().unwrap().ends_with('Z'));
    assert!(note.get("title").is_none());
    let second =
        json!({"body": "Pinned", "title": "Follow-up", "color": "#FFAA00", "pinned": true});
    assert_eq!(fx.post(&path, &second).await.status, 201);

    let listed = fx.get(&path).await;
    assert_eq!(listed.status, 200);
    let notes = listed.body["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0], *note);
    assert_eq!(
        (notes[1]["title"].as_str(), notes[1]["pinned"].as_bool()),
        (Some("Follow-up"), Some(true))
    );
    let stored = fx.sim.notes(&contact_id);
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].id, note["id"].as_str().unwrap());
    assert_eq!(stored[1].color.as_deref(), Some("#FFAA00"));
    assert!(fx.sim.notes("someoneElse000000000").is_empty());

    let missing = fx.post(&path, &json!({"userId": "x"})).await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.body["error"], "Unprocessable Entity");
    assert!(
        missing.body["message"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(fx.post(&path, &json!({"body": 5})).await.status, 422);
    assert_eq!(
        fx.post(&path, &json!({"body": "x", "pinned": "yes"}))
            .await
            .status,
        422
    );
    let unknown = "/contacts/doesNotExist00000000/notes";
    assert_eq!(fx.post(unknown, &json!({"body": "x"})).await.status, 404);
    assert_eq!(fx.get(unknown).await.status, 404);
    let wrong_version = fx
        .http
        .get(fx.url(&path))
        .bearer_auth(&fx.token)
        .header("Version", "2021-04-15")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_version.status(), 400);
    assert_eq!(fx.sim.notes(&contact_id).len(), 2);
    fx.sim.violations().expect(&[
        "\"body\" is a required property",
        "`/body`",
        "`/pinned`",
        "`Version`",
    ]);
}

#[tokio::test]
async fn tags_are_merged_without_duplicates() {
    let fx = Fixture::new().await;
    let created = fx
        .post(
            "/contacts/",
            &json!({"locationId": fx.location(), "firstName": "Tag", "tags": ["3cx"]}),
        )
        .await;
    let contact_id = created.body["contact"]["id"].as_str().unwrap().to_owned();
    let path = format!("/contacts/{contact_id}/tags");
    let reply = fx
        .post(&path, &json!({"tags": ["missed", "3cx", "missed"]}))
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.body, json!({"tags": ["3cx", "missed"]}));
    let again = fx.post(&path, &json!({"tags": ["vip"]})).await;
    assert_eq!(again.body, json!({"tags": ["3cx", "missed", "vip"]}));
    assert_eq!(fx.sim.contacts()[0].tags, ["3cx", "missed", "vip"]);
    let fetched = fx.get(&format!("/contacts/{contact_id}")).await;
    assert_eq!(
        fetched.body["contact"]["tags"],
        json!(["3cx", "missed", "vip"])
    );

    for bad in [
        json!({}),
        json!({"tags": null}),
        json!({"tags": "x"}),
        json!({"tags": [1]}),
    ] {
        let reply = fx.post(&path, &bad).await;
        assert_eq!(reply.status, 422, "{bad}");
    }
    let unknown = fx
        .post(
            "/contacts/doesNotExist00000000/tags",
            &json!({"tags": ["a"]}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    fx.sim.violations().expect(&[
        "\"tags\" is a required property",
        "`/tags`: null",
        "`/tags`: \"x\"",
        "`/tags/0`",
    ]);
}

async fn put(fx: &Fixture, contact_id: &str, body: &Value) -> super::Reply {
    fx.send_json(Method::PUT, &format!("/contacts/{contact_id}"), body)
        .await
}

#[tokio::test]
async fn update_contact_sets_names_tags_and_custom_fields() {
    let fx = Fixture::new().await;
    let contact_id = seeded(&fx);
    let reply = put(
        &fx,
        &contact_id,
        &json!({
            "firstName": "Augusta",
            "tags": ["3cx", "3cx", "answered"],
            "customFields": [
                {"id": "fieldLastCall0000001", "field_value": "2025-03-01T10:00:00Z"},
                {"id": "contact.call_count", "field_value": 3},
            ],
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["succeded"], true);
    let contact = &reply.body["contact"];
    assert_eq!(contact["firstName"], "Augusta");
    assert_eq!(contact["name"], "Augusta Lovelace");
    assert_eq!(contact["phone"], "+15550100001");
    assert_eq!(contact["tags"], json!(["3cx", "answered"]));
    let expected = json!([
        {"id": "fieldLastCall0000001", "value": "2025-03-01T10:00:00Z"},
        {"id": "contact.call_count", "value": 3},
    ]);
    assert_eq!(contact["customFields"], expected);
    let fetched = fx.get(&format!("/contacts/{contact_id}")).await;
    assert_eq!(fetched.body["contact"]["customFields"], expected);
    assert_ne!(
        fetched.body["contact"]["dateUpdated"],
        fetched.body["contact"]["dateAdded"]
    );

    // Fields change one by one (the document has no way to clear one:
    // `field_value` is never nullable); `tags` replaces all tags.
    let reply = put(
        &fx,
        &contact_id,
        &json!({
            "tags": ["vip"],
            "customFields": [{"id": "contact.call_count", "field_value": 4}],
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let stored = fx.sim.contacts().remove(0);
    assert_eq!(stored.custom_fields.len(), 2, "{:?}", stored.custom_fields);
    assert_eq!(stored.custom_field("contact.call_count"), Some(&json!(4)));
    assert_eq!(stored.tags, ["vip"]);
    assert_eq!(stored.name, "Augusta Lovelace");

    for bad in [
        json!({"phone": "call me"}),
        json!({"email": "nobody"}),
        json!({"customFields": [{"field_value": "x"}]}),
        json!({"customFields": "x"}),
        json!({"firstName": 7}),
    ] {
        assert_eq!(put(&fx, &contact_id, &bad).await.status, 422, "{bad}");
    }
    let unknown = put(&fx, "doesNotExist00000000", &json!({"firstName": "X"})).await;
    assert_eq!(unknown.status, 404);
    fx.sim
        .violations()
        .expect(&["`/customFields`: \"x\"", "`/firstName`: 7"]);
}

#[tokio::test]
async fn create_contact_accepts_custom_fields() {
    let fx = Fixture::new().await;
    let reply = fx
        .post(
            "/contacts/",
            &json!({
                "locationId": fx.location(),
                "firstName": "Custom",
                "customFields": [{"id": "abc", "field_value": ["a", "b"]}],
            }),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(
        reply.body["contact"]["customFields"],
        json!([{"id": "abc", "value": ["a", "b"]}])
    );
    assert_eq!(
        fx.sim.contacts()[0].custom_fields,
        [("abc".to_owned(), json!(["a", "b"]))]
    );
}
