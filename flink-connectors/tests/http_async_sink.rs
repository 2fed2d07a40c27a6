//! HTTP through the async sink (`AsyncSink::per_record(HttpDestination ..)`) against a
//! local HTTP server (axum): everything is delivered once, what the server refuses
//! (400) becomes a dead letter with its answer, and what it cannot take yet (503) is
//! retried and delivered.

// Only the in-flight counter and the local server are used here, not the service
// macros.
#[allow(unused_macros)]
mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use common::async_sink::Counted;
use common::http::{Event, serve};
use flink_connectors::http::HttpDestination;
use flink_core::async_io::RetryStrategy;
use flink_core::async_sink::{AsyncSink, AsyncSinkOptions, PerRecord};
use flink_runtime::prelude::*;

/// What the server accepted, and the ids it answered 503 once.
#[derive(Default)]
struct Server {
    accepted: Mutex<Vec<u64>>,
    unavailable_once: Mutex<HashSet<u64>>,
}

/// Ids the server refuses for good.
fn refused(id: u64) -> bool {
    id.is_multiple_of(50)
}

/// Ids the server answers 503 the first time.
fn busy_first(id: u64) -> bool {
    id.is_multiple_of(7) && !refused(id)
}

async fn events(State(s): State<Arc<Server>>, body: String) -> (StatusCode, String) {
    let Event { id } = serde_json::from_str(&body).unwrap();
    if refused(id) {
        return (StatusCode::BAD_REQUEST, format!("id {id} is not welcome"));
    }
    if busy_first(id) && s.unavailable_once.lock().unwrap().insert(id) {
        return (StatusCode::SERVICE_UNAVAILABLE, "try later".into());
    }
    s.accepted.lock().unwrap().push(id);
    (StatusCode::CREATED, String::new())
}

/// Starts the server on a free port on its own thread; returns its address.
fn start_server() -> (SocketAddr, Arc<Server>) {
    let state = Arc::new(Server::default());
    let app = Router::new()
        .route("/events", post(events))
        .with_state(state.clone());
    (serve(app), state)
}

#[test]
fn refused_records_are_dead_letters_unavailable_ones_are_retried_and_delivered() {
    let (addr, server) = start_server();
    let n = 1_000u64;
    let dest = HttpDestination::<Event>::new(&format!("http://{addr}/events")).unwrap();
    let (dest, peaks) = Counted::new(PerRecord(Arc::new(dest)));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let sink = env
        .from_collection((1..=n).map(|id| Event { id }).collect::<Vec<_>>())
        .rebalance()
        .sink_to_async(
            AsyncSink::new(dest).options(
                AsyncSinkOptions::new()
                    .max_batch_size(20)
                    .max_in_flight_requests(3)
                    .max_buffered_records(100)
                    .retry(RetryStrategy::FixedDelay {
                        delay: Duration::from_millis(5),
                        max_attempts: 3,
                    })
                    .dead_letters(),
            ),
        );
    let dead = sink.dead_letters::<Event>().collect_vec();
    let result = env.execute("http async sink").unwrap();

    // Delivered: everything but the refused ids, each exactly once.
    let mut accepted = server.accepted.lock().unwrap().clone();
    accepted.sort_unstable();
    let expected: Vec<u64> = (1..=n).filter(|&id| !refused(id)).collect();
    assert_eq!(accepted, expected);
    // The 503s were answered once each, and retried.
    let busy: usize = (1..=n).filter(|&id| busy_first(id)).count();
    assert_eq!(server.unavailable_once.lock().unwrap().len(), busy);

    let mut dead = dead.take();
    dead.sort_by_key(|d| d.record.id);
    assert_eq!(
        dead.iter().map(|d| d.record.id).collect::<Vec<_>>(),
        (1..=n).filter(|&id| refused(id)).collect::<Vec<_>>()
    );
    for d in &dead {
        assert_eq!(d.attempts, 1, "a 400 is not retried");
        let error = d.last_error.as_deref().unwrap();
        assert!(error.contains("400"), "{error}");
        assert!(
            error.contains(&format!("id {} is not welcome", d.record.id)),
            "{error}"
        );
    }
    let sink = result.operator("Async Sink").unwrap();
    assert_eq!(sink.custom("retries"), Some(busy as u64));
    assert_eq!(
        (sink.custom("delivered"), sink.custom("dead_letters")),
        (Some(expected.len() as u64), Some(dead.len() as u64))
    );
    assert!(peaks.max_requests() <= 6, "{}", peaks.max_requests());
    assert!(peaks.max_records() <= 120, "{}", peaks.max_records());
}
