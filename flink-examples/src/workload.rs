//! A deterministic order workload with a simulated external service and destination.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flink_core::async_io::AsyncFailure;
use flink_core::dead_letter::DeadLetter;
use flink_core::destination::{AckDestination, DeliveryError};
use flink_core::operator::RuntimeContext;
use flink_core::pipeline::LatencyHistogram;
use flink_core::sink::{Sink, SinkError, SinkWriter};
use flink_runtime::precise_timer::precise_sleep;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// An incoming order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Unique, 0-based.
    pub id: u64,
    /// Customer key.
    pub customer: String,
    /// Amount; zero or negative amounts are invalid.
    pub amount_cents: i64,
    /// When the order was created, in ns since the workload's origin.
    pub created_ns: u64,
}

/// An order after the pricing service answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedOrder {
    /// The order.
    pub order: Order,
    /// Tax the service computed.
    pub tax_cents: i64,
}

/// SplitMix64: a seeded hash of `x`.
pub fn mix(seed: u64, x: u64) -> u64 {
    let mut z = seed ^ x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The clock orders are stamped with, shared by generator and destination.
#[derive(Clone)]
pub struct Origin(Instant);

impl Origin {
    /// Now.
    pub fn new() -> Self {
        Self(Instant::now())
    }

    /// Nanoseconds since the origin.
    pub fn ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for Origin {
    fn default() -> Self {
        Self::new()
    }
}

/// How orders spread over customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Customers {
    /// 200 customers, customer 0 four times as frequent as the others.
    Spread,
    /// 80 % of the orders from customer 0, the rest spread over 199 others.
    HotKey,
}

/// Order `i` of the workload: 1 in 97 has an invalid amount; customers as `customers` says.
pub fn order(i: u64, origin: &Origin, customers: Customers) -> Order {
    let customer = match customers {
        Customers::Spread => {
            let c = mix(7, i) % 204;
            if c < 4 { 0 } else { c - 3 }
        }
        Customers::HotKey => {
            if !mix(7, i).is_multiple_of(5) {
                0
            } else {
                1 + mix(13, i) % 199
            }
        }
    };
    Order {
        id: i,
        customer: format!("customer-{customer}"),
        amount_cents: if i.is_multiple_of(97) {
            -1
        } else {
            (mix(11, i) % 100_000) as i64 + 1
        },
        created_ns: origin.ns(),
    }
}

/// The business rule both variants apply: amounts must be positive.
pub fn validate(o: &Order) -> Result<(), String> {
    if o.amount_cents > 0 {
        Ok(())
    } else {
        Err(format!("order {} has amount {}", o.id, o.amount_cents))
    }
}

/// The preprocessing both variants apply: customer keys are upper-case.
pub fn normalize(o: &Order) -> Order {
    Order {
        customer: o.customer.to_uppercase(),
        ..o.clone()
    }
}

/// How the simulated pricing service behaves.
#[derive(Debug, Clone, Copy)]
pub struct ServiceProfile {
    /// Seed of every decision.
    pub seed: u64,
    /// Typical latency.
    pub base_latency: Duration,
    /// Share of calls failing on their first attempt (retryable), in 0..1.
    pub error_rate: f64,
    /// Share of orders the service never answers (they time out), in 0..1.
    pub timeout_rate: f64,
    /// A window after the service was created, `(start, length)`, during which it
    /// answers nothing (calls made then never complete), then recovers.
    pub outage: Option<(Duration, Duration)>,
}

/// The simulated pricing service: latency of `base` to `3 x base`, 1 % of calls ten
/// times slower, errors and never-answered calls by seeded choice per order.
#[derive(Clone)]
pub struct PricingService {
    profile: ServiceProfile,
    created: Instant,
    calls: Arc<AtomicU64>,
    /// Attempts per order so far, so that errors hit exactly the first attempt.
    attempts: Arc<Mutex<HashMap<u64, u32>>>,
}

impl PricingService {
    /// A service with `profile`.
    pub fn new(profile: ServiceProfile) -> Self {
        Self {
            profile,
            created: Instant::now(),
            calls: Arc::default(),
            attempts: Arc::default(),
        }
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn unit(&self, salt: u64, id: u64) -> f64 {
        (mix(self.profile.seed ^ salt, id) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Prices `order`. The future starts counting its latency now.
    pub fn price(&self, order: Order) -> BoxFuture<'static, Result<PricedOrder, AsyncFailure>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
            let n = attempts.entry(order.id).or_insert(0);
            *n += 1;
            *n
        };
        let p = self.profile;
        let down = p.outage.is_some_and(|(start, length)| {
            let t = self.created.elapsed();
            t >= start && t < start + length
        });
        let never = down || self.unit(1, order.id) < p.timeout_rate;
        // Errors hit the first attempt of the chosen orders; the retry succeeds.
        let fails = attempt == 1 && self.unit(2, order.id) < p.error_rate;
        let spread = 1.0 + 2.0 * self.unit(4, order.id);
        let tail = if self.unit(5, order.id) < 0.01 {
            10.0
        } else {
            1.0
        };
        let latency = p.base_latency.mul_f64(spread * tail);
        let reply = precise_sleep(if never {
            Duration::from_secs(3600)
        } else {
            latency
        });
        Box::pin(async move {
            reply.await;
            if fails {
                return Err(AsyncFailure::Retryable(
                    "pricing service returned 503".into(),
                ));
            }
            let tax_cents = order.amount_cents / 5;
            Ok(PricedOrder { order, tax_cents })
        })
    }
}

/// The simulated destination: acknowledges each order after `ack_latency`, and
/// measures end-to-end latency from the order's creation.
#[derive(Clone)]
pub struct OrderStore {
    ack_latency: Duration,
    origin: Origin,
    stored: Arc<AtomicU64>,
    latency: Arc<LatencyHistogram>,
}

impl OrderStore {
    /// A store acknowledging after `ack_latency`.
    pub fn new(ack_latency: Duration, origin: Origin) -> Self {
        Self {
            ack_latency,
            origin,
            stored: Arc::default(),
            latency: Arc::default(),
        }
    }

    /// Orders acknowledged.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// End-to-end latencies of acknowledged orders.
    pub fn latency(&self) -> &LatencyHistogram {
        &self.latency
    }
}

impl AckDestination<PricedOrder> for OrderStore {
    fn send(&self, record: PricedOrder) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let ack = precise_sleep(self.ack_latency);
        let (stored, latency, origin) = (
            self.stored.clone(),
            self.latency.clone(),
            self.origin.clone(),
        );
        Box::pin(async move {
            ack.await;
            stored.fetch_add(1, Ordering::Relaxed);
            let e2e = origin.ns().saturating_sub(record.order.created_ns);
            latency.record(Duration::from_nanos(e2e));
            Ok(())
        })
    }
}

/// Where both variants send their dead letters: counts them by operator and reason
/// (the reason up to its first digit, so "order 12 has amount -1" counts as one cause).
#[derive(Clone, Default)]
pub struct DeadLetterLog {
    count: Arc<AtomicU64>,
    causes: Arc<Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl DeadLetterLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Dead letters received so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Dead letters by cause, most frequent first.
    pub fn causes(&self) -> Vec<(String, u64)> {
        let causes = self.causes.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = causes.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

fn cause_of<T>(letter: &DeadLetter<T>) -> String {
    let reason: String = letter
        .reason
        .chars()
        .take_while(|c| !c.is_ascii_digit())
        .collect();
    let error = letter.last_error.as_deref().unwrap_or("");
    format!(
        "{}: {}{}",
        letter.operator,
        reason.trim_end(),
        if error.is_empty() {
            String::new()
        } else {
            format!(" ({error})")
        }
    )
}

impl<T: Send + 'static> Sink<DeadLetter<T>> for DeadLetterLog {
    fn create_writer(&self, _: &RuntimeContext) -> Box<dyn SinkWriter<DeadLetter<T>>> {
        Box::new(self.clone())
    }
}

impl<T> SinkWriter<DeadLetter<T>> for DeadLetterLog {
    fn write(&mut self, letter: DeadLetter<T>) -> Result<(), SinkError> {
        let cause = cause_of(&letter);
        *self
            .causes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(cause)
            .or_insert(0) += 1;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Counts the records it is given (the five-stage pipeline's receipts).
#[derive(Clone, Default)]
pub struct CountingSink(Arc<AtomicU64>);

impl CountingSink {
    /// Records counted so far.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl<T: Send + 'static> Sink<T> for CountingSink {
    fn create_writer(&self, _: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        Box::new(self.clone())
    }
}

impl<T> SinkWriter<T> for CountingSink {
    fn write(&mut self, _: T) -> Result<(), SinkError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn write_batch(&mut self, batch: &mut Vec<T>) -> Result<(), SinkError> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
        Ok(())
    }
}
