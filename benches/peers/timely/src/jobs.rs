//! The three job shapes (see the crate comment for how each maps onto timely).

use std::cell::Cell;
use std::rc::Rc;

use flink_core::key_group::subtask_of_key;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Exchange as _;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Filter, Map};
use timely::{CommunicationConfig, Config, WorkerConfig};

use crate::run::{Run, peak_rss_mb, run};
use crate::source::{sequence, share};

/// flink-rs's default number of key groups (`max_parallelism`).
const KEY_GROUPS: usize = 128;
/// Distinct keys of the keyed job (`x % 1000`).
const KEYS: u64 = 1000;

/// `source -> map(x*2) -> filter(x%3 != 0) -> count` on one worker.
pub fn chain(n: u64) -> Result<String, String> {
    let outcome = run(config(CommunicationConfig::Thread), move |scope, sink| {
        let numbers = sequence(scope, share(n, scope.index(), scope.peers()));
        let kept = numbers.map(|x| x * 2).filter(|x| x % 3 != 0);
        count(kept, sink);
    })?;
    line("chain", n, n - n / 3, &outcome, "workers=1")
}

/// The chain's operators on a line of four workers, one hop between each.
pub fn nochain(n: u64) -> Result<String, String> {
    let typed = std::env::var("TIMELY_PEER_COMM").is_ok_and(|v| v == "typed");
    let comm = if typed {
        CommunicationConfig::Process(4)
    } else {
        CommunicationConfig::ProcessBinary(4)
    };
    let outcome = run(config(comm), move |scope, sink| {
        // Only worker 0 generates; each exchange sends everything to the next worker.
        let numbers = if scope.index() == 0 { 1..n + 1 } else { 1..1 };
        let kept = sequence(scope, numbers)
            .exchange(|_| 1)
            .map(|x| x * 2)
            .exchange(|_| 2)
            .filter(|x| x % 3 != 0)
            .exchange(|_| 3);
        count(kept, sink);
    })?;
    let comm = if typed { "process" } else { "process-binary" };
    let extra = format!("workers=4 comm={comm} shape=line-of-workers");
    line("nochain", n, n - n / 3, &outcome, &extra)
}

/// `source -> map((x%1000, 1)) -> exchange by key -> running sum -> count` on two workers.
pub fn keyed(n: u64) -> Result<String, String> {
    let binary = std::env::var("TIMELY_PEER_COMM").is_ok_and(|v| v == "binary");
    let in_place = std::env::var("TIMELY_PEER_EMIT").is_ok_and(|v| v == "in-place");
    let comm = if binary {
        CommunicationConfig::ProcessBinary(2)
    } else {
        CommunicationConfig::Process(2)
    };
    let outcome = run(config(comm), move |scope, sink| {
        let workers = scope.peers();
        let pairs = sequence(scope, share(n, scope.index(), workers)).map(|x| (x % KEYS, 1u64));
        // The worker flink-rs's hash partitioner picks for the key.
        let by_key =
            Exchange::new(move |r: &(u64, u64)| subtask_of_key(&r.0, KEY_GROUPS, workers) as u64);
        let sums = pairs.unary::<CapacityContainerBuilder<Vec<(u64, u64)>>, _, _, _>(
            by_key,
            "RunningSum",
            |_, _| {
                let mut sums: hashbrown::HashMap<u64, u64> = hashbrown::HashMap::new();
                move |input, output| {
                    input.for_each(|time, records| {
                        let mut session = output.session(&time);
                        if in_place {
                            for record in records.iter_mut() {
                                let sum = sums.entry(record.0).or_insert(0);
                                *sum += record.1;
                                record.1 = *sum;
                            }
                            session.give_container(records);
                        } else {
                            for (key, value) in records.drain(..) {
                                let sum = sums.entry(key).or_insert(0);
                                *sum += value;
                                session.give((key, *sum));
                            }
                        }
                    });
                }
            },
        );
        count(sums, sink);
    })?;
    let comm = if binary { "process-binary" } else { "process" };
    let emit = if in_place { "in-place" } else { "per-record" };
    line(
        "keyed",
        n,
        n,
        &outcome,
        &format!("workers=2 comm={comm} emit={emit}"),
    )
}

fn config(communication: CommunicationConfig) -> Config {
    Config {
        communication,
        worker: WorkerConfig::default(),
    }
}

/// Adds up the records reaching it, a `Vec` at a time, into `sink`.
fn count<D: 'static>(stream: StreamVec<'_, u64, D>, sink: Rc<Cell<u64>>) {
    stream.sink(Pipeline, "Count", move |(input, _)| {
        input.for_each(|_, records| {
            sink.set(sink.get() + records.len() as u64);
            records.clear();
        });
    });
}

/// The result line, or an error if the sink did not count `expected` records.
fn line(job: &str, n: u64, expected: u64, run: &Run, extra: &str) -> Result<String, String> {
    if run.sink != expected {
        return Err(format!(
            "{job}: the sink counted {} records, expected {expected}",
            run.sink
        ));
    }
    Ok(format!(
        "timely {job} records={n} seconds={:.3} rate={:.0} sink={} peak_rss_mb={:.1} {extra}",
        run.seconds,
        n as f64 / run.seconds,
        run.sink,
        peak_rss_mb(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small runs of every job: the sink's count is checked inside each.
    #[test]
    fn every_job_counts_exactly() {
        for n in [1, 1000, 100_003] {
            chain(n).unwrap();
            keyed(n).unwrap();
            nochain(n).unwrap();
        }
    }
}
