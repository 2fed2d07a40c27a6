//! The `flink-rs run` launcher with stand-in job binaries (`sh -c ...`): it gives
//! each process its place, prefixes their lines, and fails (stopping the others)
//! when one fails, and restarts the job from its latest checkpoint as the restart
//! plan process 0 wrote allows. A guard timeout only prevents a hang.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_flink-rs");

fn run(args: &[&str]) -> Output {
    let started = Instant::now();
    let out = Command::new(LAUNCHER).args(args).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(60), "launcher hung");
    out
}

#[test]
fn every_process_gets_its_place_and_a_prefix() {
    let out = run(&[
        "run",
        "--processes",
        "3",
        "--",
        "sh",
        "-c",
        "echo index=$FLINK_RS_PROCESS_INDEX of=$FLINK_RS_PROCESSES peers=$FLINK_RS_PEERS",
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("[p{i}] index={i} of=3 peers=127.0.0.1:")));
        let peers = line.split("peers=").nth(1).unwrap();
        assert_eq!(peers.split(',').count(), 3, "{line}");
    }
}

#[test]
fn one_failing_process_fails_the_run_and_stops_the_others() {
    // Process 1 fails at once; the others would sleep for ten minutes.
    let out = run(&[
        "run",
        "--processes",
        "3",
        "--",
        "sh",
        "-c",
        "if [ $FLINK_RS_PROCESS_INDEX = 1 ]; then echo broken >&2; exit 3; fi; exec sleep 600",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("[p1] broken"), "{stderr}");
    assert!(stderr.contains("process 1 failed"), "{stderr}");
}

#[test]
fn bad_usage_is_refused() {
    let out = run(&["run", "--processes", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("usage"));
    let out = run(&["run", "--processes", "0", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A stand-in job: process 0 writes the restart plan (FixedDelay, `attempts`, the
/// checkpoint directory `dir` holding a completed `j/chk-7`), every process prints
/// the checkpoint it restores from; process 1 then runs `process_1` once the plan
/// is written (as a real job's processes run only after process 0 joined, which
/// writes it first).
fn supervised_job(dir: &std::path::Path, attempts: u32, process_1: &str) -> String {
    std::fs::create_dir_all(dir.join("j/chk-7")).unwrap();
    std::fs::write(dir.join("j/chk-7/_metadata"), "{}").unwrap();
    let plan = format!(
        r#"{{"job_name":"j","restart_strategy":{{"FixedDelay":{{"attempts":{attempts},"delay":{{"secs":0,"nanos":1000000}}}}}},"checkpoint_dir":"{}"}}"#,
        dir.display()
    );
    format!(
        "if [ $FLINK_RS_PROCESS_INDEX = 0 ]; then printf '%s' '{plan}' > $FLINK_RS_SUPERVISOR_FILE.tmp; \
           mv $FLINK_RS_SUPERVISOR_FILE.tmp $FLINK_RS_SUPERVISOR_FILE; fi; \
         echo restore=$FLINK_RS_RESTORE_FROM restarts=$FLINK_RS_RESTARTS >&2; \
         if [ $FLINK_RS_PROCESS_INDEX = 1 ]; then \
           while [ ! -e $FLINK_RS_SUPERVISOR_FILE ]; do sleep 0.01; done; {process_1}; \
         else exec sleep 600; fi"
    )
}

#[test]
fn a_failed_job_is_restarted_from_its_latest_checkpoint_as_its_strategy_allows() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("failed-once");
    // Process 1 fails the first time only.
    let script = supervised_job(
        dir.path(),
        3,
        &format!(
            "if [ -e {m} ]; then exit 0; else touch {m}; exit 3; fi",
            m = marker.display()
        ),
    );
    // Process 0 waits until process 1 ended (its marker exists, or it exited 0),
    // then succeeds; in the first run it is killed when process 1 fails.
    let script = script.replace("exec sleep 600", "sleep 1; exit 0");
    let out = run(&["run", "--processes", "2", "--", "sh", "-c", &script]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let chk = dir.path().join("j/chk-7");
    assert!(
        stderr.contains(&format!(
            "[p1] restore={} restarts=[{{\"cause\":\"process 1 ended (exit status: 3)\",\"restored_checkpoint\":7}}]",
            chk.display()
        )),
        "the restart restores the latest checkpoint: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "restart 1: process 1 ended (exit status: 3); restored from {}",
            chk.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("restart 2"), "{stderr}");
}

#[test]
fn a_job_failing_again_and_again_stops_when_its_restart_strategy_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let script = supervised_job(dir.path(), 2, "exit 3");
    let out = run(&["run", "--processes", "3", "--", "sh", "-c", &script]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("restart 2:"), "{stderr}");
    assert!(!stderr.contains("restart 3:"), "{stderr}");
    assert!(
        stderr.contains("the restart strategy allows no more restarts after 2"),
        "{stderr}"
    );
    assert!(stderr.contains("process 1 failed"), "{stderr}");
}
