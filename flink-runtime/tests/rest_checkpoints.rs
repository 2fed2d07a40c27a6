//! `GET /jobs/{id}/checkpoints` and the checkpoint gauges of `/metrics`, read over
//! HTTP from a running job: counts, latest completed / savepoint / restored, the
//! history with each task's acknowledgement, consistent with what the job did.

use std::path::Path;
use std::time::{Duration, Instant};

use flink_runtime::prelude::*;
use serde_json::Value;

const GUARD: Duration = Duration::from_secs(60);

fn get(address: std::net::SocketAddr, path: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::get(format!("http://{address}{path}"))
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

fn get_json(address: std::net::SocketAddr, path: &str) -> Value {
    let (status, body) = get(address, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// An endless keyed sum over 10 keys (state in every checkpoint), served on a free
/// port, checkpointing every 10 ms into `dir`.
fn job(dir: &Path, checkpointing: bool) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.enable_web_ui("127.0.0.1:0".parse().unwrap());
    if checkpointing {
        env.enable_checkpointing(Duration::from_millis(10))
            .set_storage_dir(dir);
    }
    env.from_sequence(0, u64::MAX)
        .uid("numbers")
        .map(|x: u64| (x % 10, 1u64))
        .key_by(|r: &(u64, u64)| r.0)
        .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
        .uid("counts")
        .filter(|_: &(u64, u64)| false)
        .collect_vec();
    env
}

fn checkpoints_of(client: &JobClient) -> Value {
    let id = client.job_id().unwrap();
    get_json(
        client.web_ui_address().unwrap(),
        &format!("/jobs/{id}/checkpoints"),
    )
}

#[test]
fn the_checkpoint_history_shows_what_the_coordinator_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let client = job(dir.path(), true).execute_async("counted").unwrap();
    let start = Instant::now();
    let mut body = checkpoints_of(&client);
    while body["counts"]["completed"].as_u64().unwrap() < 3 {
        assert!(start.elapsed() < GUARD, "no checkpoints: {body}");
        std::thread::sleep(Duration::from_millis(10));
        body = checkpoints_of(&client);
    }
    let savepoint = client.trigger_savepoint(dir.path().join("sp")).unwrap();
    let body = checkpoints_of(&client);
    let counts = &body["counts"];
    let (completed, failed) = (
        counts["completed"].as_u64().unwrap(),
        counts["failed"].as_u64().unwrap(),
    );
    assert_eq!(
        counts["total"].as_u64().unwrap(),
        completed + failed + counts["in_progress"].as_u64().unwrap()
    );
    let history = body["history"].as_array().unwrap();
    assert!(!history.is_empty() && history.len() <= 10);
    let ids: Vec<u64> = history.iter().map(|h| h["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    // Every task (2 source+map, 2 keyed reduce+filter+sink) acknowledged each
    // completed one, with its state.
    for h in history.iter().filter(|h| h["status"] == "COMPLETED") {
        assert_eq!(h["num_subtasks"], 4, "{h}");
        assert_eq!(h["num_acknowledged_subtasks"], 4, "{h}");
        let tasks = h["tasks"].as_object().unwrap();
        let acks: u64 = tasks
            .values()
            .map(|t| t["num_acknowledged_subtasks"].as_u64().unwrap())
            .sum();
        assert_eq!(acks, 4);
        let sizes: u64 = tasks
            .values()
            .flat_map(|t| t["subtasks"].as_array().unwrap().iter())
            .map(|s| s["state_size"].as_u64().unwrap())
            .sum();
        assert_eq!(sizes, h["state_size"].as_u64().unwrap());
        assert!(sizes > 0);
        for s in tasks
            .values()
            .flat_map(|t| t["subtasks"].as_array().unwrap().iter())
        {
            // Neither can exceed the checkpoint's whole duration.
            let duration = h["end_to_end_duration"].as_u64().unwrap();
            assert!(s["start_delay"].as_u64().unwrap() <= duration, "{s}");
            assert!(s["alignment_duration"].as_u64().unwrap() <= duration, "{s}");
        }
        assert!(h["external_path"].as_str().is_some());
    }
    let latest = &body["latest"]["savepoint"];
    assert_eq!(latest["is_savepoint"], true);
    assert_eq!(latest["checkpoint_type"], "SAVEPOINT");
    assert_eq!(latest["external_path"], savepoint.display().to_string());
    let last = &body["latest"]["completed"];
    assert_eq!(last["status"], "COMPLETED");
    assert!(last["external_path"].as_str().unwrap().contains("chk-"));

    // The gauges say the same as the history.
    let (_, metrics) = get(client.web_ui_address().unwrap(), "/metrics");
    let gauge = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("flink_jobmanager_job_{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("{name} missing"))
            .parse()
            .unwrap()
    };
    assert!(gauge("numberOfCompletedCheckpoints") >= completed as f64);
    assert!(gauge("lastCheckpointSize") > 0.0);
    assert!(gauge("lastCheckpointDuration") >= 0.0);
    assert!(gauge("numberOfFailedCheckpoints") >= 0.0);
    client.cancel();
    let _ = client.wait();

    // A job restored from the savepoint says so.
    let env = job(dir.path(), true);
    env.restore_from(&savepoint);
    let client = env.execute_async("counted").unwrap();
    let body = checkpoints_of(&client);
    assert_eq!(body["counts"]["restored"], 1);
    let restored = &body["latest"]["restored"];
    assert_eq!(restored["is_savepoint"], true);
    assert_eq!(restored["external_path"], savepoint.display().to_string());
    client.cancel();
    let _ = client.wait();
}

#[test]
fn a_job_without_checkpoints_has_no_checkpoint_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let client = job(dir.path(), false).execute_async("unchecked").unwrap();
    let address = client.web_ui_address().unwrap();
    let (status, body) = get(
        address,
        &format!("/jobs/{}/checkpoints", client.job_id().unwrap()),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no checkpoints"), "{body}");
    let (status, _) = get(
        address,
        "/jobs/00000000000000000000000000000000/checkpoints",
    );
    assert_eq!(status, 404);
    client.cancel();
    let _ = client.wait();
}

fn post(address: std::net::SocketAddr, path: &str, body: &str) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("http://{address}{path}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

/// Polls a savepoint request until it completed; returns its location.
fn savepoint_location(address: std::net::SocketAddr, jid: &str, request: &Value) -> String {
    let rid = request["request-id"].as_str().expect("a request id");
    let start = Instant::now();
    loop {
        let body = get_json(address, &format!("/jobs/{jid}/savepoints/{rid}"));
        if body["status"]["id"] == "COMPLETED" {
            return body["operation"]["location"]
                .as_str()
                .unwrap_or_else(|| panic!("failed: {body}"))
                .to_string();
        }
        assert_eq!(body["status"]["id"], "IN_PROGRESS");
        assert!(start.elapsed() < GUARD, "the savepoint never completed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn savepoints_are_taken_and_a_job_stopped_with_one_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let client = job(dir.path(), true).execute_async("saved").unwrap();
    let (address, jid) = (
        client.web_ui_address().unwrap(),
        client.job_id().unwrap().to_string(),
    );
    let target = dir.path().join("sp").display().to_string();

    let (status, request) = post(
        address,
        &format!("/jobs/{jid}/savepoints"),
        &format!(r#"{{"target-directory": "{target}", "cancel-job": false}}"#),
    );
    assert_eq!(status, 202, "{request}");
    let first = savepoint_location(address, &jid, &request);
    assert!(Path::new(&first).join("_metadata").is_file());
    let (status, _) = get(address, &format!("/jobs/{jid}/savepoints/0123"));
    assert_eq!(status, 404);
    let (status, _) = post(
        address,
        &format!("/jobs/{jid}/savepoints"),
        r#"{"cancel-job": true}"#,
    );
    assert_eq!(status, 400, "no target directory");

    let (status, request) = post(
        address,
        &format!("/jobs/{jid}/stop"),
        &format!(r#"{{"drain": false, "targetDirectory": "{target}"}}"#),
    );
    assert_eq!(status, 202, "{request}");
    let second = savepoint_location(address, &jid, &request);
    let result = client
        .wait()
        .expect("stopped with a savepoint, the job finishes");
    assert_eq!(result.savepoint.unwrap().display().to_string(), second);
    assert_ne!(first, second);
}

#[test]
fn a_stop_with_a_drain_and_a_savepoint_through_the_api_drains_then_saves() {
    let dir = tempfile::tempdir().unwrap();
    let client = job(dir.path(), true).execute_async("drained").unwrap();
    let (address, jid) = (
        client.web_ui_address().unwrap(),
        client.job_id().unwrap().to_string(),
    );
    let target = dir.path().join("sp").display().to_string();
    let (status, request) = post(
        address,
        &format!("/jobs/{jid}/stop"),
        &format!(r#"{{"drain": true, "targetDirectory": "{target}"}}"#),
    );
    assert_eq!(status, 202, "{request}");
    let location = savepoint_location(address, &jid, &request);
    assert!(Path::new(&location).join("_metadata").is_file());
    let result = client
        .wait()
        .expect("stopped with a drain and a savepoint, the job finishes");
    assert!(result.stopped);
    assert_eq!(result.savepoint.unwrap().display().to_string(), location);
}
