//! Files: line-oriented text and JSON-lines sources over a file or a directory, and a
//! sink writing rolling part files.

pub mod exactly_once;
pub mod format;
mod line_reader;
mod position;
mod reader;
pub mod sink;
pub mod source;

pub use format::{JsonLines, LineFormat, TextLines};
pub use sink::{FileSink, FileSinkError};
pub use source::{DEFAULT_MAX_LINE_LENGTH, FileSource};
