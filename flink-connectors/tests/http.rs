//! HTTP destination and client against a real local HTTP server (axum) that can be
//! told to answer with a status, be slow, or fail a number of times first.

// Only the local servers are used here, not the service macros.
#[allow(unused_macros)]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::http::{Event, listen, serve};
use flink_connectors::http::{HttpClient, HttpDestination, HttpRequest, status_outcome};
use flink_core::async_io::{AsyncOptions, RetryStrategy};
use flink_core::destination::{AckDestination, DeliveryError};
use flink_runtime::prelude::*;

#[derive(Default)]
struct Server {
    received: Mutex<Vec<serde_json::Value>>,
    flaky_calls: AtomicU32,
}

/// Starts the server on a free port on its own thread; returns its address.
fn start_server() -> (SocketAddr, Arc<Server>) {
    let state = Arc::new(Server::default());
    let app = Router::new()
        .route(
            "/collect",
            post(|State(s): State<Arc<Server>>, body: String| async move {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                s.received.lock().unwrap().push(v);
                StatusCode::CREATED
            }),
        )
        .route("/status/{code}", get(status).post(status))
        .route(
            "/slow/{ms}",
            post(|Path(ms): Path<u64>| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                "late"
            }),
        )
        .route(
            "/flaky/{failures}",
            post(
                |State(s): State<Arc<Server>>, Path(failures): Path<u32>| async move {
                    if s.flaky_calls.fetch_add(1, Ordering::SeqCst) < failures {
                        (StatusCode::SERVICE_UNAVAILABLE, "try later")
                    } else {
                        (StatusCode::OK, "fine")
                    }
                },
            ),
        )
        .route("/json", get(|| async { axum::Json(Event { id: 42 }) }))
        .with_state(state.clone());
    (serve(app), state)
}

async fn status(Path(code): Path<u16>) -> (StatusCode, String) {
    (
        StatusCode::from_u16(code).unwrap(),
        format!("answering {code}"),
    )
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn a_2xx_answer_acknowledges_each_record() {
    let (addr, server) = start_server();
    let dest = HttpDestination::<Event>::new(&format!("http://{addr}/collect")).unwrap();
    let acks: Vec<_> = (0..200).map(|id| dest.send(Event { id })).collect();
    let results = block(futures::future::join_all(acks));
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let mut ids: Vec<u64> = server
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_u64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (0..200).collect::<Vec<u64>>());
    block(dest.flush()).unwrap();
}

#[test]
fn status_codes_map_to_retryable_or_permanent() {
    let (addr, _) = start_server();
    let outcome = |code: u16| {
        let dest = HttpDestination::<Event>::new(&format!("http://{addr}/status/{code}")).unwrap();
        block(dest.send(Event { id: 1 }))
    };
    for code in [200, 201, 202, 204] {
        assert_eq!(outcome(code), Ok(()), "{code}");
    }
    for code in [408, 429, 500, 502, 503, 504] {
        match outcome(code) {
            Err(DeliveryError::Retryable(m)) => {
                assert!(m.contains(&format!("HTTP {code}")), "{m}");
                assert!(
                    m.contains(&format!("answering {code}")),
                    "the body is in the message: {m}"
                );
                assert!(
                    m.contains(&format!("POST http://{addr}/status/{code}")),
                    "{m}"
                );
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    for code in [400, 401, 403, 404, 409, 422] {
        assert!(
            matches!(outcome(code), Err(DeliveryError::Permanent(m)) if m.contains(&format!("HTTP {code}"))),
            "{code}"
        );
    }
    // The same mapping without a server.
    assert_eq!(status_outcome(299, ""), Ok(()));
    assert!(status_outcome(599, "").unwrap_err().is_retryable());
    assert!(!status_outcome(304, "").unwrap_err().is_retryable());
}

#[test]
fn a_timeout_and_a_refused_connection_are_retryable() {
    let (addr, _) = start_server();
    let dest = HttpDestination::<Event>::with_timeout(
        &format!("http://{addr}/slow/5000"),
        Duration::from_millis(200),
    )
    .unwrap();
    match block(dest.send(Event { id: 1 })) {
        Err(DeliveryError::Retryable(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dest = HttpDestination::<Event>::new(&format!("http://127.0.0.1:{port}/x")).unwrap();
    assert!(matches!(
        block(dest.send(Event { id: 1 })),
        Err(DeliveryError::Retryable(_))
    ));
    // A slow answer within the timeout is fine.
    let dest = HttpDestination::<Event>::with_timeout(
        &format!("http://{addr}/slow/50"),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(block(dest.send(Event { id: 1 })), Ok(()));
}

#[test]
fn call_returns_the_response_and_a_caller_can_retry_retryable_errors() {
    let (addr, _) = start_server();
    let client = HttpClient::new(Duration::from_secs(5)).unwrap();
    let response = block(client.call(HttpRequest::get(&format!("http://{addr}/json")))).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.json::<Event>().unwrap(), Event { id: 42 });
    assert!(
        response
            .headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json")
    );

    // Fails twice with 503, then answers: a retry loop on Retryable gets through.
    let request =
        HttpRequest::post_json(&format!("http://{addr}/flaky/2"), &Event { id: 1 }).unwrap();
    let mut attempts = 0;
    let response = loop {
        attempts += 1;
        match block(client.call(request.clone())) {
            Ok(r) => break r,
            Err(e) if e.is_retryable() && attempts < 5 => continue,
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(
        (attempts, response.body.as_slice()),
        (3, b"fine".as_slice())
    );
    // An invalid URL cannot be cured by retrying.
    assert!(matches!(
        block(client.call(HttpRequest::get("not a url"))),
        Err(DeliveryError::Permanent(_))
    ));
}

/// The HTTP client inside the async I/O operator: the operator's timeout, retries
/// and capacity apply; a 4xx becomes a dead letter at once, a call slower than the
/// timeout is retried and then dead-lettered, the rest succeed, exactly.
#[test]
fn http_calls_in_async_function_get_timeouts_retries_and_dead_letters() {
    let (addr, _server) = start_server();
    let client = Arc::new(HttpClient::new(Duration::from_secs(30)).unwrap());
    let env = StreamExecutionEnvironment::new();
    let results = env.from_sequence(1, 40).async_function(
        move |x: u64| {
            let client = client.clone();
            let path = match x % 10 {
                0 => "status/400".to_string(),
                5 => "slow/2000".to_string(),
                _ => "status/200".to_string(),
            };
            let request =
                HttpRequest::post_json(&format!("http://{addr}/{path}"), &Event { id: x });
            async move { client.call(request.unwrap()).await.map(|_| x) }
        },
        AsyncOptions::new()
            .capacity(8)
            .timeout(Duration::from_millis(200))
            .retry(RetryStrategy::FixedDelay {
                delay: Duration::from_millis(5),
                max_attempts: 2,
            })
            .dead_letters(),
    );
    let ok = results.collect_vec();
    let dead = results.dead_letters::<u64>().collect_vec();
    let result = env.execute("http async").unwrap();
    assert_eq!(
        ok.take_sorted(),
        (1..=40).filter(|x| x % 5 != 0).collect::<Vec<u64>>()
    );
    let mut dead = dead.take();
    dead.sort_by_key(|d| d.record);
    let summary: Vec<(u64, u32, bool)> = dead
        .iter()
        .map(|d| {
            (
                d.record,
                d.attempts,
                d.last_error.as_deref() == Some("timed out after 200ms"),
            )
        })
        .collect();
    let expected: Vec<(u64, u32, bool)> = (1..=40u64)
        .filter(|x| x % 5 == 0)
        .map(|x| {
            if x % 10 == 0 {
                (x, 1, false)
            } else {
                (x, 2, true)
            }
        })
        .collect();
    assert_eq!(summary, expected);
    assert!(dead.iter().filter(|d| d.record % 10 == 0).all(|d| {
        d.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("permanent:"))
    }));
    let op = result.operator("Async Function").unwrap();
    assert_eq!(
        (op.custom("timeouts"), op.custom("retries")),
        (Some(8), Some(4))
    );
}

/// Connections a [`start_silent_server`] accepted, and those still open.
#[derive(Default)]
struct Connections {
    accepted: std::sync::atomic::AtomicUsize,
    open: std::sync::atomic::AtomicUsize,
}

/// A server on 127.0.0.1 that accepts connections and never answers; it counts the
/// connections accepted and those not yet closed by the client.
fn start_silent_server() -> (SocketAddr, Arc<Connections>) {
    use tokio::io::AsyncReadExt;

    let connections = Arc::new(Connections::default());
    let counter = connections.clone();
    let addr = listen(|listener| async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.accepted.fetch_add(1, Ordering::SeqCst);
            counter.open.fetch_add(1, Ordering::SeqCst);
            let counter = counter.clone();
            tokio::spawn(async move {
                // Read (and ignore) the request until the client closes.
                let mut buf = [0u8; 1024];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                counter.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, connections)
}

/// A call the async operator times out is aborted: its connection closes then, not
/// after the client's own 30 s timeout.
#[test]
fn a_timed_out_call_closes_its_connection() {
    let (addr, connections) = start_silent_server();
    let client = Arc::new(HttpClient::new(Duration::from_secs(30)).unwrap());
    let env = StreamExecutionEnvironment::new();
    let results = env.from_sequence(1, 20).async_function(
        move |x: u64| {
            let client = client.clone();
            let request = HttpRequest::get(&format!("http://{addr}/never/{x}"));
            async move { client.call(request).await.map(|_| x) }
        },
        AsyncOptions::new()
            .capacity(10)
            .timeout(Duration::from_millis(200))
            .retry(RetryStrategy::NoRetry)
            .dead_letters(),
    );
    let ok = results.collect_vec();
    let dead = results.dead_letters::<u64>().collect_vec();
    env.execute("silent service").unwrap();
    assert!(ok.take().is_empty());
    assert_eq!(dead.take().len(), 20);
    // One connection per call (an abandoned connection is never reused), each closed
    // when its call timed out, well before the client's own 30 s timeout. The guard
    // only prevents a hang; the server may see the closes a little after the job ends.
    let counts = || {
        (
            connections.accepted.load(Ordering::SeqCst),
            connections.open.load(Ordering::SeqCst),
        )
    };
    let guard = std::time::Instant::now() + Duration::from_secs(10);
    while counts() != (20, 0) && std::time::Instant::now() < guard {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        counts(),
        (20, 0),
        "(accepted, still open) 10 s after the calls timed out"
    );
}
