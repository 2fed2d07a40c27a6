use std::hash::Hash;
use std::marker::PhantomData;

use hashbrown::HashMap;

use crate::functions::{Collector, KeySelector};
use crate::operator::{ForwardTo, Operator, RuntimeContext};
use crate::process_context::{ProcessContext, SideOutputCache};
use crate::state::ValueState;
use crate::watermark::Watermark;

/// Runs a keyed process function with one [`ValueState`] per key, its side outputs
/// and the current watermark.
pub struct KeyedProcessOperator<K, I, O, S, KS, F> {
    key: KS,
    f: F,
    state: HashMap<K, S>,
    side_outputs: SideOutputCache,
    watermark: Watermark,
    _types: PhantomData<fn(I) -> O>,
}

impl<K, I, O, S, KS, F> KeyedProcessOperator<K, I, O, S, KS, F> {
    /// Runs `f` for records grouped by `key`, in the operator instance `ctx`.
    pub fn new(key: KS, f: F, ctx: &RuntimeContext) -> Self {
        Self {
            key,
            f,
            state: HashMap::new(),
            side_outputs: SideOutputCache::new(ctx.side_outputs.clone()),
            watermark: Watermark::MIN,
            _types: PhantomData,
        }
    }
}

impl<K, I, O, S, KS, F> Operator<I, O> for KeyedProcessOperator<K, I, O, S, KS, F>
where
    K: Hash + Eq + Send + 'static,
    I: 'static,
    O: 'static,
    S: Send + 'static,
    KS: KeySelector<I, K>,
    F: FnMut(&K, I, &mut ValueState<'_, S>, &mut ProcessContext<'_, O>) + Send + 'static,
{
    fn process<C: Collector<O> + ?Sized>(&mut self, record: I, out: &mut C) {
        let key = self.key.key(&record);
        // Taking the value out and putting it back keeps `key` usable by the function
        // without cloning it per record.
        let mut slot = self.state.remove(&key);
        let mut forward = ForwardTo(out);
        let mut ctx = ProcessContext::new(&mut forward, &mut self.side_outputs, self.watermark);
        (self.f)(&key, record, &mut ValueState::new(&mut slot), &mut ctx);
        if let Some(value) = slot {
            self.state.insert(key, value);
        }
    }

    fn process_watermark<C: Collector<O> + ?Sized>(&mut self, watermark: Watermark, out: &mut C) {
        self.watermark = watermark;
        out.emit_watermark(watermark);
    }
}
