use super::*;
use guest_support::{Service, UpstreamError};
use serde_json::json;
use std::cell::RefCell;
use std::collections::HashMap;

const SECRET: &str = "s3cret";

/// Configuration, a key-value map and a log of CRM calls.
#[derive(Default)]
struct Fake {
    config: HashMap<String, String>,
    kv: RefCell<HashMap<String, Vec<u8>>>,
    calls: RefCell<Vec<String>>,
    /// Fail the next CRM call whose log line starts with this prefix.
    fail_on: RefCell<Option<(&'static str, StageError)>>,
}

impl Fake {
    fn new() -> Self {
        let mut fake = Fake::default();
        for (k, v) in [("secret", SECRET), ("crm-location-id", "loc1")] {
            fake.config.insert(k.into(), v.into());
        }
        fake
    }

    fn crm(&self, call: String) -> Result<(), StageError> {
        let mut fail = self.fail_on.borrow_mut();
        if fail
            .as_ref()
            .is_some_and(|(prefix, _)| call.starts_with(prefix))
        {
            return Err(fail.take().unwrap().1);
        }
        self.calls.borrow_mut().push(call);
        Ok(())
    }
}

impl Env for Fake {
    fn config(&self, key: &str) -> Result<Option<String>, String> {
        Ok(self.config.get(key).cloned())
    }
    fn recall(&self, key: &str) -> Result<Option<Vec<u8>>, StageError> {
        Ok(self.kv.borrow().get(key).cloned())
    }
    fn remember(&self, key: &str, value: &[u8]) -> Result<(), StageError> {
        self.kv.borrow_mut().insert(key.into(), value.to_vec());
        Ok(())
    }
    fn create_note(
        &self,
        _: &Settings,
        contact: &str,
        body: &str,
    ) -> Result<Option<String>, StageError> {
        self.crm(format!("note {contact} {body}"))?;
        Ok(Some(format!("note{}", self.calls.borrow().len())))
    }
    fn add_tags(&self, _: &Settings, contact: &str, tags: &[String]) -> Result<(), StageError> {
        self.crm(format!("tags {contact} {}", tags.join("|")))
    }
    fn set_field(
        &self,
        _: &Settings,
        contact: &str,
        key: &str,
        value: &str,
    ) -> Result<(), StageError> {
        self.crm(format!("field {contact} {key}={value}"))
    }
}

fn request(body: Value) -> Request {
    Request {
        method: "POST".into(),
        headers: vec![("x-connectzero-secret".into(), SECRET.into())],
        body: Ok(body.to_string().into_bytes()),
    }
}

fn action(data: Value) -> Value {
    json!({"data": data, "extras": {"locationId": "loc1", "contactId": "c1", "workflowId": "w"}, "meta": {"key": "k", "version": "1"}})
}

fn answer(env: &Fake, request: &Request) -> (u16, Value) {
    let reply = handle(env, request);
    (reply.status, serde_json::from_slice(&reply.body).unwrap())
}

#[test]
fn applies_notes_tags_and_sentiment_in_order() {
    let env = Fake::new();
    let body = action(
        json!({"messageId": "m1", "notes": "Wants a quote", "tags": "vip,hot", "sentiment": "positive", "score": "0.8"}),
    );
    let (status, reply) = answer(&env, &request(body));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply,
        json!({"applied": {"notes": true, "tags": ["vip", "hot"], "sentiment": "positive", "score": 0.8}, "contactId": "c1", "noteId": "note1"})
    );
    assert_eq!(
        *env.calls.borrow(),
        vec![
            "note c1 Call notes (message m1):\nWants a quote".to_string(),
            "tags c1 vip|hot".to_string(),
            "field c1 connectzero_call_sentiment=positive (0.80)".to_string(),
        ]
    );
}

#[test]
fn an_identical_call_is_answered_from_the_store_without_the_crm() {
    let env = Fake::new();
    let req = request(action(json!({"notes": "once"})));
    let first = answer(&env, &req);
    let second = answer(&env, &req);
    assert_eq!(first, second);
    assert_eq!(env.calls.borrow().len(), 1);
}

#[test]
fn a_retry_after_a_partial_failure_does_not_add_the_note_again() {
    let env = Fake::new();
    *env.fail_on.borrow_mut() = Some(("tags", unavailable(503)));
    let req = request(action(json!({"notes": "n", "tags": ["a"]})));
    let (status, reply) = answer(&env, &req);
    assert_eq!(status, 502, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("busy"));
    let (status, reply) = answer(&env, &req);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["noteId"], "note1");
    let calls = env.calls.borrow();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("note")).count(),
        1,
        "{calls:?}"
    );
}

fn unavailable(status: u16) -> StageError {
    StageError::Upstream(UpstreamError {
        service: Service::Crm,
        status,
        message: "busy".into(),
    })
}

#[test]
fn checks_run_in_order_with_their_statuses() {
    let env = Fake::new();
    let good = action(json!({"notes": "x"}));
    let mut get = request(good.clone());
    get.method = "GET".into();
    assert_eq!(handle(&env, &get).status, 405);
    assert_eq!(
        handle(&env, &get).headers,
        vec![("allow".to_string(), "POST".to_string())]
    );

    let mut big = request(good.clone());
    big.body = Ok(vec![b' '; MAX_BODY_BYTES + 1]);
    assert_eq!(answer(&env, &big).0, 413);

    let mut junk = request(good.clone());
    junk.body = Ok(b"{not json".to_vec());
    assert_eq!(answer(&env, &junk).0, 400);

    let mut no_secret = request(good.clone());
    no_secret.headers.clear();
    assert_eq!(answer(&env, &no_secret).0, 401);
    let mut wrong = request(good.clone());
    wrong.headers[0].1 = "nope".into();
    assert_eq!(answer(&env, &wrong).0, 401);
    let mut forged = request(good.clone());
    forged
        .headers
        .push(("x-wh-signature".into(), "AAAA".into()));
    assert_eq!(answer(&env, &forged).0, 401);

    let mut foreign = good.clone();
    foreign["extras"]["locationId"] = "otherLoc".into();
    let (status, reply) = answer(&env, &request(foreign));
    assert_eq!(status, 403);
    assert!(reply["error"].as_str().unwrap().contains("otherLoc"));

    let (status, reply) = answer(&env, &request(action(json!({"sentiment": "great"}))));
    assert_eq!(status, 422);
    assert!(reply["error"].as_str().unwrap().contains("data.sentiment"));
    assert!(
        env.calls.borrow().is_empty(),
        "no refused call may reach the CRM"
    );
}

#[test]
fn missing_secret_or_location_configuration_fails_closed() {
    let mut env = Fake::new();
    env.config.remove("secret");
    let (status, reply) = answer(&env, &request(action(json!({"notes": "x"}))));
    assert_eq!(status, 500);
    assert!(reply["error"].as_str().unwrap().contains("`secret`"));
    let mut env = Fake::new();
    env.config.remove("crm-location-id");
    assert_eq!(answer(&env, &request(action(json!({"notes": "x"})))).0, 500);
}

#[test]
fn an_unknown_contact_is_a_404_and_nothing_is_remembered() {
    let env = Fake::new();
    *env.fail_on.borrow_mut() = Some(("tags", unavailable(404)));
    let req = request(action(json!({"tags": ["a"]})));
    let (status, reply) = answer(&env, &req);
    assert_eq!(status, 404, "{reply}");
    assert!(env.kv.borrow().is_empty());
}

#[test]
fn a_custom_secret_header_and_field_key_are_honoured() {
    let mut env = Fake::new();
    env.config.insert("secret-header".into(), "X-Other".into());
    env.config
        .insert("sentiment-field-key".into(), "call_mood".into());
    let mut req = request(action(json!({"sentiment": "mixed"})));
    req.headers = vec![("x-other".into(), SECRET.into())];
    assert_eq!(answer(&env, &req).0, 200);
    assert_eq!(
        *env.calls.borrow(),
        vec!["field c1 call_mood=mixed".to_string()]
    );
}
