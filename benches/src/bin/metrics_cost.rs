//! What serving metrics costs a running job: the throughput harness's `keyed` job
//! (hash exchange, running sum per key, p=2) run alternately without the REST server
//! and with it enabled and scraped once per second on `/metrics`, as Prometheus would.
//!
//! `cargo run --release -p benches --bin metrics_cost -- [records] [--rounds N]`
//! prints each run and the medians: `metrics-cost off=<rec/s> scraped=<rec/s> cost=<%>`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, ensure};
use benches::CountingSink;
use clap::Parser;
use flink_runtime::prelude::*;

/// Runs the `keyed` job without and with a once-per-second `/metrics` scraper.
#[derive(Parser)]
#[command(name = "metrics_cost")]
struct Args {
    /// Records per run (the `keyed` harness job runs 50 M; more runs give more scrapes).
    #[arg(default_value_t = 100_000_000)]
    records: u64,
    /// Pairs of runs (one without the server, one scraped), alternating.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let Args { records, rounds } = Args::parse();
    let (mut off, mut scraped) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let rate = keyed(records, false)?;
        println!("round {round} off     rate={rate:.0}");
        off.push(rate);
        let rate = keyed(records, true)?;
        println!("round {round} scraped rate={rate:.0}");
        scraped.push(rate);
    }
    let (off, scraped) = (median(off), median(scraped));
    println!(
        "metrics-cost records={records} rounds={rounds} off={off:.0} scraped={scraped:.0} cost={:.2}%",
        (1.0 - scraped / off) * 100.0
    );
    Ok(())
}

/// The throughput harness's `keyed` job; with `scrape`, it serves its REST API and a
/// thread scrapes `/metrics` every second while it runs. Returns records per second.
fn keyed(n: u64, scrape: bool) -> anyhow::Result<f64> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    if scrape {
        env.enable_web_ui("127.0.0.1:0".parse()?);
    }
    let sink = CountingSink::new();
    let count = sink.count();
    env.from_sequence(1, n)
        .map(|x: u64| (x % 1000, 1u64))
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r: &mut (u64, u64)| &mut r.1)
        .sink_to(sink);
    let client = env.execute_async("keyed")?;
    let done = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicU64::new(0));
    let scraper = client.web_ui_address().map(|address| {
        let (done, scrapes) = (done.clone(), scrapes.clone());
        std::thread::spawn(move || scrape_every_second(address, &done, &scrapes))
    });
    let result = client.wait();
    done.store(true, Ordering::SeqCst);
    if let Some(scraper) = scraper {
        scraper
            .join()
            .map_err(|_| anyhow::anyhow!("scraper panicked"))??;
    }
    let result = result?;
    let got = count.load(Ordering::Relaxed);
    ensure!(got == n, "sink counted {got}, expected {n}");
    if scrape && scrapes.load(Ordering::SeqCst) == 0 {
        bail!("the job ended before the first scrape: run more records");
    }
    Ok(n as f64 / result.duration.as_secs_f64())
}

/// GETs `/metrics` once per second until `done`; a failed scrape while the job runs
/// is an error (after it ends the server is gone, so those are ignored).
fn scrape_every_second(
    address: SocketAddr,
    done: &AtomicBool,
    scrapes: &AtomicU64,
) -> anyhow::Result<()> {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if done.load(Ordering::SeqCst) {
            return Ok(());
        }
        match get_metrics(address) {
            Ok(body) if body.starts_with("HTTP/1.1 200") => {
                scrapes.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) | Err(_) if done.load(Ordering::SeqCst) => return Ok(()),
            Ok(body) => bail!("scrape failed: {}", body.lines().next().unwrap_or("")),
            Err(e) => bail!("scrape failed: {e}"),
        }
    }
}

/// One plain HTTP/1.1 request, the way a scraper makes it (no client library: the
/// harness measures the server's cost, not a client's).
fn get_metrics(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    Ok(body)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
