//! Chaining decisions and plan export.

use flink_runtime::prelude::*;

fn vertex_names(env: &StreamExecutionEnvironment) -> Vec<String> {
    env.job_graph()
        .unwrap()
        .vertices
        .iter()
        .map(|v| v.name.clone())
        .collect()
}

#[test]
fn map_then_filter_at_equal_parallelism_is_one_task() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_sequence(1, 10)
        .map(|x| x + 1)
        .filter(|x| x % 2 == 0)
        .collect_vec();
    assert_eq!(
        vertex_names(&env),
        vec!["Sequence Source -> Map -> Filter -> Collect Sink"]
    );
}

#[test]
fn key_by_starts_a_new_task() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .map(|x| (x % 3, x))
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r: &mut (u64, u64)| &mut r.1)
        .collect_vec();
    let jg = env.job_graph().unwrap();
    assert_eq!(
        vertex_names(&env),
        vec!["Sequence Source -> Map", "Keyed Reduce -> Collect Sink"]
    );
    assert_eq!(jg.edges.len(), 1);
    assert_eq!(jg.edges[0].partitioner.kind.to_string(), "HASH");
}

#[test]
fn disable_chaining_and_start_new_chain_split_tasks() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .map(|x| x)
        .disable_chaining()
        .filter(|_| true)
        .map(|x| x)
        .start_new_chain()
        .collect_vec();
    assert_eq!(
        vertex_names(&env),
        vec!["Sequence Source", "Map", "Filter", "Map -> Collect Sink"]
    );
}

#[test]
fn env_wide_chaining_off_gives_one_task_per_operator() {
    let env = StreamExecutionEnvironment::new();
    env.disable_operator_chaining();
    env.from_sequence(1, 10)
        .map(|x| x)
        .filter(|_| true)
        .collect_vec();
    assert_eq!(vertex_names(&env).len(), 4);
}

#[test]
fn parallelism_change_makes_an_implicit_edge_rebalance() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .map(|x| x)
        .set_parallelism(3)
        .collect_vec();
    let jg = env.job_graph().unwrap();
    assert_eq!(jg.vertices.len(), 3);
    assert_eq!(jg.edges[0].partitioner.kind.to_string(), "REBALANCE");
}

#[test]
fn plans_export_as_json_and_dot() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_sequence(1, 10)
        .key_by(|x: &u64| *x)
        .map(|x| x)
        .name("Identity")
        .collect_vec();
    let sg = env.stream_graph().unwrap();
    let jg = env.job_graph().unwrap();
    let eg = flink_core::graph::ExecutionGraph::from_job_graph(&jg);
    let json: serde_json::Value = serde_json::from_str(&jg.plan().to_json()).unwrap();
    assert_eq!(json["kind"], "job");
    assert_eq!(json["nodes"][1]["name"], "Identity -> Collect Sink");
    assert_eq!(json["edges"][0]["label"], "HASH");
    assert_eq!(sg.plan().nodes.len(), 3);
    // 2 producers x 2 consumers, all-to-all.
    assert_eq!(eg.channels.len(), 4);
    assert_eq!(eg.plan().nodes.len(), 4);
    let dot = jg.plan().to_dot();
    assert!(dot.starts_with("digraph job {"));
    assert!(dot.contains("\"v0\" -> \"v1\" [label=\"HASH\"]"));
}

#[test]
fn bad_configuration_is_a_typed_error_at_build_time() {
    let env = StreamExecutionEnvironment::new();
    env.set_buffer_size(0);
    env.from_sequence(1, 3).collect_vec();
    assert_eq!(
        env.execute("bad").unwrap_err(),
        JobError::Graph(GraphError::Config(ConfigError::BufferTooSmall {
            min: 64,
            got: 0
        }))
    );

    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 3)
        .map(|x| x)
        .set_parallelism(0)
        .collect_vec();
    assert!(matches!(
        env.execute("bad").unwrap_err(),
        JobError::Graph(GraphError::Config(ConfigError::ZeroParallelism { .. }))
    ));

    let env = StreamExecutionEnvironment::new();
    env.set_max_parallelism(4).set_parallelism(8);
    env.from_sequence(1, 3).collect_vec();
    assert!(matches!(
        env.execute("bad").unwrap_err(),
        JobError::Graph(GraphError::Config(ConfigError::ParallelismAboveMax { .. }))
    ));

    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 3).map(|x| x);
    assert_eq!(
        env.execute("no sink").unwrap_err(),
        JobError::Graph(GraphError::NoSink)
    );

    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 3)
        .map(|x| x)
        .set_parallelism(2)
        .forward()
        .map(|x| x)
        .collect_vec();
    assert!(matches!(
        env.execute("bad forward").unwrap_err(),
        JobError::Graph(GraphError::ForwardParallelismMismatch { .. })
    ));

    let env = StreamExecutionEnvironment::new();
    let a = env.from_sequence(1, 3);
    a.union(&[env.from_sequence(4, 5)])
        .set_parallelism(2)
        .collect_vec();
    assert!(matches!(
        env.execute("bad union").unwrap_err(),
        JobError::Graph(GraphError::NotAnOperator { .. })
    ));

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_iter(0..3u64).set_parallelism(2).collect_vec();
    assert!(matches!(
        env.execute("bad source").unwrap_err(),
        JobError::Graph(GraphError::NonParallelOperator { .. })
    ));
}
