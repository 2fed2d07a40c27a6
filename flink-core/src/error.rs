//! Typed errors raised while a job is described and built.

use thiserror::Error;

/// A configuration value that can never work, found when the job is built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Parallelism must be at least one.
    #[error("parallelism of {what} must be at least 1, got 0")]
    ZeroParallelism {
        /// Where the value was set ("default" or an operator name).
        what: String,
    },
    /// Parallelism may not exceed the maximum parallelism (the number of key groups).
    #[error("parallelism {parallelism} of {what} exceeds max parallelism {max_parallelism}")]
    ParallelismAboveMax {
        /// Where the value was set.
        what: String,
        /// The requested parallelism.
        parallelism: usize,
        /// The configured maximum.
        max_parallelism: usize,
    },
    /// Maximum parallelism must lie in `1..=32768`, as in Flink.
    #[error("max parallelism must be in 1..=32768, got {0}")]
    MaxParallelismOutOfRange(usize),
    /// A network buffer must hold at least a record header and some payload.
    #[error("buffer size must be at least {min} bytes, got {got}")]
    BufferTooSmall {
        /// The smallest size accepted.
        min: usize,
        /// The size that was configured.
        got: usize,
    },
    /// Each input channel needs at least one exclusive buffer to make progress.
    #[error("exclusive buffers per channel must be at least 1, got 0")]
    NoExclusiveBuffers,
    /// A channel may queue at least one output buffer, or its producer could never
    /// write to it.
    #[error("max buffers per channel must be at least 1, got 0")]
    NoBuffersPerChannel,
}

/// A job graph that cannot be executed as described.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GraphError {
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The job has no operators that consume anything.
    #[error("the job has no sink: add sink_to(..), print() or collect_vec() before executing")]
    NoSink,
    /// Forward partitioning needs equal parallelism on both sides.
    #[error(
        "forward edge from '{from}' (parallelism {from_parallelism}) to '{to}' (parallelism {to_parallelism}) needs equal parallelism; use rebalance() instead"
    )]
    ForwardParallelismMismatch {
        /// Upstream operator name.
        from: String,
        /// Upstream parallelism.
        from_parallelism: usize,
        /// Downstream operator name.
        to: String,
        /// Downstream parallelism.
        to_parallelism: usize,
    },
    /// A setting that needs one operator was applied to a stream of several (a union).
    #[error("{setting} applies to one operator, but this stream is a union of {inputs} streams")]
    NotAnOperator {
        /// The setting, such as `set_parallelism`.
        setting: &'static str,
        /// How many streams the union joins.
        inputs: usize,
    },
    /// The options of an async operator cannot work.
    #[error("async operator '{operator}': {error}")]
    InvalidAsyncOptions {
        /// Operator name.
        operator: String,
        /// What is wrong.
        error: crate::async_io::AsyncOptionsError,
    },
    /// The options of an async sink cannot work.
    #[error("async sink '{operator}': {error}")]
    InvalidAsyncSinkOptions {
        /// Operator name.
        operator: String,
        /// What is wrong.
        error: crate::async_sink::AsyncSinkOptionsError,
    },
    /// A non-parallel operator (such as a collection source) was given parallelism above one.
    #[error("operator '{operator}' is non-parallel and cannot run with parallelism {parallelism}")]
    NonParallelOperator {
        /// Operator name.
        operator: String,
        /// Requested parallelism.
        parallelism: usize,
    },
}
