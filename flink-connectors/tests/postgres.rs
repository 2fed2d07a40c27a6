//! PostgreSQL sink and destination against a real PostgreSQL (started by
//! `scripts/services.sh`).

#[macro_use]
mod common;

use std::time::Duration;

use common::orders::{Order, create_orders, order_config, orders};
use common::pg::{exec, query_i64};
use common::{POSTGRES, unique};
use flink_connectors::DeadLetterSinkExt;
use flink_connectors::postgres::{PostgresDestination, PostgresSink};
use flink_core::destination::{AckDestination, DeliveryError};
use flink_runtime::prelude::*;

#[test]
fn sink_writes_every_row_exactly_once() {
    let url = require_service!(POSTGRES);
    let table = unique("orders");
    create_orders(&url, &table);
    let sink = PostgresSink::new(order_config(&url, &table).batch_size(256)).unwrap();
    let metrics = sink.metrics();
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_collection(orders(10_000))
        .rebalance()
        .sink_to(sink);
    env.execute("pg sink").unwrap();
    assert_eq!(
        query_i64(&url, &format!("SELECT count(*) FROM {table}")),
        vec![10_000]
    );
    let expected: i64 = (1..=10_000i64).map(|id| id % 1000).sum();
    assert_eq!(
        query_i64(&url, &format!("SELECT sum(amount)::bigint FROM {table}")),
        vec![expected]
    );
    assert_eq!(
        (metrics.rows_written(), metrics.dead_letters()),
        (10_000, 0)
    );
    // 5,000 rows per writer in batches of 256: 20 batches each.
    assert_eq!(metrics.batches_acknowledged(), 40);
}

#[test]
fn refused_rows_become_dead_letters_with_the_database_message() {
    let url = require_service!(POSTGRES);
    let table = unique("orders");
    create_orders(&url, &table);
    exec(
        &url,
        &format!("INSERT INTO {table} VALUES (500, 'existing', 1)"),
    );
    let mut input = orders(1_000);
    input[9].amount = -5; // id 10: check constraint
    input[19].name = "far too long for twelve".into(); // id 20: value too long
    input[29].amount = 3_000_000_000; // id 30: does not fit integer
    // id 500: duplicate key (the row inserted above)
    let sink = PostgresSink::new(order_config(&url, &table).batch_size(100)).unwrap();
    let metrics = sink.metrics();
    let env = StreamExecutionEnvironment::new();
    let dead = env
        .from_collection(input)
        .sink_with_dead_letters::<Order>(sink, "Postgres")
        .collect_vec();
    env.execute("pg dead letters").unwrap();
    let mut dead = dead.take();
    dead.sort_by_key(|d| d.record.id);
    let ids: Vec<i64> = dead.iter().map(|d| d.record.id).collect();
    assert_eq!(ids, vec![10, 20, 30, 500]);
    assert!(
        dead[0].reason.contains("violates check constraint"),
        "{}",
        dead[0].reason
    );
    assert!(
        dead[0].reason.contains("SQLSTATE 23514"),
        "{}",
        dead[0].reason
    );
    assert!(
        dead[1]
            .reason
            .contains("value too long for type character varying(12)"),
        "{}",
        dead[1].reason
    );
    assert!(
        dead[2]
            .reason
            .contains("value 3000000000 does not fit column type int4"),
        "{}",
        dead[2].reason
    );
    assert!(
        dead[3]
            .reason
            .contains("duplicate key value violates unique constraint"),
        "{}",
        dead[3].reason
    );
    assert!(dead.iter().all(|d| d.operator == "Postgres"));
    // The rest of each batch was written: 1,000 - 4 refused + the existing row.
    assert_eq!(
        query_i64(&url, &format!("SELECT count(*) FROM {table}")),
        vec![997]
    );
    assert_eq!(
        query_i64(
            &url,
            &format!("SELECT count(*) FROM {table} WHERE id IN (9, 11, 19, 21, 29, 31)")
        ),
        vec![6]
    );
    assert_eq!((metrics.rows_written(), metrics.dead_letters()), (996, 4));
}

#[test]
fn replaying_with_upsert_does_not_duplicate() {
    let url = require_service!(POSTGRES);
    let table = unique("orders");
    create_orders(&url, &table);
    for run in 0..2 {
        let mut input = orders(3_000);
        // The same key twice within one batch: the last record wins.
        input.push(Order {
            id: 7,
            name: format!("seven{run}"),
            amount: 70 + run,
        });
        // One stream in order, so "last" is well defined.
        let env = StreamExecutionEnvironment::new();
        env.from_collection(input).sink_to(
            PostgresSink::new(
                order_config(&url, &table)
                    .upsert_on(["id"])
                    .batch_size(5_000),
            )
            .unwrap(),
        );
        env.execute("pg upsert").unwrap();
        assert_eq!(
            query_i64(&url, &format!("SELECT count(*) FROM {table}")),
            vec![3_000]
        );
        assert_eq!(
            query_i64(
                &url,
                &format!("SELECT amount::bigint FROM {table} WHERE id = 7")
            ),
            vec![70 + run]
        );
    }
}

#[test]
fn transient_errors_are_retried_until_the_batch_commits() {
    let url = require_service!(POSTGRES);
    let table = unique("orders");
    create_orders(&url, &table);
    // The first statement fails with a serialization failure, the second loses its
    // connection (the backend terminates itself); later ones succeed.
    exec(
        &url,
        &format!(
            "CREATE SEQUENCE {table}_calls;
             CREATE FUNCTION {table}_flaky() RETURNS trigger AS $$
             DECLARE n bigint := nextval('{table}_calls');
             BEGIN
               IF n = 1 THEN RAISE EXCEPTION 'simulated conflict' USING ERRCODE = 'serialization_failure'; END IF;
               IF n = 2 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
               RETURN NULL;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER {table}_flaky BEFORE INSERT ON {table}
               FOR EACH STATEMENT EXECUTE FUNCTION {table}_flaky();"
        ),
    );
    let sink = PostgresSink::new(order_config(&url, &table).batch_size(100).retries(
        5,
        Duration::from_millis(10),
        Duration::from_millis(100),
    ))
    .unwrap();
    let metrics = sink.metrics();
    let env = StreamExecutionEnvironment::new();
    env.from_collection(orders(1_000)).sink_to(sink);
    env.execute("pg retries").unwrap();
    assert_eq!(
        query_i64(&url, &format!("SELECT count(*) FROM {table}")),
        vec![1_000]
    );
    assert_eq!(metrics.retries(), 2);
    assert_eq!((metrics.rows_written(), metrics.dead_letters()), (1_000, 0));
}

#[test]
fn a_missing_table_fails_the_job_with_a_clear_error() {
    let url = require_service!(POSTGRES);
    let env = StreamExecutionEnvironment::new();
    env.from_collection(orders(10)).sink_named(
        PostgresSink::new(order_config(&url, "no_such_table")).unwrap(),
        "Postgres",
    );
    let err = env.execute("pg missing table").unwrap_err().to_string();
    assert!(err.contains("Postgres"), "{err}");
    assert!(
        err.contains("relation \"no_such_table\" does not exist"),
        "{err}"
    );
}

#[test]
fn destination_acknowledges_per_batch_and_refuses_bad_rows() {
    let url = require_service!(POSTGRES);
    let table = unique("orders");
    create_orders(&url, &table);
    let dest = PostgresDestination::new(order_config(&url, &table).batch_size(64)).unwrap();
    let mut input = orders(1_000);
    input[99].amount = -1;
    let acks: Vec<_> = input.into_iter().map(|o| dest.send(o)).collect();
    let results = futures::executor::block_on(futures::future::join_all(acks));
    futures::executor::block_on(dest.flush()).unwrap();
    let refused: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(refused, vec![99]);
    assert!(
        matches!(&results[99], Err(DeliveryError::Permanent(m)) if m.contains("violates check constraint")),
        "{:?}",
        results[99]
    );
    assert_eq!(
        query_i64(&url, &format!("SELECT count(*) FROM {table}")),
        vec![999]
    );
}
