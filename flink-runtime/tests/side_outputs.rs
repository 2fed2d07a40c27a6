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
