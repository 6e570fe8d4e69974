//! The console in a real browser: Chromium driven through its WebDriver (fantoccini). Sign in;
//! a fake partner answering 500 shows as failing on the overview; its dead letter is opened,
//! the partner fixed, the letter replayed and seen delivered; a conflict is resolved by taking
//! the partner's value and every partner it goes to receives it; sign out; and a form without
//! its CSRF token, a read-only operator pressing replay and an expired session are refused.
//! A screenshot of each main page lands in `target/console-screenshots/<backend>/`.
//!
//! Needs `chromedriver` and Chromium (`.ci/run` installs Debian's `chromium` and
//! `chromium-driver`); without them the test says it was skipped, unless
//! `EBOND_TEST_REQUIRE_BROWSER` is set (as in CI), when it fails.

use crate::conflicts::{conflicting_resolution, parties};
use crate::console::{read_only_operator, sql, wait_dead};
use crate::fakes::Partners;
use crate::helpers::*;
use crate::per_backend;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver of our own on a free port, stopped with the test.
struct Driver {
    child: std::process::Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// `None` (and a note why) when this machine has no browser.
    async fn start() -> Option<Driver> {
        let driver = std::env::var("EBOND_TEST_CHROMEDRIVER").unwrap_or_else(|_| DRIVER.into());
        let chromium = std::env::var("EBOND_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        if !std::path::Path::new(&driver).exists() || !std::path::Path::new(&chromium).exists() {
            let why = format!("no {driver} or {chromium} (apt-get install chromium chromium-driver)");
            if std::env::var("EBOND_TEST_REQUIRE_BROWSER").is_ok() {
                panic!("EBOND_TEST_REQUIRE_BROWSER is set but the browser is missing: {why}");
            }
            eprintln!("console browser test SKIPPED: {why}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Driver { child, url, _profile: tempfile::tempdir().unwrap() })
    }

    async fn browser(&self) -> Client {
        let chromium = std::env::var("EBOND_TEST_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        let mut caps = serde_json::Map::new();
        // The flags this machine needs: no sandbox as root, and no background network traffic
        // (the closed network refuses it).
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1366,1400",
                format!("--user-data-dir={}", self._profile.path().display()),
            ]}),
        );
        ClientBuilder::native().capabilities(caps).connect(&self.url).await.expect("a WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser, the gateway, and where screenshots go.
struct Session<'a> {
    b: Client,
    app: &'a TestApp,
    shots: PathBuf,
}

impl Session<'_> {
    async fn go(&self, path: &str) {
        self.b.goto(&self.app.url(path)).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    async fn path(&self) -> String {
        let url = self.b.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    async fn source(&self) -> String {
        self.b.source().await.unwrap()
    }

    async fn click(&self, css: &str) {
        self.b.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).click().await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let el = self.b.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn attr(&self, css: &str, name: &str) -> String {
        let el = self.b.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.attr(name).await.unwrap().unwrap_or_default()
    }

    async fn text(&self, css: &str) -> String {
        self.b.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).text().await.unwrap()
    }

    async fn shot(&self, name: &str) {
        let png = self.b.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Waits for the navigation a click started: until the path is `want` (or starts with
    /// it, `prefix`), failing after 10 s.
    async fn wait_path(&self, want: &str, prefix: bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.path().await;
            if now == want || (prefix && now.starts_with(want)) {
                return;
            }
            assert!(Instant::now() < deadline, "still at {now}, not {want}: {}", self.source().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page holds `text` (after a click that answers on the same path).
    async fn wait_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.source().await.contains(text) {
            assert!(Instant::now() < deadline, "the page never said {text:?}: {}", self.source().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sign_in(&self, id: &str, secret: &str) {
        self.go("/console/sign-in").await;
        self.fill("#client_id", id).await;
        self.fill("#client_secret", secret).await;
        self.click("button[type=submit]").await;
        self.wait_path("/console/", false).await;
    }

    /// Reloads until the page's `css` element has `name` = `want` (or fails after `secs`).
    async fn until_attr(&self, css: &str, name: &str, want: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.attr(css, name).await == want {
                return;
            }
            assert!(Instant::now() < deadline, "{css} never had {name}={want}: {}", self.source().await);
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.b.refresh().await.unwrap();
        }
    }
}

per_backend!(the_console_in_a_real_browser, super::in_the_browser);

async fn in_the_browser(backend: Backend) {
    let Some(driver) = Driver::start().await else { return };
    let f = Partners::start().await;
    let contracts = tempfile::tempdir().unwrap();
    f.write_contracts(contracts.path(), "[\"100ms\", \"200ms\", \"300ms\"]");
    // A long alert window for Acme: its failures are still on the overview when the browser looks.
    let acme = contracts.path().join("acme-msp.toml");
    let text = std::fs::read_to_string(&acme).unwrap().replace("alert_window = \"2s\"", "alert_window = \"10m\"");
    std::fs::write(&acme, text).unwrap();
    let dir = contracts.path().to_path_buf();
    let app = TestApp::spawn_with(backend, |s| delivering(s, dir)).await;
    let shots = repo_path("target/console-screenshots").join(format!("{backend:?}").to_lowercase());
    std::fs::create_dir_all(&shots).unwrap();
    let s = Session { b: driver.browser().await, app: &app, shots };
    let p = parties(&app).await;
    let (id, secret) = app.credentials(None).await;

    // Sign in.
    s.sign_in(&id, &secret).await;

    // Acme answers 500: its delivery dies, and the overview shows it failing.
    f.acme.script(1_000, |_| true, wiremock::ResponseTemplate::new(500).set_body_string("acme is down"));
    let mut body = servicenow_incident("INC0095000");
    body["assignment_group"] = json!("Acme L2");
    let (status, created) = app.post("/tickets", &p.snow, &body).await;
    assert_eq!(status, 201, "{created}");
    let number = created["number"].as_str().unwrap().to_string();
    let letter = wait_dead(&app, &number).await;
    s.go("/console/").await;
    assert!(s.text("tr[data-partner='acme-msp'] td[data-alert]").await.contains("failing"), "{}", s.source().await);
    assert!(s.text("tr[data-partner='acme-msp'] td[data-failure-rate]").await.contains("100 %"));
    assert!(s.text("tr[data-partner='servicenow'] td[data-alert]").await.contains("ok"));
    s.shot("overview").await;

    // Its dead letter: the payload and every attempt, with the partner's answer.
    s.click("tr[data-partner='acme-msp'] a[href='/console/dead-letters?partner=acme-msp']").await;
    s.wait_path("/console/dead-letters?partner=acme-msp", false).await;
    assert!(s.source().await.contains("data-dead-total=\"1\""));
    s.shot("dead-letters").await;
    s.click(&format!("a[href='/console/dead-letters/{letter}']")).await;
    s.wait_path(&format!("/console/dead-letters/{letter}"), false).await;
    let page = s.source().await;
    assert!(page.contains("acme is down") && page.contains(&number), "attempts with the response excerpt: {page}");
    assert_eq!(s.attr("dd[data-status]", "data-status").await, "dead");
    s.shot("dead-letter").await;

    // Fixed: replay it and watch it delivered.
    f.acme.clear_script();
    s.click(&format!("form[action='/console/dead-letters/{letter}/replay'] button")).await;
    s.wait_path(&format!("/console/dead-letters/{letter}?done=replayed"), false).await;
    s.until_attr("dd[data-status]", "data-status", "delivered", 20).await;
    f.acme
        .wait_for(10, "the replayed create at Acme", |r| r.iter().any(|x| x.ticket() == number && x.method == "POST"))
        .await;

    // A conflict, resolved by taking the partner's value; every partner it goes to receives it.
    let (conflicted, conflict) = conflicting_resolution(&app, &p, &f, "INC0095001", "ACME-9501").await;
    s.go("/console/conflicts").await;
    s.click(&format!("a[href='/console/conflicts/{conflict}']")).await;
    s.wait_path(&format!("/console/conflicts/{conflict}"), false).await;
    assert!(s.source().await.contains("data-field=\"state\""));
    s.shot("conflict").await;
    s.click("input[name='choice.state'][value='take_partner']").await;
    s.fill("#comment", "Acme fixed it; their resolution stands").await;
    s.click("form[action$='/resolve'] button[type=submit]").await;
    s.wait_path(&format!("/console/conflicts/{conflict}/resolve"), false).await;
    s.wait_text("data-pushed-to").await;
    let pushed = s.attr("span[data-pushed-to]", "data-pushed-to").await;
    let version = s.attr("p[data-version]", "data-version").await;
    assert!(pushed.split(',').any(|p| p == "servicenow"), "ServiceNow hears Acme's resolution: {pushed}");
    assert_eq!(s.attr("dd[data-status]", "data-status").await, "resolved");
    s.shot("conflict-resolved").await;
    for partner in pushed.split(',') {
        let fake = match partner {
            "servicenow" => &f.snow,
            "enovia" => &f.enovia,
            "acme-msp" => &f.acme,
            other => panic!("pushed to an unknown partner {other}"),
        };
        fake.wait_for(15, &format!("the resolution at {partner}"), |r| {
            r.iter().any(|x| x.ticket() == conflicted && x.header("x-ebond-version") == version)
        })
        .await;
    }
    let got = f.snow.received();
    let last = crate::conflicts::last_for(&got, &conflicted);
    assert_eq!(last.body["state"], "6", "Acme's resolved state reached ServiceNow: {:?}", last.body);

    // The other main pages, looked at (and kept as screenshots).
    s.go(&format!("/console/tickets?q={}", "ACME-9501")).await;
    s.wait_path(&format!("/console/tickets/{conflicted}"), false).await;
    let story = s.source().await;
    assert!(story.contains("Conflict ") && story.contains("Delivery to servicenow"), "{story}");
    s.shot("ticket").await;
    for (path, name) in [
        ("/console/partners/acme-msp", "partner"),
        ("/console/reconcile", "reconciliation"),
        ("/console/audit", "audit"),
        ("/console/auth-events", "auth-events"),
        ("/console/contracts", "contracts"),
    ] {
        s.go(path).await;
        assert!(!s.source().await.contains("class=\"error\""), "{path}");
        s.shot(name).await;
    }
    s.go("/console/auth-events").await;
    assert!(s.source().await.contains("console_sign_in"), "the sign-in is an authentication event");

    // Sign out: the session is over.
    s.click("header form.signout button").await;
    s.wait_path("/console/sign-in?reason=signed-out", false).await;
    s.go("/console/").await;
    s.wait_path("/console/sign-in", true).await;

    // A form sent without its CSRF token is refused.
    s.sign_in(&id, &secret).await;
    s.go("/console/partners/acme-msp").await;
    s.b.execute("document.querySelectorAll('input[name=csrf]').forEach(function (e) { e.remove(); });", vec![])
        .await
        .unwrap();
    s.click("form[action='/console/partners/acme-msp/pause'] button").await;
    s.wait_text("CSRF token is missing").await;
    s.go("/console/partners/acme-msp").await;
    assert!(s.source().await.contains("Pause deliveries"), "nothing was paused");

    // An expired session is refused, and the operator is told.
    sql(&app, "UPDATE console_sessions SET expires_at = 1").await;
    s.click("form[action='/console/partners/acme-msp/pause'] button").await;
    s.wait_path("/console/sign-in?reason=expired", false).await;
    assert!(s.source().await.contains("Your session expired"));

    // A read-only operator pressing replay is refused; the letter stays dead.
    f.acme.script(1_000, |_| true, wiremock::ResponseTemplate::new(500).set_body_string("acme is down again"));
    let mut body = servicenow_incident("INC0095002");
    body["assignment_group"] = json!("Acme L2");
    let (status, created) = app.post("/tickets", &p.snow, &body).await;
    assert_eq!(status, 201);
    let number = created["number"].as_str().unwrap().to_string();
    let letter = wait_dead(&app, &number).await;
    let (ro_id, ro_secret) = read_only_operator(&app).await;
    s.sign_in(&ro_id, &ro_secret).await;
    s.go(&format!("/console/dead-letters/{letter}")).await;
    s.click(&format!("form[action='/console/dead-letters/{letter}/replay'] button")).await;
    s.wait_text("is read-only: it may look, not act").await;
    s.go(&format!("/console/dead-letters/{letter}")).await;
    assert_eq!(s.attr("dd[data-status]", "data-status").await, "dead", "not replayed");
    s.b.close().await.unwrap();
}
