//! A non-keyed `process` with a `ProcessFunction`: main and side outputs end to
//! end, exact counts at parallelism 1 and 3, from a struct and from a closure.

use flink_runtime::prelude::*;

const N: u64 = 10_000;

/// Multiples of 3 go to the side output, the rest are emitted twice.
#[derive(Clone)]
struct Split {
    threes: OutputTag<u64>,
}

impl ProcessFunction<u64, u64> for Split {
    fn process_element(&mut self, x: u64, ctx: &mut ProcessFunctionContext<'_, u64>) {
        if x.is_multiple_of(3) {
            ctx.output(&self.threes, x);
        } else {
            ctx.collect(x);
            ctx.collect(x);
        }
    }
}

fn run(parallelism: usize) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    let threes = OutputTag::<u64>::new("threes");
    let main = env.from_sequence(1, N).process_function(Split {
        threes: threes.clone(),
    });
    let side = main.side_output(&threes).collect_vec();
    // A closure works as a process function too.
    let lengths = main
        .process(|x, ctx| ctx.collect(x.to_string().len()))
        .collect_vec();
    env.execute("process").unwrap();
    let mut expected_side: Vec<u64> = (1..=N).filter(|x| x.is_multiple_of(3)).collect();
    expected_side.sort_unstable();
    assert_eq!(
        side.take_sorted(),
        expected_side,
        "parallelism {parallelism}"
    );
    let mut expected: Vec<usize> = (1..=N)
        .filter(|x| !x.is_multiple_of(3))
        .flat_map(|x| [x.to_string().len(); 2])
        .collect();
    expected.sort_unstable();
    assert_eq!(lengths.take_sorted(), expected, "parallelism {parallelism}");
}

#[test]
fn main_and_side_outputs_are_exact_at_one() {
    run(1);
}

#[test]
fn main_and_side_outputs_are_exact_at_three() {
    run(3);
}

#[test]
fn flat_map_iter_emits_every_item_the_closure_returns() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let out = env
        .from_sequence(1, 100)
        .flat_map_iter(|n| (0..n % 4).map(move |i| n * 10 + i))
        .collect_vec();
    env.execute("flat_map_iter").unwrap();
    let mut expected: Vec<u64> = (1..=100u64)
        .flat_map(|n| (0..n % 4).map(move |i| n * 10 + i))
        .collect();
    expected.sort_unstable();
    assert_eq!(out.take_sorted(), expected);
}
