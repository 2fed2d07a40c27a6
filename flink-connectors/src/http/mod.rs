//! HTTP: a client whose `call` maps status codes to [`DeliveryError`]s, and an
//! [`AckDestination`] POSTing records as JSON.
//!
//! [`DeliveryError`]: flink_core::destination::DeliveryError
//! [`AckDestination`]: flink_core::destination::AckDestination

pub mod client;
pub mod destination;

pub use client::{HttpClient, HttpMethod, HttpRequest, HttpResponse, status_outcome};
pub use destination::HttpDestination;
