//! The built-in operators, each a short [`Operator`](crate::operator::Operator) over a
//! user function.

mod async_queue_state;
mod async_sink_writer;
mod async_wait;
mod broadcast_process;
mod filter;
mod flat_map;
pub(crate) mod give_up;
mod in_flight;
mod keyed_broadcast_process;
mod keyed_final_fold;
mod keyed_process;
mod keyed_process_function;
mod keyed_reduce;
mod map;
mod mode_switch;
mod result_queue;
mod sink;
mod stamped;
pub(crate) mod state_codec;
mod watermark_assigner;
mod window;
mod window_slots;
mod window_snapshot;

pub use async_sink_writer::AsyncSinkWriter;
pub use async_wait::{AsyncWaitOperator, SLOT_WAIT_NS, WAITING_SINCE_NS};
pub use broadcast_process::BroadcastProcessOperator;
pub use filter::FilterOperator;
pub use flat_map::FlatMapOperator;
pub use keyed_broadcast_process::KeyedBroadcastProcessOperator;
pub use keyed_final_fold::KeyedFinalFoldOperator;
pub use keyed_process::KeyedProcessOperator;
pub use keyed_process_function::KeyedProcessFunctionOperator;
pub use keyed_reduce::KeyedReduceOperator;
pub use map::MapOperator;
pub use mode_switch::ModeSwitch;
pub use sink::SinkOperator;
pub use stamped::{PerRecordStamps, StampWith, Stamped, StampingCollector, Unstamp, Unstamped};
pub use watermark_assigner::{StampingAssigner, WatermarkAssigner};
pub use window::{LATE_RECORDS_DROPPED, WindowOperator, WindowSettings};
