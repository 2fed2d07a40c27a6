//! Process 0's REST API and `/metrics` show the whole job spread over processes:
//! every subtask of every vertex with the process running it, the other processes'
//! from the views they send process 0, and at the end the final counts exactly. The
//! `cluster_keyed` example is started by the launcher with its sinks in process 1
//! held until the test lets them write, so every subtask is running while it looks
//! (no timing assumed: a generous guard only prevents a hang).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use flink_runtime::cluster::launcher::{Launch, launch};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cluster_keyed");
const GUARD: Duration = Duration::from_secs(120);
const RECORDS: u64 = 60_000;

/// The body of `GET path` on `address`, which must answer 200.
fn get_text(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "GET {path}: a chunked body"
    );
    body.to_string()
}

fn get(address: &str, path: &str) -> Value {
    serde_json::from_str(&get_text(address, path)).unwrap()
}

/// Waits until `file` exists, within the guard.
fn wait_for(file: &Path) {
    let deadline = Instant::now() + GUARD;
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `(address, job id)` of process `p`'s REST API, once it announced it.
fn web_ui(dir: &Path, p: usize) -> (String, String) {
    let file = dir.join(format!("web-ui-{p}"));
    wait_for(&file);
    let text = std::fs::read_to_string(file).unwrap();
    let (address, job) = text.split_once(' ').unwrap();
    (address.to_string(), job.to_string())
}

/// The subtasks of every vertex of the job as `address` lists them:
/// `(vertex name, parallelism, subtasks)`.
fn vertices(address: &str, job: &str) -> Vec<(String, u64, Vec<Value>)> {
    let details = get(address, &format!("/jobs/{job}"));
    details["vertices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let id = v["id"].as_str().unwrap();
            let view = get(address, &format!("/jobs/{job}/vertices/{id}"));
            (
                v["name"].as_str().unwrap().to_string(),
                v["parallelism"].as_u64().unwrap(),
                view["subtasks"].as_array().unwrap().clone(),
            )
        })
        .collect()
}

/// Whether every subtask of every vertex is listed, in order, with the process
/// that runs it (`subtask % processes`) and `status`.
fn all_listed(vertices: &[(String, u64, Vec<Value>)], processes: u64, status: &str) -> bool {
    vertices.iter().all(|(_, parallelism, subtasks)| {
        subtasks.len() as u64 == *parallelism
            && subtasks.iter().enumerate().all(|(s, t)| {
                t["subtask"] == s as u64
                    && t["process"] == s as u64 % processes
                    && t["status"] == status
            })
    })
}

/// The sum of `field` of `metrics` over the subtasks of the vertex named `name`.
fn vertex_sum(vertices: &[(String, u64, Vec<Value>)], name: &str, field: &str) -> u64 {
    let (_, _, subtasks) = vertices
        .iter()
        .find(|(n, _, _)| n.contains(name))
        .unwrap_or_else(|| panic!("a vertex named {name}"));
    subtasks
        .iter()
        .map(|t| t["metrics"][field].as_u64().unwrap())
        .sum()
}

fn process_0_shows_every_subtask_of(processes: usize, parallelism: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (web, output) = (dir.path().join("web"), dir.path().join("out"));
    let go = dir.path().join("go");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::create_dir_all(&output).unwrap();
    let mut args: Vec<std::ffi::OsString> = [
        "--records",
        &RECORDS.to_string(),
        "--parallelism",
        &parallelism.to_string(),
        // Small buffers: the held sink holds every source back long before its end.
        "--buffer-size",
        "1024",
        "--paced-process",
        "1",
    ]
    .iter()
    .map(Into::into)
    .collect();
    for (flag, path) in [
        ("--hold-until", &go),
        ("--web-ui-dir", &web),
        ("--output", &output),
    ] {
        args.push(flag.into());
        args.push(path.into());
    }
    let job = Launch {
        processes,
        program: BIN.into(),
        args,
        connect_timeout: Duration::from_secs(30),
    };
    let launched = std::thread::spawn(move || launch(&job));
    let (p0, job0) = web_ui(&web, 0);
    let (p1, job1) = web_ui(&web, 1);

    // While process 1's sinks are held every subtask runs: process 0 lists them all,
    // each with its process, once the others' views arrived.
    let deadline = Instant::now() + GUARD;
    let running = loop {
        let now = vertices(&p0, &job0);
        if all_listed(&now, processes as u64, "RUNNING") {
            break now;
        }
        assert!(Instant::now() < deadline, "not all running: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(running.len(), 2, "{running:?}");
    let details = get(&p0, &format!("/jobs/{job0}"));
    assert_eq!(
        details["status-counts"]["RUNNING"],
        (2 * parallelism) as u64,
        "{details}"
    );
    assert_eq!(
        details["vertices"][1]["tasks"]["RUNNING"],
        parallelism as u64
    );

    // Process 0's /metrics has process 1's subtasks, labelled with their process.
    let metrics = get_text(&p0, "/metrics");
    let remote_sink = metrics.lines().any(|l| {
        l.starts_with("flink_taskmanager_job_task_numRecordsIn{")
            && l.contains("Latest Sums")
            && l.contains("subtask_index=\"1\"")
            && l.contains("process=\"1\"")
    });
    assert!(remote_sink, "{metrics}");

    // Process 1 shows its own part only.
    for (_, _, subtasks) in vertices(&p1, &job1) {
        assert!(!subtasks.is_empty());
        assert!(subtasks.iter().all(|t| t["process"] == 1), "{subtasks:?}");
    }
    let own = get_text(&p1, "/metrics");
    assert!(!own.contains("process=\"0\""), "{own}");

    // The bottleneck verdict is per process; every process's watch closes windows
    // over its own subtasks (it does not stay "measuring").
    for (address, job) in [(&p0, &job0), (&p1, &job1)] {
        let deadline = Instant::now() + GUARD;
        while get(address, &format!("/jobs/{job}/bottleneck"))["verdict"] == "measuring" {
            assert!(Instant::now() < deadline, "no verdict on {address}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Released, the job ends; process 0's final view counts every record exactly.
    std::fs::write(&go, "").unwrap();
    wait_for(&web.join("ended-0"));
    let end = vertices(&p0, &job0);
    assert!(all_listed(&end, processes as u64, "FINISHED"), "{end:?}");
    assert_eq!(vertex_sum(&end, "Latest Sums", "read-records"), RECORDS);
    assert_eq!(vertex_sum(&end, "Key", "write-records"), RECORDS);
    let details = get(&p0, &format!("/jobs/{job0}"));
    assert_eq!(details["state"], "FINISHED", "{details}");
    assert_eq!(details["vertices"][1]["metrics"]["read-records"], RECORDS);
    std::fs::write(web.join("release"), "").unwrap();
    let outcome = launched.join().unwrap().unwrap();
    assert!(outcome.success(), "{outcome:?}");
}

#[test]
fn process_0_shows_every_subtask_of_two_processes_and_the_final_counts_exactly() {
    process_0_shows_every_subtask_of(2, 4);
}

#[test]
fn process_0_shows_every_subtask_of_three_processes_and_the_final_counts_exactly() {
    process_0_shows_every_subtask_of(3, 3);
}
