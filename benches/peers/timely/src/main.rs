//! The throughput harness's `chain`, `nochain` and `keyed` jobs (benches/src/bin/throughput.rs)
//! written for timely-dataflow 0.32, so that the figures in docs/benchmarks.md can be
//! reproduced side by side.
//!
//! `timely-peer <chain|nochain|keyed> [records]` runs one job once and prints
//! `timely <job> records=<N> seconds=<s> rate=<N/s> sink=<count> peak_rss_mb=<MB> ...`.
//!
//! How each job maps onto timely, and where it cannot match the harness:
//!
//! - **Records and time.** As in the harness, `records` is N, the length of the sequence
//!   1..=N, and the rate is N / seconds. Seconds run from the first worker starting to
//!   step its dataflow to the last worker finishing (dataflow construction and thread
//!   start are left out, as the harness leaves out graph building and task start).
//!   The sink's count is checked against the closed form (N - N/3 after the filter,
//!   N for keyed); a wrong count exits non-zero.
//! - **Source.** Each worker generates its contiguous share of 1..=N (shares differ by
//!   at most one, the harness's split) in `Vec`s of exactly 1,024 numbers, the
//!   harness's source batch ([`source`]).
//! - **chain** (p=1): one worker, `map(x*2) -> filter(x%3 != 0) -> count`. Timely
//!   runs a worker's operators on its thread and moves each `Vec` between them by
//!   pointer; unlike the harness's chain (direct calls per batch) every operator is
//!   scheduled on its own, which is why the source hands over several batches per
//!   activation (`TIMELY_PEER_BATCHES`).
//! - **keyed** (p=2): two workers (`Config::process(2)`), map to `(x % 1000, 1)`, an
//!   exchange to the worker flink-rs places the key on (its key-group function), a
//!   running sum per key emitting `(key, sum)` for every record, then a count. The sum
//!   updates the map with one lookup and gives each `(key, sum)` to the output session,
//!   as the harness's reduce appends to its next batch (`TIMELY_PEER_EMIT=in-place`
//!   rewrites the received `Vec` and hands it on instead: timely's cheapest form, 1.1-1.3x
//!   faster on this job). Timely hands `Vec`s between threads by pointer and
//!   keeps a worker's own share in-thread: nothing is serialized
//!   (`TIMELY_PEER_COMM=binary` serializes every exchanged message, as flink-rs does).
//! - **nochain** (p=1, chaining off: four tasks, three serialized hops in flink-rs):
//!   timely has no per-operator thread, so this is a line of four workers
//!   (`Config::ProcessBinary(4)`, every hop serialized into bytes): only worker 0's
//!   source has data, and each hop is an exchange to a fixed next worker, so source,
//!   map, filter and count run on workers 0, 1, 2 and 3. It is an approximation:
//!   timely's channels have no flow control (a fast upstream queues without bound;
//!   see `peak_rss_mb`), all four workers take part in progress tracking, and a hop
//!   serializes whole `Vec`s rather than records into 32 KiB buffers.
//!   `TIMELY_PEER_COMM=typed` moves the `Vec`s by pointer instead.

mod jobs;
mod run;
mod source;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (job, records) = match args.as_slice() {
        [job] => (job.as_str(), None),
        [job, n] => match n.parse::<u64>() {
            Ok(n) if n > 0 => (job.as_str(), Some(n)),
            _ => return usage(&format!("records must be a positive number, got '{n}'")),
        },
        _ => return usage("expected a job and optionally a record count"),
    };
    let outcome = match job {
        "chain" => jobs::chain(records.unwrap_or(200_000_000)),
        "nochain" => jobs::nochain(records.unwrap_or(50_000_000)),
        "keyed" => jobs::keyed(records.unwrap_or(50_000_000)),
        other => return usage(&format!("unknown job '{other}'")),
    };
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("timely-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("timely-peer: {problem}\nusage: timely-peer <chain|nochain|keyed> [records]");
    ExitCode::from(2)
}
