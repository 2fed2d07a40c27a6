//! The shared workload of the examples: orders, a simulated pricing service and a
//! simulated acknowledging store, all deterministic for a given seed; the two designs
//! `compare` runs on it, the comparison itself, and its HTML report.

pub mod compare;
pub mod report;
pub mod savepoint_inbox;
pub mod variants;
pub mod workload;

/// docs/api-tour.md, compiled and run with the doctests so the tour cannot drift from
/// the API.
#[doc = include_str!("../../docs/api-tour.md")]
#[cfg(doctest)]
pub struct ApiTour;

/// Sends the engine's `tracing` logs to standard error, filtered by `RUST_LOG`
/// (warnings and errors when it is unset). Every example calls it first.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Serves the job's REST API and metrics on `address` when one was given on the
/// command line (`--web-ui [ADDR]`). Naming a non-loopback address there is the
/// explicit ask to expose it; `FLINK_RS_WEB_UI_TOKEN`, if set, then guards cancel and
/// stop.
pub fn serve_web_ui(
    env: &flink_core::environment::StreamExecutionEnvironment,
    address: Option<std::net::SocketAddr>,
) {
    if let Some(address) = address {
        let token = std::env::var("FLINK_RS_WEB_UI_TOKEN").ok();
        env.enable_web_ui_with(flink_core::web_ui::WebUiConfig::exposed(address, token));
    }
}
