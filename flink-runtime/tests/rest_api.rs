//! The REST API and `/metrics` of a running job, queried over HTTP as a user's tools
//! would: shapes like Flink's, values consistent with the job's own metrics, errors as
//! JSON, a token guarding changes, cancel and stop ending the job.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flink_runtime::prelude::*;
use serde_json::Value;

/// The longest any wait in these tests lasts: a guard against a hang, not a timing
/// assertion.
const GUARD: Duration = Duration::from_secs(60);

mod common;

/// The paced job of these tests.
fn paced_job(records: Option<u64>, web_ui: WebUiConfig) -> (JobClient, Arc<AtomicU64>) {
    common::paced::paced_job("rest-api-test", records, web_ui)
}

/// A small blocking HTTP client for the job's server.
struct Api {
    base: String,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Api {
    fn of(client: &JobClient) -> Self {
        let address = client
            .web_ui_address()
            .expect("the job serves its REST API");
        assert!(address.ip().is_loopback());
        Self {
            base: format!("http://{address}"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            // A connection per request: the server closes one whose oversized body
            // it refused, and a pooled client could send the next request on it.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    fn send(&self, request: reqwest::RequestBuilder) -> (u16, String) {
        self.runtime.block_on(async {
            let response = request.send().await.expect("the server answers");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        })
    }

    fn get_text(&self, path: &str) -> (u16, String) {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get_text(path);
        (status, json(&body))
    }

    /// A GET that must succeed.
    fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn patch(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.patch(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (status, body) = self.send(request);
        (status, json(&body))
    }

    fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        let (status, body) = self.send(request);
        (status, json(&body))
    }

    /// Polls `GET path` until `done` holds for its body; panics after [`GUARD`].
    fn poll_until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let body = self.ok(path);
            if done(&body) {
                return body;
            }
            assert!(
                start.elapsed() < GUARD,
                "{what} never happened; last {path}: {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_state(&self, jid: &str, state: &str) -> Value {
        self.poll_until(&format!("/jobs/{jid}"), state, |j| j["state"] == state)
    }
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The value of the sample of `metric` whose labels contain every one of `labels`.
fn sample(metrics: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn every_endpoint_describes_a_running_job_and_a_stop_drains_it() {
    let (client, written) = paced_job(None, WebUiConfig::loopback(0));
    let api = Api::of(&client);
    let jid = client.job_id().unwrap().to_string();
    assert_eq!(jid.len(), 32);

    let overview = api.ok("/overview");
    assert_eq!(overview["jobs-running"], 1);
    assert_eq!(overview["slots-total"], 2);
    let jobs = api.ok("/jobs");
    assert_eq!(jobs["jobs"][0]["id"], jid.as_str());
    assert_eq!(jobs["jobs"][0]["status"], "RUNNING");
    assert_eq!(api.ok("/jobs/overview")["jobs"][0]["name"], "rest-api-test");

    let plan = api.ok(&format!("/jobs/{jid}/plan"))["plan"].clone();
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["description"], "Sequence Source");
    assert_eq!(nodes[1]["operators"][0], "Paced Sink");
    assert_eq!(nodes[1]["inputs"][0]["id"], "0");
    assert_eq!(nodes[1]["inputs"][0]["ship_strategy"], "REBALANCE");

    // The source outruns the paced sink: it is back-pressured, HIGH as Flink says.
    let source_bp = api.poll_until(
        &format!("/jobs/{jid}/vertices/0/backpressure"),
        "HIGH back pressure at the source",
        |b| b["backpressure-level"] == "high",
    );
    assert_eq!(source_bp["subtasks"][0]["backpressure-level"], "high");
    assert!(source_bp["subtasks"][0]["ratio"].as_f64().unwrap() > 0.5);
    let job = api.ok(&format!("/jobs/{jid}"));
    assert_eq!(job["state"], "RUNNING");
    assert_eq!(job["isStoppable"], true);
    assert_eq!(job["vertices"][0]["status"], "RUNNING");
    assert_eq!(job["vertices"][1]["name"], "Paced Sink");
    assert_eq!(job["status-counts"]["RUNNING"], 2);
    // The sink is the one working; it is not back-pressured (it has no output).
    let sink_bp = api.ok(&format!("/jobs/{jid}/vertices/1/backpressure"));
    assert_eq!(sink_bp["backpressure-level"], "ok");

    let sink = api.ok(&format!("/jobs/{jid}/vertices/1"));
    let subtask = &sink["subtasks"][0];
    assert_eq!(subtask["status"], "RUNNING");
    assert_eq!(subtask["operators"][0]["name"], "Paced Sink");
    let received = subtask["metrics"]["read-records"].as_u64().unwrap();
    assert!(received > 0 && received <= written.load(Ordering::SeqCst) + 1_000);
    assert_eq!(
        api.ok(&format!("/jobs/{jid}/exceptions"))["root-exception"],
        Value::Null
    );

    let (status, metrics) = api.get_text("/metrics");
    assert_eq!(status, 200);
    let source = ["task_name=\"Sequence Source\"", "subtask_index=\"0\""];
    let bp = sample(
        &metrics,
        "flink_taskmanager_job_task_backPressuredTimeMsPerSecond",
        &source,
    )
    .expect("the source's back-pressured time is exported");
    assert!((0.0..=1000.0).contains(&bp));
    assert!(
        sample(
            &metrics,
            "flink_taskmanager_job_task_backPressuredTimeMs_total",
            &source
        )
        .unwrap()
            > 0.0
    );
    assert!(
        sample(
            &metrics,
            "flink_taskmanager_job_task_numRecordsOut",
            &source
        )
        .unwrap()
            > 0.0
    );
    assert!(sample(&metrics, "flink_taskmanager_job_task_numBytesOut", &source).unwrap() > 0.0);
    assert!(metrics.contains("flink_taskmanager_job_task_buffers_outPoolUsage{"));
    assert!(metrics.contains("operator_name=\"Paced Sink\""));

    // Stop with a drain: every record the source read reaches the sink.
    let (status, body) = api.post(&format!("/jobs/{jid}/stop"), r#"{"drain": true}"#);
    assert_eq!(status, 202, "{body}");
    let job = api.wait_for_state(&jid, "FINISHED");
    assert_eq!(job["stopped"], true);
    assert_eq!(job["vertices"][0]["status"], "FINISHED");
    let read_by_source = job["vertices"][0]["metrics"]["write-records"]
        .as_u64()
        .unwrap();
    let at_sink = job["vertices"][1]["metrics"]["read-records"]
        .as_u64()
        .unwrap();
    let (status, _) = api.post(&format!("/jobs/{jid}/stop"), "");
    assert_eq!(status, 409, "a finished job cannot be stopped again");
    assert_eq!(api.ok("/overview")["jobs-finished"], 1);

    let result = client.wait().unwrap();
    assert!(result.stopped);
    assert_eq!(result.records_read_by_sources(), read_by_source);
    assert_eq!(result.records_at_sinks(), at_sink);
    assert_eq!(written.load(Ordering::SeqCst), read_by_source);
}

#[test]
fn a_finished_job_reports_what_its_result_says() {
    const RECORDS: u64 = 500;
    let (client, _) = paced_job(Some(RECORDS), WebUiConfig::loopback(0));
    let api = Api::of(&client);
    let jid = client.job_id().unwrap().to_string();
    let job = api.wait_for_state(&jid, "FINISHED");
    assert_eq!(job["stopped"], false);
    assert_eq!(job["vertices"][0]["metrics"]["write-records"], RECORDS);
    assert_eq!(job["vertices"][1]["metrics"]["read-records"], RECORDS);
    // Every byte the source shipped reached the sink's input gate.
    let shipped = job["vertices"][0]["metrics"]["write-bytes"]
        .as_u64()
        .unwrap();
    assert!(shipped > 0);
    assert_eq!(job["vertices"][1]["metrics"]["read-bytes"], shipped);
    assert_ne!(job["end-time"], -1);
    let source = api.ok(&format!("/jobs/{jid}/vertices/0"));
    assert_eq!(source["subtasks"][0]["status"], "FINISHED");
    assert_eq!(
        source["subtasks"][0]["operators"][0]["records-out"],
        RECORDS
    );
    let (_, metrics) = api.get_text("/metrics");
    let out = sample(
        &metrics,
        "flink_taskmanager_job_task_numRecordsOut",
        &["task_name=\"Sequence Source\""],
    );
    assert_eq!(out, Some(RECORDS as f64));
    let sink_in = sample(
        &metrics,
        "flink_taskmanager_job_task_operator_numRecordsIn",
        &["operator_name=\"Paced Sink\""],
    );
    assert_eq!(sink_in, Some(RECORDS as f64));
    let bytes_in = sample(
        &metrics,
        "flink_taskmanager_job_task_numBytesIn",
        &["task_name=\"Paced Sink\""],
    );
    assert_eq!(bytes_in, Some(shipped as f64));
    let custom = sample(
        &metrics,
        "flink_taskmanager_job_task_operator_paced_writes",
        &["operator_name=\"Paced Sink\""],
    );
    assert_eq!(custom, Some(RECORDS as f64));
    let sink = api.ok(&format!("/jobs/{jid}/vertices/1"));
    assert_eq!(
        sink["subtasks"][0]["operators"][0]["metrics"]["paced_writes"],
        RECORDS
    );

    let observer = client.observer();
    let address = client.web_ui_address().unwrap();
    let result = client.wait().unwrap();
    assert_eq!(result.records_read_by_sources(), RECORDS);
    assert_eq!(result.records_at_sinks(), RECORDS);
    assert_eq!(observer.state(), JobState::Finished);
    // The server ended with the client: nothing listens on its port any more.
    assert!(std::net::TcpStream::connect(address).is_err());
}

#[test]
fn cancel_through_patch_ends_the_job() {
    let (client, _) = paced_job(None, WebUiConfig::loopback(0));
    let api = Api::of(&client);
    let jid = client.job_id().unwrap().to_string();
    let (status, body) = api.patch(&format!("/jobs/{jid}?mode=cancel"), None);
    assert_eq!(status, 202, "{body}");
    api.wait_for_state(&jid, "CANCELED");
    assert_eq!(api.ok("/overview")["jobs-cancelled"], 1);
    let (status, _) = api.patch(&format!("/jobs/{jid}"), None);
    assert_eq!(status, 409, "a cancelled job cannot be cancelled again");
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
}

#[test]
fn bad_requests_are_json_errors_and_change_nothing() {
    let (client, _) = paced_job(None, WebUiConfig::loopback(0));
    let api = Api::of(&client);
    let jid = client.job_id().unwrap().to_string();
    let errors = |(status, body): (u16, Value)| {
        assert!(body["errors"][0].is_string(), "{status}: {body}");
        status
    };
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(errors(api.get(&format!("/jobs/{unknown}"))), 404);
    assert_eq!(errors(api.get(&format!("/jobs/{unknown}/plan"))), 404);
    assert_eq!(errors(api.get(&format!("/jobs/{jid}/vertices/7"))), 404);
    assert_eq!(
        errors(api.get(&format!("/jobs/{jid}/vertices/x/backpressure"))),
        404
    );
    assert_eq!(errors(api.get("/no/such/endpoint")), 404);
    assert_eq!(errors(api.patch(&format!("/jobs/{unknown}"), None)), 404);
    assert_eq!(
        errors(api.patch(&format!("/jobs/{jid}?mode=explode"), None)),
        400
    );
    assert_eq!(
        errors(api.patch(&format!("/jobs/{jid}?mood=cancel"), None)),
        400
    );
    assert_eq!(
        errors(api.post(&format!("/jobs/{jid}/stop"), "{not json")),
        400
    );
    assert_eq!(
        errors(api.post(&format!("/jobs/{jid}/stop"), r#"{"drain": false}"#)),
        400
    );
    let huge = format!(r#"{{"drain": true, "pad": "{}"}}"#, "x".repeat(64 * 1024));
    assert_eq!(errors(api.post(&format!("/jobs/{jid}/stop"), huge)), 413);
    assert_eq!(errors(api.post("/overview", "{}")), 405);
    // None of that touched the job.
    assert_eq!(api.ok(&format!("/jobs/{jid}"))["state"], "RUNNING");
    client.cancel();
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
}

#[test]
fn a_token_guards_cancel_and_stop_but_not_reading() {
    let web_ui = WebUiConfig::loopback(0).with_token("s3cret");
    let (client, _) = paced_job(None, web_ui);
    let api = Api::of(&client);
    let jid = client.job_id().unwrap().to_string();
    assert_eq!(api.ok(&format!("/jobs/{jid}"))["state"], "RUNNING");
    assert_eq!(api.patch(&format!("/jobs/{jid}"), None).0, 401);
    assert_eq!(api.patch(&format!("/jobs/{jid}"), Some("guess")).0, 401);
    assert_eq!(api.post(&format!("/jobs/{jid}/stop"), "").0, 401);
    assert_eq!(api.ok(&format!("/jobs/{jid}"))["state"], "RUNNING");
    assert_eq!(api.patch(&format!("/jobs/{jid}"), Some("s3cret")).0, 202);
    api.wait_for_state(&jid, "CANCELED");
    assert!(matches!(client.wait(), Err(JobError::Cancelled { .. })));
}

#[test]
fn a_failed_job_shows_its_exception() {
    let env = StreamExecutionEnvironment::new();
    env.enable_web_ui("127.0.0.1:0".parse().unwrap());
    env.from_sequence(1, u64::MAX)
        .map(|x| {
            if x == 100 {
                panic!("record {x} is cursed")
            } else {
                x
            }
        })
        .name("Cursed Map")
        .collect_vec();
    let client = env.execute_async("failing").unwrap();
    let api = Api::of(&client);
    let jid = client.job_id().unwrap().to_string();
    api.wait_for_state(&jid, "FAILED");
    let exceptions = api.ok(&format!("/jobs/{jid}/exceptions"));
    let root = exceptions["root-exception"].as_str().unwrap();
    assert!(
        root.contains("Cursed Map") && root.contains("record 100 is cursed"),
        "{root}"
    );
    let entry = &exceptions["exceptionHistory"]["entries"][0];
    assert_eq!(entry["exceptionName"], "OperatorFailed");
    assert_eq!(entry["taskName"], "Cursed Map (1/1)");
    assert_eq!(api.ok("/overview")["jobs-failed"], 1);
    assert!(matches!(
        client.wait(),
        Err(JobError::OperatorFailed { .. })
    ));
}

#[test]
fn only_an_explicit_config_serves_beyond_loopback() {
    let env = StreamExecutionEnvironment::new();
    env.enable_web_ui("0.0.0.0:0".parse().unwrap());
    env.from_sequence(1, 10).collect_vec();
    let err = env.execute_async("exposed").err().expect("refused");
    assert!(
        matches!(
            err,
            JobError::Graph(flink_core::error::GraphError::Config(
                flink_core::error::ConfigError::WebUiNotLoopback(_)
            ))
        ),
        "{err:?}"
    );
    let env = StreamExecutionEnvironment::new();
    env.enable_web_ui_with(WebUiConfig::loopback(0).with_token(" "));
    env.from_sequence(1, 10).collect_vec();
    assert!(env.execute_async("empty token").is_err());
}

#[test]
fn a_taken_port_fails_the_submission_and_no_web_ui_means_no_server() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let env = StreamExecutionEnvironment::new();
    env.enable_web_ui(taken.local_addr().unwrap());
    env.from_sequence(1, 10).collect_vec();
    let err = env.execute_async("clash").err().expect("the port is taken");
    assert!(err.to_string().contains("web UI cannot listen"), "{err}");

    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10).collect_vec();
    let client = env.execute_async("quiet").unwrap();
    assert_eq!(client.web_ui_address(), None);
    assert_eq!(client.job_id(), None);
    client.wait().unwrap();
}

#[test]
fn the_bottleneck_endpoint_names_the_paced_sink() {
    let (client, written) = paced_job(None, WebUiConfig::loopback(0));
    let api = Api::of(&client);
    let jid = client.job_id().unwrap().to_string();
    let path = format!("/jobs/{jid}/bottleneck");
    // The first request starts the sampling; a verdict comes once a window closed.
    let first = api.ok(&path);
    assert!(first["window-ms"].as_u64().unwrap() > 0);
    let verdict = api.poll_until(&path, "a bottleneck named", |b| b["verdict"] == "task");
    let b = &verdict["bottleneck"];
    assert_eq!(b["id"], "1");
    assert_eq!(b["name"], "Paced Sink");
    assert_eq!(b["hottest-operator"], "Paced Sink");
    assert_eq!(b["holds-back"][0], "Sequence Source");
    assert!(b["busyTimeMsPerSecond"].as_f64().unwrap() >= 500.0);
    assert!(b["records-in-per-second"].as_f64().unwrap() > 0.0);
    assert!(
        verdict["message"]
            .as_str()
            .unwrap()
            .starts_with("bottleneck: Paced Sink")
    );
    // The job's own view carries the same verdict, and JobClient says it too.
    let job = api.ok(&format!("/jobs/{jid}"));
    assert!(["task", "measuring"].contains(&job["bottleneck"]["verdict"].as_str().unwrap()));
    assert_eq!(client.bottleneck().task().map(|b| b.vertex), Some(1));
    client.stop();
    let result = client.wait().unwrap();
    assert_eq!(
        written.load(Ordering::SeqCst),
        result.records_read_by_sources()
    );
}

#[test]
fn the_pipelines_endpoint_reports_what_the_pipeline_counts() {
    use flink_core::pipeline::STAGES;
    use flink_runtime::pipeline_monitor::PipelineReport;

    let (client, ends) =
        common::pipeline_job::pipeline_job("pipeline-rest", WebUiConfig::loopback(0));
    let api = Api::of(&client);
    let jid = client.job_id().unwrap().to_string();
    let path = format!("/jobs/{jid}/pipelines");
    api.poll_until(&path, "records through the pipeline", |b| {
        b["pipelines"][0]["accounting"]["delivered"].as_u64() > Some(1_000)
    });
    // Counters only grow: what the endpoint says lies between two reports taken
    // before and after it.
    let before = PipelineReport::new(&client.operator_metrics());
    let body = api.ok(&path);
    let after = PipelineReport::new(&client.operator_metrics());
    let p = &body["pipelines"][0];
    assert_eq!(body["pipelines"].as_array().unwrap().len(), 1);
    let stages = p["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 5);
    for (i, (stage, name)) in stages.iter().zip(STAGES).enumerate() {
        assert_eq!(stage["name"], name);
        for (field, of) in [
            (
                "received",
                (before.stages[i].received, after.stages[i].received),
            ),
            (
                "emitted",
                (before.stages[i].emitted, after.stages[i].emitted),
            ),
            (
                "dead-lettered",
                (
                    before.stages[i].dead_lettered,
                    after.stages[i].dead_lettered,
                ),
            ),
        ] {
            let v = stage[field].as_u64().unwrap();
            assert!(of.0 <= v && v <= of.1, "{name} {field}: {v} not in {of:?}");
        }
        for field in ["pressure", "queue-utilization", "waiting", "error-rate"] {
            let v = stage[field].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{name} {field}: {v}");
        }
        assert!(
            ["HEALTHY", "MODERATE", "HIGH", "CRITICAL"]
                .contains(&stage["health"].as_str().unwrap())
        );
    }
    let a = &p["accounting"];
    assert_eq!(a["received"], stages[0]["received"]);
    assert_eq!(a["delivered"], stages[4]["emitted"]);
    assert!(
        a["dead-lettered"].as_u64().unwrap() > 0,
        "every tenth is rejected"
    );
    assert!(p["health"].is_string() && p["pressure"].is_f64());
    client.stop();
    let result = client.wait().unwrap();
    let report = PipelineReport::new(&result.operators);
    assert!(report.accounted(), "{report}");
    assert_eq!(ends.load(Ordering::SeqCst), report.received());
}
