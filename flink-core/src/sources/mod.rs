//! Sources with no outside dependency: sequences, generators and collections.

mod collection;
mod generator;
mod iterator;
mod rate_limited;
mod stamped;

pub use collection::CollectionSource;
pub use generator::{GeneratorSource, SequenceSource, WatermarkedGeneratorSource};
pub use iterator::IteratorSource;
pub use rate_limited::{InvalidRate, RateLimitedSource, RateLimiterStrategy};
pub(crate) use stamped::StampedSource;

/// Records the built-in source readers emit per `poll_next` call: the size of the
/// batch a source hands to its chain.
pub const SOURCE_BATCH: u64 = 1024;
pub(crate) use SOURCE_BATCH as BATCH;
