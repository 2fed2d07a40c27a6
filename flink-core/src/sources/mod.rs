//! Sources with no outside dependency: sequences, generators and collections.

mod collection;
mod generator;

pub use collection::{CollectionSource, IteratorSource};
pub use generator::{GeneratorSource, SequenceSource};

/// Records a source reader emits per `poll_next` call.
pub(crate) const BATCH: u64 = 1024;
