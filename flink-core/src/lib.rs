//! # flink-core
//!
//! The user's vocabulary of flink-rs: the [`StreamExecutionEnvironment`], the
//! [`DataStream`] and [`KeyedStream`] builders, the function traits, sources and sinks,
//! partitioners and key groups, and the graphs a job compiles into. No threads and no
//! I/O live here; `flink-runtime` executes what this crate describes.
//!
//! [`StreamExecutionEnvironment`]: environment::StreamExecutionEnvironment
//! [`DataStream`]: datastream::DataStream
//! [`KeyedStream`]: keyed_stream::KeyedStream
#![warn(missing_docs)]

pub mod async_io;
pub mod async_sink;
pub mod batch_keys;
mod bincode_deserializer;
mod bincode_serializer;
pub mod blocking;
pub mod broadcast_process_function;
pub mod broadcast_stream;
pub mod buffer_debloat;
pub mod checkpoint;
pub mod clock;
pub mod cluster;
pub mod co_process_function;
pub mod codec;
pub mod collect;
pub mod config;
pub mod connected_streams;
pub mod datastream;
pub mod dead_letter;
pub mod dead_letter_queue;
pub mod destination;
pub mod destinations;
pub mod environment;
pub mod error;
pub mod failure;
pub mod functions;
pub mod graph;
pub mod job_hooks;
pub mod joins;
pub mod key_group;
pub mod key_hash;
pub mod keyed_broadcast_process_function;
pub mod keyed_process_function;
pub mod keyed_stream;
pub mod metrics;
pub mod node;
pub mod operator;
pub mod operators;
pub mod output;
pub mod partitioner;
pub mod pipeline;
pub mod process_context;
pub mod process_function;
pub mod record_router;
pub mod runtime_mode;
pub mod services;
pub mod side_output;
pub mod sink;
pub mod source;
pub mod sources;
pub mod state;
pub mod stream_type;
pub mod timers;
pub mod timestamped;
pub mod transactional;
pub mod tuple_field;
pub mod watermark;
pub mod web_ui;
pub mod windows;

/// The names most jobs need.
pub mod prelude {
    pub use crate::broadcast_process_function::{
        BroadcastProcessFunction, ReadOnlyBroadcastContext,
    };
    pub use crate::checkpoint::{
        CheckpointConfig, CheckpointLocation, CheckpointStorage, CheckpointingMode, RestartStrategy,
    };
    pub use crate::collect::CollectedRecords;
    pub use crate::config::{BufferTimeout, ExecutionConfig};
    pub use crate::datastream::{DataStream, DataStreamSink};
    pub use crate::dead_letter::DeadLetter;
    pub use crate::destination::{AckDestination, DeliveryError};
    pub use crate::environment::StreamExecutionEnvironment;
    pub use crate::error::{ConfigError, GraphError};
    pub use crate::functions::{
        Collector, FilterFunction, FlatMapFunction, KeySelector, MapFunction, ReduceFunction,
    };
    pub use crate::keyed_broadcast_process_function::{
        BroadcastContext, KeyedBroadcastContext, KeyedBroadcastProcessFunction,
    };
    pub use crate::keyed_process_function::{KeyedContext, KeyedProcessFunction, TimeDomain};
    pub use crate::keyed_stream::KeyedStream;
    pub use crate::process_context::ProcessContext;
    pub use crate::process_function::{ProcessFunction, ProcessFunctionContext};
    pub use crate::runtime_mode::RuntimeMode;
    pub use crate::side_output::OutputTag;
    pub use crate::sink::{Sink, SinkError, SinkWriter};
    pub use crate::source::{Boundedness, Source, SourcePoll, SourceReader};
    pub use crate::state::{
        AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
        ReducingStateDescriptor, StateTtlConfig, TtlUpdateType, ValueState, ValueStateDescriptor,
    };
    pub use crate::transactional::{
        TransactionalCollectingSink, TwoPhaseCommitSink, TwoPhaseCommitWriter,
    };
    pub use crate::tuple_field::TupleField;
    pub use crate::watermark::Watermark;
    pub use crate::web_ui::WebUiConfig;
}
