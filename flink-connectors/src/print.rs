//! Printing a stream to standard output, as Flink's `print()` does: each line is
//! prefixed with the 1-based subtask index when the sink runs in parallel.

use std::fmt::Debug;
use std::io::{BufWriter, Stdout, Write};

use flink_core::datastream::{DataStream, DataStreamSink};
use flink_core::operator::RuntimeContext;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_core::stream_type::Record;

/// Writes each record's `Debug` form on its own line.
#[derive(Debug, Clone, Default)]
pub struct PrintSink {
    prefix: Option<String>,
}

impl PrintSink {
    /// A sink printing plain lines (with the subtask prefix when parallel).
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink whose lines start with `prefix`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            prefix: Some(prefix.to_string()),
        }
    }
}

impl<T: Debug + Send + 'static> Sink<T> for PrintSink {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        let subtask = (ctx.parallelism > 1).then(|| format!("{}> ", ctx.subtask_index + 1));
        let prefix = match (&self.prefix, subtask) {
            (Some(p), Some(s)) => format!("{p}:{s}"),
            (Some(p), None) => format!("{p}> "),
            (None, Some(s)) => s,
            (None, None) => String::new(),
        };
        Box::new(PrintWriter {
            prefix,
            out: BufWriter::new(std::io::stdout()),
        })
    }
}

struct PrintWriter {
    prefix: String,
    out: BufWriter<Stdout>,
}

impl<T: Debug> SinkWriter<T> for PrintWriter {
    fn write(&mut self, record: T) -> Result<(), SinkError> {
        writeln!(self.out, "{}{record:?}", self.prefix)?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        Ok(())
    }
}

/// Adds `print()` to streams.
pub trait PrintExt {
    /// Prints every record to standard output.
    ///
    /// ```
    /// use flink_connectors::PrintExt;
    /// use flink_core::prelude::*;
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// env.from_sequence(1, 3).print();
    /// ```
    fn print(&self) -> DataStreamSink;
}

impl<T: Record + Debug> PrintExt for DataStream<T> {
    fn print(&self) -> DataStreamSink {
        self.sink_named(PrintSink::new(), "Print to Std. Out")
    }
}
