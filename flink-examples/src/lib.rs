//! The shared workload of the examples: orders, a simulated pricing service and a
//! simulated acknowledging store, all deterministic for a given seed; the two designs
//! `compare` runs on it, the comparison itself, and its HTML report.

pub mod compare;
pub mod report;
pub mod variants;
pub mod workload;
