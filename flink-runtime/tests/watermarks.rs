//! Event time: watermarks travel in order with the records, through chains and the
//! network (the minimum over input channels), and async results never cross one.

use std::time::Duration;

use flink_core::async_io::{AsyncFailure, AsyncOptions};
use flink_core::destinations::CollectingDestination;
use flink_core::operator::Operator;
use flink_core::pipeline::{Envelope, FiveStagePipeline, PipelineConfig};
use flink_core::watermark::{Watermark, WatermarkStrategy};
use flink_runtime::precise_timer::precise_sleep;
use flink_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// What the probe saw, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Seen {
    Record(u64),
    Watermark(i64),
}

/// Turns records and watermarks into one ordered stream of [`Seen`] items.
struct Probe;

impl Operator<u64, Seen> for Probe {
    fn process<C: Collector<Seen> + ?Sized>(&mut self, x: u64, out: &mut C) {
        out.collect(Seen::Record(x));
    }

    fn process_watermark<C: Collector<Seen> + ?Sized>(&mut self, w: Watermark, out: &mut C) {
        out.collect(Seen::Watermark(w.0));
        out.emit_watermark(w);
    }
}

const N: u64 = 20_000;

/// Later records answer sooner than earlier ones, so unordered results overtake.
async fn slow_for_early(x: u64) -> Result<u64, AsyncFailure> {
    precise_sleep(Duration::from_micros(20 + (x % 13) * 30)).await;
    Ok(x)
}

fn through_async(ordered: bool) -> Vec<Seen> {
    let env = StreamExecutionEnvironment::new();
    // Watermarks after every batch, so the test sees many within a short job.
    env.set_auto_watermark_interval(Duration::ZERO);
    let seen = env
        .from_sequence(1, N)
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
        .async_function(
            slow_for_early,
            AsyncOptions::new().ordered(ordered).capacity(64),
        )
        .transform("Probe", |_| Probe)
        .collect_vec();
    env.execute("watermarks through async").unwrap();
    seen.take()
}

fn watermarks(seen: &[Seen]) -> Vec<(usize, i64)> {
    seen.iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Seen::Watermark(w) => Some((i, *w)),
            Seen::Record(_) => None,
        })
        .collect()
}

fn records_before(seen: &[Seen], position: usize) -> Vec<u64> {
    let mut records: Vec<u64> = seen[..position]
        .iter()
        .filter_map(|s| match s {
            Seen::Record(x) => Some(*x),
            Seen::Watermark(_) => None,
        })
        .collect();
    records.sort_unstable();
    records
}

/// Monotonous timestamps: the assigner emits `max - 1` after a batch whose largest
/// record is `max`, so exactly the records `1..=w + 1` precede watermark `w`.
fn assert_no_result_crosses_a_watermark(seen: &[Seen]) {
    assert_no_result_crosses_a_watermark_of(seen, N)
}

fn assert_no_result_crosses_a_watermark_of(seen: &[Seen], n: u64) {
    let marks = watermarks(seen);
    assert!(marks.len() > 2, "expected watermarks, saw {}", marks.len());
    for &(position, w) in &marks[..marks.len() - 1] {
        assert_eq!(
            records_before(seen, position),
            (1..=(w + 1) as u64).collect::<Vec<_>>(),
            "records before watermark {w}"
        );
    }
    assert_eq!(marks.last(), Some(&(seen.len() - 1, i64::MAX)));
    assert_eq!(
        records_before(seen, seen.len()),
        (1..=n).collect::<Vec<_>>()
    );
}

#[test]
fn unordered_async_results_never_cross_a_watermark() {
    assert_no_result_crosses_a_watermark(&through_async(false));
}

#[test]
fn ordered_async_keeps_records_and_watermarks_in_input_order() {
    let seen = through_async(true);
    assert_no_result_crosses_a_watermark(&seen);
    let records: Vec<u64> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Record(x) => Some(*x),
            Seen::Watermark(_) => None,
        })
        .collect();
    assert_eq!(records, (1..=N).collect::<Vec<_>>());
}

#[test]
fn a_task_forwards_the_minimum_watermark_of_its_input_channels() {
    let env = StreamExecutionEnvironment::new();
    // Watermarks after every batch, so the test sees many within a short job.
    env.set_auto_watermark_interval(Duration::ZERO);
    // Two source instances feed one probe (and its sink) through two channels.
    let seen = env
        .from_sequence(1, N)
        .set_parallelism(2)
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
        .set_parallelism(2)
        .rebalance()
        .transform("Probe", |_| Probe)
        .collect_vec();
    env.execute("watermark valve").unwrap();
    let seen = seen.take();

    let marks = watermarks(&seen);
    assert!(marks.len() > 1, "expected watermarks before the end");
    assert!(
        marks.windows(2).all(|m| m[0].1 < m[1].1),
        "watermarks go forward"
    );
    // No record arrives behind a watermark that covers it: each source instance's
    // records reach the probe before that instance's later watermarks.
    for &(position, w) in &marks {
        let late = seen[position..]
            .iter()
            .any(|s| matches!(s, Seen::Record(x) if (*x as i64) <= w));
        assert!(!late, "a record at or below watermark {w} came after it");
    }
    assert_eq!(marks.last(), Some(&(seen.len() - 1, i64::MAX)));
    assert_eq!(
        records_before(&seen, seen.len()),
        (1..=N).collect::<Vec<_>>()
    );
}

#[test]
fn the_five_stage_pipeline_keeps_receipts_behind_their_watermarks() {
    // Enough source batches (one watermark each) that some stay distinct however the
    // stages' input channels merge them under load (a task with several input
    // channels passes on advances of their minimum only: with 3,000 records, three
    // watermarks, two merged once in a loaded CI run).
    const RECORDS: u64 = 20_000;
    let env = StreamExecutionEnvironment::new();
    // Watermarks after every batch, so the test sees many within a short job.
    env.set_auto_watermark_interval(Duration::ZERO);
    let pipeline = FiveStagePipeline::<u64, u64>::builder()
        .key(|x| format!("user-{}", x % 37))
        .call(slow_for_early)
        .destination(CollectingDestination::new())
        .config({
            let mut c = PipelineConfig::default();
            c.gateway.max_requests_per_second = 1e9;
            c
        })
        .build()
        .unwrap();
    let out = env
        .from_sequence(1, RECORDS)
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64))
        .apply_pipeline(&pipeline);
    let seen = out
        .delivered
        .map(|e: Envelope<u64>| e.payload)
        .transform("Probe", |_| Probe)
        .collect_vec();
    env.execute("watermarks through the pipeline").unwrap();
    assert_no_result_crosses_a_watermark_of(&seen.take(), RECORDS);
}
