//! Two-input operators end to end: CoMap and CoFlatMap, a keyed CoProcess
//! enrichment (orders priced by their product's price, whichever arrives first)
//! exact at parallelism 1 and 2 against a plain loop, and the operator's watermark
//! being the minimum of its two inputs' watermarks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use flink_core::co_process_function::CoProcessFunction;
use flink_core::connected_streams::KeyedCoProcessFunction;
use flink_core::operator::{Operator, RuntimeContext};
use flink_core::source::SourceOutput;
use flink_core::watermark::{Watermark, WatermarkStrategy};
use flink_runtime::prelude::*;

/// An order: (order id, product, quantity).
type Order = (u64, u32, u64);
/// A price: (product, cents).
type Price = (u32, u64);

const ORDERS: u64 = 10_000;
const PRODUCTS: u64 = 50;

fn price_of(product: u64) -> u64 {
    100 + product * 3
}

/// Prices each order with its product's price, whichever of the two arrives
/// first: orders wait in the key's state until the price is there.
#[derive(Clone)]
struct Enrich;

impl KeyedCoProcessFunction<u32, Order, Price, (u64, u64)> for Enrich {
    /// The product's price once known, and the orders waiting for it.
    type State = (Option<u64>, Vec<Order>);

    fn process_element1(
        &mut self,
        order: Order,
        ctx: &mut KeyedContext<'_, u32, Self::State, (u64, u64)>,
    ) {
        let (price, mut waiting) = ctx.state().take().unwrap_or_default();
        match price {
            Some(cents) => ctx.collect((order.0, order.2 * cents)),
            None => waiting.push(order),
        }
        ctx.state().update((price, waiting));
    }

    fn process_element2(
        &mut self,
        price: Price,
        ctx: &mut KeyedContext<'_, u32, Self::State, (u64, u64)>,
    ) {
        let (_, waiting) = ctx.state().take().unwrap_or_default();
        for order in waiting {
            ctx.collect((order.0, order.2 * price.1));
        }
        ctx.state().update((Some(price.1), Vec::new()));
    }
}

fn enrichment(p: usize) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    let orders = env
        .from_sequence(0, ORDERS - 1)
        .map(|i: u64| (i, (i % PRODUCTS) as u32, i % 7 + 1));
    let prices = env
        .from_sequence(0, PRODUCTS - 1)
        .map(|product: u64| (product as u32, price_of(product)));
    let totals = orders
        .connect(&prices)
        .key_by(|o: &Order| o.1, |p: &Price| p.0)
        .process(Enrich)
        .collect_vec();
    env.execute("enrichment").unwrap();
    let expected: Vec<(u64, u64)> = (0..ORDERS)
        .map(|i| (i, (i % 7 + 1) * price_of(i % PRODUCTS)))
        .collect();
    assert_eq!(totals.take_sorted(), expected, "p={p}");
}

#[test]
fn orders_enriched_with_their_products_price_exact_at_parallelism_1_and_2() {
    enrichment(1);
    enrichment(2);
}

#[test]
fn co_map_and_co_flat_map_apply_each_inputs_function_exactly_once() {
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let numbers = env.from_sequence(1, 1_000);
        let words = env.from_collection(vec!["a".to_string(), "bb b".into()]);
        let mapped = numbers
            .connect(&words)
            .map(|n: u64| n * 10, |w: String| w.len() as u64)
            .collect_vec();
        let flat = numbers
            .connect(&words)
            .flat_map(
                |n: u64, out: &mut dyn Collector<u64>| {
                    if n.is_multiple_of(100) {
                        out.collect(n);
                        out.collect(n + 1);
                    }
                },
                |w: String, out: &mut dyn Collector<u64>| {
                    w.split(' ').for_each(|s| out.collect(s.len() as u64))
                },
            )
            .collect_vec();
        env.execute("co map").unwrap();
        let mut expected: Vec<u64> = (1..=1_000).map(|n| n * 10).chain([1, 4]).collect();
        expected.sort();
        assert_eq!(mapped.take_sorted(), expected, "CoMap at p={p}");
        let mut expected: Vec<u64> = (1..=10)
            .flat_map(|k| [k * 100, k * 100 + 1])
            .chain([1, 2, 1])
            .collect();
        expected.sort();
        assert_eq!(flat.take_sorted(), expected, "CoFlatMap at p={p}");
    }
}

/// Unbounded: emits `0..n` once, then nothing until the job stops.
struct OnceThenPending(u64);

struct OnceReader(Vec<u64>);

impl Source<u64> for OnceThenPending {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Unbounded
    }

    fn create_reader(&self, _ctx: &RuntimeContext) -> Box<dyn SourceReader<u64>> {
        Box::new(OnceReader((0..self.0).collect()))
    }

    fn is_parallel(&self) -> bool {
        false
    }
}

impl SourceReader<u64> for OnceReader {
    fn poll_next(&mut self, out: &mut SourceOutput<u64>) -> SourcePoll {
        if self.0.is_empty() {
            return SourcePoll::Pending(Duration::from_millis(1));
        }
        for x in self.0.drain(..) {
            out.collect(x);
        }
        SourcePoll::MoreAvailable
    }
}

/// Records every watermark reaching it where the test can read it while the job runs.
#[derive(Clone, Default)]
struct WatermarkProbe(Arc<Mutex<Vec<i64>>>);

impl Operator<u64, u64> for WatermarkProbe {
    fn process<C: Collector<u64> + ?Sized>(&mut self, x: u64, out: &mut C) {
        out.collect(x);
    }

    fn process_watermark<C: Collector<u64> + ?Sized>(&mut self, w: Watermark, out: &mut C) {
        self.0.lock().unwrap().push(w.0);
        out.emit_watermark(w);
    }
}

#[test]
fn a_two_input_operators_watermark_is_the_minimum_of_both_inputs() {
    let env = StreamExecutionEnvironment::new();
    // Every assigner instance gets records (an instance without would hold the
    // watermark at its minimum).
    env.set_parallelism(1);
    env.set_auto_watermark_interval(Duration::ZERO);
    let monotonous = || WatermarkStrategy::monotonous(|x: &u64| *x as i64);
    // The fast input's watermark reaches 998, the slow one's 48.
    let fast = env
        .from_source(OnceThenPending(1_000), "Fast")
        .assign_timestamps_and_watermarks(monotonous());
    let slow = env
        .from_source(OnceThenPending(50), "Slow")
        .assign_timestamps_and_watermarks(monotonous());
    let probe = WatermarkProbe::default();
    let seen = probe.0.clone();
    let records = fast
        .connect(&slow)
        .map(|x: u64| x, |x: u64| x)
        .transform("Probe", move |_| probe.clone())
        .collect_vec();
    let client = env.execute_async("watermark of two inputs").unwrap();
    let started = Instant::now();
    while !seen.lock().unwrap().contains(&48) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no watermark 48: {:?}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Both inputs' watermarks are out (the fast one's 998 was emitted with its
    // last batch); none above the slow one's passed the operator.
    std::thread::sleep(Duration::from_millis(200));
    let before_stop = seen.lock().unwrap().clone();
    client.stop();
    client.wait().unwrap();
    assert_eq!(before_stop.iter().max(), Some(&48), "{before_stop:?}");
    assert_eq!(seen.lock().unwrap().last(), Some(&i64::MAX));
    assert_eq!(records.len(), 1_050);
}

/// Emits each record with its timestamp, counts both inputs' records per key in
/// the shared state, and emits the count when the key's event-time timer fires.
#[derive(Clone)]
struct StampAndCount;

impl StampAndCount {
    fn on_record(x: u64, ctx: &mut KeyedContext<'_, u64, u64, (u64, i64)>) {
        let ts = ctx.timestamp().expect("both inputs have timestamps");
        ctx.collect((x, ts));
        let seen = ctx.state().value().copied().unwrap_or(0);
        if seen == 0 {
            ctx.timer_service().register_event_time_timer(5_000);
        }
        ctx.state().update(seen + 1);
    }
}

impl KeyedCoProcessFunction<u64, u64, u64, (u64, i64)> for StampAndCount {
    type State = u64;

    fn process_element1(&mut self, x: u64, ctx: &mut KeyedContext<'_, u64, u64, (u64, i64)>) {
        Self::on_record(x, ctx);
    }

    fn process_element2(&mut self, x: u64, ctx: &mut KeyedContext<'_, u64, u64, (u64, i64)>) {
        Self::on_record(x, ctx);
    }

    fn on_timer(&mut self, ts: i64, ctx: &mut KeyedContext<'_, u64, u64, (u64, i64)>) {
        let key = *ctx.key();
        let count = ctx.state().take().unwrap_or(0);
        ctx.collect((1_000_000 + key * 1_000 + count, ts));
    }
}

#[test]
fn keyed_co_process_sees_both_inputs_timestamps_and_shares_state_and_timers_per_key() {
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let first = env
            .from_sequence(0, 99)
            .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| *x as i64));
        let second = env
            .from_sequence(1_000, 1_099)
            .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|x: &u64| {
                *x as i64 * 2
            }));
        let out = first
            .connect(&second)
            .key_by(|x: &u64| x % 4, |x: &u64| x % 4)
            .process(StampAndCount)
            .collect_vec();
        env.execute("stamps").unwrap();
        let mut expected: Vec<(u64, i64)> = (0..100)
            .map(|x| (x, x as i64))
            .chain((1_000..1_100).map(|x| (x, x as i64 * 2)))
            // Per key, 25 records of each input; every timer fires at 5000.
            .chain((0..4).map(|key| (1_000_000 + key * 1_000 + 50, 5_000)))
            .collect();
        expected.sort();
        assert_eq!(out.take_sorted(), expected, "p={p}");
    }
}

/// Passes orders on as (order id, quantity), sends prices to a side output and
/// stamps each record with its input's timestamp.
#[derive(Clone)]
struct SplitByInput(OutputTag<Price>);

impl CoProcessFunction<Order, Price, (u64, u64, i64)> for SplitByInput {
    fn process_element1(
        &mut self,
        order: Order,
        ctx: &mut ProcessFunctionContext<'_, (u64, u64, i64)>,
    ) {
        let ts = ctx.timestamp().expect("orders carry timestamps");
        ctx.collect((order.0, order.2, ts));
    }

    fn process_element2(
        &mut self,
        price: Price,
        ctx: &mut ProcessFunctionContext<'_, (u64, u64, i64)>,
    ) {
        let ts = ctx.timestamp().expect("prices carry timestamps");
        ctx.collect((u64::from(price.0), price.1, ts));
        ctx.output(&self.0, price);
    }
}

#[test]
fn non_keyed_co_process_sees_each_inputs_records_timestamps_and_side_outputs() {
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let orders = env
            .from_sequence(1, ORDERS)
            .map(|i| (i, (i % PRODUCTS) as u32, i % 7 + 1))
            .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|o: &Order| {
                o.0 as i64
            }));
        let prices = env
            .from_sequence(0, PRODUCTS - 1)
            .map(|p| (p as u32, price_of(p)))
            .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous(|p: &Price| {
                -(i64::from(p.0))
            }));
        let tag = OutputTag::<Price>::new("prices");
        let both = orders.connect(&prices).process(SplitByInput(tag.clone()));
        let main = both.collect_vec();
        let side = both.side_output(&tag).collect_vec();
        env.execute("co process").unwrap();
        let mut expected: Vec<(u64, u64, i64)> = (1..=ORDERS)
            .map(|i| (i, i % 7 + 1, i as i64))
            .chain((0..PRODUCTS).map(|p| (p, price_of(p), -(p as i64))))
            .collect();
        expected.sort_unstable();
        assert_eq!(main.take_sorted(), expected, "main output at p={p}");
        let expected: Vec<Price> = (0..PRODUCTS).map(|p| (p as u32, price_of(p))).collect();
        assert_eq!(side.take_sorted(), expected, "side output at p={p}");
    }
}

#[test]
fn keyed_co_map_and_co_flat_map_meet_equal_keys_of_both_inputs_in_one_instance() {
    for p in [1, 2, 4] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let orders = env
            .from_sequence(1, ORDERS)
            .map(|i| (i, (i % PRODUCTS) as u32, 1));
        let prices = env
            .from_sequence(0, PRODUCTS - 1)
            .map(|p| (p as u32, price_of(p)));
        let connected = orders.connect(&prices).key_by(|o| o.1, |p| p.0);
        // Which task threads saw each product, from either input: one per product
        // if equal keys of both inputs meet in one instance.
        let threads: Arc<Mutex<HashMap<u32, HashSet<ThreadId>>>> = Default::default();
        let (by_order, by_price) = (threads.clone(), threads.clone());
        let seen = move |seen: &Arc<Mutex<HashMap<u32, HashSet<ThreadId>>>>, product: u32| {
            let mut seen = seen.lock().unwrap();
            seen.entry(product)
                .or_default()
                .insert(std::thread::current().id());
        };
        let mapped = connected
            .map(
                move |o| {
                    seen(&by_order, o.1);
                    (o.1, o.2)
                },
                move |p| {
                    seen(&by_price, p.0);
                    (p.0, 0)
                },
            )
            .collect_vec();
        let flat = connected
            .flat_map(
                |o, out| {
                    if o.0.is_multiple_of(1_000) {
                        out.collect(o.0)
                    }
                },
                |p, out| {
                    out.collect(u64::from(p.0));
                    out.collect(p.1)
                },
            )
            .collect_vec();
        env.execute("keyed co map").unwrap();
        let threads = threads.lock().unwrap();
        assert_eq!(threads.len() as u64, PRODUCTS, "p={p}");
        assert!(threads.values().all(|t| t.len() == 1), "p={p}: {threads:?}");
        let mut expected: Vec<(u32, u64)> = (1..=ORDERS)
            .map(|i| ((i % PRODUCTS) as u32, 1))
            .chain((0..PRODUCTS).map(|p| (p as u32, 0)))
            .collect();
        expected.sort_unstable();
        assert_eq!(mapped.take_sorted(), expected, "keyed CoMap at p={p}");
        let mut expected: Vec<u64> = (1..=ORDERS / 1_000)
            .map(|k| k * 1_000)
            .chain((0..PRODUCTS).flat_map(|p| [p, price_of(p)]))
            .collect();
        expected.sort_unstable();
        assert_eq!(flat.take_sorted(), expected, "keyed CoFlatMap at p={p}");
    }
}
