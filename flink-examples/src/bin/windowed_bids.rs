//! Bids per auction in 10 s tumbling event-time windows (Nexmark-like), with
//! out-of-order bids, allowed lateness and late bids to a side output.
//!
//! `cargo run --release -p flink-examples --bin windowed_bids -- [bids] [parallelism]`
//!
//! Generates bids one every 5 ms of event time, each up to 4 s late; the watermark
//! allows 2 s of disorder and the windows 1 s more, so a few bids are too late. The
//! job counts bids per auction and window and checks every bid is either counted in
//! a window's final result or reported late: nothing is lost.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::ensure;
use clap::Parser;
use flink_core::watermark::WatermarkStrategy;
use flink_core::windows::TumblingEventTimeWindows;
use flink_runtime::prelude::*;

/// A bid: (auction, price, event time in ms).
type Bid = (u64, u64, i64);

/// Bids per auction in 10 s tumbling event-time windows.
#[derive(Parser)]
#[command(name = "windowed_bids")]
struct Args {
    /// Bids to generate.
    #[arg(default_value_t = 200_000)]
    bids: u64,
    /// Parallelism of the windows.
    #[arg(default_value_t = 2)]
    parallelism: usize,
}

/// Bid `i`: on one of 100 auctions, up to 4 s before its 5 ms slot (a cheap hash
/// spreads auctions and delays).
fn bid(i: u64) -> Bid {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let delay = ((h >> 20) % 4_001) as i64;
    ((h >> 40) % 100, (h >> 8) % 1_000, i as i64 * 5 - delay)
}

fn main() -> anyhow::Result<()> {
    let Args { bids, parallelism } = Args::parse();
    flink_examples::init_logging();

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    // A watermark after every batch of generated bids (a generated stream is much
    // faster than the 200 ms default), so windows fire while the job runs.
    env.set_auto_watermark_interval(Duration::ZERO);
    let late = OutputTag::<Bid>::new("late bids");
    let counts = env
        .from_generator(Some(bids), bid)
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::<Bid>::for_bounded_out_of_orderness(Duration::from_secs(2))
                .with_timestamp_assigner(|b| b.2),
        )
        .set_parallelism(1)
        .key_by(|b| b.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
        .allowed_lateness(Duration::from_secs(1))
        .side_output_late_data(&late)
        .process(|auction, w, bids, out| out.collect((*auction, w.end, bids.len() as u64)));
    let too_late = counts.side_output(&late).collect_vec();
    let counts = counts.collect_vec();
    let result = env.execute("windowed bids")?;

    // A window fires again for each bid within the lateness: its last result is
    // its final count.
    let mut last: HashMap<(u64, i64), u64> = HashMap::new();
    let emitted = counts.take();
    for (auction, end, n) in &emitted {
        let slot = last.entry((*auction, *end)).or_default();
        *slot = (*slot).max(*n);
    }
    let counted: u64 = last.values().sum();
    let too_late = too_late.take().len() as u64;
    println!(
        "{bids} bids: {counted} counted in {} auction windows ({} results, {} of them \
         updates for bids within the lateness), {too_late} too late, in {:.2?}",
        last.len(),
        emitted.len(),
        emitted.len() - last.len(),
        result.duration
    );
    let mut busiest: Vec<_> = last.into_iter().collect();
    busiest.sort_by_key(|((auction, end), n)| (std::cmp::Reverse(*n), *end, *auction));
    for ((auction, end), n) in busiest.iter().take(5) {
        println!("  auction {auction:>3}, window ending {end:>8} ms: {n} bids");
    }
    ensure!(
        counted + too_late == bids,
        "every bid is counted or late: {counted} + {too_late} != {bids}"
    );
    Ok(())
}
