use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::dead_letter::{DeadLetter, dead_letter_tag};
use crate::functions::Collector;
use crate::operator::{Emitter, Operator, RuntimeContext};
use crate::services::RuntimeServices;
use crate::side_output::SideOutput;
use crate::watermark::Watermark;

use super::config::IngressConfig;
use super::envelope::Envelope;
use super::state::PipelineState;

/// Validates a record: `Err(reason)` makes it a dead letter.
pub type Validator<T> = Arc<dyn Fn(&T) -> Result<(), String> + Send + Sync>;
/// Preprocesses a record: `Err(reason)` makes it a dead letter.
pub type Preprocessor<T> = Arc<dyn Fn(&T) -> Result<T, String> + Send + Sync>;

/// Stage 3: validates and preprocesses records, each step switchable; records that
/// fail become dead letters with the function's reason. Passing records collect in a
/// bounded buffer that is handed on when full or when its oldest record has waited
/// the buffer timeout.
pub struct IngressOperator<T> {
    validate: Option<Validator<T>>,
    preprocess: Option<Preprocessor<T>>,
    config: IngressConfig,
    services: RuntimeServices,
    buffer: Vec<Envelope<T>>,
    oldest: Duration,
    dead_letters: SideOutput<DeadLetter<Envelope<T>>>,
    dead_count: Arc<AtomicU64>,
    name: String,
    state: Arc<PipelineState>,
}

impl<T: Clone + 'static> IngressOperator<T> {
    /// An instance with the given (optional) functions.
    pub fn new(
        validate: Option<Validator<T>>,
        preprocess: Option<Preprocessor<T>>,
        config: IngressConfig,
        state: &Arc<PipelineState>,
        ctx: &RuntimeContext,
    ) -> Self {
        // The buffer batches: it fills up to `buffer_size` routinely and then hands
        // on at once, so its fill is not pressure and is not registered as such (it
        // made the gateway throttle itself). The stage's pressure comes from its
        // task's measured back pressure and its error rate.
        let dead_count = ctx.metrics.custom("dead_letters");
        Self {
            validate: validate.filter(|_| config.validation_enabled),
            preprocess: preprocess.filter(|_| config.preprocessing_enabled),
            buffer: Vec::with_capacity(config.buffer_size),
            config,
            services: ctx.services.clone(),
            oldest: Duration::ZERO,
            dead_letters: ctx.side_output(&dead_letter_tag::<Envelope<T>>()),
            dead_count,
            name: ctx.operator_name.to_string(),
            state: state.clone(),
        }
    }

    fn reject(&mut self, record: Envelope<T>, reason: String) {
        self.dead_count.fetch_add(1, Ordering::Relaxed);
        self.state.finish(record.origin);
        self.dead_letters
            .collect(DeadLetter::new(record, &self.name, reason));
    }

    fn hand_on<C: Collector<Envelope<T>> + ?Sized>(&mut self, out: &mut C) {
        for record in self.buffer.drain(..) {
            out.collect(record);
        }
    }

    fn hand_on_if_due<C: Collector<Envelope<T>> + ?Sized>(&mut self, out: &mut C) {
        let waited = self.services.clock.now().saturating_sub(self.oldest);
        if !self.buffer.is_empty()
            && (self.buffer.len() >= self.config.buffer_size
                || waited >= self.config.buffer_timeout)
        {
            self.hand_on(out);
        }
    }
}

impl<T: Clone + Send + 'static> Operator<Envelope<T>, Envelope<T>> for IngressOperator<T> {
    fn process<C: Collector<Envelope<T>> + ?Sized>(&mut self, record: Envelope<T>, out: &mut C) {
        if let Some(validate) = &self.validate
            && let Err(reason) = validate(&record.payload)
        {
            return self.reject(record, format!("validation failed: {reason}"));
        }
        let record = match &self.preprocess {
            Some(preprocess) => match preprocess(&record.payload) {
                Ok(payload) => record.with_payload(payload),
                Err(reason) => {
                    return self.reject(record, format!("preprocessing failed: {reason}"));
                }
            },
            None => record,
        };
        if self.buffer.is_empty() {
            self.oldest = self.services.clock.now();
        }
        self.buffer.push(record);
        self.hand_on_if_due(out);
    }

    fn poll_pending(&mut self, out: &mut Emitter<'_, Envelope<T>>) -> bool {
        self.hand_on_if_due(out);
        !self.buffer.is_empty()
    }

    fn end_input<C: Collector<Envelope<T>> + ?Sized>(&mut self, out: &mut C) {
        self.hand_on(out);
    }

    /// The buffered records precede the barrier: they are handed on before it (they
    /// are not part of the snapshot, so a restore would lose them otherwise).
    fn prepare_snapshot_pre_barrier<C: Collector<Envelope<T>> + ?Sized>(
        &mut self,
        _: u64,
        out: &mut C,
    ) {
        self.hand_on(out);
    }

    /// The buffered records precede the watermark, so they go first.
    fn process_watermark<C: Collector<Envelope<T>> + ?Sized>(
        &mut self,
        watermark: Watermark,
        out: &mut C,
    ) {
        self.hand_on(out);
        out.emit_watermark(watermark);
    }
}
