//! [`ProcessContext`]: what a process function sees besides its record: the main
//! output, typed side outputs, and the current event time.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use crate::functions::Collector;
use crate::side_output::{OutputTag, SideOutput, SideOutputs};
use crate::watermark::Watermark;

/// The output side of one process-function call: [`collect`](Collector::collect)
/// emits to the main output, [`output`](ProcessContext::output) to a side output.
///
/// ```
/// use flink_core::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// let big = OutputTag::<u64>::new("big");
/// let tag = big.clone();
/// let small = env.from_sequence(1, 100).key_by(|x: &u64| x % 4).process_with_context(
///     move |_key: &u64, x: u64, _state: &mut ValueState<()>, ctx: &mut ProcessContext<u64>| {
///         if x > 90 { ctx.output(&tag, x) } else { ctx.collect(x) }
///     },
/// );
/// let big_ones = small.side_output(&big).collect_vec();
/// # let _ = big_ones;
/// ```
pub struct ProcessContext<'a, O> {
    out: &'a mut dyn Collector<O>,
    side_outputs: &'a mut SideOutputCache,
    watermark: Watermark,
}

impl<'a, O> ProcessContext<'a, O> {
    /// A context emitting into `out` and `side_outputs`, at event time `watermark`.
    pub fn new(
        out: &'a mut dyn Collector<O>,
        side_outputs: &'a mut SideOutputCache,
        watermark: Watermark,
    ) -> Self {
        Self {
            out,
            side_outputs,
            watermark,
        }
    }

    /// Emits `value` to the side output `tag`; read it with `DataStream::side_output`.
    /// A side output nobody reads counts the record as unconsumed, never silently.
    pub fn output<T: 'static>(&mut self, tag: &OutputTag<T>, value: T) {
        self.side_outputs.get(tag).collect(value);
    }

    /// The last watermark this operator received ([`Watermark::MIN`] before any).
    pub fn current_watermark(&self) -> Watermark {
        self.watermark
    }
}

impl<O> Collector<O> for ProcessContext<'_, O> {
    fn collect(&mut self, record: O) {
        self.out.collect(record);
    }

    fn flush_before_wait(&mut self) {
        self.out.flush_before_wait();
    }

    fn set_timestamp(&mut self, timestamp: i64) {
        self.out.set_timestamp(timestamp);
    }
}

/// An operator instance's side outputs, looked up once per tag.
pub struct SideOutputCache {
    wired: SideOutputs,
    by_tag: HashMap<Arc<str>, Box<dyn Any + Send>>,
}

impl SideOutputCache {
    /// A cache over the side outputs wired to an operator instance.
    pub fn new(wired: SideOutputs) -> Self {
        Self {
            wired,
            by_tag: HashMap::new(),
        }
    }

    fn get<T: 'static>(&mut self, tag: &OutputTag<T>) -> &mut SideOutput<T> {
        // Look up by `&str` first: building the owned key is only needed once per tag.
        if !self.by_tag.contains_key(tag.id()) {
            let output: Box<dyn Any + Send> = Box::new(self.wired.get(tag));
            self.by_tag.insert(Arc::from(tag.id()), output);
        }
        self.by_tag
            .get_mut(tag.id())
            .and_then(|output| output.downcast_mut::<SideOutput<T>>())
            .unwrap_or_else(|| panic!("side output '{}' used with two record types", tag.id()))
    }
}
