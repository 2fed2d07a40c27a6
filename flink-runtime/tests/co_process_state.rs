//! Named keyed state in a `KeyedCoProcessFunction`: orders wait in a list state
//! until their product's price (a value state) arrives on the other input; the
//! totals are exact at parallelism 1 and 2 whichever input comes first.

use flink_core::connected_streams::KeyedCoProcessFunction;
use flink_runtime::prelude::*;

/// An order: (order id, product, quantity).
type Order = (u64, u32, u64);
/// A price: (product, cents).
type Price = (u32, u64);

const ORDERS: u64 = 5_000;
const PRODUCTS: u32 = 40;

fn price_of(product: u32) -> u64 {
    100 + u64::from(product) * 7
}

#[derive(Clone)]
struct Enrich {
    price: ValueStateDescriptor<u64>,
    waiting: ListStateDescriptor<Order>,
}

impl KeyedCoProcessFunction<u32, Order, Price, (u64, u64)> for Enrich {
    type State = ();

    fn process_element1(&mut self, order: Order, ctx: &mut KeyedContext<'_, u32, (), (u64, u64)>) {
        match ctx.get_state(&self.price).value().copied() {
            Some(cents) => ctx.collect((order.0, order.2 * cents)),
            None => ctx.get_list_state(&self.waiting).add(order),
        }
    }

    fn process_element2(
        &mut self,
        (_, cents): Price,
        ctx: &mut KeyedContext<'_, u32, (), (u64, u64)>,
    ) {
        ctx.get_state(&self.price).update(cents);
        for order in ctx.get_list_state(&self.waiting).take() {
            ctx.collect((order.0, order.2 * cents));
        }
    }
}

fn run(parallelism: usize) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    let orders = env
        .from_sequence(0, ORDERS - 1)
        .map(|i| (i, (i % u64::from(PRODUCTS)) as u32, i % 5 + 1));
    let prices = env.from_collection((0..PRODUCTS).map(|p| (p, price_of(p))).collect());
    let totals = orders
        .connect(&prices)
        .key_by(|o| o.1, |p| p.0)
        .process(Enrich {
            price: ValueStateDescriptor::new("price"),
            waiting: ListStateDescriptor::new("waiting"),
        })
        .collect_vec();
    env.execute("enrich").unwrap();
    let expected: Vec<(u64, u64)> = (0..ORDERS)
        .map(|i| (i, (i % 5 + 1) * price_of((i % u64::from(PRODUCTS)) as u32)))
        .collect();
    assert_eq!(totals.take_sorted(), expected, "parallelism {parallelism}");
}

#[test]
fn orders_wait_in_list_state_for_their_price_at_one() {
    run(1);
}

#[test]
fn orders_wait_in_list_state_for_their_price_at_two() {
    run(2);
}
