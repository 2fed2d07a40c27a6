//! # flink-runtime
//!
//! Executes the jobs `flink-core` describes. Each parallel instance of a chain of
//! operators runs as a task on its own thread; tasks exchange serialized records in
//! fixed-size buffers from bounded pools over credit-based channels, so a slow
//! consumer slows its producers and memory in flight stays bounded.
#![warn(missing_docs)]

/// The project README; its example is compiled and run as a doctest.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

mod abandoned;
pub mod async_executor;
pub mod bottleneck;
mod bottleneck_watch;
pub mod checkpoint;
pub mod cluster;
pub mod execute;
pub mod flush_timer;
pub mod job_client;
mod job_network;
pub mod job_result;
pub mod job_sampler;
pub mod job_status;
pub mod local_executor;
pub mod network;
pub mod pipeline_monitor;
pub mod precise_timer;
pub mod record_writer;
pub mod rest;
mod task;
pub mod task_metrics;
mod watermark_valve;

/// Everything a job needs: the `flink-core` prelude plus execution.
pub mod prelude {
    pub use crate::bottleneck::{Bottleneck, BottleneckVerdict, OperatorShare};
    pub use crate::execute::ExecuteExt;
    pub use crate::job_client::{JobClient, JobControl, JobObserver};
    pub use crate::job_result::{
        AbandonedRecords, JobError, JobExecutionResult, JobRestart, OperatorRole, OperatorSummary,
    };
    pub use crate::job_status::JobState;
    pub use crate::pipeline_monitor::{PipelineMonitor, PipelineReport};
    pub use crate::task_metrics::{BackPressureLevel, TaskMetricsSnapshot, TimeShares};
    pub use flink_core::prelude::*;
}
