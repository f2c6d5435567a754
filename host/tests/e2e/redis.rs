//! `wasi:keyvalue/atomics` as Spin provides it, measured on each of its
//! key-value backends: Spin's SQLite store and its Redis store. Every
//! exactly-once claim ConnectZero makes on Spin rests on one rule: a
//! compare-and-swap whose key changed after `current()` fails and leaves
//! the other writer's value. The fixture `tests/kv-probe` (a `wasi:http`
//! component) runs under a real `spin up` and reports what each swap
//! answered and what the store holds afterwards.
//!
//! What was measured (Spin 4.1.0-pre0, Redis 7.0), and what these tests
//! pin down:
//!
//! - SQLite: a swap after the key was *changed* fails, one with the
//!   right expectation succeeds, `increment` adds. But a swap after
//!   `current()` read the key as *absent* is an upsert (`INSERT … ON
//!   CONFLICT DO UPDATE`): it overwrites a value another writer created
//!   meanwhile and reports success.
//! - Redis: every swap is reported as `cas-failed`, also one that wrote
//!   its value. Spin ends each swap with `UNWATCH <key>`, which Redis
//!   refuses (`UNWATCH` takes no argument), and Spin turns that refusal
//!   into `cas-failed` whatever the transaction did. A swap that lost the
//!   race does leave the other writer's value (`WATCH` aborts the
//!   `EXEC`), so a lost race is reported correctly, but only because no
//!   swap is ever reported as won. `increment` adds.
//!
//! These are Spin's defects, which ConnectZero must work around; the
//! tests assert the behaviour as observed so that a Spin release that
//! changes it is noticed.
//!
//! [`Redis`] is a `redis-server` on a loopback port for any test of the
//! binary. Without `redis-server` (Debian's package) the Redis tests
//! print why and pass, except under `CI`, where they fail; likewise
//! without the Spin CLI (`../shared/tools/spin/spin`).

use crate::binary::Running;
use crate::common::build_component;
use crate::spin::{spin_cli, workspace_root};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long `redis-server` may take to answer `PING`.
const REDIS_START: Duration = Duration::from_secs(20);

/// How long `spin up` may take to serve the probe (it compiles it first).
const SPIN_START: Duration = Duration::from_secs(120);

/// Pause between two polls of a server that is starting.
const POLL: Duration = Duration::from_millis(50);

/// `redis-server` on a free loopback port, keeping nothing on disk (no
/// snapshots, no append-only file; its working directory is a temporary
/// one). Killed and reaped when dropped.
pub(crate) struct Redis {
    // Declared before `dir`: the server stops before its directory goes.
    process: Running,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Start `redis-server` and wait (at most [`REDIS_START`]) until it
    /// answers `PING`. `Ok(None)`, with the reason printed, when
    /// `redis-server` is not installed (a failure under `CI`).
    pub(crate) fn start() -> anyhow::Result<Option<Self>> {
        let Some(server) = redis_server() else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let log = dir.path().join("redis.log");
        let child = Command::new(&server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            // Nothing on disk: no RDB snapshots, no append-only file.
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(["--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("redis.err"))?)
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        let mut redis = Self {
            process: Running(child),
            port,
            dir,
        };
        redis.wait_ready()?;
        Ok(Some(redis))
    }

    /// `redis://127.0.0.1:<port>`, as Spin's runtime configuration and
    /// Redis clients take it.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `SET key value` on a fresh connection.
    pub(crate) fn set(&self, key: &str, value: &[u8]) -> anyhow::Result<()> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut command = Vec::new();
        for part in [b"SET".as_slice(), key.as_bytes(), value] {
            command.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
            command.extend_from_slice(part);
            command.extend_from_slice(b"\r\n");
        }
        stream.write_all(b"*3\r\n")?;
        stream.write_all(&command)?;
        let mut answer = [0u8; 5];
        stream.read_exact(&mut answer)?;
        anyhow::ensure!(&answer == b"+OK\r\n", "SET {key} answered {answer:?}");
        Ok(())
    }

    /// Poll with `PING` until `+PONG` comes back; an error when the
    /// server exits or [`REDIS_START`] passes first.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + REDIS_START;
        while Instant::now() < deadline {
            if let Some(status) = self.process.0.try_wait()? {
                bail!(
                    "redis-server exited ({status}) before serving:\n{}",
                    self.logs()
                );
            }
            if ping(self.port).is_ok() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        bail!(
            "redis-server did not answer PING in {REDIS_START:?}:\n{}",
            self.logs()
        )
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "--- log\n{}\n--- stderr\n{}",
            read("redis.log").unwrap_or_default(),
            read("redis.err").unwrap_or_default()
        )
    }
}

/// One `PING` on a fresh connection: `Ok` when the answer is `+PONG`.
fn ping(port: u16) -> anyhow::Result<()> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(b"PING\r\n")?;
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer)?;
    anyhow::ensure!(&answer == b"+PONG\r\n", "answered {answer:?}");
    Ok(())
}

/// `redis-server` from `PATH`, or `None` (with the reason printed) when
/// it is not installed. Under `CI` its absence fails the test: `.ci/run`
/// installs it.
pub(crate) fn redis_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have redis-server: install Debian's redis-server package \
             (apt-get install redis-server; .ci/run does)"
        );
        eprintln!("skipping: no redis-server on PATH (install Debian's redis-server package)");
    }
    found
}

/// A port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The probe component, built once per test binary.
fn probe_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        build_component("connectzero-kv-probe", "connectzero_kv_probe")
            .expect("the key-value probe builds")
    })
}

/// Where Spin keeps the probe's `default` store.
enum Backend<'a> {
    /// Spin's own store: SQLite, in this file.
    Sqlite(&'a Path),
    /// Spin's Redis store, on this server.
    Redis(&'a Redis),
}

impl Backend<'_> {
    /// The runtime configuration naming the backend.
    fn runtime_config(&self) -> String {
        match self {
            Backend::Sqlite(path) => format!(
                "[key_value_store.default]\ntype = \"spin\"\npath = {:?}\n",
                path.display().to_string()
            ),
            Backend::Redis(redis) => format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = {:?}\n",
                redis.url()
            ),
        }
    }
}

/// `spin up` of `tests/kv-probe/spin.toml` on one backend, stopped by PID
/// when dropped.
struct Probe {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Probe {
    /// Start the probe on `backend` and wait (at most [`SPIN_START`])
    /// until it serves `/healthz`.
    fn start(spin: &Path, backend: Backend<'_>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // The project's manifest, with `source` made absolute: a relative
        // one resolves against the manifest's directory, here a temporary
        // one.
        let mut manifest: toml::Table =
            std::fs::read_to_string(workspace_root().join("tests/kv-probe/spin.toml"))?.parse()?;
        manifest["component"]["kv-probe"]
            .as_table_mut()
            .context("the manifest has the kv-probe component")?
            .insert("source".into(), probe_wasm().display().to_string().into());
        std::fs::write(dir.path().join("spin.toml"), toml::to_string(&manifest)?)?;
        std::fs::write(
            dir.path().join("runtime-config.toml"),
            backend.runtime_config(),
        )?;
        let port = free_port()?;
        let child = Command::new(spin)
            .current_dir(dir.path())
            .args(["up", "-f", "spin.toml", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--runtime-config-file", "runtime-config.toml"])
            .arg("--log-dir")
            .arg(dir.path().join("logs"))
            .env("SPIN_DATA_DIR", dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("spin.out"))?)
            .stderr(std::fs::File::create(dir.path().join("spin.err"))?)
            .spawn()
            .context("spin up starts")?;
        let mut probe = Self { child, port, dir };
        probe.wait_healthy()?;
        Ok(probe)
    }

    fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + SPIN_START;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("spin up exited ({status}) before serving:\n{}", self.logs());
            }
            if let Ok((200, _)) = self.request("GET", "/healthz") {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        bail!("spin up did not serve in {SPIN_START:?}:\n{}", self.logs())
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            read("spin.out").unwrap_or_default(),
            read("spin.err").unwrap_or_default()
        )
    }

    /// One request (no body); the status and the JSON answer.
    fn request(&self, method: &str, path: &str) -> anyhow::Result<(u16, Value)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-length: 0\r\n\
             connection: close\r\n\r\n",
            self.port
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .with_context(|| format!("no end of headers in {answer:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no status line in {answer:?}"))?;
        anyhow::ensure!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "a chunked answer (the probe sends content-length): {answer:?}"
        );
        let body = serde_json::from_str(body).with_context(|| format!("not JSON: {answer:?}"))?;
        Ok((status, body))
    }

    /// `POST` to a probe route; its JSON answer, which must come with 200
    /// (a store error is a 500, never a verdict).
    fn post(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.request("POST", path)?;
        anyhow::ensure!(
            status == 200,
            "POST {path}: {status} {body}\n{}",
            self.logs()
        );
        Ok(body)
    }

    /// The key's value as text (`null` when absent).
    fn get(&self, key: &str) -> anyhow::Result<Value> {
        let (status, body) = self.request("GET", &format!("/get?key={key}"))?;
        anyhow::ensure!(status == 200, "GET {key}: {status} {body}\n{}", self.logs());
        Ok(body["value"].clone())
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // SIGTERM lets `spin up` stop its `spin trigger http` child too
        // (SIGKILL would leave the trigger serving).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The probe on Spin's SQLite store (in `dir`), or `None` without the
/// Spin CLI.
fn on_sqlite(dir: &Path) -> anyhow::Result<Option<Probe>> {
    let Some(spin) = spin_cli() else {
        return Ok(None);
    };
    Probe::start(&spin, Backend::Sqlite(&dir.join("kv.db"))).map(Some)
}

/// The probe on Spin's Redis store (on `redis`), or `None` without the
/// Spin CLI.
fn on_redis(redis: &Redis) -> anyhow::Result<Option<Probe>> {
    let Some(spin) = spin_cli() else {
        return Ok(None);
    };
    Probe::start(&spin, Backend::Redis(redis)).map(Some)
}

/// Set `key` to `value` through a create-only compare-and-swap, checking
/// only that the value is there afterwards (what the swap answered is
/// backend-specific: see the module documentation).
fn seed(probe: &Probe, key: &str, value: &str) -> anyhow::Result<()> {
    probe.post(&format!("/cas?key={key}&new={value}"))?;
    assert_eq!(probe.get(key)?, json!(value), "seeding {key}");
    Ok(())
}

/// The guard's server answers on its URL's port until the guard drops.
#[test]
fn the_redis_guard_serves_until_dropped() -> anyhow::Result<()> {
    let Some(redis) = Redis::start()? else {
        return Ok(());
    };
    let port: u16 = redis
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .context("the URL ends with the port")?;
    ping(port)?;
    drop(redis);
    assert!(
        ping(port).is_err(),
        "redis-server still answers once dropped"
    );
    Ok(())
}

/// Spin's SQLite store keeps the rule ConnectZero relies on when the key
/// existed: a swap after another writer changed it fails and leaves that
/// writer's value; a swap with the right expectation succeeds; one with
/// a wrong expectation is not attempted and writes nothing; `increment`
/// adds.
#[test]
fn spins_sqlite_store_fails_a_compare_and_swap_whose_key_changed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let Some(probe) = on_sqlite(dir.path())? else {
        return Ok(());
    };
    seed(&probe, "raced", "before")?;
    let race = probe.post("/cas-race?key=raced")?;
    assert_eq!(race["current"], "before", "{race}");
    assert_eq!(race["swap"], "cas-failed", "{race}");
    assert_eq!(race["value_after"], "intruder", "{race}");

    let right = probe.post("/cas?key=raced&expect=intruder&new=second")?;
    assert_eq!(right["swap"], "ok", "{right}");
    assert_eq!(right["value_after"], "second", "{right}");
    let wrong = probe.post("/cas?key=raced&expect=stale&new=third")?;
    assert_eq!(wrong["swap"], "unexpected", "{wrong}");
    assert_eq!(wrong["value_after"], "second", "{wrong}");

    assert_eq!(probe.post("/increment?key=counter&delta=5")?["value"], 5);
    assert_eq!(probe.post("/increment?key=counter&delta=-2")?["value"], 3);
    Ok(())
}

/// Spin's defect, which ConnectZero must work around: on the SQLite
/// store, a swap after `current()` read the key as absent is an upsert
/// (`INSERT … ON CONFLICT DO UPDATE`). A value another writer created
/// meanwhile is overwritten and the swap reported as won, so two
/// create-only claims of one key can both succeed.
#[test]
fn spins_sqlite_compare_and_swap_overwrites_a_key_created_after_it_read_none() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let Some(probe) = on_sqlite(dir.path())? else {
        return Ok(());
    };
    let race = probe.post("/cas-race?key=fresh")?;
    assert_eq!(race["current"], Value::Null, "{race}");
    // Correct semantics would be "cas-failed" and "intruder".
    assert_eq!(race["swap"], "ok", "{race}");
    assert_eq!(race["value_after"], "mine", "{race}");
    Ok(())
}

/// On Spin's Redis store a swap that lost the race leaves the other
/// writer's value and is reported as failed, whether the key existed or
/// not (`WATCH` aborts the `EXEC`); a wrong expectation writes nothing;
/// `increment` adds (stored as Redis's decimal text).
#[test]
fn spins_redis_store_fails_a_compare_and_swap_whose_key_changed() -> anyhow::Result<()> {
    let Some(redis) = Redis::start()? else {
        return Ok(());
    };
    let Some(probe) = on_redis(&redis)? else {
        return Ok(());
    };
    seed(&probe, "raced", "before")?;
    let race = probe.post("/cas-race?key=raced")?;
    assert_eq!(race["current"], "before", "{race}");
    assert_eq!(race["swap"], "cas-failed", "{race}");
    assert_eq!(race["value_after"], "intruder", "{race}");

    let fresh = probe.post("/cas-race?key=fresh")?;
    assert_eq!(fresh["current"], Value::Null, "{fresh}");
    assert_eq!(fresh["swap"], "cas-failed", "{fresh}");
    assert_eq!(fresh["value_after"], "intruder", "{fresh}");

    let wrong = probe.post("/cas?key=raced&expect=stale&new=third")?;
    assert_eq!(wrong["swap"], "unexpected", "{wrong}");
    assert_eq!(wrong["value_after"], "intruder", "{wrong}");

    assert_eq!(probe.post("/increment?key=counter&delta=5")?["value"], 5);
    assert_eq!(probe.post("/increment?key=counter&delta=-2")?["value"], 3);
    assert_eq!(probe.get("counter")?, "3");
    Ok(())
}

/// Spin's defect, which ConnectZero must work around: on the Redis store
/// every swap is reported as `cas-failed`, also one that wrote its value
/// (Spin's closing `UNWATCH <key>` is refused by Redis, and Spin reports
/// the refusal as a failed swap). A claim that won believes it lost, and
/// a read-modify-write loop that retries on failure applies its change
/// again on every attempt.
#[test]
fn spins_redis_compare_and_swap_reports_a_won_swap_as_failed() -> anyhow::Result<()> {
    let Some(redis) = Redis::start()? else {
        return Ok(());
    };
    let Some(probe) = on_redis(&redis)? else {
        return Ok(());
    };
    // Created, no other writer: correct semantics would be "ok".
    let create = probe.post("/cas?key=won&new=first")?;
    assert_eq!(create["current"], Value::Null, "{create}");
    assert_eq!(create["swap"], "cas-failed", "{create}");
    assert_eq!(create["value_after"], "first", "{create}");
    // Replaced with the right expectation: the same.
    let replace = probe.post("/cas?key=won&expect=first&new=second")?;
    assert_eq!(replace["swap"], "cas-failed", "{replace}");
    assert_eq!(replace["value_after"], "second", "{replace}");
    // The refusal itself, as Redis answers it.
    assert_eq!(
        redis_command(&redis, "UNWATCH won")?,
        "-ERR wrong number of arguments for 'unwatch' command"
    );
    Ok(())
}

/// One inline command on a fresh connection; the first line of the
/// answer.
fn redis_command(redis: &Redis, command: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", redis.port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n") {
        stream.read_exact(&mut byte)?;
        answer.push(byte[0]);
    }
    answer.truncate(answer.len() - 2);
    Ok(String::from_utf8(answer)?)
}
