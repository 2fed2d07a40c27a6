//! Credit-based, bytes-level network stack (modelled on Apache Flink's).
//!
//! Senders write already-serialized records into a [`ResultPartition`] through a
//! [`PartitionWriter`]; records are length-prefixed and packed into fixed-size buffers
//! from a bounded [`BufferPool`]. Each subpartition ships buffers to its receiving input
//! channel only while it holds credit; receivers announce credit for every free segment
//! (exclusive per channel, floating per gate). An [`InputGate`] re-assembles the records
//! and hands them out per channel in order. Nothing here knows about record types.
//!
//! Threading: one OS thread per task, blocking waits on parking_lot condvars, all of them
//! cancellable through a [`CancelToken`]. Locks are taken per buffer, never per record.
//!
//! # Protocol
//!
//! * A channel announces its exclusive segments as initial credit when connected.
//! * A subpartition ships its oldest queued buffer only while credit > 0; each shipped
//!   buffer carries the backlog (buffers still queued behind it). Shipping is done by
//!   whichever thread notices credit and backlog; one thread at a time per subpartition.
//! * On receipt the input channel requests `backlog - free segments` floating segments
//!   from its gate (registering as a waiter if none are free) and announces them as credit.
//! * A consumed exclusive segment becomes credit again (or replaces a surplus floating
//!   segment, which goes back to the gate); a consumed floating segment goes to the first
//!   waiting channel, or back to the floating pool.
//!
//! # Lock order
//!
//! subpartition lock → buffer-pool lock; input-channel lock → floating-pool lock or gate
//! availability lock. No lock is held while calling a transport, and no code takes a
//! channel lock while holding the floating-pool lock, so no cycle exists.

#![warn(missing_docs)]

mod buffer;
mod buffer_debloater;
mod buffer_pool;
mod cancel;
mod config;
mod error;
mod event;
mod floating_pool;
mod input_channel;
mod input_gate;
mod io_metrics;
mod local_channel;
mod partition_writer;
#[cfg(test)]
mod priority_event_tests;
mod record_deserializer;
mod record_serializer;
mod result_partition;
mod subpartition;
mod transport;
mod wiring;

pub mod tcp;

pub use buffer::{Buffer, BufferKind};
pub use buffer_debloater::BufferDebloater;
pub use buffer_pool::BufferPool;
pub use cancel::CancelToken;
pub use config::{DEFAULT_BUFFER_SIZE, NetworkConfig};
pub use error::NetworkError;
pub use event::Event;
pub use input_gate::{GateItem, GatePoll, GateStats, InputGate};
pub use io_metrics::{IoMetrics, Waiting};
pub use local_channel::{LocalChannel, local_connect};
pub use partition_writer::PartitionWriter;
pub use record_deserializer::RecordDeserializer;
pub use record_serializer::{LENGTH_PREFIX, RecordSerializer};
pub use result_partition::{PartitionStats, ResultPartition};
pub use subpartition::SubpartitionStats;
pub use transport::{AddCredit, BufferResponse, ChannelTransport, CreditTransport};
pub use wiring::{connect_all_to_all, connect_forward};
