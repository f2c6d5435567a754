//! Contact endpoints and the `Version` header.

use chrono::{TimeDelta, Utc};
use serde_json::json;

use super::Fixture;
use crate::highlevel::SimContact;

#[tokio::test]
async fn missing_or_wrong_version_header_is_400() {
    let fx = Fixture::new().await;
    let path = format!("/contacts/search/duplicate?locationId={}", fx.location());
    let missing = fx
        .http
        .get(fx.url(&path))
        .bearer_auth(&fx.token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["statusCode"], 400);
    assert!(
        body["message"].as_str().unwrap().contains("`Version`"),
        "{body}"
    );
    // The conversations version is wrong for contacts, and vice versa.
    let wrong = fx
        .http
        .get(fx.url(&path))
        .bearer_auth(&fx.token)
        .header("Version", "2021-04-15")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    let path = format!("/conversations/search?locationId={}", fx.location());
    let wrong = fx
        .http
        .get(fx.url(&path))
        .bearer_auth(&fx.token)
        .header("Version", "2021-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    assert_eq!(fx.get(&path).await.status, 200);
    fx.sim
        .violations()
        .expect(&["`Version` is missing", "`Version`", "`Version`"]);
}

#[tokio::test]
async fn duplicate_search_normalises_number_and_returns_oldest() {
    let fx = Fixture::new().await;
    let newer = fx
        .sim
        .add_contact(SimContact::with_phone("Newer", "Twin", "(555) 010-0042"));
    let older = fx.sim.add_contact_at(
        SimContact::with_phone("Older", "Twin", "555.010.0042").email("older@example.com"),
        Utc::now() - TimeDelta::days(30),
    );
    assert_ne!(newer, older);
    assert!(
        fx.sim
            .contacts()
            .iter()
            .all(|c| c.phone.as_deref() == Some("+15550100042"))
    );

    for number in ["%2B15550100042", "5550100042", "%2B1%20555-010-0042"] {
        let path = format!(
            "/contacts/search/duplicate?locationId={}&number={number}",
            fx.location()
        );
        let reply = fx.get(&path).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body["contact"]["id"], older.as_str(), "{number}");
        assert_eq!(reply.body["contact"]["phone"], "+15550100042");
        assert_eq!(reply.body["contact"]["locationId"], fx.location().as_str());
        assert!(reply.body["traceId"].is_string());
    }

    let path = format!(
        "/contacts/search/duplicate?locationId={}&number=%2B15550109999",
        fx.location()
    );
    let reply = fx.get(&path).await;
    assert_eq!(reply.body["contact"], serde_json::Value::Null);

    let path = format!(
        "/contacts/search/duplicate?locationId={}&email=OLDER%40example.com",
        fx.location()
    );
    assert_eq!(fx.get(&path).await.body["contact"]["id"], older.as_str());

    // A token may only look into its own location.
    let reply = fx
        .get("/contacts/search/duplicate?locationId=someOtherLocation001&number=%2B15550100042")
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body["statusCode"], 403);
}

#[tokio::test]
async fn advanced_search_filters_by_phone_in_date_order() {
    let fx = Fixture::new().await;
    let first = fx
        .sim
        .add_contact(SimContact::with_phone("A", "One", "+1 555 010 0077"));
    let second = fx
        .sim
        .add_contact(SimContact::with_phone("B", "Two", "5550100077"));
    fx.sim
        .add_contact(SimContact::with_phone("C", "Other", "5550100078"));
    let reply = fx
        .post(
            "/contacts/search",
            &json!({
                "locationId": fx.location(),
                "page": 1,
                "pageLimit": 100,
                "filters": [{"field": "phone", "operator": "eq", "value": "(555) 010-0077"}],
            }),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["total"], 2);
    let ids: Vec<&str> = reply.body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
    assert!(reply.body["traceId"].is_string());

    let page_two = fx
        .post(
            "/contacts/search",
            &json!({"locationId": fx.location(), "page": 2, "pageLimit": 2, "filters": []}),
        )
        .await;
    assert_eq!(page_two.body["total"], 3);
    assert_eq!(page_two.body["contacts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn create_contact_validates_and_normalises() {
    let fx = Fixture::new().await;
    let reply = fx
        .post(
            "/contacts/",
            &json!({
                "locationId": fx.location(),
                "firstName": "Rosan",
                "lastName": "Deo",
                "phone": "+1 888-888-8888",
                "source": "ConnectZero",
                "tags": ["3cx"],
            }),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let contact = &reply.body["contact"];
    assert_eq!(contact["phone"], "+18888888888");
    assert_eq!(contact["fullNameLowerCase"], "rosan deo");
    assert_eq!(contact["source"], "ConnectZero");
    let id = contact["id"].as_str().unwrap();
    let stored = fx.sim.contacts();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].id.as_str(), stored[0].name.as_str()),
        (id, "Rosan Deo")
    );
    assert_eq!(stored[0].tags, ["3cx"]);

    let fetched = fx.get(&format!("/contacts/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["contact"]["id"], id);
    let missing = fx.get("/contacts/doesNotExist00000000").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        json!({"statusCode": 404, "message": "Contact not found"})
    );

    let no_location = fx.post("/contacts/", &json!({"firstName": "X"})).await;
    assert_eq!(no_location.status, 422);
    let bad_phone = fx
        .post(
            "/contacts/",
            &json!({"locationId": fx.location(), "phone": "call me"}),
        )
        .await;
    assert_eq!(bad_phone.status, 422);
    assert!(bad_phone.body["message"].is_array());
    assert_eq!(bad_phone.body["error"], "Unprocessable Entity");

    // Duplicates are refused by default (HighLevel's location setting) ...
    let dup = fx
        .post(
            "/contacts/",
            &json!({"locationId": fx.location(), "phone": "8888888888"}),
        )
        .await;
    assert_eq!(dup.status, 400);
    assert_eq!(dup.body["meta"]["contactId"], id);
    assert_eq!(dup.body["meta"]["matchingField"], "phone");
    // ... unless the location allows them.
    fx.sim.set_allow_duplicate_contacts(true);
    let dup = fx
        .post(
            "/contacts/",
            &json!({"locationId": fx.location(), "phone": "8888888888"}),
        )
        .await;
    assert_eq!(dup.status, 201);
    fx.sim
        .violations()
        .expect(&["\"locationId\" is a required property"]);
}
