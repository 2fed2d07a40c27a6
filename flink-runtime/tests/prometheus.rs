//! A real Prometheus server (Debian's `prometheus`) scrapes a running job's `/metrics`:
//! through Prometheus' own HTTP API, the source of a job with a paced sink reads as
//! back-pressured, and the records it emitted equal what the job reports once it
//! stopped. Without the binary the test is a loud skip; under
//! `FLINK_RS_REQUIRE_SERVICES=1` (the README's test command) it fails instead.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flink_runtime::prelude::*;
use serde_json::Value;

mod common;

/// The longest any wait here lasts: a guard against a hang, not a timing assertion.
const GUARD: Duration = Duration::from_secs(90);

/// Where the Prometheus binary is, or `None` after a loud skip line.
fn prometheus_binary() -> Option<PathBuf> {
    let binary = std::env::var_os("FLINK_RS_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"));
    if binary.is_file() {
        return Some(binary);
    }
    let missing = format!(
        "prometheus: no Prometheus server at {} (set FLINK_RS_PROMETHEUS, or `apt-get install prometheus`)",
        binary.display()
    );
    if std::env::var("FLINK_RS_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{missing}, but FLINK_RS_REQUIRE_SERVICES=1");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "!!!!! SKIPPED {missing} !!!!!");
    None
}

/// A Prometheus server scraping `target` every second, on a free loopback port, with
/// its data in a temporary directory; ended when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(binary: &PathBuf, target: std::net::SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: flink-rs\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The values of an instant query's series, through Prometheus' HTTP API.
fn query(prometheus: &Prometheus, promql: &str) -> Vec<f64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let answer = reqwest::Client::new()
            .get(format!("{}/api/v1/query", prometheus.url))
            .query(&[("query", promql)])
            .send()
            .await;
        let Ok(answer) = answer else {
            return Vec::new();
        };
        let Ok(json) = answer.json::<Value>().await else {
            return Vec::new();
        };
        json["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|series| series["value"][1].as_str()?.parse().ok())
            .collect()
    })
}

/// Polls `check` every 250 ms until it gives a value; fails naming `what` past the guard.
fn until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(started.elapsed() < GUARD, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_sees_the_back_pressured_source_and_the_records_the_job_reports() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let (client, _written) =
        common::paced::paced_job("prometheus-test", None, WebUiConfig::loopback(0));
    let prometheus = Prometheus::start(&binary, client.web_ui_address().unwrap());
    let source = r#"task_name=~"Sequence Source.*""#;
    let back_pressured = until("a scrape showing the source back-pressured", || {
        let v = query(
            &prometheus,
            &format!("flink_taskmanager_job_task_backPressuredTimeMsPerSecond{{{source}}}"),
        );
        v.first().copied().filter(|ms| *ms > 500.0)
    });
    assert!(back_pressured <= 1000.0, "{back_pressured} ms/s");

    // Stop: the job drains and ends; its server stays up while the client lives.
    client.control().stop();
    let emitted = until("the job to end", || {
        (client.state().is_terminal()).then(|| client.operator_metrics()[0].records_out)
    });
    assert!(emitted > 0);
    let scraped = until("a scrape after the end", || {
        let v = query(
            &prometheus,
            &format!("flink_taskmanager_job_task_numRecordsOut{{{source}}}"),
        );
        v.first().copied().filter(|n| *n as u64 == emitted)
    });
    assert_eq!(scraped as u64, emitted);
    let result = client.wait().unwrap();
    assert_eq!(result.records_read_by_sources(), emitted);
}
