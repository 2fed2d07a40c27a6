//! Side outputs: read chained or across the network; unread ones are counted.

use flink_core::operator::Operator;
use flink_core::side_output::{OutputTag, SideOutput};
use flink_runtime::prelude::*;

struct SplitOdd {
    odd: SideOutput<String>,
}

impl Operator<u64, u64> for SplitOdd {
    fn process<C: Collector<u64> + ?Sized>(&mut self, x: u64, out: &mut C) {
        if x % 2 == 1 {
            self.odd.collect(format!("odd {x}"));
        } else {
            out.collect(x);
        }
    }
}

fn split(env: &StreamExecutionEnvironment, tag: &OutputTag<String>) -> DataStream<u64> {
    let tag = tag.clone();
    env.from_sequence(1, 1_000)
        .transform("Split", move |ctx| SplitOdd {
            odd: ctx.side_output(&tag),
        })
}

#[test]
fn side_output_is_read_chained_and_across_the_network() {
    for p in [1, 3] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let tag = OutputTag::<String>::new("odd");
        let evens = split(&env, &tag);
        let chained = evens.side_output(&tag).collect_vec();
        let shuffled = evens
            .side_output(&tag)
            .rebalance()
            .map(|s: String| s.len())
            .collect_vec();
        let main = evens.collect_vec();
        let result = env.execute("side outputs").unwrap();
        assert_eq!(
            main.take_sorted(),
            (1..=500).map(|x| x * 2).collect::<Vec<u64>>()
        );
        let mut expected: Vec<String> = (0..500).map(|i| format!("odd {}", 2 * i + 1)).collect();
        expected.sort();
        assert_eq!(chained.take_sorted(), expected);
        assert_eq!(shuffled.len(), 500);
        let split_op = result.operator("Split").unwrap();
        assert_eq!(
            (split_op.records_in, split_op.side_output_unconsumed),
            (1_000, 0)
        );
    }
}

#[test]
fn an_unread_side_output_is_counted_not_lost_silently() {
    let env = StreamExecutionEnvironment::new();
    let tag = OutputTag::<String>::new("odd");
    let main = split(&env, &tag).collect_vec();
    let result = env.execute("unread side output").unwrap();
    assert_eq!(main.len(), 500);
    assert_eq!(
        result.operator("Split").unwrap().side_output_unconsumed,
        500
    );
}

#[test]
fn a_keyed_process_function_writes_side_outputs_and_keeps_state() {
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let late = OutputTag::<(u64, u64)>::new("over-limit");
        let tag = late.clone();
        // Each key admits its first 100 records; the rest go to the side output with
        // the key's running count.
        // One source instance, so each key's records arrive in sequence order.
        let admitted = env
            .from_sequence(1, 1_000)
            .set_parallelism(1)
            .key_by(|x: &u64| x % 4)
            .process_with_context(
                move |_key: &u64,
                      x: u64,
                      count: &mut ValueState<u64>,
                      ctx: &mut ProcessContext<u64>| {
                    let n = count.value().copied().unwrap_or(0) + 1;
                    count.update(n);
                    if n > 100 {
                        ctx.output(&tag, (x, n));
                    } else {
                        ctx.collect(x);
                    }
                },
            );
        let over = admitted.side_output(&late).collect_vec();
        let main = admitted.collect_vec();
        env.execute("keyed process side outputs").unwrap();

        let main = main.take_sorted();
        let over = over.take_sorted();
        assert_eq!(main.len(), 400, "parallelism {p}");
        assert_eq!(over.len(), 600, "parallelism {p}");
        // Keys see their records in order, so the first 100 of each key are admitted.
        assert_eq!(main, (1..=400).collect::<Vec<u64>>());
        // Already sorted: x's running count in its key is ceil(x / 4).
        let expected: Vec<(u64, u64)> = (401..=1_000u64).map(|x| (x, x.div_ceil(4))).collect();
        assert_eq!(over, expected);
    }
}
