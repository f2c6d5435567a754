//! The status and settings page (`connectzero::web`): in-process through
//! the real components, and in headless Chromium against the real binary.

use crate::common;
use anyhow::Context;

use common::{ext, one_leg, outside, place, seeded_world, serve_admin};
use connectzero::demo::{Placer, numbers};
use connectzero::pipeline::Pipeline;
use connectzero::testbed::World;
use connectzero::web::LiveTenant;
use connectzero_simulators::highlevel::Fault;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_connectzero");
const TOKEN: &str = "test-admin-token-0123456789";

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> anyhow::Result<String> {
    let at = html
        .find("name=\"csrf\" value=\"")
        .context("a form with a CSRF token")?
        + 19;
    Ok(html[at..].split('"').next().unwrap().to_string())
}

/// Tick through the scheduler's view of the tenant (saved settings and
/// retries applied first) until `done`, at most `max` times.
async fn tick_live_until(
    pipeline: &Pipeline,
    live: &mut LiveTenant,
    max: usize,
    done: impl Fn() -> bool,
) -> anyhow::Result<()> {
    for _ in 0..max {
        let tenant = live.before_tick(pipeline.storage());
        pipeline.tick(&tenant).await?;
        if done() {
            return Ok(());
        }
    }
    panic!("condition not reached after {max} ticks");
}

fn outcome(world: &World, key: &str) -> Option<String> {
    world.storage.call_outcome("demo", key).unwrap()
}

#[tokio::test]
async fn the_page_needs_the_token_and_never_shows_it() -> anyhow::Result<()> {
    let (world, _) = seeded_world(common::defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let http = client()?;

    let anonymous = http.get(format!("{base}/admin/t/demo")).send().await?;
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/admin/login");
    let wrong = http
        .get(format!("{base}/admin"))
        .bearer_auth("test-admin-token-012345678X")
        .send()
        .await?;
    assert_eq!(wrong.status(), 303);

    let refused = http
        .post(format!("{base}/admin/login"))
        .form(&[("token", "not-the-admin-token-at-all")])
        .send()
        .await?;
    assert_eq!(refused.status(), 401);
    assert!(
        refused
            .text()
            .await?
            .contains("That is not the admin token")
    );

    let signed_in = http
        .post(format!("{base}/admin/login"))
        .form(&[("token", TOKEN)])
        .send()
        .await?;
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str()?.to_string();
    assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(TOKEN), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_string();

    let page = http
        .get(format!("{base}/admin/t/demo"))
        .header("cookie", &session)
        .send()
        .await?;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await?;
    assert!(html.contains("Last successful poll"), "{html}");
    assert!(!html.contains(TOKEN));
    assert!(!html.contains(connectzero::testbed::ACTION_SECRET));
    assert!(!html.contains("<script"));

    // A form without the CSRF token is refused, even with a session.
    let forged = http
        .post(format!("{base}/admin/t/demo/settings"))
        .header("cookie", &session)
        .form(&[("default_country", "GB"), ("csrf", "forged")])
        .send()
        .await?;
    assert_eq!(forged.status(), 403);
    assert_eq!(
        connectzero::web::SettingsOverride::load(&world.storage, "demo")?,
        None
    );
    Ok(())
}

#[tokio::test]
async fn saved_settings_say_what_to_fix_and_apply_from_the_next_tick() -> anyhow::Result<()> {
    let (world, _) = seeded_world(common::defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let http = client()?;
    let page = |http: &reqwest::Client| {
        http.get(format!("{base}/admin/t/demo"))
            .bearer_auth(TOKEN)
            .send()
    };
    let csrf = csrf_of(&page(&http).await?.text().await?)?;
    let mut live = LiveTenant::new(world.tenant.clone());
    let mut placer = Placer::default();

    // Off by default: an internal call is skipped.
    let first = place(
        &world,
        &mut placer,
        &one_leg(1, ext("102"), ext("101"), true, 20),
    );
    tick_live_until(&world.pipeline, &mut live, 5, || {
        outcome(&world, &first.key).is_some()
    })
    .await?;
    assert_eq!(outcome(&world, &first.key).as_deref(), Some("skipped"));

    let bad = http
        .post(format!("{base}/admin/t/demo/settings"))
        .bearer_auth(TOKEN)
        .form(&[
            ("csrf", csrf.as_str()),
            ("log_internal_calls", "on"),
            ("default_country", "USA"),
            ("no_match_policy", "skip"),
            ("recording_window_secs", "600"),
            ("poll_interval_ms", "fast"),
        ])
        .send()
        .await?;
    assert_eq!(bad.status(), 422);
    let html = bad.text().await?;
    assert!(html.contains("not a two-letter country code"), "{html}");
    assert!(html.contains("fast&quot; is not a whole number"), "{html}");
    // What was typed stays in the form.
    assert!(html.contains("value=\"USA\""), "{html}");
    assert!(
        !live
            .before_tick(world.pipeline.storage())
            .settings
            .log_internal_calls
    );

    let saved = http
        .post(format!("{base}/admin/t/demo/settings"))
        .bearer_auth(TOKEN)
        .form(&[
            ("csrf", csrf.as_str()),
            ("log_internal_calls", "on"),
            ("default_country", "us"),
            ("no_match_policy", "skip"),
            ("recording_window_secs", "900"),
            ("poll_interval_ms", "500"),
            ("call_timeline", "on"),
            ("tie_breakers", "recent-conversation"),
        ])
        .send()
        .await?;
    assert_eq!(saved.status(), 303);

    // The next tick runs with them: the next internal call is posted.
    let second = place(
        &world,
        &mut placer,
        &one_leg(2, ext("102"), ext("101"), true, 20),
    );
    tick_live_until(&world.pipeline, &mut live, 5, || {
        outcome(&world, &second.key).is_some()
    })
    .await?;
    assert_eq!(outcome(&world, &second.key).as_deref(), Some("posted"));
    let tenant = live.before_tick(world.pipeline.storage());
    assert_eq!(tenant.config.settings.poll_interval_ms, 500);
    assert_eq!(tenant.settings.recording_window_secs, 900);
    assert_eq!(tenant.config.settings.tie_breakers, ["recent-conversation"]);
    assert!(tenant.settings.call_timeline);
    // Persisted: a fresh view of the tenant (a restart) picks them up.
    let restarted = LiveTenant::new(world.tenant.clone()).before_tick(world.pipeline.storage());
    assert!(restarted.settings.log_internal_calls);
    let html = page(&http).await?.text().await?;
    assert!(
        html.contains(
            "id=\"log_internal_calls\" type=\"checkbox\" name=\"log_internal_calls\" checked"
        ),
        "{html}"
    );
    Ok(())
}

#[tokio::test]
async fn a_parked_call_is_retried_exactly_once() -> anyhow::Result<()> {
    let (world, _) = seeded_world(common::defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let http = client()?;
    let mut live = LiveTenant::new(world.tenant.clone());
    world.crm.inject_failures_on(
        "/conversations/messages/inbound",
        Fault::Unprocessable("refused once".into()),
        1,
    );
    let call = place(
        &world,
        &mut Placer::default(),
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
    );
    tick_live_until(&world.pipeline, &mut live, 5, || {
        outcome(&world, &call.key).is_some()
    })
    .await?;
    assert_eq!(outcome(&world, &call.key).as_deref(), Some("parked"));
    // Parked stays parked: more ticks do not retry it by themselves.
    for _ in 0..2 {
        world
            .pipeline
            .tick(&live.before_tick(world.pipeline.storage()))
            .await?;
    }
    assert!(world.crm.messages().is_empty());

    let html = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    assert!(html.contains("refused once"), "{html}");
    assert!(
        html.contains(&format!("name=\"call_key\" value=\"{}\"", call.key)),
        "{html}"
    );
    let csrf = csrf_of(&html)?;
    let retry = || {
        http.post(format!("{base}/admin/t/demo/retry"))
            .bearer_auth(TOKEN)
            .form(&[("csrf", csrf.as_str()), ("call_key", call.key.as_str())])
            .send()
    };
    assert_eq!(retry().await?.status(), 303);
    // A double click finds nothing left to queue.
    let again = retry().await?;
    assert_eq!(again.status(), 409);
    assert!(again.text().await?.contains("is not parked"));

    tick_live_until(&world.pipeline, &mut live, 5, || {
        outcome(&world, &call.key).as_deref() == Some("posted")
    })
    .await?;
    for _ in 0..3 {
        world
            .pipeline
            .tick(&live.before_tick(world.pipeline.storage()))
            .await?;
    }
    assert_eq!(world.crm.messages().len(), 1, "posted exactly once");
    Ok(())
}

// ---- headless Chromium against the real binary ----

use crate::binary::Running;

/// `name` on the PATH, if there.
fn on_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A WebDriver session (chromedriver over loopback).
struct Browser {
    http: reqwest::Client,
    session: String,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await?.json().await?;
        if response["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", response["value"]);
        }
        Ok(response["value"].clone())
    }

    async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await?;
        Ok(())
    }

    async fn find(&self, css: &str) -> anyhow::Result<String> {
        let found = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        Ok(found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string())
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        let id = self.find(css).await?;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let id = self.find(css).await?;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await?;
        Ok(())
    }

    async fn source(&self) -> anyhow::Result<String> {
        Ok(self
            .cmd(reqwest::Method::GET, "/source", None)
            .await?
            .as_str()
            .context("the page source is a string")?
            .to_string())
    }

    /// Click `css` and wait (bounded) for the page it leads to to contain
    /// `needle`: a form's navigation may still be running when the click
    /// returns.
    async fn click_then(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        self.click(css).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = self.source().await?;
            if source.contains(needle) {
                return Ok(source);
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} after clicking {css}:\n{source}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The laid-out width and height of the element `css`.
    async fn size(&self, css: &str) -> anyhow::Result<(f64, f64)> {
        let id = self.find(css).await?;
        let rect = self
            .cmd(reqwest::Method::GET, &format!("/element/{id}/rect"), None)
            .await?;
        Ok((
            rect["width"].as_f64().context("a width")?,
            rect["height"].as_f64().context("a height")?,
        ))
    }

    /// Save a PNG of the window under `target/test-artefacts/`.
    async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        use base64::Engine;
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().context("the screenshot is base64 text")?)?;
        assert!(png.starts_with(b"\x89PNG"));
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .context("the target directory")?
            .join("test-artefacts");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), &png)?;
        eprintln!("screenshot: {}", dir.join(name).display());
        Ok(())
    }

    /// Reload `url` until its source contains `needle` (bounded).
    async fn wait_for(&self, url: &str, needle: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.goto(url).await?;
            let source = self.source().await?;
            if source.contains(needle) {
                return Ok(source);
            }
            assert!(Instant::now() < deadline, "no {needle:?} in:\n{source}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The "Posted today" figure on the tenant page.
fn posted_today(source: &str) -> anyhow::Result<u32> {
    let at = source
        .find("id=\"today-posted\">")
        .context("the posted-today card")?
        + 18;
    Ok(source[at..].split('<').next().unwrap().trim().parse()?)
}

/// Posted calls in the charts' table of figures, every hour summed.
fn charted_posted(source: &str) -> anyhow::Result<u32> {
    let table = source
        .split("id=\"charts-table\"")
        .nth(1)
        .context("the charts' table")?;
    let mut total = 0;
    // Each hour's row: the hour's cell, then the posted calls' cell.
    for row in table.split("<tr data-hour=").skip(1) {
        let cell = row
            .split("<td>")
            .nth(2)
            .and_then(|c| c.split("</td>").next())
            .context("an hour's posted cell")?;
        total += cell.trim().parse::<u32>()?;
    }
    Ok(total)
}

/// The call key the page's notice names after placing a demo call.
fn placed_key(source: &str) -> anyhow::Result<String> {
    let at = source
        .find("Placed call ")
        .context("a placed-call notice")?
        + 12;
    Ok(source[at..].split(' ').next().unwrap().to_string())
}

#[tokio::test]
async fn in_chromium_a_setting_changes_what_the_pipeline_does_and_a_parked_call_retries()
-> anyhow::Result<()> {
    let (Some(chrome), Some(driver)) = (
        on_path("chromium").or_else(|| on_path("chromium-browser")),
        on_path("chromedriver"),
    ) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium and chromedriver (.ci/run installs them)"
        );
        eprintln!(
            "SKIPPED: Chromium or chromedriver is not installed; run `apt-get install -y chromium chromium-driver`"
        );
        return Ok(());
    };

    // The demo, serving the page after its table.
    let mut demo = Command::new(BIN)
        .args(["demo", "--keep-running", "--listen", "127.0.0.1:0"])
        .env_remove("CONNECTZERO_ADMIN_TOKEN")
        .env_remove("CONNECTZERO_ADMIN_TOKEN_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = demo.stdout.take().context("stdout is piped")?;
    let _demo = Running(demo);
    let (mut page, mut token) = (None, None);
    let mut printed = String::new();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        printed.push_str(&line);
        printed.push('\n');
        if let Some(url) = line.trim().strip_prefix("status page:") {
            page = Some(url.trim().to_string());
        }
        if let Some(t) = line.trim().strip_prefix("admin token:") {
            token = Some(t.trim().to_string());
        }
        if line.contains("Still serving") {
            break;
        }
    }
    assert!(
        printed.contains("Still serving"),
        "the demo did not finish:\n{printed}"
    );
    // Keep draining so the demo never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let page = page.context("the demo printed its status page")?;
    let token = token.context("the demo printed an admin token")?;
    let origin = page
        .split("/admin")
        .next()
        .context("the admin URL has an origin")?
        .to_string();

    // chromedriver on a free loopback port.
    let mut driver = Command::new(driver)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut driver_out = driver.stdout.take().context("stdout is piped")?;
    let _driver = Running(driver);
    let mut seen = String::new();
    let port = loop {
        let mut buf = [0u8; 256];
        let n = driver_out.read(&mut buf)?;
        assert!(n > 0, "chromedriver exited:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(rest) = seen.split("started successfully on port ").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if rest.len() > digits.len() && !digits.is_empty() {
                break digits;
            }
        }
    };
    std::thread::spawn(move || std::io::copy(&mut driver_out, &mut std::io::sink()));
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("http://127.0.0.1:{port}/session"))
        .json(&json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,2200"]
            }
        }}}))
        .send()
        .await?
        .json()
        .await?;
    let session = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {created}"));
    let browser = Browser {
        http: http.clone(),
        session: format!("http://127.0.0.1:{port}/session/{session}"),
    };

    // Signing in: the page sends the browser to the login form.
    browser.goto(&page).await?;
    assert!(browser.source().await?.contains("Admin token"));
    browser.type_into("#token", &token).await?;
    browser.click("#sign-in").await?;
    let tenant_page = format!("{origin}/admin/t/demo");
    // The tenant page's own card: the overview the sign-in lands on also
    // says "Last successful poll", and under load the source read can
    // still be that page's.
    let source = browser
        .wait_for(&tenant_page, "id=\"today-posted\"")
        .await?;
    // The demo's 16 posted calls (fewer only if the run crossed midnight
    // UTC, the page counting "today").
    let posted_before = posted_today(&source)?;
    assert!((1..=16).contains(&posted_before), "{source}");
    assert!(!source.contains(&token));

    // The charts of the last 24 hours: drawn (the browser lays the SVG
    // out), labelled for screen readers, the demo's calls counted in
    // them, and their figures in the table; no script anywhere.
    for chart in ["#calls-chart", "#latency-chart"] {
        let (width, height) = browser.size(chart).await?;
        assert!(width > 300.0 && height > 100.0, "{chart}: {width}×{height}");
    }
    for label in [
        "<title id=\"calls-chart-title\">",
        "<desc id=\"calls-chart-desc\">",
        "<title id=\"latency-chart-title\">",
        "aria-labelledby=\"latency-chart-title latency-chart-desc\"",
    ] {
        assert!(source.contains(label), "{label}: {source}");
    }
    assert!(source.contains("class=\"bar\""), "{source}");
    assert!(source.contains("data-percentile=\"p99\""), "{source}");
    let charted = charted_posted(&source)?;
    assert!(
        charted >= posted_before,
        "{charted} < {posted_before}: {source}"
    );
    assert!(!source.contains("<script"), "{source}");

    // Internal calls are skipped as configured…
    let first = placed_key(&browser.click_then("#demo-internal", "Placed call").await?)?;
    browser
        .wait_for(
            &tenant_page,
            &format!("data-call=\"{first}\" data-outcome=\"skipped\""),
        )
        .await?;
    // …until the page turns them on.
    browser.click("#log_internal_calls").await?;
    browser.click_then("#save", "Settings saved").await?;
    let second = placed_key(&browser.click_then("#demo-internal", "Placed call").await?)?;
    browser
        .wait_for(
            &tenant_page,
            &format!("data-call=\"{second}\" data-outcome=\"posted\""),
        )
        .await?;

    // A call the CRM refuses parks with its reason; Retry posts it.
    let refused = placed_key(&browser.click_then("#demo-refused", "Placed call").await?)?;
    let source = browser
        .wait_for(
            &tenant_page,
            &format!("data-call=\"{refused}\" data-outcome=\"parked\""),
        )
        .await?;
    assert!(source.contains("refused this message once"), "{source}");
    browser.screenshot("status-page-parked.png").await?;
    let csrf = csrf_of(&source)?;
    browser
        .click_then(
            &format!("tr[data-call=\"{refused}\"] button.retry"),
            "will be retried",
        )
        .await?;
    let source = browser
        .wait_for(
            &tenant_page,
            &format!("data-call=\"{refused}\" data-outcome=\"posted\""),
        )
        .await?;
    // The internal call and the retried one, each once.
    assert_eq!(posted_today(&source)?, posted_before + 2, "{source}");

    // Submitting the retry again (the browser's session cookie, the
    // page's CSRF token) finds nothing to retry.
    let cookies = browser.cmd(reqwest::Method::GET, "/cookie", None).await?;
    let session_cookie = cookies
        .as_array()
        .context("the browser returns its cookies")?
        .iter()
        .find(|c| c["name"] == "cz_admin")
        .context("the session cookie")?;
    assert_eq!(session_cookie["httpOnly"], true);
    let again = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .post(format!("{origin}/admin/t/demo/retry"))
        .header(
            "cookie",
            format!(
                "cz_admin={}",
                session_cookie["value"]
                    .as_str()
                    .context("the session cookie has a value")?
            ),
        )
        .form(&[("csrf", csrf.as_str()), ("call_key", refused.as_str())])
        .send()
        .await?;
    assert_eq!(again.status(), 409);

    // The artefact: the status page after all of that.
    browser.goto(&tenant_page).await?;
    browser.screenshot("status-page.png").await?;
    browser.cmd(reqwest::Method::DELETE, "", None).await?;
    Ok(())
}

#[tokio::test]
async fn a_retried_call_older_than_the_overlap_window_is_read_again() -> anyhow::Result<()> {
    let (world, _) = seeded_world(common::defaults()).await?;
    let base = serve_admin(&world, TOKEN).await?;
    let mut live = LiveTenant::new(world.tenant.clone());
    let mut placer = Placer::default();
    world.crm.inject_failures_on(
        "/conversations/messages/inbound",
        Fault::Unprocessable("refused once".into()),
        1,
    );
    // Ended 20 minutes ago: well behind the 5-minute overlap window once a
    // newer call has moved the cursor on.
    let old = placer.place(
        &world,
        &one_leg(1, outside(numbers::DANA), ext("101"), true, 30),
        chrono::Utc::now() - chrono::Duration::minutes(20),
    );
    tick_live_until(&world.pipeline, &mut live, 5, || {
        outcome(&world, &old.key).is_some()
    })
    .await?;
    assert_eq!(outcome(&world, &old.key).as_deref(), Some("parked"));
    let new = place(
        &world,
        &mut placer,
        &one_leg(2, outside(numbers::ELI), ext("102"), true, 30),
    );
    tick_live_until(&world.pipeline, &mut live, 5, || {
        outcome(&world, &new.key).as_deref() == Some("posted")
    })
    .await?;
    let cursor = world
        .storage
        .poll_cursor("demo")?
        .context("the poll cursor is set")?;
    assert!(cursor > chrono::Utc::now().timestamp_millis() - 5 * 60 * 1000);

    let http = client()?;
    let html = common::admin_page(&http, &format!("{base}/admin/t/demo"), TOKEN).await?;
    let queued = http
        .post(format!("{base}/admin/t/demo/retry"))
        .bearer_auth(TOKEN)
        .form(&[
            ("csrf", csrf_of(&html)?.as_str()),
            ("call_key", old.key.as_str()),
        ])
        .send()
        .await?;
    assert_eq!(queued.status(), 303);
    tick_live_until(&world.pipeline, &mut live, 5, || {
        outcome(&world, &old.key).as_deref() == Some("posted")
    })
    .await?;
    for _ in 0..2 {
        world
            .pipeline
            .tick(&live.before_tick(world.pipeline.storage()))
            .await?;
    }
    // One message per call: the retried one and the newer one, once each.
    assert_eq!(world.crm.messages().len(), 2);
    Ok(())
}
