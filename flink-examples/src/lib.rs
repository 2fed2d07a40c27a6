//! The shared workload of the examples: orders, a simulated pricing service and a
//! simulated acknowledging store, all deterministic for a given seed.

pub mod report;
pub mod variants;
pub mod workload;
