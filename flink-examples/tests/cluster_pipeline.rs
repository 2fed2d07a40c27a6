//! The five-stage pipeline over 1, 2 and 3 real processes (the `cluster_pipeline`
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

/// The spread runs: `(processes, parallelism, limit)`. A limit of 8 makes admission
/// wait for the counts other processes report.
const SPREAD: [(usize, usize, usize); 5] =
    [(2, 1, 40), (2, 2, 40), (2, 4, 8), (3, 2, 8), (3, 4, 40)];

/// What a run wrote: its receipts and its dead letters, by payload.
type Outcome = (BTreeMap<u64, Vec<String>>, BTreeMap<u64, Vec<String>>);

fn outcome(dir: &Path) -> Outcome {
    (read_all(dir, "delivered"), read_all(dir, "dead"))
}

#[test]
fn the_pipeline_over_two_and_three_processes_gives_exactly_the_one_process_records() {
    let dir = tempfile::tempdir().unwrap();
    // One process at each parallelism, shared by the spread runs of that parallelism
    // (the limit changes when records are admitted, not what becomes of them).
    let mut alone: BTreeMap<usize, Outcome> = BTreeMap::new();
    for (processes, parallelism, max_concurrent) in SPREAD {
        let reference = alone.entry(parallelism).or_insert_with(|| {
            let out = dir.path().join(format!("alone-{parallelism}"));
            run(1, parallelism, 40, &out);
            check(1, parallelism, 40, &out);
            outcome(&out)
        });
        let out = dir
            .path()
            .join(format!("{processes}-{parallelism}-{max_concurrent}"));
        run(processes, parallelism, max_concurrent, &out);
        check(processes, parallelism, max_concurrent, &out);
        let spread = outcome(&out);
        for (what, got, want) in [
            ("receipts", &spread.0, &reference.0),
            ("dead letters", &spread.1, &reference.1),
        ] {
            // The first payload that differs, not two maps of thousands of entries.
            let differs = got
                .iter()
                .zip(want.iter())
                .find(|(g, w)| g != w)
                .map(|(g, w)| format!("{g:?} != {w:?}"));
            assert_eq!(
                (got.len(), differs),
                (want.len(), None),
                "{processes} processes, p={parallelism}: {what} differ from one process's"
            );
        }
    }
}
