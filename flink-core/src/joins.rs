//! Joins of two streams on event time, as Flink's DataStream joins.
//!
//! - [`IntervalJoin`]: `keyed_a.interval_join(&keyed_b).between(lower, upper)`
//!   pairs each record of `a` at time `t` with every record of `b` of the same key
//!   whose time lies in `[t + lower, t + upper]`. Both sides are buffered in keyed
//!   state until the watermark passes the last time a partner could arrive.
//! - [`JoinedStreams`] and [`CoGroupedStreams`]: `a.join(&b)` / `a.co_group(&b)`
//!   `.where_(..).equal_to(..).window(assigner)`: the records of both streams with
//!   equal keys that fall in one window meet when it fires, as pairs (join) or as
//!   two groups (coGroup).
//!
//! Both are built on the two-input machinery of
//! [`connect`](crate::datastream::DataStream::connect): each input is tagged and
//! both are unioned into one keyed operator, whose event time is the minimum of the
//! two inputs' watermarks. Their state is keyed state and goes into checkpoints
//! with the key's timers (the interval join through the keyed process function
//! operator, the window join through the window operator).

mod interval_join;
mod window_join;

pub use interval_join::{IntervalJoin, IntervalJoined};
pub use window_join::{
    CoGroupedKeyed, CoGroupedStreams, CoGroupedWhere, CoGroupedWindowed, JoinedKeyed,
    JoinedStreams, JoinedWhere, JoinedWindowed,
};

use crate::datastream::DataStream;

/// `stream` without the key partitioning a `KeyedStream` put on its next edge: the
/// join tags each input first and partitions the tagged union once.
pub(crate) fn unpartitioned<T>(stream: &DataStream<T>) -> DataStream<T> {
    let mut plain = stream.clone();
    for input in &mut plain.inputs {
        input.partitioner = None;
    }
    plain
}
