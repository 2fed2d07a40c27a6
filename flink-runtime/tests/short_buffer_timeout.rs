//! A buffer timeout shorter than a task's input poll interval (50 ms) is honoured on
//! a trickle: a task waiting for input wakes at its next flush deadline. Latency is
//! counted in flush ticks of the job's flush timer (one per buffer timeout), never
//! asserted in wall time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flink_core::operator::RuntimeContext;
use flink_runtime::prelude::*;

mod common;
use common::poll_until;

const PAIRS: u64 = 20;

/// Released records past this end the source.
const END: u64 = u64::MAX;

/// Emits record `i` once the test has released it, one record per poll; ends when
/// the test releases [`END`], so the last pair is not flushed by the end of input.
struct Trickle {
    released: Arc<AtomicU64>,
}

struct TrickleReader {
    released: Arc<AtomicU64>,
    next: u64,
}

impl Source<u64> for Trickle {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(&self, _: &RuntimeContext) -> Box<dyn SourceReader<u64>> {
        Box::new(TrickleReader {
            released: self.released.clone(),
            next: 0,
        })
    }

    fn is_parallel(&self) -> bool {
        false
    }
}

impl SourceReader<u64> for TrickleReader {
    fn poll_next(&mut self, out: &mut flink_core::source::SourceOutput<u64>) -> SourcePoll {
        let released = self.released.load(Ordering::SeqCst);
        if released == END {
            return SourcePoll::Finished;
        }
        if self.next < released {
            out.collect(self.next);
            self.next += 1;
            // Pending: the source task ships the record at once, so each record
            // reaches the middle task in a buffer of its own.
            return SourcePoll::Pending(Duration::ZERO);
        }
        SourcePoll::Pending(Duration::from_micros(100))
    }
}

#[test]
fn a_five_ms_timeout_is_honoured_on_a_trickle() {
    let env = StreamExecutionEnvironment::new();
    env.set_buffer_timeout(Some(Duration::from_millis(5)));
    let released = Arc::new(AtomicU64::new(0));
    let arrived = Arc::new(AtomicU64::new(0));
    let counter = arrived.clone();
    env.from_source(
        Trickle {
            released: released.clone(),
        },
        "Trickle",
    )
    .map(|x: u64| x)
    .name("Middle")
    .disable_chaining()
    .map(move |x: u64| {
        counter.fetch_add(1, Ordering::SeqCst);
        x
    })
    .name("Arrival")
    .disable_chaining()
    .collect_vec();
    let client = env.execute_async("trickle").unwrap();
    let middle_ticks = || {
        client
            .task_metrics()
            .into_iter()
            .find(|t| t.task == "Middle")
            .expect("the middle task")
            .flush_ticks
    };
    // Records come in pairs: the first of a pair may find the middle task's flush
    // already due; the second arrives right after that flush and must go out by the
    // next deadline, not after the middle task's 50 ms input poll.
    let mut latencies = Vec::new();
    for pair in 1..=PAIRS {
        let before = middle_ticks();
        released.store(2 * pair, Ordering::SeqCst);
        poll_until("the pair at the sink", || {
            arrived.load(Ordering::SeqCst) == 2 * pair
        });
        poll_until("the middle task's flush to be published", || {
            middle_ticks() > before
        });
        latencies.push(middle_ticks() - before);
    }
    released.store(END, Ordering::SeqCst);
    client.wait().unwrap();
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    // One flush tick for the middle task, and one more for the tick the test read
    // `before` in. Waiting out the 50 ms poll would take ten 5 ms ticks.
    assert!(
        median <= 2,
        "median pair latency {median} flush ticks (all: {latencies:?})"
    );
}
