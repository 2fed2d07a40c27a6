//! What serving metrics costs a running job: the throughput harness's `keyed` job
//! (hash exchange, running sum per key, p=2) run in rounds of three: without the REST
//! server (`off`), with it serving but never asked (`served`), and with it scraped once
//! per second on `/metrics` as Prometheus would (`scraped`); the order rotates from
//! round to round so a trend in the machine's load does not favour one.
//!
//! Throughput on a shared machine swings with its load, so each run also reports the
//! CPU time the whole process spent (every task, the server, the scraper), which the
//! load of other processes disturbs far less: the cost of scraping is the extra CPU
//! per record.
//!
//! `cargo run --release -p benches --bin metrics_cost -- [records] [--rounds N]`
//! prints each run, the time one scrape took, and the medians:
//! `metrics-cost off=<rec/s> served=<rec/s> scraped=<rec/s> cost=<%> cpu-ns-per-record off=.. served=.. scraped=.. cpu-cost=<%>`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use benches::keyed_job;
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
    let modes = [Mode::Off, Mode::Served, Mode::Scraped];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut cpu: [Vec<f64>; 3] = Default::default();
    let mut scrape_ms = Vec::new();
    for round in 0..rounds {
        for i in 0..modes.len() {
            let m = (round + i) % modes.len();
            let run = keyed(records, modes[m])?;
            println!(
                "round {round} {:<7} rate={:.0} cpu-ns-per-record={:.2} scrapes={} mean-scrape-ms={:.2}",
                modes[m].name(),
                run.rate,
                run.cpu_ns_per_record,
                run.scrapes.len(),
                mean(&run.scrapes)
            );
            rates[m].push(run.rate);
            cpu[m].push(run.cpu_ns_per_record);
            scrape_ms.extend(run.scrapes);
        }
    }
    let [off, served, scraped] = rates.map(median);
    let [cpu_off, cpu_served, cpu_scraped] = cpu.map(median);
    println!(
        "metrics-cost records={records} rounds={rounds} off={off:.0} served={served:.0} scraped={scraped:.0} cost={:.2}% cpu-ns-per-record off={cpu_off:.2} served={cpu_served:.2} scraped={cpu_scraped:.2} cpu-cost={:.2}% scrapes={} mean-scrape-ms={:.2}",
        (1.0 - scraped / off) * 100.0,
        (cpu_scraped / cpu_off - 1.0) * 100.0,
        scrape_ms.len(),
        mean(&scrape_ms)
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Mode {
    Off,
    Served,
    Scraped,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Served => "served",
            Mode::Scraped => "scraped",
        }
    }
}

/// One run: its rate and how long each scrape took (ms, request to last byte).
struct Run {
    rate: f64,
    /// CPU time of the whole process during the run, per record.
    cpu_ns_per_record: f64,
    scrapes: Vec<f64>,
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`
/// (clock ticks of 10 ms; a run uses several CPU-seconds).
fn process_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line, so 11 and 12 after the name.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields.get(i).context("short /proc/self/stat")?.parse()?)
    };
    let ticks_per_second = 100;
    Ok(Duration::from_millis(
        (ticks(11)? + ticks(12)?) * 1000 / ticks_per_second,
    ))
}

/// The throughput harness's `keyed` job, serving its REST API unless `mode` is off,
/// with a thread scraping `/metrics` every second while it runs when `mode` says so.
fn keyed(n: u64, mode: Mode) -> anyhow::Result<Run> {
    let env = StreamExecutionEnvironment::new();
    if !matches!(mode, Mode::Off) {
        env.enable_web_ui("127.0.0.1:0".parse()?);
    }
    let count = keyed_job(&env, n);
    let cpu_before = process_cpu()?;
    let client = env.execute_async("keyed")?;
    let done = Arc::new(AtomicBool::new(false));
    let scraper = match (mode, client.web_ui_address()) {
        (Mode::Scraped, Some(address)) => {
            let done = done.clone();
            Some(std::thread::spawn(move || {
                scrape_every_second(address, &done)
            }))
        }
        _ => None,
    };
    let result = client.wait();
    done.store(true, Ordering::SeqCst);
    let scrapes = match scraper {
        Some(scraper) => scraper
            .join()
            .map_err(|_| anyhow::anyhow!("scraper panicked"))??,
        None => Vec::new(),
    };
    let cpu = process_cpu()? - cpu_before;
    let result = result?;
    let got = count.load(Ordering::Relaxed);
    ensure!(got == n, "sink counted {got}, expected {n}");
    if matches!(mode, Mode::Scraped) && scrapes.is_empty() {
        bail!("the job ended before the first scrape: run more records");
    }
    Ok(Run {
        rate: n as f64 / result.duration.as_secs_f64(),
        cpu_ns_per_record: cpu.as_nanos() as f64 / n as f64,
        scrapes,
    })
}

/// GETs `/metrics` once per second until `done`, returning how long each scrape took
/// (ms); a failed scrape while the job runs is an error (after it ends the server is
/// gone, so those are ignored).
fn scrape_every_second(address: SocketAddr, done: &AtomicBool) -> anyhow::Result<Vec<f64>> {
    let mut took = Vec::new();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if done.load(Ordering::SeqCst) {
            return Ok(took);
        }
        let started = Instant::now();
        match get_metrics(address) {
            Ok(body) if body.starts_with("HTTP/1.1 200") => {
                took.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(_) | Err(_) if done.load(Ordering::SeqCst) => return Ok(took),
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

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
