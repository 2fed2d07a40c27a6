//! Keyed state, scoped to the key of the record being processed.
//!
//! Two ways to keep it, as in Flink:
//! - the one [`ValueState`] a keyed `process` closure or a
//!   [`KeyedProcessFunction`](crate::keyed_process_function::KeyedProcessFunction)'s
//!   `State` gets (the fastest path: the value lies where the key does);
//! - named states declared with descriptors ([`ValueStateDescriptor`],
//!   [`ListStateDescriptor`], [`MapStateDescriptor`], [`ReducingStateDescriptor`],
//!   [`AggregatingStateDescriptor`]) and obtained per key from the function's context
//!   (`ctx.get_list_state(&descriptor)`), as many as a function needs, each with an
//!   optional time-to-live ([`StateTtlConfig`]).
//!
//! Both are kept on the heap by key and checkpointed by key group, so a job restores
//! at another parallelism with every key's state (see docs/checkpoints.md).

mod aggregating_state;
pub(crate) mod backend;
mod broadcast_state;
mod cow_map;
mod descriptors;
mod keyed_state_descriptor;
mod keyed_value_state;
mod list_state;
pub(crate) mod map_state;
mod operator_list_state;
mod reducing_state;
mod ttl;
mod value_codec;
mod value_state;

pub use aggregating_state::AggregatingState;
pub use backend::{KeyedStateBackend, StateKind, StateValue};
pub use broadcast_state::{BroadcastState, BroadcastStates, ReadOnlyBroadcastState};
pub use cow_map::{CowMap, CowSnapshot};
pub use descriptors::{
    AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor,
    ValueStateDescriptor,
};
pub use keyed_state_descriptor::{KeyedStateDescriptor, StateKey};
pub use keyed_value_state::KeyedValueState;
pub use list_state::ListState;
pub use map_state::MapState;
pub use operator_list_state::{OperatorListState, OperatorListStates, Redistribution};
pub use reducing_state::ReducingState;
pub use ttl::{StateTtlConfig, StateTtlConfigBuilder, StateTtlError, TtlUpdateType};
pub use value_state::ValueState;
