//! Reading a sink's dead letters as a stream.
//!
//! A sink writer gets its side outputs from its `RuntimeContext` like any operator,
//! but [`DataStream::sink_to`] returns a [`DataStreamSink`], which has no
//! `side_output`. [`DeadLetterSinkExt::sink_with_dead_letters`] attaches the sink and
//! returns its dead letters as a stream instead.

use flink_core::datastream::{DataStream, DataStreamSink};
use flink_core::dead_letter::{DeadLetter, dead_letter_tag};
use flink_core::operators::SinkOperator;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_core::stream_type::Record;

/// Adds [`sink_with_dead_letters`](Self::sink_with_dead_letters) to streams.
pub trait DeadLetterSinkExt<T> {
    /// Writes the stream to `sink` (an operator named `name`) and returns the
    /// [`DeadLetter<D>`]s it emits on [`dead_letter_tag::<D>()`], where `D` is the
    /// dead-letter record type the sink documents (the record itself for the
    /// PostgreSQL sink, the payload bytes for the Kafka sink).
    ///
    /// ```no_run
    /// use flink_connectors::DeadLetterSinkExt;
    /// use flink_connectors::file::FileSink;
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let dead = env
    ///     .from_sequence(1, 10)
    ///     .sink_with_dead_letters::<u64>(FileSink::<u64>::text("/tmp/out"), "Files")
    ///     .collect_vec();
    /// # let _ = dead;
    /// ```
    fn sink_with_dead_letters<D: Record>(
        &self,
        sink: impl Sink<T>,
        name: &str,
    ) -> DataStream<DeadLetter<D>>;
}

impl<T: Record> DeadLetterSinkExt<T> for DataStream<T> {
    fn sink_with_dead_letters<D: Record>(
        &self,
        sink: impl Sink<T>,
        name: &str,
    ) -> DataStream<DeadLetter<D>> {
        let sink = std::sync::Arc::new(sink);
        let written = self.transform::<(), _, _>(name, move |ctx| {
            SinkOperator::new(sink.create_writer(ctx), ctx.operator_name.to_string())
        });
        // The sink operator emits nothing on its main output; ending it in a no-op sink
        // makes it a sink in the graph's eyes.
        let _: DataStreamSink = written.sink_named(Discard, &format!("{name} (end)"));
        written.side_output(&dead_letter_tag::<D>())
    }
}

struct Discard;

impl flink_core::sink::Sink<()> for Discard {
    fn create_writer(&self, _: &flink_core::operator::RuntimeContext) -> Box<dyn SinkWriter<()>> {
        Box::new(Discard)
    }
}

impl SinkWriter<()> for Discard {
    fn write(&mut self, _: ()) -> Result<(), SinkError> {
        Ok(())
    }
}
