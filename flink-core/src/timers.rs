//! Timers: what keyed operators schedule for a key and a time, fired when event time
//! (the watermark) or processing time (the job's clock) passes it.

mod timer_queue;
mod timer_service;
mod timer_set;

pub use timer_queue::TimerQueue;
pub use timer_service::{TimerService, processing_time_of};
pub use timer_set::TimerSet;
