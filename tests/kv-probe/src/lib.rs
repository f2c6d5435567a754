//! A key-value probe, for the end-to-end tests only (never shipped).
//!
//! ConnectZero's exactly-once claims rest on `wasi:keyvalue/atomics`: a
//! compare-and-swap whose key changed after `current()` must fail. This
//! `wasi:http` component lets a test check that on whatever backend the
//! runtime gives the `default` store (Spin's SQLite store, Spin's Redis
//! store): `host/tests/e2e/redis.rs` runs it under `spin up`.
//!
//! Routes (every one opens the store `default`; answers are JSON):
//!
//! - `GET /healthz`: `{"ok":true}`, to know `spin up` is serving.
//! - `POST /cas-race?key=K`: `Cas::new(K)`, `current()`, then a plain
//!   `set(K, "intruder")` (another writer between the read and the swap),
//!   then `swap(cas, "mine")`. Answers `{"swap": S, "value_after": V}`:
//!   `S` is `"ok"`, `"cas-failed"` or `"error: …"`, `V` the value read
//!   back afterwards (UTF-8, `null` when absent). Correct semantics:
//!   `"cas-failed"` and `"intruder"`.
//! - `POST /cas?key=K&expect=E&new=N`: the compare-and-swap ConnectZero
//!   itself does (`guest_support::kv::Store::swap`): `current()`, and if
//!   it is `E` (absent `expect`: the key must not exist) `swap(cas, N)`.
//!   `S` is as above, or `"unexpected"` when `current()` was not `E` (no
//!   swap attempted); the answer also carries what `current()` read.
//! - `POST /increment?key=K&delta=D`: `{"value": <the new value>}`.
//! - `GET /get?key=K`: `{"value": V}`.

wit_bindgen::generate!({
    // The world is written here rather than in `wit/`: it exists for this
    // fixture alone. `path` brings in the WASI packages it names.
    inline: r#"
        package connectzero:kv-probe;

        world kv-probe {
            import wasi:keyvalue/store@0.2.0-draft2;
            import wasi:keyvalue/atomics@0.2.0-draft2;
            export wasi:http/incoming-handler@0.2.4;
        }
    "#,
    path: "../../wit",
    // The same Rust types the stages use, so `guest_support::serve` reads
    // and answers the requests.
    with: {
        "wasi:keyvalue/store@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::store,
        "wasi:keyvalue/atomics@0.2.0-draft2": guest_support::bindings::wasi::keyvalue::atomics,
        "wasi:http/types@0.2.4": guest_support::wasi::http::types,
        "wasi:io/error@0.2.4": guest_support::wasi::io::error,
        "wasi:io/poll@0.2.4": guest_support::wasi::io::poll,
        "wasi:io/streams@0.2.4": guest_support::wasi::io::streams,
        "wasi:clocks/monotonic-clock@0.2.4": guest_support::wasi::clocks::monotonic_clock,
    },
});

use exports::wasi::http::incoming_handler::Guest;
use guest_support::bindings::wasi::keyvalue::atomics::{self, Cas, CasError};
use guest_support::bindings::wasi::keyvalue::store::{self, Bucket, Error};
use guest_support::serve::{read_request, send_json};
use guest_support::wasi::http::types::{IncomingRequest, ResponseOutparam};
use serde_json::{Value, json};

/// What the intruder writes between `current()` and `swap()`.
pub const INTRUDER: &[u8] = b"intruder";

/// What the probe's own swap in `/cas-race` writes.
pub const MINE: &[u8] = b"mine";

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct KvProbe;

impl Guest for KvProbe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        // No route takes a body: whatever is sent is read and ignored.
        let request = read_request(&request, 0);
        let query = Query::parse(&request.path_with_query);
        let (status, body) = match (request.method.as_str(), request.path()) {
            ("GET", "/healthz") => (200, json!({ "ok": true })),
            ("POST", "/cas-race") => answer(query.key().and_then(cas_race)),
            ("POST", "/cas") => answer(query.key().and_then(|key| {
                cas(
                    &key,
                    query.get("expect").map(String::as_bytes),
                    query.get("new").map_or(&b""[..], |n| n.as_bytes()),
                )
            })),
            ("POST", "/increment") => answer(query.key().and_then(|key| {
                let delta = query
                    .get("delta")
                    .map_or(Ok(1), |d| d.parse::<i64>())
                    .map_err(|e| format!("delta: {e}"))?;
                let value = atomics::increment(&open()?, &key, delta).map_err(describe)?;
                Ok(json!({ "value": value }))
            })),
            ("GET", "/get") => answer(
                query
                    .key()
                    .and_then(|key| Ok(json!({ "value": read(&open()?, &key)? }))),
            ),
            _ => (404, json!({ "error": "no such route" })),
        };
        send_json(out, status, Vec::new(), body.to_string().as_bytes());
    }
}

/// 200 with the value, or 500 with the error: a store error is reported,
/// never turned into a verdict.
fn answer(result: Result<Value, String>) -> (u16, Value) {
    match result {
        Ok(value) => (200, value),
        Err(error) => (500, json!({ "error": error })),
    }
}

/// Read `key`, lose the race to a plain `set`, then swap (see the module
/// documentation).
fn cas_race(key: String) -> Result<Value, String> {
    let bucket = open()?;
    let cas = Cas::new(&bucket, &key).map_err(describe)?;
    let before = cas.current().map_err(describe)?;
    // Another writer, after the read the swap is conditional on: the swap
    // must now fail.
    bucket.set(&key, INTRUDER).map_err(describe)?;
    let swap = swap_verdict(atomics::swap(cas, MINE));
    Ok(json!({
        "swap": swap,
        "current": before.as_deref().map(String::from_utf8_lossy),
        "value_after": read(&bucket, &key)?,
    }))
}

/// ConnectZero's own compare-and-swap (`guest_support::kv`'s `swap`):
/// swap only when `current()` reads `expected`.
fn cas(key: &str, expected: Option<&[u8]>, new: &[u8]) -> Result<Value, String> {
    let bucket = open()?;
    let cas = Cas::new(&bucket, key).map_err(describe)?;
    let current = cas.current().map_err(describe)?;
    let swap = if current.as_deref() == expected {
        swap_verdict(atomics::swap(cas, new))
    } else {
        "unexpected".to_string()
    };
    Ok(json!({
        "swap": swap,
        "current": current.as_deref().map(String::from_utf8_lossy),
        "value_after": read(&bucket, key)?,
    }))
}

/// What a swap answered, in the words the tests compare.
fn swap_verdict(result: Result<(), CasError>) -> String {
    match result {
        Ok(()) => "ok".into(),
        Err(CasError::CasFailed(_)) => "cas-failed".into(),
        Err(CasError::StoreError(e)) => format!("error: {}", describe(e)),
    }
}

fn open() -> Result<Bucket, String> {
    store::open("default").map_err(describe)
}

/// `key`'s value as text, `None` when absent.
fn read(bucket: &Bucket, key: &str) -> Result<Option<String>, String> {
    Ok(bucket
        .get(key)
        .map_err(describe)?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

fn describe(error: Error) -> String {
    match error {
        Error::NoSuchStore => "no such store".into(),
        Error::AccessDenied => "access denied".into(),
        Error::Other(other) => other,
    }
}

/// The request's query parameters, percent-decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(path_with_query: &str) -> Self {
        let query = path_with_query.split_once('?').map_or("", |(_, q)| q);
        let decode = |s: &str| {
            urlencoding::decode(&s.replace('+', " ")).map_or_else(|_| s.to_string(), Into::into)
        };
        Self(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(name), decode(value))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&String> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The `key` parameter, which every store route needs.
    fn key(&self) -> Result<String, String> {
        self.get("key")
            .filter(|k| !k.is_empty())
            .cloned()
            .ok_or_else(|| "the key parameter is missing".into())
    }
}

// Exported only when building the component: a native build would
// otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(KvProbe);
