//! A failing operator fails the job with an error naming it; nothing hangs.

use flink_runtime::prelude::*;

#[test]
fn a_panicking_map_fails_the_job_naming_operator_and_subtask() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_sequence(1, 1_000_000)
        .key_by(|x: &u64| *x)
        .map(|x: u64| {
            if x == 777 {
                panic!("bad record {x}");
            }
            x
        })
        .name("Fragile Map")
        .collect_vec();
    match env.execute("failing").unwrap_err() {
        JobError::OperatorFailed {
            operator,
            subtask,
            parallelism,
            message,
        } => {
            assert_eq!(operator, "Fragile Map");
            assert_eq!(parallelism, 2);
            assert!((1..=2).contains(&subtask));
            assert_eq!(message, "bad record 777");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_failing_sink_fails_the_job_naming_the_sink() {
    struct Refuses;
    struct RefusingWriter;
    impl Sink<u64> for Refuses {
        fn create_writer(
            &self,
            _: &flink_core::operator::RuntimeContext,
        ) -> Box<dyn SinkWriter<u64>> {
            Box::new(RefusingWriter)
        }
    }
    impl SinkWriter<u64> for RefusingWriter {
        fn write(&mut self, record: u64) -> Result<(), SinkError> {
            if record == 50 {
                return Err("disk full".into());
            }
            Ok(())
        }
    }
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 100)
        .rebalance()
        .sink_to(Refuses)
        .name("Refusing Sink");
    let err = env.execute("sink failure").unwrap_err();
    assert_eq!(
        err.to_string(),
        "operator 'Refusing Sink' (1/1) failed: sink write failed: disk full"
    );
    // `fn main() -> Result<(), JobError>` prints `Error: {err:?}`: the same sentence.
    assert_eq!(format!("{err:?}"), err.to_string());
    assert!(format!("{err:#?}").starts_with("OperatorFailed {\n    operator: \"Refusing Sink\","));
}

#[test]
fn build_errors_print_as_sentences_in_debug_form() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(0);
    env.from_sequence(1, 10).collect_vec();
    assert_eq!(
        format!("{:?}", env.execute("zero").unwrap_err()),
        "invalid job: parallelism of default must be at least 1, got 0"
    );
    let env = StreamExecutionEnvironment::new();
    let _ = env.from_sequence(1, 10).map(|x: u64| x + 1);
    assert_eq!(
        format!("{:?}", env.execute("no sink").unwrap_err()),
        "invalid job: the job has no sink: add sink_to(..), print() or collect_vec() before executing"
    );
}

#[test]
fn an_unbounded_job_stops_when_cancelled() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = seen.clone();
    env.from_source(flink_core::sources::SequenceSource::unbounded(), "Endless")
        .rebalance()
        .map(move |x: u64| {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            x
        })
        .collect_vec();
    let client = env.execute_async("endless").unwrap();
    while seen.load(std::sync::atomic::Ordering::Relaxed) < 10_000 {
        std::thread::yield_now();
    }
    let live = client.operator_metrics();
    assert!(
        live.iter()
            .any(|o| o.name == "Map" && o.records_in >= 10_000)
    );
    client.cancel();
    assert!(matches!(
        client.wait().unwrap_err(),
        JobError::Cancelled { .. }
    ));
}
