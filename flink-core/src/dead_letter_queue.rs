//! A bounded in-memory queue for dead letters (or any records) that a program reads
//! while the job runs. When it is full it either blocks the sink (back pressure up the
//! job) or fails the job with a clear error: it never drops a record.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::failure::TaskCancelled;
use crate::operator::RuntimeContext;
use crate::services::CancelFlag;
use crate::sink::{Sink, SinkError, SinkWriter};

/// What a full queue does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// The sink waits until the reader makes room: back pressure.
    Block,
    /// The job fails with an error naming the queue's capacity.
    Fail,
}

struct Shared<T> {
    items: Mutex<VecDeque<T>>,
    changed: Condvar,
    capacity: usize,
    when_full: WhenFull,
}

/// A bounded queue fed by a sink and read by the program.
///
/// ```
/// use flink_core::dead_letter_queue::{BoundedQueue, WhenFull};
/// let queue = BoundedQueue::<u64>::new(1_000, WhenFull::Block);
/// // env.from_sequence(..)...dead_letters::<u64>().sink_to(queue.sink());
/// assert!(queue.drain().is_empty());
/// ```
pub struct BoundedQueue<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for BoundedQueue<T> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<T: Send + 'static> BoundedQueue<T> {
    /// A queue holding at most `capacity` records.
    pub fn new(capacity: usize, when_full: WhenFull) -> Self {
        Self {
            shared: Arc::new(Shared {
                items: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
                changed: Condvar::new(),
                capacity: capacity.max(1),
                when_full,
            }),
        }
    }

    /// The sink that fills this queue.
    pub fn sink(&self) -> QueueSink<T> {
        QueueSink {
            queue: self.clone(),
        }
    }

    /// Takes every record queued so far, making room.
    pub fn drain(&self) -> Vec<T> {
        let drained: Vec<T> = lock(&self.shared.items).drain(..).collect();
        self.shared.changed.notify_all();
        drained
    }

    /// Records queued now.
    pub fn len(&self) -> usize {
        lock(&self.shared.items).len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, record: T, cancelled: &CancelFlag) -> Result<(), SinkError> {
        let s = &self.shared;
        let mut items = lock(&s.items);
        while items.len() >= s.capacity {
            if s.when_full == WhenFull::Fail {
                return Err(format!(
                    "bounded queue full ({} records): read it faster or raise its capacity",
                    s.capacity
                )
                .into());
            }
            if cancelled.is_cancelled() {
                std::panic::resume_unwind(Box::new(TaskCancelled));
            }
            items = s
                .changed
                .wait_timeout(items, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        items.push_back(record);
        Ok(())
    }
}

/// The sink side of a [`BoundedQueue`].
pub struct QueueSink<T> {
    queue: BoundedQueue<T>,
}

impl<T: Send + 'static> Sink<T> for QueueSink<T> {
    fn create_writer(&self, ctx: &RuntimeContext) -> Box<dyn SinkWriter<T>> {
        Box::new(QueueWriter {
            queue: self.queue.clone(),
            cancelled: ctx.services.cancelled.clone(),
        })
    }
}

struct QueueWriter<T> {
    queue: BoundedQueue<T>,
    cancelled: CancelFlag,
}

impl<T: Send + 'static> SinkWriter<T> for QueueWriter<T> {
    fn write(&mut self, record: T) -> Result<(), SinkError> {
        self.queue.push(record, &self.cancelled)
    }
}
