//! The shared workload of the examples: orders, a simulated pricing service and a
//! simulated acknowledging store, all deterministic for a given seed; the two designs
//! `compare` runs on it, the comparison itself, and its HTML report.

pub mod compare;
pub mod report;
pub mod variants;
pub mod workload;

/// docs/api-tour.md, compiled and run with the doctests so the tour cannot drift from
/// the API.
#[doc = include_str!("../../docs/api-tour.md")]
#[cfg(doctest)]
pub struct ApiTour;
