//! Typed errors raised while a job is described and built.
//!
//! Their `Debug` form is their message, so `fn main() -> Result<(), E>` prints a
//! sentence (Rust prints an error returned from `main` with `{:?}`); `{:#?}` shows the
//! variant and its fields.

use std::fmt;

use thiserror::Error;

/// A configuration value that can never work, found when the job is built.
#[derive(Clone, PartialEq, Eq, Error)]
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
    /// The web UI would listen on an address other hosts reach, which was not asked
    /// for explicitly (`WebUiConfig::exposed`).
    #[error(
        "web UI address {0} is not a loopback address; use WebUiConfig::exposed to serve on it on purpose"
    )]
    WebUiNotLoopback(std::net::SocketAddr),
    /// A web UI token must not be empty.
    #[error("the web UI token is empty")]
    EmptyWebUiToken,
    /// A buffer debloating setting that can never work.
    #[error("buffer debloating: {what} {reason}")]
    InvalidBufferDebloat {
        /// The setting.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint setting that can never work.
    #[error("checkpointing: {what} {reason}")]
    InvalidCheckpointing {
        /// The setting.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A savepoint or checkpoint location that cannot name one (a bad URL).
    #[error("location '{location}': {reason}")]
    InvalidLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A restart strategy that can never work.
    #[error("restart strategy: {reason}")]
    InvalidRestartStrategy {
        /// What is wrong with it.
        reason: String,
    },
    /// A cluster (application mode) setting that can never work.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// A job graph that cannot be executed as described.
#[derive(Clone, PartialEq, Eq, Error)]
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
    /// A five-stage pipeline cannot work at the parallelism it runs at.
    #[error(transparent)]
    InvalidPipeline(#[from] crate::pipeline::PipelineConfigError),
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
    /// A source cannot work as configured (for example, its input file does not exist
    /// or cannot be read), found when the job is built.
    #[error("source '{operator}': {reason}")]
    InvalidSource {
        /// The source's operator name.
        operator: String,
        /// What is wrong, naming the path or setting.
        reason: String,
    },
    /// A window operator cannot work as configured (a window size of zero, a slide
    /// larger than the size, event-time windows on a stream without timestamps).
    #[error("window operator '{operator}': {error}")]
    InvalidWindow {
        /// Operator name.
        operator: String,
        /// What is wrong.
        error: crate::windows::WindowError,
    },
    /// A watermark strategy cannot work as configured (an idleness timeout of zero).
    #[error("watermark strategy of '{operator}': {reason}")]
    InvalidWatermarkStrategy {
        /// The assigner's operator name.
        operator: String,
        /// What is wrong.
        reason: String,
    },
    /// A non-parallel operator (such as a collection source) was given parallelism above one.
    #[error("operator '{operator}' is non-parallel and cannot run with parallelism {parallelism}")]
    NonParallelOperator {
        /// Operator name.
        operator: String,
        /// Requested parallelism.
        parallelism: usize,
    },
    /// Two operators were given the same [`uid`](crate::datastream::DataStream::uid):
    /// restored state could not tell them apart.
    #[error("operators '{first}' and '{second}' have the same uid '{uid}'; uids must be unique")]
    DuplicateUid {
        /// The uid.
        uid: String,
        /// The operator that has it first.
        first: String,
        /// The other operator.
        second: String,
    },
    /// A job in batch mode reads a source that never ends.
    #[error(
        "source '{operator}' is unbounded, but the job runs in batch mode: use RuntimeMode::Streaming or Automatic, or a bounded source"
    )]
    UnboundedSourceInBatchMode {
        /// The source's name.
        operator: String,
    },
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        match self {
            Self::ZeroParallelism { what } => f
                .debug_struct("ZeroParallelism")
                .field("what", what)
                .finish(),
            Self::ParallelismAboveMax {
                what,
                parallelism,
                max_parallelism,
            } => f
                .debug_struct("ParallelismAboveMax")
                .field("what", what)
                .field("parallelism", parallelism)
                .field("max_parallelism", max_parallelism)
                .finish(),
            Self::MaxParallelismOutOfRange(got) => f
                .debug_tuple("MaxParallelismOutOfRange")
                .field(got)
                .finish(),
            Self::BufferTooSmall { min, got } => f
                .debug_struct("BufferTooSmall")
                .field("min", min)
                .field("got", got)
                .finish(),
            Self::NoExclusiveBuffers => f.write_str("NoExclusiveBuffers"),
            Self::NoBuffersPerChannel => f.write_str("NoBuffersPerChannel"),
            Self::WebUiNotLoopback(address) => {
                f.debug_tuple("WebUiNotLoopback").field(address).finish()
            }
            Self::EmptyWebUiToken => f.write_str("EmptyWebUiToken"),
            Self::InvalidBufferDebloat { what, reason } => f
                .debug_struct("InvalidBufferDebloat")
                .field("what", what)
                .field("reason", reason)
                .finish(),
            Self::InvalidCheckpointing { what, reason } => f
                .debug_struct("InvalidCheckpointing")
                .field("what", what)
                .field("reason", reason)
                .finish(),
            Self::InvalidLocation { location, reason } => f
                .debug_struct("InvalidLocation")
                .field("location", location)
                .field("reason", reason)
                .finish(),
            Self::InvalidRestartStrategy { reason } => f
                .debug_struct("InvalidRestartStrategy")
                .field("reason", reason)
                .finish(),
            Self::Cluster(e) => f.debug_tuple("Cluster").field(e).finish(),
        }
    }
}

impl fmt::Debug for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return fmt::Display::fmt(self, f);
        }
        match self {
            Self::Config(e) => f.debug_tuple("Config").field(e).finish(),
            Self::NoSink => f.write_str("NoSink"),
            Self::InvalidPipeline(e) => f.debug_tuple("InvalidPipeline").field(e).finish(),
            Self::ForwardParallelismMismatch {
                from,
                from_parallelism,
                to,
                to_parallelism,
            } => f
                .debug_struct("ForwardParallelismMismatch")
                .field("from", from)
                .field("from_parallelism", from_parallelism)
                .field("to", to)
                .field("to_parallelism", to_parallelism)
                .finish(),
            Self::NotAnOperator { setting, inputs } => f
                .debug_struct("NotAnOperator")
                .field("setting", setting)
                .field("inputs", inputs)
                .finish(),
            Self::InvalidAsyncOptions { operator, error } => f
                .debug_struct("InvalidAsyncOptions")
                .field("operator", operator)
                .field("error", error)
                .finish(),
            Self::InvalidAsyncSinkOptions { operator, error } => f
                .debug_struct("InvalidAsyncSinkOptions")
                .field("operator", operator)
                .field("error", error)
                .finish(),
            Self::InvalidWindow { operator, error } => f
                .debug_struct("InvalidWindow")
                .field("operator", operator)
                .field("error", error)
                .finish(),
            Self::InvalidWatermarkStrategy { operator, reason } => f
                .debug_struct("InvalidWatermarkStrategy")
                .field("operator", operator)
                .field("reason", reason)
                .finish(),
            Self::InvalidSource { operator, reason } => f
                .debug_struct("InvalidSource")
                .field("operator", operator)
                .field("reason", reason)
                .finish(),
            Self::NonParallelOperator {
                operator,
                parallelism,
            } => f
                .debug_struct("NonParallelOperator")
                .field("operator", operator)
                .field("parallelism", parallelism)
                .finish(),
            Self::DuplicateUid { uid, first, second } => f
                .debug_struct("DuplicateUid")
                .field("uid", uid)
                .field("first", first)
                .field("second", second)
                .finish(),
            Self::UnboundedSourceInBatchMode { operator } => f
                .debug_struct("UnboundedSourceInBatchMode")
                .field("operator", operator)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_the_message_and_alternate_debug_the_structure() {
        let e = GraphError::Config(ConfigError::ZeroParallelism {
            what: "default".into(),
        });
        assert_eq!(
            format!("{e:?}"),
            "parallelism of default must be at least 1, got 0"
        );
        assert_eq!(
            format!("{e:#?}"),
            "Config(\n    ZeroParallelism {\n        what: \"default\",\n    },\n)"
        );
        assert_eq!(
            format!("{:?}", GraphError::NoSink),
            GraphError::NoSink.to_string()
        );
    }
}
