use super::*;
use serde_json::json;

fn call(data: Value) -> Value {
    json!({
        "data": data,
        "extras": {"locationId": "loc1", "contactId": "extrasContact", "workflowId": "wf1"},
        "meta": {"key": "update_call_record", "version": "1.0"}
    })
}

fn ok(data: Value) -> Update {
    parse(&call(data), 5000).unwrap()
}

fn problem(data: Value) -> String {
    parse(&call(data), 5000).unwrap_err()
}

#[test]
fn reads_every_field_and_prefers_data_contact_id() {
    let update = ok(json!({
        "contactId": "c1", "messageId": "m1", "notes": "Asked for a quote",
        "tags": ["vip", " follow-up "], "sentiment": "Positive", "score": 0.8
    }));
    assert_eq!(
        update,
        Update {
            contact_id: "c1".into(),
            message_id: Some("m1".into()),
            notes: Some("Asked for a quote".into()),
            tags: vec!["vip".into(), "follow-up".into()],
            sentiment: Some(Sentiment::Positive),
            score: Some(0.8),
        }
    );
    assert_eq!(update.sentiment_value().as_deref(), Some("positive (0.80)"));
    assert_eq!(
        update.note_body().as_deref(),
        Some("Call notes (message m1):\nAsked for a quote")
    );
    assert_eq!(location_id(&call(json!({}))), Some("loc1"));
}

#[test]
fn form_strings_are_accepted_and_blank_fields_are_absent() {
    let update = ok(json!({
        "contactId": "", "messageId": " ", "notes": "n",
        "tags": "vip, follow-up,, vip,", "sentiment": "", "score": ""
    }));
    assert_eq!(update.contact_id, "extrasContact");
    assert_eq!(update.message_id, None);
    assert_eq!(
        update.tags,
        vec!["vip".to_string(), "follow-up".to_string()]
    );
    assert_eq!(update.sentiment, None);
    assert_eq!(update.sentiment_value(), None);
    assert_eq!(update.note_body().as_deref(), Some("Call notes:\nn"));
    let scored = ok(json!({"sentiment": "mixed", "score": "-0.25"}));
    assert_eq!(scored.score, Some(-0.25));
    assert_eq!(scored.sentiment_value().as_deref(), Some("mixed (-0.25)"));
}

#[test]
fn bad_sentiment_and_scores_name_the_field() {
    assert!(problem(json!({"sentiment": "great"})).contains("data.sentiment \"great\""));
    for score in [
        json!(2),
        json!(-1.5),
        json!("NaN"),
        json!("inf"),
        json!("high"),
        json!(true),
    ] {
        let message = problem(json!({"sentiment": "neutral", "score": score}));
        assert!(message.contains("data.score"), "{score}: {message}");
    }
    assert!(problem(json!({"notes": "x", "score": 0.5})).contains("without data.sentiment"));
    assert_eq!(
        ok(json!({"sentiment": "negative", "score": -1})).score,
        Some(-1.0)
    );
}

#[test]
fn tags_are_limited_in_number_length_and_commas() {
    let many: Vec<String> = (0..30).map(|i| format!("t{i}")).collect();
    assert!(problem(json!({"tags": many})).contains("data.tags has 30 tags"));
    let long = "x".repeat(MAX_TAG_CHARS + 1);
    assert!(problem(json!({"tags": [long]})).contains("1 to 64 characters"));
    assert!(problem(json!({"tags": ["  "]})).contains("1 to 64 characters"));
    assert!(problem(json!({"tags": ["a,b"]})).contains("must not contain a comma"));
    assert!(problem(json!({"tags": [1]})).contains("data.tags[0] must be text"));
    assert!(problem(json!({"tags": {"a": 1}})).contains("data.tags must be a list"));
    let exactly: Vec<String> = (0..MAX_TAGS).map(|i| format!("t{i}")).collect();
    assert_eq!(ok(json!({"tags": exactly})).tags.len(), MAX_TAGS);
}

#[test]
fn notes_are_limited_in_characters_not_bytes() {
    let notes = "é".repeat(10);
    assert!(parse(&call(json!({"notes": notes})), 10).is_ok());
    let message = parse(&call(json!({"notes": "é".repeat(11)})), 10).unwrap_err();
    assert!(
        message.contains("data.notes is 11 characters; at most 10"),
        "{message}"
    );
    assert!(problem(json!({"notes": 5})).contains("data.notes must be text"));
}

#[test]
fn something_must_change_and_a_contact_must_be_known() {
    assert!(problem(json!({})).contains("nothing to update"));
    assert!(
        problem(json!({"notes": "", "tags": [], "sentiment": null})).contains("nothing to update")
    );
    assert!(problem(json!({"tags": " , "})).contains("nothing to update"));
    let mut body = call(json!({"notes": "x"}));
    body["extras"]["contactId"] = Value::Null;
    assert!(
        parse(&body, 100)
            .unwrap_err()
            .contains("contact id missing")
    );
    assert!(
        parse(&json!({"data": 3}), 100)
            .unwrap_err()
            .contains("data must be an object")
    );
}

#[test]
fn ids_that_could_change_the_request_path_are_refused() {
    for id in ["../locations/x", "a/b", "a?b=c", "a b", "a%2F"] {
        let message = problem(json!({"contactId": id, "notes": "x"}));
        assert!(message.contains("is not a HighLevel id"), "{id}: {message}");
    }
    assert!(problem(json!({"messageId": "m/1", "notes": "x"})).contains("data.messageId"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let message = problem(json!({"sentiment": "great", "score": 2, "tags": ["a,b"]}));
    assert!(message.contains("data.sentiment"));
    assert!(message.contains("data.score"));
    assert!(message.contains("data.tags"));
}

#[test]
fn every_listed_field_is_read() {
    for field in Field::ALL {
        let mut data = json!({"notes": "x", "sentiment": "neutral"});
        data[field.key()] = json!({"not": "a form value"});
        let message = problem(data);
        assert!(
            message.contains(&format!("data.{}", field.key())),
            "{}: {message}",
            field.key()
        );
    }
}

#[test]
fn the_marketplace_kit_lists_exactly_the_fields_write_back_reads() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../marketplace/actions/update-call-record.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let kit: Value = serde_json::from_str(&text).expect("the kit's action is JSON");
    let listed: Vec<&str> = kit["fields"]
        .as_array()
        .expect("the action lists its fields")
        .iter()
        .map(|f| f["reference"].as_str().expect("each field has a reference"))
        .collect();
    let read: Vec<&str> = Field::ALL.iter().map(|f| f.key()).collect();
    assert_eq!(listed, read, "the kit's fields vs what write-back reads");
}
