//! Dead letters nobody reads: the first one fails the job, naming the operator and the
//! reason, unless the operator's dead letters are discarded on purpose (counted
//! exactly); read ones are delivered. Other side outputs stay counted, not fatal.

use flink_core::dead_letter::dead_letter_tag;
use flink_core::operator::Operator;
use flink_core::side_output::SideOutput;
use flink_runtime::prelude::*;

mod common;
use common::reject_every_tenth;

/// [`reject_every_tenth`], named "Price".
fn rejecting(env: &StreamExecutionEnvironment) -> DataStream<u64> {
    reject_every_tenth(env).name("Price")
}

#[test]
fn an_unread_dead_letter_fails_the_job_naming_the_operator_and_the_reason() {
    let env = StreamExecutionEnvironment::new();
    rejecting(&env).collect_vec();
    let err = env.execute("unread dead letters").unwrap_err();
    let JobError::OperatorFailed {
        operator, message, ..
    } = &err
    else {
        panic!("expected an operator failure, got {err}");
    };
    assert_eq!(operator, "Price");
    assert!(
        message.contains("dead letter that no stream reads"),
        "{err}"
    );
    // The first reason: record 10, with the function's error.
    assert!(message.contains("10 rejected"), "{err}");
    assert!(message.contains("discard_dead_letters()"), "{err}");
}

#[test]
fn discarded_dead_letters_are_counted_exactly() {
    for p in [1, 2] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let ok = rejecting(&env).discard_dead_letters().collect_vec();
        let result = env.execute("discarded dead letters").unwrap();
        assert_eq!(ok.len(), 900, "parallelism {p}");
        let price = result.operator("Price").unwrap();
        assert_eq!(
            (price.records_in, price.dead_letters_discarded),
            (1_000, 100),
            "parallelism {p}"
        );
        assert_eq!(price.side_output_unconsumed, 0);
    }
}

#[test]
fn read_dead_letters_are_delivered_and_none_is_discarded() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let priced = rejecting(&env);
    let ok = priced.collect_vec();
    let dead = priced.dead_letters::<u64>().rebalance().collect_vec();
    let result = env.execute("read dead letters").unwrap();
    assert_eq!(ok.len(), 900);
    let mut dead: Vec<u64> = dead.take().into_iter().map(|d| d.record).collect();
    dead.sort();
    assert_eq!(dead, (1..=100).map(|i| i * 10).collect::<Vec<u64>>());
    assert_eq!(result.operator("Price").unwrap().dead_letters_discarded, 0);
}

/// Writes each odd record as a dead letter from a custom operator.
struct RejectOdd {
    dead: SideOutput<DeadLetter<u64>>,
}

impl Operator<u64, u64> for RejectOdd {
    fn process<C: Collector<u64> + ?Sized>(&mut self, x: u64, out: &mut C) {
        if x % 2 == 1 {
            self.dead
                .collect(DeadLetter::new(x, "Reject", format!("{x} is odd")));
        } else {
            out.collect(x);
        }
    }
}

#[test]
fn a_sink_or_custom_operator_can_discard_too_and_a_discarding_chain_stays_exact() {
    let env = StreamExecutionEnvironment::new();
    let evens = env
        .from_sequence(1, 101)
        .transform("Reject", |ctx| RejectOdd {
            dead: ctx.side_output(&dead_letter_tag::<u64>()),
        })
        .discard_dead_letters();
    let got = evens.collect_vec();
    let result = env.execute("custom discards").unwrap();
    assert_eq!(got.len(), 50);
    assert_eq!(
        result.operator("Reject").unwrap().dead_letters_discarded,
        51
    );

    // The same operator without the opt-out fails on record 1.
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 101)
        .transform("Reject", |ctx| RejectOdd {
            dead: ctx.side_output(&dead_letter_tag::<u64>()),
        })
        .collect_vec();
    let err = env.execute("custom fails").unwrap_err().to_string();
    assert!(err.starts_with("operator 'Reject'"), "{err}");
    assert!(err.contains("'Reject' gave up: 1 is odd"), "{err}");
}
