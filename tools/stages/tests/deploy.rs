//! The deployment kit in `deploy/` against what it deploys: `spin.toml`
//! (its variables, routes and key-value stores) and the app's source (the
//! header the tick secret comes in). A variable renamed or made required
//! in `spin.toml`, a route moved or a Secret key misspelt would otherwise
//! only show on a cluster, as an app that will not start or a tick driver
//! that is refused every minute.
//!
//! What this cannot check: that SpinKube accepts the manifests (no
//! cluster, no CRD schema here) — it checks only that they are YAML with
//! the fields this kit relies on and that they agree with the app.

use serde::Deserialize;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A `[variables]` entry of `spin.toml`.
struct Variable {
    required: bool,
    secret: bool,
}

/// What the manifests must agree with in `spin.toml`.
struct SpinApp {
    variables: BTreeMap<String, Variable>,
    /// Every `[[trigger.http]]` route.
    routes: BTreeSet<String>,
    /// Every store named in a component's `key_value_stores`.
    stores: BTreeSet<String>,
}

fn spin_toml() -> SpinApp {
    let manifest: toml::Table = read("spin.toml").parse().expect("spin.toml is TOML");
    let flag = |entry: &toml::Value, name: &str| {
        entry
            .get(name)
            .and_then(toml::Value::as_bool)
            .unwrap_or(false)
    };
    let variables = manifest["variables"]
        .as_table()
        .expect("spin.toml has [variables]")
        .iter()
        .map(|(name, entry)| {
            let variable = Variable {
                required: flag(entry, "required"),
                secret: flag(entry, "secret"),
            };
            (name.clone(), variable)
        })
        .collect();
    let routes = manifest["trigger"]["http"]
        .as_array()
        .expect("spin.toml has [[trigger.http]]")
        .iter()
        .map(|t| t["route"].as_str().expect("a route").to_string())
        .collect();
    let stores = manifest["component"]
        .as_table()
        .expect("spin.toml has components")
        .values()
        .filter_map(|c| c.get("key_value_stores").and_then(toml::Value::as_array))
        .flatten()
        .map(|s| s.as_str().expect("a store name").to_string())
        .collect();
    SpinApp {
        variables,
        routes,
        stores,
    }
}

/// One YAML document of a manifest file.
struct Document {
    file: String,
    value: Value,
}

impl Document {
    fn kind(&self) -> &str {
        text(&self.value, &["kind"]).unwrap_or_default()
    }

    fn name(&self) -> &str {
        text(&self.value, &["metadata", "name"]).unwrap_or_default()
    }
}

/// Every document of every `deploy/spinkube/*.yaml`, in file order. A
/// file that does not parse fails here, naming it.
fn manifests() -> Vec<Document> {
    let dir = root().join("deploy/spinkube");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).expect("readable");
        for document in serde_yaml_ng::Deserializer::from_str(&source) {
            let value =
                Value::deserialize(document).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
            // A file ending in `---` yields an empty document; nothing to check.
            if !value.is_null() {
                documents.push(Document {
                    file: file.clone(),
                    value,
                });
            }
        }
    }
    documents
}

/// The value at `path` (mapping keys) under `value`.
fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

fn list<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path)
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

/// The one document of `kind`.
fn only<'a>(documents: &'a [Document], kind: &str) -> &'a Document {
    let found: Vec<&Document> = documents.iter().filter(|d| d.kind() == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "deploy/spinkube should hold exactly one {kind}"
    );
    found[0]
}

/// A `secretKeyRef`'s Secret name and key.
type SecretRef = (String, String);

fn secret_ref(value: &Value) -> Option<SecretRef> {
    let reference = at(value, &["valueFrom", "secretKeyRef"])?;
    Some((
        text(reference, &["name"]).unwrap_or_default().to_string(),
        text(reference, &["key"]).unwrap_or_default().to_string(),
    ))
}

/// Every `secretKeyRef` anywhere under `value`.
fn all_secret_refs(value: &Value, found: &mut Vec<SecretRef>) {
    match value {
        Value::Mapping(map) => {
            for (key, child) in map {
                if key.as_str() == Some("secretKeyRef") {
                    found.push((
                        text(child, &["name"]).unwrap_or_default().to_string(),
                        text(child, &["key"]).unwrap_or_default().to_string(),
                    ));
                } else {
                    all_secret_refs(child, found);
                }
            }
        }
        Value::Sequence(items) => items.iter().for_each(|v| all_secret_refs(v, found)),
        _ => {}
    }
}

/// The Secrets `secrets.example.yaml` defines: name → keys (from
/// `stringData` or `data`).
fn example_secrets(documents: &[Document]) -> BTreeMap<String, BTreeSet<String>> {
    documents
        .iter()
        .filter(|d| d.file == "secrets.example.yaml" && d.kind() == "Secret")
        .map(|d| {
            let keys = ["stringData", "data"]
                .iter()
                .filter_map(|field| at(&d.value, &[field]).and_then(Value::as_mapping))
                .flat_map(|map| map.keys())
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect();
            (d.name().to_string(), keys)
        })
        .collect()
}

/// The SpinApp's `spec.variables`: name → the entry.
fn spin_app_variables(app: &Document) -> BTreeMap<String, &Value> {
    list(&app.value, &["spec", "variables"])
        .iter()
        .map(|v| (text(v, &["name"]).unwrap_or_default().to_string(), v))
        .collect()
}

#[test]
fn every_manifest_is_yaml_with_a_kind_and_a_name() {
    let documents = manifests();
    let files: BTreeSet<&str> = documents.iter().map(|d| d.file.as_str()).collect();
    for expected in [
        "redis.yaml",
        "secrets.example.yaml",
        "spinapp.yaml",
        "tick-driver.yaml",
    ] {
        assert!(
            files.contains(expected),
            "deploy/spinkube/{expected} is missing"
        );
    }
    for d in &documents {
        for field in ["apiVersion", "kind"] {
            assert!(
                text(&d.value, &[field]).is_some(),
                "{}: a document without {field}",
                d.file
            );
        }
        assert!(
            !d.name().is_empty(),
            "{}: a {} without a name",
            d.file,
            d.kind()
        );
    }
    let app = only(&documents, "SpinApp");
    assert_eq!(
        text(&app.value, &["apiVersion"]),
        Some("core.spinkube.dev/v1alpha1")
    );
    assert!(
        text(&app.value, &["spec", "image"]).is_some(),
        "the SpinApp needs an image"
    );
}

/// The SpinApp sets only variables spin.toml declares (an undeclared name
/// becomes an environment variable nothing reads, so a typo would leave
/// the real one unset), every required one, and every secret one from a
/// Secret.
#[test]
fn the_spin_app_sets_spin_toml_variables_and_secrets_only_from_secrets() {
    let spin = spin_toml();
    let documents = manifests();
    let app = only(&documents, "SpinApp");
    let set = spin_app_variables(app);
    let mut problems = Vec::new();
    if set.len() != list(&app.value, &["spec", "variables"]).len() {
        problems.push("a variable is set twice".to_string());
    }
    for (name, entry) in &set {
        let Some(declared) = spin.variables.get(name) else {
            problems.push(format!("{name:?} is not a variable in spin.toml"));
            continue;
        };
        let from_secret = secret_ref(entry).is_some();
        if declared.secret && !from_secret {
            problems.push(format!(
                "{name} is secret in spin.toml: set it from a secretKeyRef, not inline"
            ));
        }
        if at(entry, &["value"]).is_none() && at(entry, &["valueFrom"]).is_none() {
            problems.push(format!("{name} has neither value nor valueFrom"));
        }
    }
    for (name, declared) in &spin.variables {
        if declared.required && !set.contains_key(name) {
            problems.push(format!("{name} is required by spin.toml and not set"));
        }
    }
    // Without it the admin API is off and no tenant can be created.
    if !set.contains_key("admin_secret") {
        problems.push("admin_secret is not set".into());
    }
    for probe in ["readiness", "liveness"] {
        if let Some(path) = text(&app.value, &["spec", "checks", probe, "httpGet", "path"])
            && !spin.routes.contains(path)
        {
            problems.push(format!(
                "the {probe} probe's path {path} is not a route in spin.toml"
            ));
        }
    }
    assert!(problems.is_empty(), "spinapp.yaml: {problems:#?}");
}

/// Every Secret a manifest reads is one secrets.example.yaml shows how to
/// make, with that key; and the example holds placeholders only.
#[test]
fn every_secret_reference_names_a_key_of_the_example_secrets() {
    let documents = manifests();
    let secrets = example_secrets(&documents);
    let mut problems = Vec::new();
    for d in documents
        .iter()
        .filter(|d| d.file != "secrets.example.yaml")
    {
        let mut refs = Vec::new();
        all_secret_refs(&d.value, &mut refs);
        for (name, key) in refs {
            if !secrets.get(&name).is_some_and(|keys| keys.contains(&key)) {
                problems.push(format!(
                    "{}: secretKeyRef {name}/{key} is not in secrets.example.yaml",
                    d.file
                ));
            }
        }
    }
    // A real secret pasted into the example would be committed: the app's
    // secrets are placeholders, the Redis URL points at the trial Service.
    let placeholders = documents
        .iter()
        .filter(|d| d.file == "secrets.example.yaml" && d.name() == "connectzero-secrets");
    for d in placeholders {
        for (key, value) in at(&d.value, &["stringData"])
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            if !value.as_str().is_some_and(|v| v.starts_with("REPLACE")) {
                problems.push(format!(
                    "secrets.example.yaml: {key:?} should be a REPLACE-... placeholder"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The runtime config maps every store the components open to a shared
/// Redis (a store left out would be a per-pod SQLite file: replicas would
/// not share the ledger), and no store the components do not use.
#[test]
fn the_spin_app_maps_the_components_store_to_redis_from_a_secret() {
    let spin = spin_toml();
    let documents = manifests();
    let app = only(&documents, "SpinApp");
    let stores = list(&app.value, &["spec", "runtimeConfig", "keyValueStores"]);
    let mapped: BTreeSet<String> = stores
        .iter()
        .filter_map(|s| text(s, &["name"]).map(str::to_string))
        .collect();
    assert_eq!(
        mapped, spin.stores,
        "runtimeConfig.keyValueStores should map exactly the stores spin.toml's components use"
    );
    for store in stores {
        assert_eq!(text(store, &["type"]), Some("redis"), "{store:?}");
        let url = list(store, &["options"])
            .iter()
            .find(|o| text(o, &["name"]) == Some("url"))
            .expect("a redis store needs a url option");
        assert!(
            secret_ref(url).is_some(),
            "the Redis URL may carry a password: take it from a Secret"
        );
    }
    // The example Redis URL names the trial Service in redis.yaml.
    let services: BTreeSet<&str> = documents
        .iter()
        .filter(|d| d.file == "redis.yaml" && d.kind() == "Service")
        .map(Document::name)
        .collect();
    let url = documents
        .iter()
        .find(|d| d.kind() == "Secret" && d.name() == "connectzero-redis")
        .and_then(|d| text(&d.value, &["stringData", "url"]))
        .expect("secrets.example.yaml: connectzero-redis has a url");
    let host = url
        .trim_start_matches("redis://")
        .split([':', '/'])
        .next()
        .unwrap_or_default();
    assert!(
        services.contains(host),
        "the example Redis URL {url} names no Service in redis.yaml"
    );
}

/// The words of the first simple command in `s`, as `sh` would split
/// them: on blanks, double quotes grouping, ending at an unquoted `;`
/// (enough for the one curl line; no escapes).
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ';' if !quoted => break,
            c if c.is_whitespace() && !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// The header name the app reads the tick secret from, taken from its
/// source so the manifest cannot drift from it.
fn tick_secret_header() -> String {
    let source = read("components/app/src/lib.rs");
    let line = source
        .lines()
        .find(|l| l.contains("const TICK_SECRET_HEADER"))
        .expect("components/app/src/lib.rs defines TICK_SECRET_HEADER");
    line.split('"')
        .nth(1)
        .expect("a string constant")
        .to_string()
}

/// The CronJob POSTs to the app's tick route, on the Service SpinKube
/// makes for the SpinApp, with the header the app reads and the same
/// Secret key the app's tick_secret comes from; its timeout outlasts a
/// tick's budget and a stuck run ends.
#[test]
fn the_tick_driver_posts_to_the_tick_route_with_the_apps_tick_secret() {
    let spin = spin_toml();
    let documents = manifests();
    let app = only(&documents, "SpinApp");
    let cron = only(&documents, "CronJob");
    let job = at(&cron.value, &["spec", "jobTemplate", "spec"]).expect("a job template");
    assert!(
        at(job, &["activeDeadlineSeconds"])
            .and_then(Value::as_u64)
            .is_some(),
        "the job needs activeDeadlineSeconds so a stuck run ends"
    );
    let containers = list(job, &["template", "spec", "containers"]);
    assert_eq!(containers.len(), 1, "one tick container");
    let container = &containers[0];
    let script: String = list(container, &["command"])
        .iter()
        .chain(list(container, &["args"]))
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    let curl_line = script
        .lines()
        .find(|l| l.contains("curl "))
        .expect("the tick container runs curl");
    let words = shell_words(curl_line);
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| w == flag)
            .and_then(|i| words.get(i + 1))
            .map(String::as_str)
    };
    assert_eq!(after("-X"), Some("POST"), "{curl_line}");

    // The URL: the SpinApp's Service, a tick route.
    let url = words
        .iter()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .expect("curl is given a URL");
    let (host, path) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, path)| (host, format!("/{path}")))
        .expect("a URL with a path");
    assert_eq!(
        host.split(':').next(),
        Some(app.name()),
        "SpinKube names the app's Service after the SpinApp"
    );
    assert!(
        spin.routes.contains(&path),
        "{path} is not a route in spin.toml"
    );
    assert_eq!(path, "/tick");

    // The header: the app's name for it, carrying an environment variable
    // set from the Secret key the SpinApp's tick_secret comes from.
    let header = after("-H").expect("curl sends a header");
    let (name, value) = header.split_once(':').expect("name: value");
    assert_eq!(name, tick_secret_header());
    let env_name = value
        .trim()
        .trim_start_matches('$')
        .trim_matches(['{', '}']);
    let env = list(container, &["env"])
        .iter()
        .find(|e| text(e, &["name"]) == Some(env_name))
        .unwrap_or_else(|| panic!("the container sets no {env_name}"));
    let app_tick_secret = spin_app_variables(app)
        .get("tick_secret")
        .and_then(|v| secret_ref(v))
        .expect("the SpinApp sets tick_secret from a Secret");
    assert_eq!(
        secret_ref(env),
        Some(app_tick_secret),
        "the driver and the app must read the same tick secret"
    );

    // curl outlasts the app's tick budget, so a full tick is not cut off.
    let max_time: u64 = after("--max-time")
        .expect("curl needs a bounded --max-time")
        .parse()
        .expect("--max-time in whole seconds");
    let budget: u64 = spin_app_variables(app)
        .get("tick_budget_secs")
        .and_then(|v| text(v, &["value"]))
        .unwrap_or("20")
        .parse()
        .expect("tick_budget_secs is a number");
    assert!(
        max_time > budget,
        "--max-time {max_time} should exceed tick_budget_secs {budget}"
    );
}

/// `spin up --runtime-config-file deploy/spin/runtime-config.redis.toml`
/// maps a store the components use to Redis.
#[test]
fn the_spin_runtime_config_maps_the_components_store_to_redis() {
    let spin = spin_toml();
    let config: toml::Table = read("deploy/spin/runtime-config.redis.toml")
        .parse()
        .expect("runtime-config.redis.toml is TOML");
    let stores = config["key_value_store"]
        .as_table()
        .expect("a [key_value_store.<name>] table");
    let names: BTreeSet<String> = stores.keys().cloned().collect();
    assert_eq!(
        names, spin.stores,
        "it should map exactly the stores spin.toml's components use"
    );
    for (name, store) in stores {
        assert_eq!(store["type"].as_str(), Some("redis"), "store {name}");
        let url = store["url"].as_str().expect("a url");
        assert!(url.starts_with("redis://") || url.starts_with("rediss://"));
    }
}
