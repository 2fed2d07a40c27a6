//! How late a 1 ms timer fires on this machine: through `precise_sleep` awaited on a
//! blocked thread, and through a tokio task that reports back over a channel (the
//! path an async call's completion takes). Diagnoses the async benchmarks.
//!
//! `cargo run --release -p benches --bin timer_probe`

use std::time::{Duration, Instant};
fn main() {
    let mut late = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        futures::executor::block_on(flink_runtime::precise_timer::precise_sleep(
            Duration::from_millis(1),
        ));
        late.push(t.elapsed().as_micros() as u64 - 1000);
    }
    late.sort();
    println!(
        "block_on lateness us: p50={} p90={} p99={}",
        late[1000], late[1800], late[1980]
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let mut late = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        let s = flink_runtime::precise_timer::precise_sleep(Duration::from_millis(1));
        let tx = tx.clone();
        rt.spawn(async move {
            s.await;
            tx.send(()).unwrap();
        });
        rx.recv().unwrap();
        late.push(t.elapsed().as_micros() as u64 - 1000);
    }
    late.sort();
    println!(
        "tokio round trip lateness us: p50={} p90={} p99={}",
        late[1000], late[1800], late[1980]
    );
}
