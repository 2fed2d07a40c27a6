//! One hot keyed channel cannot take the whole output pool: at most
//! `max_buffers_per_channel` buffers queue for it, and records already written to the
//! other channels are delivered while the hot one is blocked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use flink_core::config::DEFAULT_MAX_BUFFERS_PER_CHANNEL;
use flink_core::key_group::subtask_of_key;
use flink_core::operator::RuntimeContext;
use flink_runtime::prelude::*;

mod common;
use common::poll_until;

const PARALLELISM: usize = 4;
const HOT_RECORDS: u64 = 20_000;

/// A gate the hot sink waits at until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Counts records per sink subtask; the subtask `hot` waits at the gate first.
struct Sinks {
    hot: usize,
    gate: Arc<Gate>,
    received: Arc<[AtomicU64; PARALLELISM]>,
}

struct SinkInstance {
    stalled: Option<Arc<Gate>>,
    received: Arc<[AtomicU64; PARALLELISM]>,
    subtask: usize,
}

impl Sink<(u64, u64)> for Sinks {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<(u64, u64)>> {
        Box::new(SinkInstance {
            stalled: (ctx.subtask_index == self.hot).then(|| self.gate.clone()),
            received: self.received.clone(),
            subtask: ctx.subtask_index,
        })
    }
}

impl SinkWriter<(u64, u64)> for SinkInstance {
    fn write(&mut self, _: (u64, u64)) -> Result<(), SinkError> {
        if let Some(gate) = self.stalled.take() {
            gate.wait();
        }
        self.received[self.subtask].fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn subtask(key: u64) -> usize {
    subtask_of_key(&key, 128, PARALLELISM)
}

#[test]
fn a_stalled_hot_channel_holds_at_most_its_cap_and_the_others_still_flow() {
    let hot = subtask(0);
    // One key for each other sink subtask.
    let cold: Vec<u64> = (0..PARALLELISM)
        .filter(|&s| s != hot)
        .map(|s| (1..).find(|&k| subtask(k) == s).expect("a key per subtask"))
        .collect();
    // The cold records come first, then every record on the hot key.
    let records: Vec<(u64, u64)> = cold
        .iter()
        .map(|&k| (k, 0))
        .chain((0..HOT_RECORDS).map(|i| (0, i)))
        .collect();

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(PARALLELISM);
    env.set_buffer_size(1024);
    // Partial buffers are never flushed by a timer: what reaches the cold sinks does
    // so because the writer let it go before waiting for the hot channel.
    env.set_buffer_timeout(None);
    let gate = Arc::new(Gate::default());
    let received: Arc<[AtomicU64; PARALLELISM]> = Arc::new(Default::default());
    env.from_collection(records)
        .key_by(|r: &(u64, u64)| r.0)
        .sink_to(Sinks {
            hot,
            gate: gate.clone(),
            received: received.clone(),
        });
    let client = env.execute_async("hot channel").unwrap();

    let cold_received = || {
        (0..PARALLELISM)
            .filter(|&s| s != hot)
            .map(|s| received[s].load(Ordering::SeqCst))
            .sum::<u64>()
    };
    poll_until("the cold records at their sinks", || cold_received() == 3);
    let producer = || {
        client
            .task_metrics()
            .into_iter()
            .find(|t| t.task.starts_with("Collection Source"))
            .expect("the source task")
    };
    // The producer is blocked on the hot channel (it has far more to write than the
    // hot sink's input buffers and the cap hold).
    poll_until("the producer to block", || {
        producer().back_pressured >= Duration::from_millis(200)
    });
    // 4 subpartitions: a pool of 4 * 2 + 8 = 16 buffers. The hot one holds its cap
    // plus the buffer being filled; the cold ones shipped theirs.
    let pool = (PARALLELISM * 2 + 8) as f64;
    let usage = producer().out_pool_usage;
    assert!(
        usage <= (DEFAULT_MAX_BUFFERS_PER_CHANNEL + 1) as f64 / pool,
        "the hot channel holds {} of {pool} buffers",
        usage * pool
    );
    assert_eq!(received[hot].load(Ordering::SeqCst), 0);

    gate.open();
    client.wait().unwrap();
    assert_eq!(received[hot].load(Ordering::SeqCst), HOT_RECORDS);
    assert_eq!(cold_received(), 3);
}
