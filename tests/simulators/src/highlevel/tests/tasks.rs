//! Contact tasks: create, list, complete, and the spec's validation.

use reqwest::Method;
use serde_json::json;

use super::Fixture;
use crate::highlevel::SimContact;

#[tokio::test]
async fn tasks_are_created_listed_completed_and_validated() {
    let fx = Fixture::new().await;
    let contact_id = fx
        .sim
        .add_contact(SimContact::with_phone("Ada", "Lovelace", "5550100001"));
    let path = format!("/contacts/{contact_id}/tasks");
    let reply = fx
        .post(
            &path,
            &json!({"title": "Fix 3CX", "body": "why", "dueDate": "2026-11-27T18:00:00Z", "completed": false}),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let task = reply.body["task"].clone();
    assert_eq!(task["id"].as_str().map(str::len), Some(20));
    assert_eq!(task["contactId"], contact_id.as_str());
    assert_eq!(task["completed"], false);
    assert!(task.get("assignedTo").is_none());
    let listed = fx.get(&path).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["tasks"], json!([task]));

    let done_path = format!("{path}/{}/completed", task["id"].as_str().unwrap());
    let done = fx
        .send_json(Method::PUT, &done_path, &json!({"completed": true}))
        .await;
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.body["task"]["completed"], true);
    assert!(fx.sim.tasks()[0].completed);

    // title, dueDate and completed are required; dueDate is a date.
    let missing = fx.post(&path, &json!({"title": "x"})).await;
    assert_eq!(missing.status, 422, "{missing:?}");
    let text = missing.body["message"].to_string();
    assert!(
        text.contains("dueDate") && text.contains("completed"),
        "{text}"
    );
    let bad_date = fx
        .post(
            &path,
            &json!({"title": "x", "dueDate": "tomorrow", "completed": false}),
        )
        .await;
    assert_eq!(bad_date.status, 422, "{bad_date:?}");
    let no_flag = fx.send_json(Method::PUT, &done_path, &json!({})).await;
    assert_eq!(no_flag.status, 422, "{no_flag:?}");
    let unknown = fx
        .send_json(
            Method::PUT,
            &format!("{path}/nosuchtask0000000000/completed"),
            &json!({"completed": true}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    let nobody = fx
        .post(
            "/contacts/nosuchcontact0000000/tasks",
            &json!({"title": "x", "dueDate": "2026-11-27T18:00:00Z", "completed": false}),
        )
        .await;
    assert_eq!(nobody.status, 404);
    assert_eq!(fx.sim.tasks().len(), 1);
    fx.sim.violations().expect(&[
        "\"dueDate\" is a required",
        "\"completed\" is a required",
        "\"completed\" is a required",
    ]);
}
