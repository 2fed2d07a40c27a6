//! One job across several real processes (application mode): the `cluster_keyed`
//! example started N times, by the launcher or by hand with the environment variables
//! it sets. Exact results against a one-process run, back pressure across processes,
//! failures in one process failing the others, and bad cluster settings. No
//! wall-clock assertions: a generous guard only prevents a hang.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use flink_core::cluster::ClusterConfig;
use flink_runtime::cluster::launcher::{Launch, cluster_env, free_loopback_ports, launch};

const BIN: &str = env!("CARGO_BIN_EXE_cluster_keyed");
const GUARD: Duration = Duration::from_secs(120);
const RECORDS: u64 = 60_000;

/// `key -> (latest sum, updates)` over every `part-*` file in `dir`; a key written by
/// two sink subtasks fails the test (each key has one owner).
fn merged(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let value = (f[1].parse().unwrap(), f[2].parse().unwrap());
            assert!(
                all.insert(f[0].to_string(), value).is_none(),
                "key {} twice",
                f[0]
            );
        }
    }
    all
}

/// What the job must give: per key `k` of 0..100, the sum and count of x in
/// 1..=RECORDS with x % 100 == k.
fn expected() -> BTreeMap<String, (u64, u64)> {
    let mut e = BTreeMap::new();
    for x in 1..=RECORDS {
        let v: &mut (u64, u64) = e.entry((x % 100).to_string()).or_default();
        *v = (v.0 + x, v.1 + 1);
    }
    e
}

/// The windowed job's output: per key and 1 s window (`key@end`), the sum of the
/// values (timestamps) in it, each window fired once.
fn expected_windows() -> BTreeMap<String, (u64, u64)> {
    let mut e = BTreeMap::new();
    for x in 1..=RECORDS {
        let end = (x / 1000 + 1) * 1000;
        let v: &mut (u64, u64) = e.entry(format!("{}@{end}", x % 100)).or_default();
        *v = (v.0 + x, 1);
    }
    e
}

fn job_args(parallelism: usize, output: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--records".into(),
        RECORDS.to_string().into(),
        "--parallelism".into(),
        parallelism.to_string().into(),
        "--output".into(),
        output.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    args
}

fn run_alone(parallelism: usize, output: &Path, extra: &[&str]) -> BTreeMap<String, (u64, u64)> {
    std::fs::create_dir_all(output).unwrap();
    let status = Command::new(BIN)
        .args(job_args(parallelism, output, extra))
        .env_remove(flink_core::cluster::ENV_PROCESSES)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    merged(output)
}

fn run_launched(
    processes: usize,
    parallelism: usize,
    output: &Path,
    extra: &[&str],
) -> BTreeMap<String, (u64, u64)> {
    std::fs::create_dir_all(output).unwrap();
    let outcome = launch(&Launch {
        processes,
        program: BIN.into(),
        args: job_args(parallelism, output, extra),
        connect_timeout: Duration::from_secs(30),
    })
    .unwrap();
    assert!(outcome.success(), "{outcome:?}");
    merged(output)
}

/// The keyed job's shapes: `(source parallelism, parallelism)`, the source at the
/// job's parallelism (p = 1, 2, 4) and one source subtask feeding 4 keyed ones.
const KEYED_SHAPES: [(Option<usize>, usize); 4] = [(None, 1), (None, 2), (None, 4), (Some(1), 4)];

#[test]
fn a_keyed_job_over_two_and_three_processes_gives_exactly_the_one_process_results() {
    let dir = tempfile::tempdir().unwrap();
    let expected = expected();
    for (source, parallelism) in KEYED_SHAPES {
        let source_arg = source.map(|s| s.to_string());
        let extra: Vec<&str> = match &source_arg {
            Some(s) => vec!["--source-parallelism", s],
            None => vec![],
        };
        let shape = format!("{}-{parallelism}", source.unwrap_or(parallelism));
        let alone = run_alone(
            parallelism,
            &dir.path().join(format!("alone-{shape}")),
            &extra,
        );
        assert_eq!(alone, expected, "one process, source/p={shape}");
        for processes in [2, 3] {
            let out = dir.path().join(format!("cluster-{processes}-{shape}"));
            let spread = run_launched(processes, parallelism, &out, &extra);
            assert_eq!(spread, alone, "{processes} processes, source/p={shape}");
        }
    }
}

#[test]
fn an_event_time_window_job_over_two_and_three_processes_fires_every_window_once_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let expected = expected_windows();
    let window = ["--window-ms", "1000"];
    for parallelism in [1, 2, 4] {
        let alone = run_alone(
            parallelism,
            &dir.path().join(format!("alone-{parallelism}")),
            &window,
        );
        assert_eq!(alone, expected, "one process, p={parallelism}");
        for processes in [2, 3] {
            let out = dir
                .path()
                .join(format!("cluster-{processes}-{parallelism}"));
            let spread = run_launched(processes, parallelism, &out, &window);
            assert_eq!(spread, alone, "{processes} processes, p={parallelism}");
        }
    }
}

/// A process started by hand with its place in the environment.
fn spawn(cluster: &ClusterConfig, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .envs(cluster_env(cluster))
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` (killing it past the guard, which fails the test); its status,
/// standard output and standard error.
fn finish(mut child: Child) -> (ExitStatus, String, String) {
    let deadline = Instant::now() + GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a process did not end within {GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, out, err)
}

/// The configs of `n` processes on free loopback ports.
fn cluster(n: usize, timeout: Duration) -> Vec<ClusterConfig> {
    let peers: Vec<String> = free_loopback_ports(n)
        .unwrap()
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    (0..n)
        .map(|i| {
            ClusterConfig::new(n, i, peers.clone(), b"test secret".to_vec())
                .with_connect_timeout(timeout)
        })
        .collect()
}

#[test]
fn a_paced_sink_in_one_process_holds_the_source_in_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let progress = dir.path().to_str().unwrap();
    let configs = cluster(2, Duration::from_secs(30));
    // One source (in process 0); sink subtask 1 (in process 1) takes 50 µs a record.
    let args = [
        "--records",
        "40000",
        "--parallelism",
        "2",
        "--source-parallelism",
        "1",
        "--buffer-size",
        "1024",
        "--pace-us",
        "50",
        "--paced-process",
        "1",
        "--progress-dir",
        progress,
    ];
    let children: Vec<Child> = configs.iter().map(|c| spawn(c, &args)).collect();
    let results: Vec<_> = children.into_iter().map(finish).collect();
    for (status, _, err) in &results {
        assert!(status.success(), "{err}");
    }
    let sunk: u64 = results.iter().map(|(_, out, _)| field(out, "sunk=")).sum();
    assert_eq!(sunk, 40_000, "every record reached a sink exactly once");
    // Without back pressure the source would be ~17,000 ahead of the paced sink.
    let bound = in_flight_bound(2, 1024);
    let in_flight = field(&results[0].1, "max_in_flight=");
    println!("{in_flight} records in flight at most, bound {bound}");
    assert!(
        in_flight <= bound,
        "{in_flight} records in flight, the buffers allow {bound}"
    );
}

/// The most records in flight (emitted by the one source subtask, in process 0, and
/// not yet at a sink) that the buffers allow in the keyed job at `parallelism` with
/// `buffer_size`-byte buffers, one source feeding every keyed subtask; counted as
/// process 0's map measures it (its sinks in memory, the others' published every
/// 64 records). Without back pressure the source runs ahead of a paced sink by
/// thousands.
fn in_flight_bound(parallelism: usize, buffer_size: usize) -> u64 {
    let config = flink_core::config::ExecutionConfig::default();
    let net = flink_runtime::network::NetworkConfig {
        buffer_size,
        exclusive_buffers_per_channel: config.exclusive_buffers_per_channel,
        floating_buffers_per_gate: config.floating_buffers_per_gate,
    };
    // The source's partition: its whole pool (queued and being filled). Each keyed
    // subtask's gate (one channel): every segment (received, or credited and on the
    // wire), plus the buffer its task is delivering.
    let buffers = net.default_partition_pool_size(parallelism)
        + parallelism * (net.gate_segment_capacity(1) + 1);
    // A `(u64, u64)` record: 16 bytes (fixed-width integers) after its length.
    let record = (flink_core::codec::LENGTH_PREFIX + 16) as u64;
    let in_buffers = (buffers * buffer_size) as u64 / record + 1
        // one record spanning into a buffer already consumed, per channel
        + parallelism as u64;
    // The source's batch: mapped (counted) before it is written.
    let hand_off = flink_core::sources::SOURCE_BATCH;
    // Sinks outside process 0 publish their count every 64 records.
    let unpublished = (parallelism as u64 - 1) * 63;
    in_buffers + hand_off + unpublished
}

#[test]
fn a_paced_sink_in_process_2_holds_the_source_in_process_0_with_records_in_flight_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let progress = dir.path().to_str().unwrap();
    let configs = cluster(3, Duration::from_secs(30));
    // One source (in process 0) feeding 3 keyed subtasks, one per process; the sink
    // of process 2 takes 50 µs a record.
    let (records, parallelism, buffer_size) = (40_000, 3, 1024);
    let args = [
        "--records".to_string(),
        records.to_string(),
        "--parallelism".into(),
        parallelism.to_string(),
        "--source-parallelism".into(),
        "1".into(),
        "--buffer-size".into(),
        buffer_size.to_string(),
        "--pace-us".into(),
        "50".into(),
        "--paced-process".into(),
        "2".into(),
        "--progress-dir".into(),
        progress.into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let children: Vec<Child> = configs.iter().map(|c| spawn(c, &args)).collect();
    let results: Vec<_> = children.into_iter().map(finish).collect();
    for (status, _, err) in &results {
        assert!(status.success(), "{err}");
    }
    let sunk: Vec<u64> = results
        .iter()
        .map(|(_, out, _)| field(out, "local_sunk="))
        .collect();
    assert_eq!(
        sunk.iter().sum::<u64>(),
        records,
        "every record at a sink once"
    );
    assert!(sunk.iter().all(|&n| n > 0), "every process sank: {sunk:?}");
    assert_eq!(field(&results[0].1, "job_sunk="), records);
    let bound = in_flight_bound(parallelism, buffer_size);
    let in_flight = field(&results[0].1, "max_in_flight=");
    println!("{in_flight} records in flight at most, bound {bound}");
    assert!(
        in_flight <= bound,
        "{in_flight} records in flight, the buffers allow {bound}"
    );
}

/// The number after `name` in `text`.
fn field(text: &str, name: &str) -> u64 {
    let at = text
        .find(name)
        .unwrap_or_else(|| panic!("{name} in {text}"))
        + name.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_failure_in_one_process_fails_the_other_with_an_error_naming_it() {
    let configs = cluster(2, Duration::from_secs(30));
    let args = [
        "--records",
        "200000",
        "--parallelism",
        "2",
        "--fail-at",
        "150000",
    ];
    let children: Vec<Child> = configs.iter().map(|c| spawn(c, &args)).collect();
    let results: Vec<_> = children.into_iter().map(finish).collect();
    assert!(results.iter().all(|(s, _, _)| !s.success()));
    let failed = results
        .iter()
        .position(|(_, _, err)| err.contains("record 150000 fails"))
        .expect("one process names the failing operator");
    let other = &results[1 - failed].2;
    assert!(
        other.contains(&format!("connection to process {failed} at")),
        "{other}"
    );
}

/// Starts the two processes of `configs` on 200,000 records with process 1's sink
/// paced (100 µs per record) and its progress in `progress`, and returns them
/// (process 0, process 1) once process 1's sink wrote records: mid-job.
fn spawn_until_process_1_wrote(configs: &[ClusterConfig], progress: &Path) -> (Child, Child) {
    let dir = progress.to_str().unwrap();
    let args = [
        "--records",
        "200000",
        "--parallelism",
        "2",
        "--pace-us",
        "100",
        "--paced-process",
        "1",
        "--progress-dir",
        dir,
    ];
    let first = spawn(&configs[0], &args);
    let second = spawn(&configs[1], &args);
    let deadline = Instant::now() + GUARD;
    while !std::fs::read_dir(progress)
        .unwrap()
        .any(|e| e.unwrap().path().extension().is_some_and(|x| x == "count"))
    {
        assert!(Instant::now() < deadline, "process 1 never wrote a record");
        std::thread::sleep(Duration::from_millis(20));
    }
    (first, second)
}

#[test]
fn a_process_killed_mid_job_fails_the_other_with_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let configs = cluster(2, Duration::from_secs(30));
    // Process 1's sink is paced; act once it wrote records (publishes every 64): mid-job.
    let (survivor, mut victim) = spawn_until_process_1_wrote(&configs, dir.path());
    victim.kill().unwrap(); // SIGKILL
    let _ = victim.wait();
    let (status, _, err) = finish(survivor);
    assert!(!status.success());
    assert!(err.contains("connection to process 1 at"), "{err}");
}

#[test]
fn bad_cluster_settings_are_clear_errors() {
    // A peer list that does not match the number of processes: refused at build.
    let mut wrong = cluster(2, Duration::from_secs(5)).remove(0);
    wrong.peers.pop();
    let (status, _, err) = finish(spawn(&wrong, &["--records", "10"]));
    assert!(!status.success());
    assert!(
        err.contains("1 peer address(es) given for 2 processes"),
        "{err}"
    );

    // This process's port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut busy = cluster(2, Duration::from_secs(5)).remove(0);
    busy.peers[0] = taken.local_addr().unwrap().to_string();
    let (status, _, err) = finish(spawn(&busy, &["--records", "10"]));
    assert!(!status.success());
    assert!(
        err.contains(&format!("process 0 cannot listen on {}", busy.peers[0])),
        "{err}"
    );

    // A peer that never comes up: both roles time out naming it.
    let configs = cluster(2, Duration::from_millis(500));
    for (me, missing) in [(0, 1), (1, 0)] {
        let (status, _, err) = finish(spawn(&configs[me], &["--records", "10"]));
        assert!(!status.success());
        let want = format!(
            "process {missing} at {} did not connect within 500 ms",
            configs[me].peers[missing]
        );
        assert!(err.contains(&want), "{err}");
    }
}

#[test]
fn processes_of_different_job_graphs_refuse_each_other() {
    let configs = cluster(2, Duration::from_secs(30));
    let a = spawn(&configs[0], &["--records", "10", "--parallelism", "2"]);
    let b = spawn(&configs[1], &["--records", "10", "--parallelism", "4"]);
    for (status, _, err) in [finish(a), finish(b)] {
        assert!(!status.success());
        assert!(err.contains("the job graph fingerprints differ"), "{err}");
    }
}

#[test]
fn a_process_that_hangs_is_detected_by_heartbeats_and_fails_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let configs: Vec<ClusterConfig> = cluster(2, Duration::from_secs(30))
        .into_iter()
        .map(|c| c.with_heartbeat_timeout(Duration::from_millis(2000)))
        .collect();
    let (survivor, mut victim) = spawn_until_process_1_wrote(&configs, dir.path());
    // Stopped, not dead: its sockets stay open, only heartbeats can tell.
    let stopped = Command::new("kill")
        .args(["-STOP", &victim.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let (status, _, err) = finish(survivor);
    victim.kill().unwrap();
    let _ = victim.wait();
    assert!(!status.success());
    assert!(err.contains("connection to process 1 at"), "{err}");
    assert!(err.contains("heartbeat timeout"), "{err}");
}

#[test]
fn stop_on_process_0_drains_every_process_and_every_record_read_reaches_a_sink() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    std::fs::create_dir_all(&output).unwrap();
    // Far more records than it reads before the stop: only the stop ends it.
    let args: Vec<std::ffi::OsString> = [
        "--records",
        "1000000000000",
        "--parallelism",
        "4",
        "--stop-after-ms",
        "1500",
        "--output",
    ]
    .iter()
    .map(Into::into)
    .chain([output.clone().into_os_string()])
    .collect();
    let job = Launch {
        processes: 2,
        program: BIN.into(),
        args,
        connect_timeout: Duration::from_secs(30),
    };
    // Without the stop reaching process 1 its sources would read on: the guard
    // turns that into a failure.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(launch(&job));
    });
    let outcome = rx
        .recv_timeout(GUARD)
        .expect("the stopped job ends within the guard")
        .unwrap();
    assert!(outcome.success(), "{outcome:?}");
    let job = std::fs::read_to_string(output.join("job")).unwrap();
    let f: Vec<&str> = job.split_whitespace().collect();
    let (read, sunk): (u64, u64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
    assert_eq!(f[2], "true", "the job says it was stopped");
    assert!(read > 0 && read < 1_000_000_000_000, "{read}");
    assert_eq!(sunk, read, "every record read reached a sink");
    std::fs::remove_file(output.join("job")).unwrap();
    // The sinks of both processes wrote: their updates add up to every record read.
    let updates: u64 = merged(&output).values().map(|(_, n)| n).sum();
    assert_eq!(updates, read);
}
