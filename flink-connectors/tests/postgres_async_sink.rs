//! PostgreSQL through the async sink (`PostgresDestination` as a `BatchDestination`)
//! against a real PostgreSQL (started by `scripts/services.sh`): a trickle is written
//! while the job runs, refused rows become dead letters, errors no retry can fix fail
//! the job, and retries that run out are retried by the sink.

#[macro_use]
mod common;

use std::time::Duration;

use common::orders::{Order, create_orders, order, order_config, orders};
use common::pg::query_i64;
use common::{POSTGRES, unique};
use flink_connectors::postgres::{PostgresConfig, PostgresDestination};
use flink_core::async_io::RetryStrategy;
use flink_core::async_sink::{AsyncSink, AsyncSinkOptions};
use flink_core::source::{Boundedness, Source, SourceOutput, SourcePoll, SourceReader};
use flink_runtime::prelude::*;

fn count(url: &str, table: &str) -> i64 {
    query_i64(url, &format!("SELECT count(*) FROM {table}"))[0]
}

/// Emits orders `1..=n`, then nothing more until the job is stopped.
struct Trickle(i64);

struct TrickleReader {
    next: i64,
    last: i64,
}

impl Source<Order> for Trickle {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Unbounded
    }

    fn create_reader(
        &self,
        _: &flink_core::operator::RuntimeContext,
    ) -> Box<dyn SourceReader<Order>> {
        Box::new(TrickleReader {
            next: 1,
            last: self.0,
        })
    }
}

impl SourceReader<Order> for TrickleReader {
    fn poll_next(&mut self, out: &mut SourceOutput<Order>) -> SourcePoll {
        if self.next <= self.last {
            out.collect(order(self.next));
            self.next += 1;
            SourcePoll::MoreAvailable
        } else {
            SourcePoll::Pending(Duration::from_millis(5))
        }
    }
}

#[test]
fn a_trickle_is_written_within_max_time_in_buffer_while_the_job_runs() {
    let url = require_service!(POSTGRES);
    let table = unique("orders");
    create_orders(&url, &table);
    let dest = PostgresDestination::new(order_config(&url, &table)).unwrap();
    let env = StreamExecutionEnvironment::new();
    env.from_source(Trickle(5), "trickle").sink_to_async(
        AsyncSink::new(dest).options(
            AsyncSinkOptions::new()
                .max_batch_size(100)
                .max_time_in_buffer(Duration::from_millis(200)),
        ),
    );
    let client = env.execute_async("pg trickle").unwrap();
    // Five rows never fill a batch of 100: only the buffer's timer writes them. A
    // generous guard (30 s) only keeps a broken sink from hanging the test.
    let written = (0..300).any(|_| {
        count(&url, &table) == 5 || {
            std::thread::sleep(Duration::from_millis(100));
            false
        }
    });
    assert!(written, "the trickle was not written while the job ran");
    client.stop();
    let result = client.wait().unwrap();
    assert!(result.stopped, "the unbounded job ended by itself");
    assert_eq!(count(&url, &table), 5);
    assert_eq!(result.records_read_by_sources(), 5);
    let sink = result.operator("Async Sink").unwrap();
    assert_eq!(sink.custom("delivered"), Some(5));
}

#[test]
fn rows_the_database_refuses_become_dead_letters_the_rest_is_written_once() {
    let url = require_service!(POSTGRES);
    let table = unique("orders");
    create_orders(&url, &table);
    let mut input = orders(1_000);
    input[9].amount = -5; // id 10: check constraint
    input[19].name = "far too long for twelve".into(); // id 20: value too long
    input[74].amount = -1; // id 75: in a later statement of its request
    input[998].amount = -1; // id 999: in the last request
    // Statements of 30 rows, requests of 100: a request is 4 statements, so the
    // refused rows' positions in it must be mapped back across statements.
    let dest = PostgresDestination::new(order_config(&url, &table).batch_size(30)).unwrap();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let sink = env.from_collection(input).rebalance().sink_to_async(
        AsyncSink::new(dest).options(
            AsyncSinkOptions::new()
                .max_batch_size(100)
                .max_in_flight_requests(4)
                .dead_letters(),
        ),
    );
    let dead = sink.dead_letters::<Order>().collect_vec();
    let result = env.execute("pg async dead letters").unwrap();
    let mut dead = dead.take();
    dead.sort_by_key(|d| d.record.id);
    assert_eq!(
        dead.iter().map(|d| d.record.id).collect::<Vec<_>>(),
        vec![10, 20, 75, 999]
    );
    let errors: Vec<&str> = dead
        .iter()
        .map(|d| d.last_error.as_deref().unwrap())
        .collect();
    assert!(
        errors[0].contains("violates check constraint"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("SQLSTATE 23514"), "{}", errors[0]);
    assert!(
        errors[1].contains("value too long for type character varying(12)"),
        "{}",
        errors[1]
    );
    assert!(
        dead.iter()
            .all(|d| d.operator == "Async Sink" && d.attempts == 1)
    );
    // Every other row exactly once (the key is the primary key, so the count says it).
    assert_eq!(count(&url, &table), 996);
    let expected: i64 = (1..=1_000i64)
        .filter(|id| ![10, 20, 75, 999].contains(id))
        .map(|id| id % 1000)
        .sum();
    assert_eq!(
        query_i64(&url, &format!("SELECT sum(amount)::bigint FROM {table}")),
        vec![expected]
    );
    let sink = result.operator("Async Sink").unwrap();
    assert_eq!(
        (sink.custom("delivered"), sink.custom("dead_letters")),
        (Some(996), Some(4))
    );
}

/// Runs 10 orders into `config` through the async sink (dead letters on) and returns
/// the message of the job's failure, which must name the sink.
fn failure_of(config: PostgresConfig<Order>) -> String {
    let env = StreamExecutionEnvironment::new();
    env.from_collection(orders(10)).sink_to_async(
        AsyncSink::new(PostgresDestination::new(config).unwrap())
            .options(AsyncSinkOptions::new().dead_letters()),
    );
    match env.execute("pg async fatal") {
        Err(JobError::OperatorFailed {
            operator, message, ..
        }) => {
            assert_eq!(operator, "Async Sink");
            message
        }
        other => panic!("expected the job to fail, got {other:?}"),
    }
}

#[test]
fn a_missing_table_or_unknown_role_fails_the_job_without_retries() {
    let url = require_service!(POSTGRES);
    let message = failure_of(order_config(&url, "no_such_table"));
    assert!(
        message.contains("relation \"no_such_table\" does not exist"),
        "{message}"
    );
    // Refused authentication is as fatal (SQLSTATE class 28), not a dead letter.
    let stranger = url.replacen("://postgres@", "://no_such_role@", 1);
    assert_ne!(stranger, url, "the test URL names the postgres role");
    let message = failure_of(order_config(&stranger, "orders"));
    assert!(
        message.contains("role \"no_such_role\" does not exist"),
        "{message}"
    );
}

#[test]
fn an_unreachable_database_is_retried_then_dead_lettered() {
    // Nothing listens on port 1: every connection attempt fails, transiently.
    let url = "postgres://postgres@127.0.0.1:1/postgres";
    let config =
        order_config(url, "orders").retries(1, Duration::from_millis(1), Duration::from_millis(1));
    let env = StreamExecutionEnvironment::new();
    let sink = env.from_collection(orders(3)).sink_to_async(
        AsyncSink::new(PostgresDestination::new(config).unwrap()).options(
            AsyncSinkOptions::new()
                .retry(RetryStrategy::FixedDelay {
                    delay: Duration::from_millis(1),
                    max_attempts: 2,
                })
                .dead_letters(),
        ),
    );
    let dead = sink.dead_letters::<Order>().collect_vec();
    let result = env.execute("pg async unreachable").unwrap();
    let mut dead = dead.take();
    dead.sort_by_key(|d| d.record.id);
    assert_eq!(
        dead.iter().map(|d| d.record.id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    for d in &dead {
        assert_eq!(d.attempts, 2);
        let error = d.last_error.as_deref().unwrap();
        assert!(error.contains("giving up after 2 attempts"), "{error}");
    }
    let sink = result.operator("Async Sink").unwrap();
    assert_eq!(sink.custom("retries"), Some(3));
    assert_eq!(sink.custom("delivered"), Some(0));
}
