//! [`ValueState`]: the one value per key of a keyed `process` closure or function.

/// The state of the current key in a keyed process function, like Flink's `ValueState`.
#[derive(Debug)]
pub struct ValueState<'a, S> {
    slot: &'a mut Option<S>,
}

impl<'a, S> ValueState<'a, S> {
    /// State backed by `slot` (the runtime hands this out per record).
    pub fn new(slot: &'a mut Option<S>) -> Self {
        Self { slot }
    }

    /// The current value, if any was set for this key.
    pub fn value(&self) -> Option<&S> {
        self.slot.as_ref()
    }

    /// Mutable access to the current value, if any.
    pub fn value_mut(&mut self) -> Option<&mut S> {
        self.slot.as_mut()
    }

    /// Replaces the value for this key.
    pub fn update(&mut self, value: S) {
        *self.slot = Some(value);
    }

    /// Forgets the value for this key.
    pub fn clear(&mut self) {
        *self.slot = None;
    }

    /// Takes the value out, leaving the key without state.
    pub fn take(&mut self) -> Option<S> {
        self.slot.take()
    }
}
