//! A bounded dead-letter queue applies back pressure or fails clearly; it never drops.

use flink_core::dead_letter_queue::{BoundedQueue, WhenFull};
use flink_runtime::prelude::*;

mod common;
use common::reject_every_tenth;

fn job_with_dead_letters(queue: &BoundedQueue<DeadLetter<u64>>) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    let results = reject_every_tenth(&env);
    results.collect_vec();
    results
        .dead_letters::<u64>()
        .sink_to(queue.sink())
        .name("Dead Letter Queue");
    env
}

#[test]
fn a_full_blocking_queue_holds_the_job_back_and_loses_nothing() {
    let queue = BoundedQueue::new(7, WhenFull::Block);
    let env = job_with_dead_letters(&queue);
    let client = env.execute_async("blocking queue").unwrap();
    let mut received = Vec::new();
    // The job cannot finish until the queue is read: 100 dead letters, 7 at a time.
    while received.len() < 100 {
        assert!(queue.len() <= 7);
        received.extend(queue.drain().into_iter().map(|d| d.record));
        std::thread::yield_now();
    }
    client.wait().unwrap();
    received.sort();
    assert_eq!(received, (1..=100).map(|i| i * 10).collect::<Vec<u64>>());
}

#[test]
fn a_full_failing_queue_fails_the_job_with_a_clear_error() {
    let queue = BoundedQueue::new(7, WhenFull::Fail);
    let env = job_with_dead_letters(&queue);
    let err = env.execute("failing queue").unwrap_err();
    assert_eq!(
        err.to_string(),
        "operator 'Dead Letter Queue' (1/1) failed: sink write failed: bounded queue full (7 records): read it faster or raise its capacity"
    );
    assert_eq!(queue.len(), 7);
}
