//! `connectzero backfill` and `connectzero replay`: the real binary against
//! simulators started by each test, with calls placed days in the past.

use anyhow::Context;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use connectzero::storage::Storage;
use connectzero_simulators::highlevel::{Fault, HighLevelConfig, HighLevelSim, SimContact};
use connectzero_simulators::threecx::{SimSegment, SimUser, ThreeCxConfig, ThreeCxSim};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");
const TENANT: &str = "acme";
/// A live cursor the tests plant, which a backfill must leave alone.
const LIVE_CURSOR: &[u8] = b"1764000000000";

struct Setup {
    pbx: ThreeCxSim,
    crm: HighLevelSim,
    config: PathBuf,
    db: PathBuf,
    next_id: i32,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> anyhow::Result<Self> {
        let pbx = ThreeCxSim::start(ThreeCxConfig::default()).await?;
        let crm = HighLevelSim::start(HighLevelConfig {
            rate_limit: None,
            ..HighLevelConfig::default()
        })
        .await?;
        let tokens = crm.install();
        pbx.add_user(SimUser::new(
            1,
            "101",
            "Alice",
            "Smith",
            "alice@acme.example",
        ));
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("connectzero.db");
        let config = dir.path().join("connectzero.toml");
        let c = crm.config();
        let text = format!(
            r#"
database = "{db}"

[[tenants]]
id = "{TENANT}"
[tenants.pbx]
base_url = "{pbx}"
client_id = "connectzero"
client_secret = "sim-3cx-secret"
[tenants.crm]
base_url = "{crm}"
location_id = "{location}"
conversation_provider_id = "{provider}"
client_id = "{client_id}"
client_secret = "{client_secret}"
refresh_token = "{refresh}"
[tenants.crm.rate_limit]
burst = 0
"#,
            db = db.display(),
            pbx = pbx.base_url(),
            crm = crm.base_url(),
            location = c.location_id,
            provider = c.conversation_provider_id,
            client_id = c.client_id,
            client_secret = c.client_secret,
            refresh = tokens.refresh_token,
        );
        std::fs::write(&config, text)?;
        // A live host has polled: its cursor must survive every backfill.
        Storage::open(&db)?.kv_set(TENANT, "poll/cursor", LIVE_CURSOR)?;
        Ok(Self {
            pbx,
            crm,
            config,
            db,
            next_id: 1000,
            _dir: dir,
        })
    }

    /// An answered inbound call from a known contact, `days_ago` days ago
    /// at `hour`:00 UTC. Returns its 3CX call id.
    fn past_call(&mut self, days_ago: i64, hour: u32) -> i32 {
        self.next_id += 1;
        let id = self.next_id;
        let number = format!("+1415555{id:04}");
        self.crm
            .add_contact(SimContact::new("Caller", format!("No{id}")).phone(number.clone()));
        let day = Utc::now().date_naive() - ChronoDuration::days(days_ago);
        let start: DateTime<Utc> = day.and_hms_opt(hour, 0, 0).unwrap().and_utc();
        let end = start + ChronoDuration::seconds(95);
        self.pbx.add_segment(SimSegment::inbound(
            id,
            id,
            (start, end),
            &number,
            "101",
            true,
        ));
        id
    }

    /// A call whose first leg (an IVR) starts just before midnight UTC,
    /// `days_ago` days ago, and whose second leg (the agent) starts just
    /// after: it crosses the edge between two daily chunks.
    fn call_across_midnight(&mut self, days_ago: i64) -> i32 {
        self.next_id += 2;
        let (id, second) = (self.next_id - 1, self.next_id);
        let number = format!("+1415555{id:04}");
        self.crm
            .add_contact(SimContact::new("Caller", format!("No{id}")).phone(number.clone()));
        let midnight = (Utc::now().date_naive() - ChronoDuration::days(days_ago - 1))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let ivr = (
            midnight - ChronoDuration::seconds(40),
            midnight + ChronoDuration::seconds(5),
        );
        let agent = (ivr.1, ivr.1 + ChronoDuration::seconds(60));
        self.pbx
            .add_segment(SimSegment::inbound(id, id, ivr, &number, "800", false));
        self.pbx
            .add_segment(SimSegment::inbound(second, id, agent, &number, "101", true));
        id
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg(args[0])
            .arg("--config")
            .arg(&self.config)
            .args(["--tenant", TENANT])
            .args(&args[1..])
            .env_remove("CONNECTZERO_KEY")
            .env_remove("RUST_LOG");
        command
    }

    /// Run the binary to the end: success, stdout, stderr.
    async fn run(&self, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
        let mut command = self.command(args);
        // The simulators run on this test's runtime: wait off it.
        let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ))
    }

    fn storage(&self) -> anyhow::Result<Storage> {
        Storage::open(&self.db)
    }

    /// Messages in the CRM per call key (from each message's `Ref:` line).
    fn messages_per_call(&self) -> HashMap<String, usize> {
        let mut per_call = HashMap::new();
        for message in self.crm.messages() {
            let body = message.body.unwrap_or_default();
            let key = body
                .split_once("Ref: ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no Ref in {body:?}"))
                .to_string();
            *per_call.entry(key).or_insert(0) += 1;
        }
        per_call
    }

    fn assert_cursor_untouched(&self) -> anyhow::Result<()> {
        assert_eq!(
            self.storage()?.kv_get(TENANT, "poll/cursor")?.as_deref(),
            Some(LIVE_CURSOR),
            "a backfill moved the live cursor"
        );
        Ok(())
    }

    /// Keys of workflow trigger events queued (or already worked: with no
    /// workflow subscribed an event is done at once).
    fn queued_triggers(&self) -> anyhow::Result<Vec<String>> {
        let mut keys = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.storage()?.kv_list(TENANT, after.as_deref())?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            keys.extend(
                page.into_iter()
                    .filter(|k| k.starts_with("trigger/job/") || k.starts_with("trigger/done/")),
            );
            after = Some(last);
        }
        Ok(keys)
    }
}

fn day(days_ago: i64) -> String {
    (Utc::now().date_naive() - ChronoDuration::days(days_ago)).to_string()
}

#[tokio::test]
async fn a_backfill_posts_each_call_once_and_a_rerun_posts_nothing() -> anyhow::Result<()> {
    let mut setup = Setup::start().await?;
    let mut ids = Vec::new();
    for days_ago in [9, 8, 6] {
        ids.push(setup.past_call(days_ago, 9));
        ids.push(setup.past_call(days_ago, 15));
    }
    // Read in two chunks (days), posted once, whole.
    ids.push(setup.call_across_midnight(8));
    // Outside the window: must not be posted.
    setup.past_call(2, 9);
    // A call ringing now: a backfill raises no call.started for it.
    setup
        .pbx
        .add_active_call(connectzero_simulators::threecx::SimActiveCall {
            id: 77,
            caller: "+14155550199".into(),
            callee: "101 Alice Smith".into(),
            status: "Talking".into(),
            established_at: Utc::now(),
        });
    let (since, until) = (day(10), day(5));
    let args = ["backfill", "--since", &since, "--until", &until];

    let (ok, stdout, stderr) = setup.run(&args).await?;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("7 calls read: 7 posted, 0 skipped, 0 parked, 0 already handled"),
        "{stdout}"
    );
    // One progress line per day of the window (no terminal: plain lines).
    assert!(stderr.contains("chunk 6/6 done"), "{stderr}");
    assert!(stderr.contains("ETA"), "{stderr}");
    let per_call = setup.messages_per_call();
    assert_eq!(per_call.len(), 7, "{per_call:?}");
    for id in &ids {
        let posted: usize = per_call
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("3cx:{id}@")))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(posted, 1, "call {id}: {per_call:?}");
    }
    let log = setup.storage()?.calls(TENANT)?;
    assert!(log.iter().all(|r| r.outcome == "posted"), "{log:?}");
    assert_eq!(log.len(), 7, "{log:?}");
    // The call across midnight was posted with both legs: answered by
    // the agent of its second leg.
    let across = ids[6];
    let message = setup
        .crm
        .messages()
        .into_iter()
        .find(|m| {
            m.body
                .as_deref()
                .is_some_and(|b| b.contains(&format!("Ref: 3cx:{across}@")))
        })
        .context("the call across midnight was posted")?;
    assert!(
        message
            .body
            .as_deref()
            .context("the message has a body")?
            .contains("answered by"),
        "{message:?}"
    );
    setup.assert_cursor_untouched()?;
    assert!(
        setup.queued_triggers()?.is_empty(),
        "{:?}",
        setup.queued_triggers()?
    );

    // The same command again: the window is recorded as done.
    let (ok, stdout, stderr) = setup.run(&args).await?;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("0 posted"), "{stdout}");
    // Read it all again: the ledger knows every call.
    let (ok, stdout, stderr) = setup.run(&[&args[..], &["--restart"]].concat()).await?;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("7 calls read: 0 posted, 0 skipped, 0 parked, 7 already handled"),
        "{stdout}"
    );
    assert_eq!(setup.crm.messages().len(), 7);
    setup.assert_cursor_untouched()?;

    // --with-triggers queues call.ended for what it posts (here: the call
    // outside the first window), never call.started.
    let (ok, stdout, stderr) = setup
        .run(&["backfill", "--since", &day(3), "--with-triggers"])
        .await?;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("1 posted"), "{stdout}");
    let queued = setup.queued_triggers()?;
    assert!(
        !queued.is_empty() && queued.iter().all(|k| k.contains("call.ended/")),
        "{queued:?}"
    );
    setup.assert_cursor_untouched()?;
    Ok(())
}

#[tokio::test]
async fn an_interrupted_backfill_resumes_and_posts_every_call_exactly_once() -> anyhow::Result<()> {
    let mut setup = Setup::start().await?;
    let mut ids = Vec::new();
    for days_ago in 4..24 {
        ids.push(setup.past_call(days_ago, 10));
        ids.push(setup.past_call(days_ago, 14));
    }
    let (since, until) = (day(24), day(3));
    // Four-hour chunks: 126 of them, so the kill lands well before the end.
    let args = [
        "backfill",
        "--since",
        &since,
        "--until",
        &until,
        "--chunk-hours",
        "4",
    ];

    let mut child = setup
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("stderr is piped")?;
    let (status, seen) = tokio::task::spawn_blocking(move || {
        // Bounded: the child's output is finite, and we stop at the first
        // progress line that reports calls posted.
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().take(10_000) {
            let line = line.unwrap();
            let progressed = line.contains("done (up to") && !line.contains(": 0 posted");
            seen.push(line);
            if progressed {
                child.kill().unwrap();
                break;
            }
        }
        (child.wait().unwrap(), seen)
    })
    .await?;
    assert!(
        !status.success(),
        "the run finished before it could be killed: {seen:?}"
    );
    let after_kill = setup.crm.messages().len();
    assert!(
        after_kill > 0 && after_kill < ids.len(),
        "{after_kill} posted before the kill"
    );

    let (ok, stdout, stderr) = setup.run(&args).await?;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("resumed at"), "{stdout}");
    let per_call = setup.messages_per_call();
    for id in &ids {
        let posted: usize = per_call
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("3cx:{id}@")))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(posted, 1, "call {id}: {per_call:?}");
    }
    assert_eq!(setup.crm.messages().len(), ids.len());
    setup.assert_cursor_untouched()?;
    Ok(())
}

#[tokio::test]
async fn replay_posts_a_parked_call_once_and_refuses_a_posted_one() -> anyhow::Result<()> {
    let mut setup = Setup::start().await?;
    let id = setup.past_call(3, 11);
    // HighLevel answers 422 once (on a GET, whose answer arrives whole
    // whatever the timing; a 422 before a POST body is read can reach the
    // client as a broken connection, which is retried, not parked).
    setup.crm.inject_failures_on(
        "/conversations/search",
        Fault::Unprocessable("contactId is not valid".into()),
        1,
    );
    let (ok, stdout, stderr) = setup.run(&["backfill", "--since", &day(4)]).await?;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("1 parked"), "{stdout}\n{stderr}");
    assert!(setup.crm.messages().is_empty());
    let key = setup
        .storage()?
        .calls(TENANT)?
        .into_iter()
        .find(|r| r.call_key.starts_with(&format!("3cx:{id}@")))
        .map(|r| {
            assert_eq!(r.outcome, "parked", "{r:?}");
            r.call_key
        })
        .context("a call was parked")?;

    let (ok, stdout, stderr) = setup.run(&["replay", "--call", &key]).await?;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("{key}: posted as message")),
        "{stdout}"
    );
    assert_eq!(setup.messages_per_call().get(&key), Some(&1));
    assert_eq!(
        setup.storage()?.call_outcome(TENANT, &key)?.as_deref(),
        Some("posted")
    );

    // Posted now: a replay would duplicate it, so it is refused.
    let (ok, stdout, stderr) = setup.run(&["replay", "--call", &key]).await?;
    assert!(!ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("was posted") && stderr.contains("twice"),
        "{stderr}"
    );
    // Neither a re-read of the window posts it again.
    let (ok, stdout, _) = setup
        .run(&["backfill", "--since", &day(4), "--restart"])
        .await?;
    assert!(ok && stdout.contains("0 posted"), "{stdout}");
    assert_eq!(setup.crm.messages().len(), 1);

    let (ok, _, stderr) = setup.run(&["replay", "--call", "3cx:1@5"]).await?;
    assert!(!ok && stderr.contains("no call 3cx:1@5"), "{stderr}");
    setup.assert_cursor_untouched()?;
    Ok(())
}

#[test]
fn bad_windows_are_refused_with_what_to_type() -> anyhow::Result<()> {
    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(["backfill", "--config", "absent.toml", "--tenant", TENANT])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(&["--since", "last week"]);
    assert!(stderr.contains("YYYY-MM-DD"), "{stderr}");
    let stderr = run(&["--since", "2999-01-01"]);
    assert!(stderr.contains("in the future"), "{stderr}");
    let stderr = run(&["--since", "2026-01-05", "--until", "2026-01-01"]);
    assert!(stderr.contains("not before --until"), "{stderr}");
    Ok(())
}
