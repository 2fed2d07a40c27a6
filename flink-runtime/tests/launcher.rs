//! The `flink-rs run` launcher with stand-in job binaries (`sh -c ...`): it gives
//! each process its place, prefixes their lines, and fails (stopping the others)
//! when one fails. A guard timeout only prevents a hang.

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
