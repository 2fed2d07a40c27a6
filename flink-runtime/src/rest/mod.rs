//! The job's embedded HTTP server: a REST API shaped like Apache Flink's (`/overview`,
//! `/jobs/{id}`, `/jobs/{id}/vertices/{vid}/backpressure`, `PATCH /jobs/{id}` to
//! cancel, ...), Prometheus `/metrics` and the web UI at `/` (docs/web-ui.md). A job enables it with
//! `StreamExecutionEnvironment::enable_web_ui`; the runtime starts it when the job is
//! submitted and [`JobClient::web_ui_address`](crate::job_client::JobClient::web_ui_address)
//! tells where it listens. It reads the job's live metrics only when asked, so an
//! idle server costs nothing. The endpoints and their JSON are in docs/rest-api.md.

mod api_error;
mod auth;
mod checkpoints_json;
mod job_view;
mod json_views;
mod pipeline_json;
mod prometheus;
mod rate_window;
mod routes;
mod savepoint_triggers;
mod server;
mod web_ui;

pub(crate) use job_view::JobView;
pub use server::RestServer;
pub(crate) use server::bind;
