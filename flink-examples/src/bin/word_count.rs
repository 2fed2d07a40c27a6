//! Word count over a generated text, the classic first job.
//!
//! `cargo run --release -p flink-examples --bin word_count -- [lines] [parallelism] [--web-ui [ADDR]]`
//!
//! Prints the job plan, the ten most frequent words and the job's metrics. With
//! `--web-ui` the job serves its REST API and Prometheus `/metrics` while it runs
//! (on 127.0.0.1:8081 unless ADDR says otherwise; see docs/rest-api.md).

use anyhow::Context;
use clap::Parser;
use flink_runtime::prelude::*;

const TEXT: &str = "to be or not to be that is the question whether tis nobler in the mind \
                    to suffer the slings and arrows of outrageous fortune or to take arms \
                    against a sea of troubles and by opposing end them";

/// Word count over a generated text: prints the job plan, the ten most frequent words
/// and the job's metrics.
#[derive(Parser)]
#[command(name = "word_count")]
struct Args {
    /// Lines of text to generate.
    #[arg(default_value_t = 200_000)]
    lines: u64,
    /// Parallelism of the job.
    #[arg(default_value_t = 2)]
    parallelism: usize,
    /// Serve the REST API and /metrics while the job runs, on ADDR (a loopback
    /// address unless you name another; then FLINK_RS_WEB_UI_TOKEN, if set, guards
    /// cancel and stop).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8081")]
    web_ui: Option<std::net::SocketAddr>,
}

fn main() -> anyhow::Result<()> {
    let Args {
        lines,
        parallelism,
        web_ui,
    } = Args::parse();
    flink_examples::init_logging();

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    // A bounded input: `sum` emits each word's final count once, at the end.
    env.set_runtime_mode(RuntimeMode::Batch);
    flink_examples::serve_web_ui(&env, web_ui);
    let words: Vec<&'static str> = TEXT.split_whitespace().collect();
    let counts = env
        .from_generator(Some(lines), move |i| {
            // Line i: a window of the text starting at a position derived from i.
            let start = (i as usize * 7) % words.len();
            let len = 3 + (i as usize % 9);
            (0..len)
                .map(|j| words[(start + j) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .flat_map(|line, out| {
            for word in line.split(' ') {
                out.collect((word.to_string(), 1u64));
            }
        })
        .name("Tokenizer")
        .key_by(|(word, _)| word.clone())
        .sum(|r| &mut r.1)
        .name("Count")
        .collect_vec();

    println!("{}", env.job_graph()?.plan().to_dot());
    let client = env.execute_async("word count")?;
    if let (Some(address), Some(id)) = (client.web_ui_address(), client.job_id()) {
        println!("REST API: http://{address}/jobs/{id}  metrics: http://{address}/metrics");
    }
    let result = client.wait()?;

    let mut top: Vec<(String, u64)> = counts.take();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("top words:");
    for (word, count) in top.iter().take(10) {
        println!("  {word:<12} {count}");
    }
    let total: u64 = top.iter().map(|(_, c)| c).sum();
    let tokens = result
        .operator("Tokenizer")
        .context("tokenizer metrics")?
        .records_out;
    anyhow::ensure!(
        total == tokens,
        "counted {total} words but the tokenizer emitted {tokens}"
    );
    println!(
        "\njob '{}' finished in {:.3} s",
        result.job_name,
        result.duration.as_secs_f64()
    );
    for op in &result.operators {
        println!(
            "  {:<18} p={} in={:<10} out={}",
            op.name, op.parallelism, op.records_in, op.records_out
        );
    }
    for t in &result.tasks {
        let s = t.shares();
        println!(
            "  {}: busy {:.0} / back-pressured {:.0} / idle {:.0} ms/s",
            t.label(),
            s.busy_ms_per_s,
            s.back_pressured_ms_per_s,
            s.idle_ms_per_s
        );
    }
    Ok(())
}
