//! The five-stage pipeline over 2 and 3 real processes (the `cluster_pipeline`
//! example started by the launcher): every record is delivered or dead-lettered
//! exactly once, exactly the expected ones; receipts keep their key; each process's
//! gateways stay under their share of the limit (the shares add up to the limit);
//! and every record that ended in another process was counted back to its gateway
//! (each process knows every record its gateways admitted ended). A tight limit makes admission depend on those
//! reports: without them the gateways would stall for good. No wall-clock
//! assertions: a generous guard only turns a stall into a failure.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use flink_runtime::cluster::launcher::{Launch, launch};

const BIN: &str = env!("CARGO_BIN_EXE_cluster_pipeline");
const RECORDS: u64 = 3_000;
/// How long one launch may take before the test fails as stalled.
const GUARD: Duration = Duration::from_secs(180);

/// `payload -> lines` of every `<prefix>-*` file in `dir` (a payload twice fails).
fn read_all(dir: &Path, prefix: &str) -> BTreeMap<u64, Vec<String>> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with(&format!("{prefix}-")) {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let fields: Vec<String> = line.split(' ').map(String::from).collect();
            let payload: u64 = fields[0].parse().unwrap();
            assert!(
                all.insert(payload, fields[1..].to_vec()).is_none(),
                "{payload} twice in {prefix} files"
            );
        }
    }
    all
}

fn dead_expected(x: u64) -> bool {
    x.is_multiple_of(50) || x.is_multiple_of(77) || [1, 2, 8].contains(&(x % 100))
}

fn run(processes: usize, parallelism: usize, max_concurrent: usize, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let job = Launch {
        processes,
        program: BIN.into(),
        args: vec![
            "--records".into(),
            RECORDS.to_string().into(),
            "--parallelism".into(),
            parallelism.to_string().into(),
            "--max-concurrent".into(),
            max_concurrent.to_string().into(),
            "--output".into(),
            dir.into(),
        ],
        connect_timeout: Duration::from_secs(30),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(launch(&job));
    });
    let outcome = rx
        .recv_timeout(GUARD)
        .unwrap_or_else(|_| panic!("the job did not end within {GUARD:?}: stalled"))
        .unwrap();
    assert!(outcome.success(), "{outcome:?}");
}

fn check(processes: usize, parallelism: usize, max_concurrent: usize, dir: &Path) {
    let what = format!("{processes} processes, p={parallelism}, limit {max_concurrent}");
    // Delivered: every record not expected dead, as 10 x, with its key.
    let delivered = read_all(dir, "delivered");
    let expected_delivered: Vec<u64> = (1..=RECORDS)
        .filter(|x| !dead_expected(*x))
        .map(|x| x * 10)
        .collect();
    assert_eq!(
        delivered.keys().copied().collect::<Vec<_>>(),
        expected_delivered,
        "{what}"
    );
    for (payload, fields) in &delivered {
        assert_eq!(fields[0], format!("user-{}", (payload / 10) % 37), "{what}");
    }
    // Dead: exactly the expected ones, each at the stage that rejected it.
    let dead = read_all(dir, "dead");
    let expected_dead: Vec<u64> = (1..=RECORDS).filter(|x| dead_expected(*x)).collect();
    assert_eq!(
        dead.keys().copied().collect::<Vec<_>>(),
        expected_dead,
        "{what}"
    );
    for (payload, fields) in &dead {
        let stage = if payload.is_multiple_of(50) || payload.is_multiple_of(77) {
            "IngressProcessing"
        } else {
            "AsyncEgressProcessing"
        };
        assert_eq!(fields[0], stage, "{what}: {payload}");
    }
    assert_eq!(delivered.len() + dead.len(), RECORDS as usize, "{what}");
    // The limit: each process below its share; the shares add up to the limit;
    // nothing left inside once every process reported what ended there.
    let (mut shares, mut admitted) = (0, 0);
    for process in 0..processes {
        let line = std::fs::read_to_string(dir.join(format!("limit-{process}"))).unwrap();
        let v: Vec<u64> = line
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        let (max, share, violations, entered, ended) = (v[0], v[1], v[2], v[3], v[4]);
        assert_eq!(
            violations, 0,
            "{what}: process {process} above its share {share}"
        );
        assert!(max <= share, "{what}: process {process}: {max} > {share}");
        assert_eq!(
            entered, ended,
            "{what}: process {process} does not know every record of its gateways ended"
        );
        shares += share;
        admitted += entered;
    }
    assert_eq!(shares, max_concurrent as u64, "{what}");
    assert_eq!(admitted, RECORDS, "{what}: each record admitted once");
}

#[test]
fn the_pipeline_over_two_and_three_processes_accounts_for_every_record_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for (processes, parallelism, max_concurrent) in [(2, 2, 40), (2, 4, 8), (3, 4, 40)] {
        let out = dir
            .path()
            .join(format!("{processes}-{parallelism}-{max_concurrent}"));
        run(processes, parallelism, max_concurrent, &out);
        check(processes, parallelism, max_concurrent, &out);
    }
}

#[test]
fn the_pipeline_in_one_process_gives_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    run(1, 2, 40, dir.path());
    check(1, 2, 40, dir.path());
}
