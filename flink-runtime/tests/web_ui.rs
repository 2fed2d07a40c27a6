//! The web UI in a real browser: headless Chromium driven over WebDriver
//! (`chromedriver`) opens the UI of a running job with a paced sink, waits for its
//! graph, reads the back pressure and busy time the vertices show, opens a vertex's
//! subtask table, presses Cancel and sees the job end. Saves a screenshot of the graph
//! to `target/ui-screenshot.png` (and one with the subtask table to
//! `target/ui-vertex-screenshot.png`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test.sh` installs them and
//! sets `FLINK_RS_CHROMEDRIVER`); without them the test prints a loud skip line, or
//! fails under `FLINK_RS_REQUIRE_SERVICES=1`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use flink_runtime::prelude::*;
use serde_json::json;

/// The longest any wait in this test lasts: a guard against a hang, not a timing
/// assertion.
const GUARD: Duration = Duration::from_secs(60);

mod common;

/// Where chromedriver and Chromium are, or `None` after a loud skip line; under
/// `FLINK_RS_REQUIRE_SERVICES=1` a missing browser fails the test instead.
fn browser(test: &str) -> Option<(PathBuf, PathBuf)> {
    let driver = std::env::var_os("FLINK_RS_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    let chromium = std::env::var_os("FLINK_RS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if driver.is_file() && chromium.is_file() {
        return Some((driver, chromium));
    }
    let missing = format!(
        "{test}: no headless browser ({} and {} must exist; set FLINK_RS_CHROMEDRIVER and \
         FLINK_RS_CHROMIUM, or `apt-get install chromium chromium-driver`)",
        driver.display(),
        chromium.display()
    );
    if std::env::var("FLINK_RS_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{missing}, but FLINK_RS_REQUIRE_SERVICES=1");
    }
    // Straight to stderr, not `eprintln!` (which the harness hides for a passing test):
    // a skip must be seen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "!!!!! SKIPPED {missing} !!!!!");
    None
}

/// A chromedriver on a free loopback port, ended when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(driver: &PathBuf) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < GUARD, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser session and the runtime its async calls run on.
struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(driver: &Driver, chromium: &PathBuf) -> Self {
        // One per browser: two Chromiums cannot share a profile.
        let profile = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = runtime
            .block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&driver.url),
            )
            .expect("a Chromium session starts");
        Self {
            runtime,
            client: Some(client),
            _profile: profile,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Polls `check` (an async read of the page) until it gives a value, within the
    /// guard; `what` names the wait in the failure.
    fn until<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = self.runtime.block_on(check(self.client().clone())) {
                return v;
            }
            if started.elapsed() > GUARD {
                // No stale picture of an earlier run if this one cannot be taken.
                let _ = std::fs::remove_file(workspace_root().join("target/ui-failure.png"));
                self.screenshot("target/ui-failure.png");
                panic!("the page did not show {what} within {GUARD:?} (see target/ui-failure.png)");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Clicks the element `css` names (it must be on the page).
    fn click(&self, css: &str) {
        self.runtime
            .block_on(async { self.client().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    fn screenshot(&self, to: &str) {
        if let Ok(png) = self.runtime.block_on(self.client().screenshot()) {
            let path = workspace_root().join(to);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, png).unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The text of the element `css` names, if it is on the page.
async fn text(c: &Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// An attribute of the element `css` names, if it is on the page.
async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
    c.find(Locator::Css(css))
        .await
        .ok()?
        .attr(name)
        .await
        .ok()?
}

/// An endless source feeding a paced sink (1 ms per record) in another task, small
/// buffers so back pressure comes soon, serving its UI on a free loopback port: the
/// source is back-pressured, the sink busy. Returns the job and the sink's count.
fn paced_job(name: &str) -> (JobClient, Arc<AtomicU64>) {
    common::paced::paced_job(name, None, WebUiConfig::loopback(0))
}

#[test]
fn the_ui_shows_back_pressure_on_the_graph_and_cancels_the_job() {
    let Some((driver_bin, chromium)) =
        browser("the_ui_shows_back_pressure_on_the_graph_and_cancels_the_job")
    else {
        return;
    };

    let (client, _written) = paced_job("web-ui-test");
    let base = format!("http://{}", client.web_ui_address().unwrap());

    let driver = Driver::start(&driver_bin);
    let browser = Browser::open(&driver, &chromium);

    // The jobs list names the job and links to its page.
    browser
        .runtime
        .block_on(browser.client().goto(&format!("{base}/")))
        .unwrap();
    let link = browser.until("the job in the jobs list", |c| async move {
        let a = c.find(Locator::Css("#jobs a")).await.ok()?;
        (a.text().await.ok()? == "web-ui-test").then_some(a)
    });
    browser.runtime.block_on(link.click()).unwrap();

    // The graph: two vertices joined by a REBALANCE edge, the source HIGH, the sink
    // busy and not back-pressured.
    browser.until(
        "the source vertex with HIGH back pressure",
        |c| async move { (attr(&c, "#vertex-0", "data-level").await? == "HIGH").then_some(()) },
    );
    let sink_busy: u32 = browser.until("a busy sink", |c| async move {
        let busy: u32 = attr(&c, "#vertex-1", "data-busy").await?.parse().ok()?;
        (busy >= 50).then_some(busy)
    });
    assert!(sink_busy <= 100);
    let (source_title, sink_title, edge, sink_level) = browser.runtime.block_on(async {
        let c = browser.client();
        let text = |css: &'static str| async move {
            c.find(Locator::Css(css))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        };
        (
            text("#vertex-0 text.title").await,
            text("#vertex-1 text.title").await,
            text(".edge text").await,
            attr(c, "#vertex-1", "data-level").await.unwrap(),
        )
    });
    assert_eq!(source_title, "Sequence Source");
    assert_eq!(sink_title, "Paced Sink");
    assert_eq!(edge, "REBALANCE");
    assert_eq!(sink_level, "OK");
    browser.until("the source's back pressure in its box", |c| async move {
        let t = text(&c, "#vertex-0 text.bp").await?;
        (t == "Back pressure: HIGH").then_some(())
    });
    // The banner names the sink as the bottleneck, and its box is marked.
    let banner = browser.until("the sink named as the bottleneck", |c| async move {
        let id = attr(&c, "#bottleneck", "data-vertex-id").await?;
        let class = attr(&c, "#vertex-1", "class").await?;
        let banner = text(&c, "#bottleneck").await?;
        (id == "1" && class.contains("bottleneck")).then_some(banner)
    });
    assert!(
        banner.starts_with("Bottleneck: Paced Sink"),
        "banner: {banner}"
    );
    browser.screenshot("target/ui-screenshot.png");

    // A vertex's subtask table.
    browser.click("#vertex-1 rect.box");
    let row = browser.until("the sink's subtask table", |c| async move {
        let title = text(&c, "#vertex-title").await?;
        let rows = c.find_all(Locator::Css("#subtasks tbody tr")).await.ok()?;
        if title != "Paced Sink: subtasks" || rows.len() != 1 {
            return None;
        }
        rows[0].text().await.ok()
    });
    assert!(row.starts_with("1/1 RUNNING OK"), "subtask row: {row}");
    browser.screenshot("target/ui-vertex-screenshot.png");

    // Cancel from the page; the page shows the job ended, and so does the job.
    browser.click("#cancel-job");
    browser.until("the job CANCELED", |c| async move {
        let state = text(&c, "#job-state").await?;
        let disabled = attr(&c, "#cancel-job", "disabled").await;
        (state == "CANCELED" && disabled.is_some()).then_some(())
    });
    drop(browser);
    drop(driver);
    assert_eq!(client.state(), JobState::Canceled);
    let result = client.wait();
    assert!(
        matches!(result, Err(JobError::Cancelled { .. })),
        "a cancelled job reports its cancellation: {result:?}"
    );
}

#[test]
fn the_stop_button_drains_the_job_and_every_record_reaches_the_sink() {
    let Some((driver_bin, chromium)) =
        browser("the_stop_button_drains_the_job_and_every_record_reaches_the_sink")
    else {
        return;
    };
    let (client, written) = paced_job("web-ui-stop-test");
    let page = format!(
        "http://{}/#/jobs/{}",
        client.web_ui_address().unwrap(),
        client.job_id().unwrap()
    );
    let driver = Driver::start(&driver_bin);
    let browser = Browser::open(&driver, &chromium);
    browser
        .runtime
        .block_on(browser.client().goto(&page))
        .unwrap();
    browser.until("the job RUNNING with records at the sink", |c| async move {
        let state = text(&c, "#job-state").await?;
        let rates = text(&c, "#vertex-1 text.rates").await?;
        (state == "RUNNING" && !rates.starts_with("In: 0/s")).then_some(())
    });
    browser.click("#stop-job");
    browser.until("the job FINISHED by the stop", |c| async move {
        let state = text(&c, "#job-state").await?;
        let facts = text(&c, "#job-facts").await?;
        let disabled = attr(&c, "#stop-job", "disabled").await;
        (state == "FINISHED" && facts.ends_with("stopped") && disabled.is_some()).then_some(())
    });
    drop(browser);
    drop(driver);
    // A drain loses nothing: every record the source read was written by the sink.
    let result = client.wait().unwrap();
    assert!(result.stopped);
    assert!(result.records_read_by_sources() > 0);
    assert_eq!(result.records_at_sinks(), result.records_read_by_sources());
    assert_eq!(
        written.load(Ordering::SeqCst),
        result.records_read_by_sources()
    );
}

#[test]
fn the_page_and_its_assets_are_served_from_the_binary() {
    let (client, _) = paced_job("web-ui-assets-test");
    let base = format!("http://{}", client.web_ui_address().unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get = |path: &str| {
        runtime.block_on(async {
            let response = reqwest::get(format!("{base}{path}")).await.unwrap();
            let status = response.status().as_u16();
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            (status, kind, response.text().await.unwrap())
        })
    };
    let (status, kind, page) = get("/");
    assert_eq!((status, kind.as_str()), (200, "text/html; charset=utf-8"));
    assert!(page.contains(r#"<script src="/ui/app.js">"#));
    assert!(
        !page.contains("http"),
        "the page loads nothing from elsewhere"
    );
    let (status, kind, script) = get("/ui/app.js");
    assert_eq!(
        (status, kind.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    assert!(script.contains("/jobs/overview"));
    let (status, kind, _) = get("/ui/style.css");
    assert_eq!((status, kind.as_str()), (200, "text/css; charset=utf-8"));
    // Anything else under /ui/ is the API's JSON 404, not the page.
    let (status, kind, _) = get("/ui/missing.js");
    assert_eq!(status, 404);
    assert!(kind.starts_with("application/json"));
    client.control().cancel();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
}

#[test]
fn the_pipeline_panel_shows_every_stage_with_a_sparkline() {
    let Some((driver_bin, chromium)) =
        browser("the_pipeline_panel_shows_every_stage_with_a_sparkline")
    else {
        return;
    };
    let (client, _) =
        common::pipeline_job::pipeline_job("web-ui-pipeline-test", WebUiConfig::loopback(0));
    let page = format!(
        "http://{}/#/jobs/{}",
        client.web_ui_address().unwrap(),
        client.job_id().unwrap()
    );
    let driver = Driver::start(&driver_bin);
    let browser = Browser::open(&driver, &chromium);
    browser
        .runtime
        .block_on(browser.client().goto(&page))
        .unwrap();
    let stages = browser.until("five stages, each with a sparkline", |c| async move {
        let rows = c
            .find_all(Locator::Css("#pipeline-panel table.pipeline tbody tr"))
            .await
            .ok()?;
        let lines = c
            .find_all(Locator::Css("#pipeline-panel svg.spark polyline"))
            .await
            .ok()?;
        let mut names = Vec::new();
        for row in &rows {
            names.push(row.attr("data-stage").await.ok()??);
        }
        (rows.len() == 5 && lines.len() == 5).then_some(names)
    });
    assert_eq!(stages, flink_core::pipeline::STAGES);
    browser.screenshot("target/ui-pipeline-screenshot.png");
    drop(browser);
    drop(driver);
    client.control().cancel();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
}
