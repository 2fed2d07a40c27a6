//! The broadcast state pattern end to end: a rules stream broadcast to a keyed
//! stream of events; every parallel instance receives every rule, keyed records
//! read the rules, and the totals are exact at parallelism 1, 2 and 4 against a
//! plain loop.

use std::collections::BTreeMap;

use flink_core::broadcast_process_function::{BroadcastProcessFunction, ReadOnlyBroadcastContext};
use flink_core::broadcast_stream::BroadcastStream;
use flink_core::keyed_broadcast_process_function::{
    BroadcastContext, KeyedBroadcastContext, KeyedBroadcastProcessFunction,
};
use flink_core::watermark::WatermarkStrategy;
use flink_runtime::prelude::*;

/// An event: (user, category, amount).
type Event = (u64, u8, u64);
/// A rule: (category, multiplier).
type Rule = (u8, u64);
/// Out: (0, category, 0) when an instance stored a rule; (1, user, total) per user.
type Out = (u8, u64, u64);

const EVENTS: u64 = 20_000;
const USERS: u64 = 97;
const CATEGORIES: u8 = 6;

fn event(i: u64) -> Event {
    (i % USERS, (i % CATEGORIES as u64) as u8, i % 13 + 1)
}

fn rule(category: u8) -> Rule {
    (category, category as u64 * 10 + 1)
}

/// Buffers each user's events until the end of input (a timer at the largest
/// event time), then totals them with the rules: whichever input comes first, the
/// result is the same.
#[derive(Clone)]
struct Totals {
    rules: MapStateDescriptor<u8, u64>,
    pending: ListStateDescriptor<(u8, u64)>,
}

impl KeyedBroadcastProcessFunction<u64, Event, Rule, Out> for Totals {
    type State = ();

    fn process_element(
        &mut self,
        (_, category, amount): Event,
        ctx: &mut KeyedBroadcastContext<u64, (), Out>,
    ) {
        ctx.get_list_state(&self.pending).add((category, amount));
        ctx.timer_service().register_event_time_timer(i64::MAX);
    }

    fn process_broadcast_element(
        &mut self,
        (category, multiplier): Rule,
        ctx: &mut BroadcastContext<Out, u64>,
    ) {
        ctx.get_broadcast_state(&self.rules)
            .put(category, multiplier);
        ctx.collect((0, category as u64, 0));
    }

    fn on_timer(&mut self, _ts: i64, ctx: &mut KeyedBroadcastContext<u64, (), Out>) {
        let user = *ctx.key();
        let pending = ctx.get_list_state(&self.pending).take();
        let rules = ctx.get_broadcast_state(&self.rules);
        let total = pending
            .iter()
            .map(|(category, amount)| amount * rules.get(category).copied().unwrap_or(0))
            .sum();
        ctx.collect((1, user, total));
    }
}

fn run(parallelism: usize) -> Vec<Out> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    let rules = MapStateDescriptor::<u8, u64>::new("rules");
    let rule_stream: BroadcastStream<Rule> = env
        .from_collection((0..CATEGORIES).map(rule).collect())
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|_: &Rule| 0))
        .broadcast_with(&rules);
    let out = env
        .from_sequence(0, EVENTS - 1)
        .map(event)
        .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|e: &Event| e.2 as i64))
        .key_by(|e: &Event| e.0)
        .connect_broadcast(&rule_stream)
        .process(Totals {
            rules,
            pending: ListStateDescriptor::new("pending"),
        })
        .collect_vec();
    env.execute("broadcast rules").unwrap();
    out.take_sorted()
}

fn expected(parallelism: usize) -> Vec<Out> {
    let mut totals: BTreeMap<u64, u64> = BTreeMap::new();
    for i in 0..EVENTS {
        let (user, category, amount) = event(i);
        *totals.entry(user).or_default() += amount * rule(category).1;
    }
    let mut out: Vec<Out> = (0..CATEGORIES)
        .flat_map(|c| std::iter::repeat_n((0, c as u64, 0), parallelism))
        .collect();
    out.extend(totals.into_iter().map(|(user, total)| (1, user, total)));
    out.sort_unstable();
    out
}

#[test]
fn rules_reach_every_instance_and_totals_are_exact_at_one() {
    assert_eq!(run(1), expected(1));
}

#[test]
fn rules_reach_every_instance_and_totals_are_exact_at_two() {
    assert_eq!(run(2), expected(2));
}

#[test]
fn rules_reach_every_instance_and_totals_are_exact_at_four() {
    assert_eq!(run(4), expected(4));
}

/// Non-keyed: each number is emitted with the broadcast factor it saw (0 before the
/// factor arrived); each instance emits a marker when it stores the factor.
#[derive(Clone)]
struct Scale {
    factor: MapStateDescriptor<(), u64>,
}

impl BroadcastProcessFunction<u64, u64, (u64, u64)> for Scale {
    fn process_element(&mut self, x: u64, ctx: &mut ReadOnlyBroadcastContext<(u64, u64)>) {
        let factor = ctx.get_broadcast_state(&self.factor).get(&()).copied();
        ctx.collect((x, factor.unwrap_or(0)));
    }

    fn process_broadcast_element(&mut self, factor: u64, ctx: &mut BroadcastContext<(u64, u64)>) {
        ctx.get_broadcast_state(&self.factor).put((), factor);
        ctx.collect((u64::MAX, factor));
    }
}

fn run_non_keyed(parallelism: usize) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    let factor = MapStateDescriptor::<(), u64>::new("factor");
    let factors = env.from_collection(vec![10u64]).broadcast_with(&factor);
    let out = env
        .from_sequence(0, EVENTS - 1)
        .connect_broadcast(&factors)
        .process(Scale { factor })
        .collect_vec();
    env.execute("scale").unwrap();
    let out = out.take_sorted();
    let (markers, numbers): (Vec<_>, Vec<_>) = out.into_iter().partition(|o| o.0 == u64::MAX);
    assert_eq!(
        markers,
        vec![(u64::MAX, 10); parallelism],
        "every instance got the factor"
    );
    assert_eq!(
        numbers.iter().map(|o| o.0).collect::<Vec<_>>(),
        (0..EVENTS).collect::<Vec<_>>(),
        "every number once"
    );
    assert!(numbers.iter().all(|o| o.1 == 0 || o.1 == 10));
}

#[test]
fn a_non_keyed_stream_reads_the_broadcast_state_at_one_two_and_four() {
    for parallelism in [1, 2, 4] {
        run_non_keyed(parallelism);
    }
}
