//! [`IntervalJoin`]: each record of one keyed stream joined with the records of
//! another of the same key within a time interval around it (Flink's
//! `KeyedStream.intervalJoin`).

use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::unpartitioned;
use crate::connected_streams::CoInput;
use crate::datastream::DataStream;
use crate::error::GraphError;
use crate::functions::Collector;
use crate::keyed_process_function::{KeyedContext, KeyedProcessFunction};
use crate::keyed_stream::KeyedStream;
use crate::operators::{KeyedProcessFunctionOperator, LATE_RECORDS_DROPPED};
use crate::side_output::OutputTag;
use crate::stream_type::Record;
use crate::windows::WindowError;

/// The operator's name in the job graph and in errors.
const NAME: &str = "Interval Join";

impl<K, A> KeyedStream<K, A>
where
    K: Record + Hash + Eq,
    A: Record,
{
    /// Joins this stream (left) with `other` (right) on the key and on event time
    /// (Flink's `intervalJoin`); say the interval with
    /// [`between`](IntervalJoin::between). Both streams need timestamps.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// use flink_core::watermark::WatermarkStrategy;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// // Auctions (id, opened ms) and bids (auction, price, ms): the bids placed
    /// // within 10 s after their auction opened.
    /// let auctions = env
    ///     .from_collection(vec![(1u64, 1_000i64), (2, 5_000)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|a: &(u64, i64)| a.1))
    ///     .key_by(|a: &(u64, i64)| a.0);
    /// let bids = env
    ///     .from_collection(vec![(1u64, 30u64, 2_000i64), (2, 7, 9_000), (1, 50, 12_000)])
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|b: &(u64, u64, i64)| b.2))
    ///     .key_by(|b: &(u64, u64, i64)| b.0);
    /// let early_bids = auctions
    ///     .interval_join(&bids)
    ///     .between(0, 10_000)
    ///     .process(|a: &(u64, i64), b: &(u64, u64, i64), out: &mut dyn Collector<(u64, u64)>| {
    ///         out.collect((a.0, b.1))
    ///     })
    ///     .collect_vec();
    /// # let _ = early_bids;
    /// ```
    pub fn interval_join<B: Record>(&self, other: &KeyedStream<K, B>) -> IntervalJoin<K, A, B> {
        IntervalJoin {
            left: self.clone(),
            right: other.clone(),
        }
    }
}

/// Two keyed streams to be joined on an interval of event time; see
/// [`KeyedStream::interval_join`].
pub struct IntervalJoin<K, A, B> {
    left: KeyedStream<K, A>,
    right: KeyedStream<K, B>,
}

impl<K, A, B> IntervalJoin<K, A, B>
where
    K: Record + Hash + Eq,
    A: Record,
    B: Record,
{
    /// A left record at time `t` joins the right records of its key at times in
    /// `[t + lower_ms, t + upper_ms]` (both bounds inclusive, either may be
    /// negative). A lower bound above the upper one is a build error
    /// ([`WindowError::InvalidJoinBounds`]).
    pub fn between(self, lower_ms: i64, upper_ms: i64) -> IntervalJoined<K, A, B> {
        IntervalJoined {
            join: self,
            lower_ms,
            upper_ms,
            lower_exclusive: false,
            upper_exclusive: false,
            left_late: None,
            right_late: None,
        }
    }
}

/// An interval join with its bounds, awaiting its function; see
/// [`KeyedStream::interval_join`].
pub struct IntervalJoined<K, A, B> {
    join: IntervalJoin<K, A, B>,
    lower_ms: i64,
    upper_ms: i64,
    lower_exclusive: bool,
    upper_exclusive: bool,
    left_late: Option<OutputTag<A>>,
    right_late: Option<OutputTag<B>>,
}

impl<K, A, B> IntervalJoined<K, A, B>
where
    K: Record + Hash + Eq,
    A: Record,
    B: Record,
{
    /// The lower bound is exclusive: `t + lower_ms` itself does not join.
    pub fn lower_bound_exclusive(mut self) -> Self {
        self.lower_exclusive = true;
        self
    }

    /// The upper bound is exclusive: `t + upper_ms` itself does not join.
    pub fn upper_bound_exclusive(mut self) -> Self {
        self.upper_exclusive = true;
        self
    }

    /// Left records behind the watermark go to the side output `tag` (read it with
    /// `side_output` on the joined stream) instead of being dropped and counted in
    /// the operator's `numLateRecordsDropped` metric.
    pub fn side_output_left_late_data(mut self, tag: &OutputTag<A>) -> Self {
        self.left_late = Some(tag.clone());
        self
    }

    /// Right records behind the watermark go to the side output `tag`; see
    /// [`side_output_left_late_data`](Self::side_output_left_late_data).
    pub fn side_output_right_late_data(mut self, tag: &OutputTag<B>) -> Self {
        self.right_late = Some(tag.clone());
        self
    }

    /// Calls `f` for each joined pair (Flink's `ProcessJoinFunction`), left record
    /// first. A record is buffered in its key's state until the watermark passes
    /// the last time at which a partner could still arrive; a record whose time is
    /// below the watermark when it arrives is late and joins nothing.
    pub fn process<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: FnMut(&A, &B, &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
    {
        let (left, right) = (self.join.left.partitioned(), self.join.right.partitioned());
        let lower = self
            .lower_ms
            .saturating_add(i64::from(self.lower_exclusive));
        let upper = self
            .upper_ms
            .saturating_sub(i64::from(self.upper_exclusive));
        let every = crate::timestamped::Timestamps::Every;
        let problem = if left.timestamps != every || right.timestamps != every {
            Some(WindowError::JoinWithoutTimestamps)
        } else if lower > upper {
            Some(WindowError::InvalidJoinBounds {
                lower_ms: lower,
                upper_ms: upper,
            })
        } else {
            None
        };
        if let Some(error) = problem {
            left.env.record_error(GraphError::InvalidWindow {
                operator: NAME.to_string(),
                error,
            });
        }
        let (ka, kb) = (
            self.join.left.key_selector(),
            self.join.right.key_selector(),
        );
        let keyed = unpartitioned(left)
            .connect(&unpartitioned(right))
            .tagged()
            .key_by(move |r: &CoInput<A, B>| match r {
                CoInput::First(a) => ka(a),
                CoInput::Second(b) => kb(b),
            });
        let key = keyed.key_selector();
        let (left_late, right_late) = (self.left_late.clone(), self.right_late.clone());
        keyed.partitioned().transform(NAME, move |ctx| {
            let key = key.clone();
            let join = IntervalJoinFunction {
                f: f.clone(),
                lower,
                upper,
                left_late: left_late.clone(),
                right_late: right_late.clone(),
                dropped: ctx.metrics.custom(LATE_RECORDS_DROPPED),
                _types: PhantomData,
            };
            KeyedProcessFunctionOperator::new(move |r: &CoInput<A, B>| key(r), join, None, ctx)
        })
    }
}

/// One key's buffered records of both sides, by timestamp.
#[derive(Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "A: Serialize, B: Serialize"))]
#[serde(bound(deserialize = "A: serde::de::DeserializeOwned, B: serde::de::DeserializeOwned"))]
pub(crate) struct Buffers<A, B> {
    left: BTreeMap<i64, Vec<A>>,
    right: BTreeMap<i64, Vec<B>>,
}

impl<A, B> Default for Buffers<A, B> {
    fn default() -> Self {
        Self {
            left: BTreeMap::new(),
            right: BTreeMap::new(),
        }
    }
}

/// The interval join as a keyed function of the tagged union of both inputs, so
/// that its buffers and cleanup timers are the keyed state and timers of the keyed
/// process function operator (checkpointed by key group).
struct IntervalJoinFunction<A, B, O, F> {
    f: F,
    /// Inclusive bounds, exclusivity applied.
    lower: i64,
    upper: i64,
    left_late: Option<OutputTag<A>>,
    right_late: Option<OutputTag<B>>,
    dropped: Arc<AtomicU64>,
    _types: PhantomData<fn() -> O>,
}

impl<A, B, O, F: Clone> Clone for IntervalJoinFunction<A, B, O, F> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            lower: self.lower,
            upper: self.upper,
            left_late: self.left_late.clone(),
            right_late: self.right_late.clone(),
            dropped: self.dropped.clone(),
            _types: PhantomData,
        }
    }
}

impl<A, B, O, F> IntervalJoinFunction<A, B, O, F> {
    /// When a left record at `ts` can no longer be joined: once the watermark
    /// passes the latest right time it joins (as Flink's cleanup time).
    fn left_cleanup(&self, ts: i64) -> i64 {
        ts.saturating_add(self.upper.max(0))
    }

    /// When a right record at `ts` can no longer be joined.
    fn right_cleanup(&self, ts: i64) -> i64 {
        ts.saturating_add(self.lower.saturating_neg().max(0))
    }
}

impl<K, A, B, O, F> KeyedProcessFunction<K, CoInput<A, B>, O> for IntervalJoinFunction<A, B, O, F>
where
    K: Hash + Eq + Clone,
    A: Record,
    B: Record,
    O: 'static,
    F: FnMut(&A, &B, &mut dyn Collector<O>) + Clone + Send + Sync + 'static,
{
    type State = Buffers<A, B>;

    fn process_element(
        &mut self,
        record: CoInput<A, B>,
        ctx: &mut KeyedContext<'_, K, Self::State, O>,
    ) {
        // Both inputs have timestamps (checked at build time).
        let ts = ctx.timestamp().unwrap_or(i64::MIN);
        let watermark = ctx.timer_service().current_watermark();
        if watermark != i64::MIN && ts < watermark {
            match record {
                CoInput::First(a) => match &self.left_late {
                    Some(tag) => ctx.output(tag, a),
                    None => _ = self.dropped.fetch_add(1, Ordering::Relaxed),
                },
                CoInput::Second(b) => match &self.right_late {
                    Some(tag) => ctx.output(tag, b),
                    None => _ = self.dropped.fetch_add(1, Ordering::Relaxed),
                },
            }
            return;
        }
        let mut buffers = ctx.state().take().unwrap_or_default();
        let cleanup = match record {
            CoInput::First(a) => {
                let (from, to) = (ts.saturating_add(self.lower), ts.saturating_add(self.upper));
                for (b_ts, bs) in buffers.right.range(from..=to) {
                    // A pair has the later of its two times (Flink's).
                    ctx.set_timestamp(ts.max(*b_ts));
                    for b in bs {
                        (self.f)(&a, b, ctx);
                    }
                }
                buffers.left.entry(ts).or_default().push(a);
                self.left_cleanup(ts)
            }
            CoInput::Second(b) => {
                // Left times t with ts in [t + lower, t + upper].
                let (from, to) = (ts.saturating_sub(self.upper), ts.saturating_sub(self.lower));
                for (a_ts, as_) in buffers.left.range(from..=to) {
                    ctx.set_timestamp(ts.max(*a_ts));
                    for a in as_ {
                        (self.f)(a, &b, ctx);
                    }
                }
                buffers.right.entry(ts).or_default().push(b);
                self.right_cleanup(ts)
            }
        };
        ctx.timer_service().register_event_time_timer(cleanup);
        ctx.state().update(buffers);
    }

    /// Drops every record of the key that can no longer be joined.
    fn on_timer(&mut self, timestamp: i64, ctx: &mut KeyedContext<'_, K, Self::State, O>) {
        let Some(mut buffers) = ctx.state().take() else {
            return;
        };
        // Keep the records whose cleanup time is after `timestamp`.
        let left_keep = timestamp
            .saturating_sub(self.upper.max(0))
            .saturating_add(1);
        buffers.left = buffers.left.split_off(&left_keep);
        let right_keep = timestamp
            .saturating_sub(self.lower.saturating_neg().max(0))
            .saturating_add(1);
        buffers.right = buffers.right.split_off(&right_keep);
        if !(buffers.left.is_empty() && buffers.right.is_empty()) {
            ctx.state().update(buffers);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::checkpoint::RestoredState;
    use crate::clock::ManualClock;

    use crate::operator::{Operator, RuntimeContext};

    use crate::watermark::{TimestampFn, Watermark};

    fn context() -> RuntimeContext {
        RuntimeContext::standalone(NAME, 0, 1, Arc::new(ManualClock::new()))
    }

    /// Both sides are (key, time ms); pairs are emitted as (left time, right time).
    type Side = (u8, i64);
    type In = CoInput<Side, Side>;
    type Pair = (i64, i64);
    type PairFn = fn(&Side, &Side, &mut dyn Collector<Pair>);
    type Join = IntervalJoinFunction<Side, Side, Pair, PairFn>;
    type Op = KeyedProcessFunctionOperator<u8, In, Pair, fn(&In) -> u8, Join>;

    fn join(lower: i64, upper: i64, dropped: Arc<AtomicU64>) -> Join {
        fn pair(a: &Side, b: &Side, out: &mut dyn Collector<Pair>) {
            out.collect((a.1, b.1));
        }
        IntervalJoinFunction {
            f: pair as PairFn,
            lower,
            upper,
            left_late: None,
            right_late: None,
            dropped,
            _types: PhantomData,
        }
    }

    fn operator(lower: i64, upper: i64, ctx: &RuntimeContext) -> Op {
        fn key(r: &In) -> u8 {
            match r {
                CoInput::First(a) => a.0,
                CoInput::Second(b) => b.0,
            }
        }
        let timestamps: TimestampFn<In> = Arc::new(|r: &In| match r {
            CoInput::First(a) => a.1,
            CoInput::Second(b) => b.1,
        });
        let dropped = ctx.metrics.custom(LATE_RECORDS_DROPPED);
        KeyedProcessFunctionOperator::new(
            key as fn(&In) -> u8,
            join(lower, upper, dropped),
            Some(timestamps),
            ctx,
        )
    }

    fn left(key: u8, ts: i64) -> In {
        CoInput::First((key, ts))
    }

    fn right(key: u8, ts: i64) -> In {
        CoInput::Second((key, ts))
    }

    #[test]
    fn cleanup_times_are_the_last_times_a_partner_can_arrive() {
        let none = Arc::default;
        let j = join(-2, 5, none());
        assert_eq!(j.left_cleanup(10), 15, "right records up to 15 join 10");
        assert_eq!(j.right_cleanup(10), 12, "left records up to 12 join 10");
        let j = join(3, 5, none());
        assert_eq!(
            j.right_cleanup(10),
            10,
            "a right at 10 joins lefts at 5..=7"
        );
        let j = join(-5, -3, none());
        assert_eq!(j.left_cleanup(10), 10, "a left at 10 joins rights at 5..=7");
    }

    #[test]
    fn out_of_order_records_of_either_side_join_within_the_bounds_of_their_key() {
        let ctx = context();
        let mut op = operator(-2, 3, &ctx);
        let mut out = Vec::new();
        for r in [
            right(1, 7),
            right(1, 8),
            right(2, 9),
            right(1, 13),
            right(1, 14),
        ] {
            op.process(r, &mut out);
        }
        op.process(left(1, 10), &mut out);
        assert_eq!(
            out,
            [(10, 8), (10, 13)],
            "[8, 13] of key 1, both ends included"
        );
        out.clear();
        // A right record arriving after the left one it joins, out of order.
        op.process(right(1, 12), &mut out);
        op.process(right(2, 12), &mut out);
        assert_eq!(out, [(10, 12)]);
    }

    #[test]
    fn records_behind_the_watermark_are_dropped_and_counted_and_buffers_are_cleaned_up() {
        let ctx = context();
        let mut op = operator(0, 5, &ctx);
        let mut out = Vec::new();
        op.process(left(1, 10), &mut out);
        op.process_watermark(Watermark(14), &mut out);
        op.process(right(1, 15), &mut out);
        assert_eq!(out, [(10, 15)], "the left record is kept until 10 + 5");
        op.process_watermark(Watermark(15), &mut out);
        // Behind the watermark: late, whatever it would have joined.
        op.process(right(1, 14), &mut out);
        op.process(left(1, 13), &mut out);
        assert_eq!(out.len(), 1);
        let dropped = ctx.metrics.custom(LATE_RECORDS_DROPPED);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        // At the watermark, not behind it: on time, but 10 was cleaned up at 15.
        op.process(right(1, 15), &mut out);
        assert_eq!(out.len(), 1);
        op.process_watermark(Watermark::MAX, &mut out);
        let scope = ctx.scope();
        let empty = operator(0, 5, &ctx).snapshot_state(scope, 1).unwrap();
        assert_eq!(
            op.snapshot_state(scope, 1).unwrap(),
            empty,
            "no buffer or timer left once the watermark is at its end"
        );
    }

    #[test]
    fn buffers_and_timers_survive_a_snapshot_and_restore() {
        let ctx = context();
        let mut op = operator(-3, 3, &ctx);
        let mut out = Vec::new();
        op.process(left(1, 10), &mut out);
        op.process(right(2, 20), &mut out);
        let scope = ctx.scope();
        let bytes = op.snapshot_state(scope, 1).unwrap().unwrap();
        let mut restored = operator(-3, 3, &ctx);
        let state = RestoredState {
            checkpoint_id: Some(1),
            by_subtask: vec![Some(Arc::from(bytes))].into(),
        };
        restored.restore_state(scope, &state).unwrap();
        for op in [&mut op, &mut restored] {
            let mut out = Vec::new();
            op.process(right(1, 12), &mut out);
            op.process(left(2, 18), &mut out);
            op.process_watermark(Watermark(13), &mut out);
            // 10 is cleaned up at 13: a right at 13 of key 1 finds no partner.
            op.process(right(1, 13), &mut out);
            assert_eq!(out, [(10, 12), (18, 20)]);
        }
    }
}
