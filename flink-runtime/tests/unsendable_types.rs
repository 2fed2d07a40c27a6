//! A record type bincode cannot round-trip fails the job the first time it crosses a
//! task boundary, naming the producing operator and the type; chained, it works.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use flink_runtime::prelude::*;

fn documents(n: u64) -> Vec<Value> {
    (0..n)
        .map(|i| json!({ "id": i, "tags": ["a", "b"] }))
        .collect()
}

#[test]
fn json_values_across_a_rebalance_fail_naming_the_operator_and_the_type() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_collection(documents(100))
        .map(|v: Value| v)
        .name("Parse")
        .rebalance()
        .collect_vec();
    let err = env.execute("json across tasks").unwrap_err();
    let JobError::OperatorFailed {
        operator, message, ..
    } = &err
    else {
        panic!("expected an operator failure, got {err}");
    };
    assert_eq!(operator, "Parse");
    assert!(
        message.contains("records of type serde_json::value::Value cannot be sent to another task"),
        "{err}"
    );
    assert!(message.contains("bincode cannot decode"), "{err}");
}

#[test]
fn json_values_inside_one_chain_need_no_encoding() {
    let env = StreamExecutionEnvironment::new();
    let got = env
        .from_collection(documents(10))
        .map(|v: Value| v["id"].as_u64().unwrap_or(0))
        .collect_vec();
    env.execute("json in a chain").unwrap();
    assert_eq!(got.take_sorted(), (0..10).collect::<Vec<u64>>());
}

#[test]
fn maps_and_tagged_enums_cross_tasks() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let got = env
        .from_sequence(1, 100)
        .map(|x: u64| {
            let map: std::collections::HashMap<String, u64> =
                (0..5).map(|i| (format!("k{i}"), x + i)).collect();
            (map, Some(x))
        })
        .rebalance()
        .map(
            |(map, x): (std::collections::HashMap<String, u64>, Option<u64>)| {
                map.values().sum::<u64>() + x.unwrap_or(0)
            },
        )
        .collect_vec();
    env.execute("maps across tasks").unwrap();
    let expected: Vec<u64> = (1..=100u64).map(|x| 5 * x + 10 + x).collect();
    assert_eq!(got.take_sorted(), expected);
}

/// Untagged: serde tells the variants apart by looking at the data, which bincode's
/// format does not describe.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Reading {
    Number(u64),
    Text(String),
}

#[test]
fn an_untagged_enum_across_a_rebalance_fails_naming_the_type() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_sequence(1, 100)
        .map(|x: u64| {
            if x.is_multiple_of(2) {
                Reading::Number(x)
            } else {
                Reading::Text(x.to_string())
            }
        })
        .name("Read")
        .rebalance()
        .collect_vec();
    let err = env
        .execute("untagged across tasks")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("operator 'Read'"), "{err}");
    assert!(err.contains("unsendable_types::Reading"), "{err}");
}
