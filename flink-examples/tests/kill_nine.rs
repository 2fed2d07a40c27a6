//! `kill -9` of a whole job process: the `resumable_sum` example is killed with
//! SIGKILL once a checkpoint completed, started again with `--restore`
//! (`restore_from(latest_checkpoint(dir, job))`), and its committed part files then
//! hold exactly what a run without the kill commits. No timing assertions: timing
//! only decides where the kill falls; a guard timeout prevents a hang.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_resumable_sum");
const RECORDS: &str = "60000";

fn job(checkpoints: &Path, output: &Path, rate: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["--records", RECORDS, "--parallelism", "2", "--rate", rate])
        .arg("--checkpoint-dir")
        .arg(checkpoints)
        .arg("--output-dir")
        .arg(output)
        .stdout(Stdio::null());
    cmd
}

/// Whether a completed checkpoint (one with `_metadata`) exists.
fn has_completed_checkpoint(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir.join("resumable-sum")) else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .any(|e| e.path().join("_metadata").is_file())
}

#[test]
fn a_process_killed_mid_run_resumes_from_its_latest_checkpoint_with_exact_output() {
    let dir = tempfile::tempdir().unwrap();
    let (checkpoints, output) = (dir.path().join("checkpoints"), dir.path().join("out"));

    // 60,000 records at 20,000/s: about 3 s, checkpoints every 50 ms.
    let mut child = job(&checkpoints, &output, "20000").spawn().unwrap();
    let start = Instant::now();
    while !has_completed_checkpoint(&checkpoints) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job ended before its first checkpoint"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
    let (before, _) = common::committed(&output);
    assert!(
        before.len() < 60_000,
        "the kill fell mid-run: {} committed",
        before.len()
    );

    let restored = job(&checkpoints, &output, "1000000")
        .arg("--restore")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(restored.status.success());
    let said = String::from_utf8_lossy(&restored.stdout);
    assert!(said.contains("restoring from"), "{said}");
    let (resumed, leftovers) = common::committed(&output);
    assert!(
        leftovers.is_empty(),
        "uncommitted files left: {leftovers:?}"
    );

    // A run without the kill.
    let clean = tempfile::tempdir().unwrap();
    let status = job(
        &clean.path().join("checkpoints"),
        &clean.path().join("out"),
        "1000000",
    )
    .status()
    .unwrap();
    assert!(status.success());
    let (expected, _) = common::committed(&clean.path().join("out"));
    assert_eq!(expected.len(), 60_000);
    assert_eq!(
        resumed, expected,
        "exactly the output of a run without the kill"
    );
}
