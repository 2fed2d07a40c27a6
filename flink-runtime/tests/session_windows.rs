//! Session windows, global windows with count triggers, and evictors end to end,
//! exact at parallelism 1, 2 and 4 against plain loops; and the definitions that
//! cannot work as typed build errors.

use std::collections::BTreeMap;
use std::time::Duration;

use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::{
    AggregateFunction, CountEvictor, CountTrigger, EventTimeSessionWindows, GlobalWindows,
    PurgingTrigger, TimeWindow, WindowError,
};
use flink_runtime::prelude::*;

/// A click: (user, time ms).
type Click = (u32, i64);

const GAP_MS: i64 = 500;
const DISORDER_MS: u64 = 200;
/// The watermarks' bound on disorder: a paused user's click comes up to 700 ms after
/// the clicks around it, plus `DISORDER_MS`, so no click is ever behind the
/// watermark, however the periodic (wall-clock) watermarks fall between records.
const OUT_OF_ORDERNESS_MS: u64 = 1_000;

/// 30,000 clicks of 40 users in bursts: each user is active in stretches with
/// pauses longer and shorter than the gap, up to `DISORDER_MS` out of order (a
/// paused user's clicks 700 ms ahead of the rest).
fn clicks() -> Vec<Click> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    };
    (0..30_000i64)
        .map(|i| {
            let user = (next() % 40) as u32;
            // Time advances 2 ms per click, with a quiet second every ~6 s.
            let ts = i * 2 + (i / 3_000) * 1_000 - (next() % DISORDER_MS) as i64;
            // Users pause in turns: user u is silent in its slice of each 2 s.
            let ts = if (ts / 2_000) % 40 == i64::from(user) {
                ts + 700
            } else {
                ts
            };
            (user, ts)
        })
        .collect()
}

/// (user, session start, session end, clicks), as session windows compute them.
fn sessions_reference(clicks: &[Click]) -> Vec<(u32, i64, i64, usize)> {
    let mut by_user: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for c in clicks {
        by_user.entry(c.0).or_default().push(c.1);
    }
    let mut sessions = Vec::new();
    for (user, mut times) in by_user {
        times.sort_unstable();
        let (mut start, mut last, mut n) = (times[0], times[0], 0);
        for t in times {
            // [last, last + gap) and [t, t + gap) touch or overlap: one session.
            if t > last + GAP_MS {
                sessions.push((user, start, last + GAP_MS, n));
                (start, n) = (t, 0);
            }
            last = t;
            n += 1;
        }
        sessions.push((user, start, last + GAP_MS, n));
    }
    sessions.sort_unstable();
    sessions
}

#[test]
fn event_time_sessions_exact_at_parallelism_1_2_4_with_process_and_reduce_process() {
    let input = clicks();
    let expected = sessions_reference(&input);
    assert!(expected.len() > 400, "sessions: {}", expected.len());
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let sessions = env
            .from_collection(input.clone())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(
                    OUT_OF_ORDERNESS_MS,
                ))
                .with_timestamp_assigner(|c: &Click| c.1),
            )
            .key_by(|c: &Click| c.0)
            .window(EventTimeSessionWindows::with_gap(Duration::from_millis(
                GAP_MS as u64,
            )))
            .process(
                |user: &u32,
                 w: &TimeWindow,
                 clicks: &[Click],
                 out: &mut dyn Collector<(u32, i64, i64, usize)>| {
                    out.collect((*user, w.start, w.end, clicks.len()))
                },
            )
            .collect_vec();
        env.execute("sessions").unwrap();
        assert_eq!(sessions.take_sorted(), expected, "p={p}");
    }
    // Incrementally: one (user, count) per session, merged as sessions merge.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let sessions = env
        .from_collection(input.iter().map(|c| (c.0, c.1, 1usize)).collect::<Vec<_>>())
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(
                OUT_OF_ORDERNESS_MS,
            ))
            .with_timestamp_assigner(|c: &(u32, i64, usize)| c.1),
        )
        .key_by(|c: &(u32, i64, usize)| c.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(
            GAP_MS as u64,
        )))
        .reduce_process(
            |a: (u32, i64, usize), b: (u32, i64, usize)| (a.0, a.1.max(b.1), a.2 + b.2),
            |user: &u32,
             w: &TimeWindow,
             sum: (u32, i64, usize),
             out: &mut dyn Collector<(u32, i64, i64, usize)>| {
                out.collect((*user, w.start, w.end, sum.2))
            },
        )
        .collect_vec();
    env.execute("sessions, reduced").unwrap();
    assert_eq!(sessions.take_sorted(), expected, "reduce_process");
}

#[test]
fn global_windows_with_count_triggers_and_evictors_exact_at_parallelism_1_2_4() {
    // Per key of x % 10 over 1..=10_000: every 7 records, the sum of the newest 3
    // (evictor), and the sum of each 5 (purging count trigger).
    let mut last3 = Vec::new();
    let mut fives = Vec::new();
    for k in 0..10u64 {
        let xs: Vec<u64> = (1..=10_000).filter(|x| x % 10 == k).collect();
        for n in (7..=xs.len()).step_by(7) {
            last3.push((k, xs[n - 3..n].iter().sum::<u64>()));
        }
        for chunk in xs.chunks_exact(5) {
            fives.push((k, chunk.iter().sum::<u64>()));
        }
    }
    last3.sort_unstable();
    fives.sort_unstable();
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        // Records of a key in order: one reader.
        let numbers = env.from_sequence(1, 10_000).set_parallelism(1);
        let evicted = numbers
            .key_by(|x: &u64| x % 10)
            .window(GlobalWindows::create())
            .trigger(CountTrigger::of(7))
            .evictor(CountEvictor::of(3))
            .process(
                |k: &u64, _: &TimeWindow, xs: &[u64], out: &mut dyn Collector<(u64, u64)>| {
                    out.collect((*k, xs.iter().sum()))
                },
            )
            .collect_vec();
        let sums = numbers
            .map(|x: u64| (x % 10, x))
            .set_parallelism(1)
            .key_by(|r: &(u64, u64)| r.0)
            .window(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(5)))
            .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
            .collect_vec();
        env.execute("count windows").unwrap();
        assert_eq!(evicted.take_sorted(), last3, "evictor at p={p}");
        assert_eq!(sums.take_sorted(), fives, "purging count at p={p}");
    }
}

/// Counts, without a merge.
#[derive(Clone)]
struct CountNoMerge;

impl AggregateFunction<Click, u64> for CountNoMerge {
    type Acc = u64;

    fn create_accumulator(&self) -> u64 {
        0
    }

    fn add(&self, _: Click, acc: &mut u64) {
        *acc += 1;
    }

    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
}

fn build_error(job: impl FnOnce(&StreamExecutionEnvironment, DataStream<Click>)) -> String {
    let env = StreamExecutionEnvironment::new();
    let clicks = env
        .from_collection(vec![(1u32, 1i64)])
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|c: &Click| c.1));
    job(&env, clicks);
    env.execute("invalid").unwrap_err().to_string()
}

#[test]
fn window_definitions_that_cannot_work_are_typed_errors_when_the_job_is_built() {
    let cases: Vec<(WindowError, String)> = vec![
        (
            WindowError::ZeroGap,
            build_error(|_, clicks| {
                clicks
                    .key_by(|c: &Click| c.0)
                    .window(EventTimeSessionWindows::with_gap(Duration::ZERO))
                    .reduce(|a: Click, _: Click| a)
                    .collect_vec();
            }),
        ),
        (
            WindowError::ZeroCount,
            build_error(|_, clicks| {
                clicks
                    .key_by(|c: &Click| c.0)
                    .window(GlobalWindows::create())
                    .trigger(CountTrigger::of(0))
                    .reduce(|a: Click, _: Click| a)
                    .collect_vec();
            }),
        ),
        (
            WindowError::ZeroCount,
            build_error(|_, clicks| {
                clicks
                    .key_by(|c: &Click| c.0)
                    .window(GlobalWindows::create())
                    .trigger(CountTrigger::of(2))
                    .evictor(CountEvictor::of(0))
                    .process(|_: &u32, _: &TimeWindow, _: &[Click], _: &mut dyn Collector<u8>| {})
                    .collect_vec();
            }),
        ),
        (
            WindowError::AggregateCannotMerge,
            build_error(|_, clicks| {
                clicks
                    .key_by(|c: &Click| c.0)
                    .window(EventTimeSessionWindows::with_gap(Duration::from_secs(1)))
                    .aggregate(CountNoMerge)
                    .collect_vec();
            }),
        ),
    ];
    for (expected, error) in cases {
        assert!(
            error.contains(&expected.to_string()),
            "{expected:?}: {error}"
        );
    }
}
