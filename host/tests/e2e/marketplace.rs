//! The marketplace kit (`marketplace/`, docs/MARKETPLACE.md) against the
//! code: the scopes are the ones the install requests and the doctor
//! requires; each trigger's fields and sample payload have the names and
//! types of what the trigger stage really sends (the pipeline run against
//! the simulators, the deliveries read back from the HighLevel simulator,
//! subscribed through the kit's subscription URL); and a request built
//! from the Update Call Record action's fields is accepted by the real
//! write-back component, which reads every one of them. (That the kit
//! lists every field write-back reads is the write-back crate's own test,
//! over its `Field` list.)

use crate::common;

use anyhow::Context;
use chrono::{Duration, Utc};
use common::*;
use connectzero::demo::{Placer, numbers};
use connectzero::testbed::{ACTION_SECRET, TENANT, World};
use connectzero_simulators::threecx::{SimActiveCall, SimTranscription};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::path::Path;

fn kit(relative: &str) -> anyhow::Result<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../marketplace")
        .join(relative);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The kit's trigger files, as `app.json` lists them.
fn triggers() -> anyhow::Result<Vec<Value>> {
    kit("app.json")?["workflowTriggers"]
        .as_array()
        .context("app.json lists workflowTriggers")?
        .iter()
        .map(|file| kit(file.as_str().context("a file name")?))
        .collect()
}

fn action() -> anyhow::Result<Value> {
    kit("actions/update-call-record.json")
}

/// The JSON type of `value`, as the kit's `type` lists name them.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What is wrong with `payload` against the kit's `fields` (name →
/// `{type: [...], enum?, fields?}`): a missing or extra name, a type or
/// value the kit does not list; nested objects field by field.
fn problems(fields: &Map<String, Value>, payload: &Value, at: &str) -> Vec<String> {
    let Some(object) = payload.as_object() else {
        return vec![format!("{at}: not an object: {payload}")];
    };
    let mut found = Vec::new();
    let declared: BTreeSet<&String> = fields.keys().collect();
    let sent: BTreeSet<&String> = object.keys().collect();
    for name in declared.difference(&sent) {
        found.push(format!("{at}{name}: in the kit, not in the payload"));
    }
    for name in sent.difference(&declared) {
        found.push(format!("{at}{name}: in the payload, not in the kit"));
    }
    for (name, value) in object {
        let Some(spec) = fields.get(name) else {
            continue;
        };
        let types: Vec<&str> = spec["type"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !types.contains(&kind(value)) {
            found.push(format!(
                "{at}{name}: {} ({value}), the kit says {types:?}",
                kind(value)
            ));
        }
        if let Some(allowed) = spec["enum"].as_array()
            && !allowed.contains(value)
        {
            found.push(format!("{at}{name}: {value} is not one of {allowed:?}"));
        }
        if let (Some(nested), Value::Object(_)) = (spec["fields"].as_object(), value) {
            found.extend(problems(nested, value, &format!("{at}{name}.")));
        }
    }
    found
}

/// `https://<host>/t/<tenant>/…` of the kit, on the server at `base`.
fn on_server(kit_url: &str, base: &str) -> anyhow::Result<String> {
    let path = kit_url
        .strip_prefix("https://<host>")
        .with_context(|| format!("{kit_url} starts with https://<host>"))?;
    Ok(format!("{base}{}", path.replace("<tenant>", TENANT)))
}

/// The kit's headers, with the tenant's secret as the value.
fn secret_headers(spec: &Value) -> anyhow::Result<Vec<(String, String)>> {
    let headers = spec.as_object().context("headers are an object")?;
    assert!(!headers.is_empty(), "the kit names the secret header");
    Ok(headers
        .keys()
        .map(|name| (name.clone(), ACTION_SECRET.to_string()))
        .collect())
}

fn as_refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

#[tokio::test]
async fn the_kit_scopes_are_those_the_install_requests_and_the_doctor_requires()
-> anyhow::Result<()> {
    let app = kit("app.json")?;
    let scopes = app["auth"]["scopes"].as_array().context("auth.scopes")?;
    let mut listed = BTreeSet::new();
    let mut required = BTreeSet::new();
    for scope in scopes {
        let name = scope["scope"].as_str().context("scope name")?.to_string();
        assert!(
            scope["reason"].as_str().is_some_and(|r| r.len() > 20),
            "{name} needs a reason"
        );
        if scope["required"] == true {
            required.insert(name.clone());
        }
        listed.insert(name);
    }
    let (world, _) = seeded_world(defaults()).await?;
    let url = connectzero::server::authorize_url(
        world.config(),
        "https://cz.example/oauth/callback",
        "state",
    );
    let scope = scope_of(&url).context("the authorize URL has a scope")?;
    let requested: BTreeSet<String> = scope.split(' ').map(String::from).collect();
    assert_eq!(listed, requested, "the kit's scopes vs the install's");
    // The Spin app requests its own list (components/app has no host
    // dependency to share one): the same scopes.
    let app_source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../components/app/src/oauth/mod.rs"),
    )?;
    let spin: BTreeSet<String> = app_source
        .lines()
        .find_map(|l| l.trim().strip_prefix("const DEFAULT_SCOPES: &str = \""))
        .and_then(|rest| rest.strip_suffix("\";"))
        .context("components/app/src/oauth/mod.rs has DEFAULT_SCOPES")?
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(listed, spin, "the kit's scopes vs the Spin app's");
    let doctor: BTreeSet<String> = connectzero::doctor::REQUIRED_SCOPES
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(required, doctor, "required scopes vs the doctor's check");

    // The redirect URLs the kit tells the developer portal to list are
    // those the install links name: first the one of every tenant, then
    // a per_tenant_redirect tenant's own.
    let urls: Vec<&str> = app["auth"]["redirectUrls"]
        .as_array()
        .context("auth.redirectUrls")?
        .iter()
        .map(|u| u["url"].as_str().context("a redirect URL"))
        .collect::<anyhow::Result<_>>()?;
    let path = |url: &str| url.strip_prefix("https://<host>").map(str::to_owned);
    let mut shared = world.config().clone();
    shared.settings.oauth.per_tenant_redirect = None;
    assert_eq!(
        path(urls[0]),
        Some(connectzero::server::redirect_path(&shared)),
        "the first redirect URL is the host's shared one"
    );
    let mut own = shared.clone();
    own.id = "<tenant>".into();
    own.settings.oauth.per_tenant_redirect = Some(true);
    assert_eq!(
        urls.get(1).copied().and_then(path),
        Some(connectzero::server::redirect_path(&own)),
        "the second redirect URL is a per_tenant_redirect tenant's"
    );
    assert_eq!(urls.len(), 2, "{urls:?}");
    Ok(())
}

/// The `scope` parameter of `url`, decoded.
fn scope_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("scope="))?;
    urlencoding::decode(raw).ok().map(|s| s.into_owned())
}

/// Subscribe a workflow to every trigger through the kit's subscription
/// URL and headers, as HighLevel does when a workflow is published.
async fn subscribe_every_trigger(world: &World, base: &str) -> anyhow::Result<()> {
    for trigger in triggers()? {
        let key = trigger["key"].as_str().context("trigger key")?;
        let url = on_server(
            trigger["subscriptionUrl"]
                .as_str()
                .context("subscriptionUrl")?,
            base,
        )?;
        let headers = secret_headers(&trigger["subscriptionHeaders"])?;
        let sub = world
            .crm
            .subscribe_trigger(&url, key, "CREATED", &as_refs(&headers))
            .await?;
        assert_eq!(sub.status, 200, "subscribing {key} at {url}");
    }
    Ok(())
}

#[tokio::test]
async fn every_trigger_sample_has_the_names_and_types_the_trigger_stage_sends() -> anyhow::Result<()>
{
    let kit_triggers = triggers()?;
    let keys: BTreeSet<&str> = kit_triggers
        .iter()
        .filter_map(|t| t["key"].as_str())
        .collect();
    let offered: BTreeSet<&str> = connectzero::server::TRIGGER_KEYS.iter().copied().collect();
    assert_eq!(
        keys, offered,
        "the kit's triggers vs those ConnectZero offers"
    );

    let (world, _) = seeded_world(eager()).await?;
    let base = serve_endpoints(&world).await?;
    subscribe_every_trigger(&world, &base).await?;

    // A call ringing (call.started); a missed call from Fay (missed-call,
    // call.ended) and Alice calling her back, answered (call.ended,
    // missed-call.recovered); an answered call with a recording still
    // being written; an answered call whose recording 3CX transcribed
    // (call.insights).
    world.pbx.add_active_call(SimActiveCall {
        id: 77,
        caller: numbers::ELI.into(),
        callee: "102 Bob Jones".into(),
        status: "Ringing".into(),
        established_at: Utc::now(),
    });
    let mut placer = Placer::default();
    let now = Utc::now();
    placer.place(
        &world,
        &one_leg(1, outside(numbers::FAY), ext("102"), false, 20),
        now - Duration::seconds(1800),
    );
    placer.place(
        &world,
        &one_leg(2, ext("101"), outside(numbers::FAY), true, 60),
        now - Duration::seconds(600),
    );
    world.pbx.add_recording(recording(601, false));
    placer.place(
        &world,
        &one_leg(
            3,
            outside(numbers::DANA),
            ext("101").with_recording(601),
            true,
            30,
        ),
        now,
    );
    world.pbx.add_recording(recording(602, true));
    world.pbx.set_transcription(
        602,
        SimTranscription::Transcribed {
            after: std::time::Duration::ZERO,
            summary: Some("The caller asked for a quote.".into()),
            transcription: Some("Agent: Hello. Caller: I would like a quote.".into()),
            sentiment_score: Some(8),
        },
    );
    placer.place(
        &world,
        &one_leg(
            4,
            outside(numbers::GWEN),
            ext("102").with_recording(602),
            true,
            45,
        ),
        now,
    );
    let delivered = |w: &World, key: &str| {
        w.crm
            .trigger_executions()
            .into_iter()
            .filter(|e| e.body["event"] == key)
            .count()
    };
    tick_until(&world, 8, |w| {
        delivered(w, "call.started") == 1
            && delivered(w, "missed-call") == 1
            && delivered(w, "call.ended") == 4
            && delivered(w, "missed-call.recovered") == 1
            && delivered(w, "call.insights") == 1
    })
    .await?;

    let executions = world.crm.trigger_executions();
    for trigger in &kit_triggers {
        let key = trigger["key"].as_str().context("key")?;
        let fields = trigger["fields"].as_object().context("fields")?;
        let sample = &trigger["samplePayload"];
        assert_eq!(sample["event"], key, "{key}: the sample's event");
        let wrong = problems(fields, sample, "sample ");
        assert!(wrong.is_empty(), "{key}: {wrong:#?}");
        let real: Vec<&Value> = executions
            .iter()
            .filter(|e| e.body["event"] == key)
            .map(|e| &e.body)
            .collect();
        assert!(!real.is_empty(), "no {key} delivery");
        for body in real {
            let wrong = problems(fields, body, "sent ");
            assert!(wrong.is_empty(), "{key}: {wrong:#?}\nsent: {body:#}");
        }
        for filter in trigger["filters"].as_array().context("filters")? {
            let reference = filter["reference"].as_str().context("reference")?;
            assert!(
                fields.contains_key(reference),
                "{key}: filter on {reference}, which the payload does not have"
            );
        }
    }
    Ok(())
}

/// `data` of an action call with every kit field at its sample, the
/// contact being `contact`.
fn sample_data(action: &Value, contact: &str) -> anyhow::Result<Map<String, Value>> {
    let mut data = Map::new();
    for field in action["fields"].as_array().context("fields")? {
        let reference = field["reference"].as_str().context("reference")?;
        data.insert(reference.to_string(), field["sample"].clone());
    }
    data.insert("contactId".into(), json!(contact));
    Ok(data)
}

#[tokio::test]
async fn a_request_built_from_the_action_fields_is_accepted_and_each_field_is_read()
-> anyhow::Result<()> {
    let action = action()?;
    let key = action["key"].as_str().context("action key")?;
    let (world, contacts) = seeded_world(defaults()).await?;
    let base = serve_endpoints(&world).await?;
    let url = on_server(
        action["endpoint"]["url"].as_str().context("endpoint url")?,
        &base,
    )?;
    let headers = secret_headers(&action["endpoint"]["headers"])?;
    let dana = &contacts["Dana Fox"];
    let headers = as_refs(&headers);
    let send = async |data: Map<String, Value>| {
        let body = world.crm.action_payload(key, Value::Object(data), dana);
        world
            .crm
            .execute_action_raw(&url, body.to_string().into_bytes(), &headers)
            .await
    };

    let data = sample_data(&action, dana)?;
    let (status, answer) = send(data.clone()).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["contactId"], dana.as_str());
    assert_eq!(answer["applied"]["notes"], true, "{answer}");
    assert_eq!(
        answer["applied"]["sentiment"], data["sentiment"],
        "{answer}"
    );
    let notes = world.crm.notes(dana);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0]
            .body
            .contains(data["notes"].as_str().unwrap_or("?")),
        "{}",
        notes[0].body
    );
    // The custom variables the kit promises are in the answer.
    for variable in action["customVariables"]
        .as_array()
        .context("customVariables")?
    {
        let path = variable["key"].as_str().context("variable key")?;
        let pointer = format!("/{}", path.replace('.', "/"));
        assert!(
            answer.pointer(&pointer).is_some(),
            "{path} missing from {answer}"
        );
    }

    // Every field is read: the same request with that field unreadable
    // (an object) is refused, naming the field.
    for field in action["fields"].as_array().context("fields")? {
        let reference = field["reference"].as_str().context("reference")?;
        let mut data = data.clone();
        data.insert(reference.to_string(), json!({"not": "a form value"}));
        let (status, answer) = send(data).await?;
        assert_eq!(status, 422, "{reference}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(&format!("data.{reference}")),
            "{reference}: {error}"
        );
    }
    Ok(())
}
