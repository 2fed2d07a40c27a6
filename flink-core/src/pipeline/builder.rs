use std::sync::Arc;

use crate::async_io::AsyncFunction;
use crate::datastream::DataStream;
use crate::dead_letter::DeadLetter;
use crate::destination::AckDestination;
use crate::stream_type::Record;

use super::config::{PipelineConfig, PipelineConfigError};
use super::egress::{EgressOperator, FinalSinkOperator, OnPayload, SendTo};
use super::envelope::Envelope;
use super::gateway::GatewayOperator;
use super::ingress::{IngressOperator, Preprocessor, Validator};
use super::key_gen::{KeyFn, KeyGenOperator};
use super::state::PipelineState;

/// A pipeline applied in a job: its shared state and configuration, recorded in the
/// job's graph ([`StreamGraph::pipelines`](crate::graph::StreamGraph::pipelines)) so
/// the runtime can report its status (the REST API's `/jobs/{id}/pipelines`).
#[derive(Clone)]
pub struct PipelineHandle {
    /// The state its stages share.
    pub state: Arc<PipelineState>,
    /// Its configuration.
    pub config: PipelineConfig,
    /// The stream node id of its Gateway operator.
    pub gateway: usize,
}

/// A validated five-stage pipeline from records `T` to results `O`, ready to be
/// applied to a stream with [`DataStream::apply_pipeline`].
pub struct FiveStagePipeline<T, O> {
    config: PipelineConfig,
    key: KeyFn<T>,
    validate: Option<Validator<T>>,
    preprocess: Option<Preprocessor<T>>,
    call: Arc<OnPayload<T, O>>,
    destination: Arc<SendTo<O>>,
}

/// Collects the parts of a [`FiveStagePipeline`].
pub struct FiveStagePipelineBuilder<T, O> {
    config: PipelineConfig,
    key: Option<KeyFn<T>>,
    validate: Option<Validator<T>>,
    preprocess: Option<Preprocessor<T>>,
    call: Option<Arc<dyn AsyncFunction<T, O>>>,
    destination: Option<Arc<dyn AckDestination<O>>>,
}

/// What applying the pipeline gives back.
pub struct PipelineStreams<T, O> {
    /// One receipt per acknowledged record.
    pub delivered: DataStream<Envelope<O>>,
    /// Records rejected by IngressProcessing or failed by AsyncEgressProcessing.
    pub dead_letters: DataStream<DeadLetter<Envelope<T>>>,
    /// Records the destination did not acknowledge in time, after retries.
    pub undelivered: DataStream<DeadLetter<Envelope<O>>>,
    /// Live signals shared by the stages (for a controller or monitor).
    pub state: Arc<PipelineState>,
    /// The configuration it was built with.
    pub config: PipelineConfig,
}

fn missing(field: &'static str) -> PipelineConfigError {
    PipelineConfigError {
        field,
        problem: "is required".into(),
    }
}

impl<T: Record, O: Record> FiveStagePipeline<T, O> {
    /// A builder with the default configuration.
    pub fn builder() -> FiveStagePipelineBuilder<T, O> {
        FiveStagePipelineBuilder {
            config: PipelineConfig::default(),
            key: None,
            validate: None,
            preprocess: None,
            call: None,
            destination: None,
        }
    }
}

impl<T: Record, O: Record> FiveStagePipelineBuilder<T, O> {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: PipelineConfig) -> Self {
        self.config = config;
        self
    }

    /// Changes the configuration in place.
    pub fn configure(mut self, f: impl FnOnce(&mut PipelineConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// How KeyGen derives a record's key (required).
    pub fn key(mut self, f: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(f));
        self
    }

    /// IngressProcessing's validation: `Err(reason)` dead-letters the record.
    pub fn validate(
        mut self,
        f: impl Fn(&T) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.validate = Some(Arc::new(f));
        self
    }

    /// IngressProcessing's preprocessing: `Err(reason)` dead-letters the record.
    pub fn preprocess(
        mut self,
        f: impl Fn(&T) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        self.preprocess = Some(Arc::new(f));
        self
    }

    /// AsyncEgressProcessing's external call (required).
    pub fn call(mut self, f: impl AsyncFunction<T, O>) -> Self {
        self.call = Some(Arc::new(f));
        self
    }

    /// FinalSink's acknowledging destination (required).
    pub fn destination(mut self, d: impl AckDestination<O>) -> Self {
        self.destination = Some(Arc::new(d));
        self
    }

    /// Validates everything; a missing part or bad value is a typed error.
    pub fn build(self) -> Result<FiveStagePipeline<T, O>, PipelineConfigError> {
        self.config.validate()?;
        Ok(FiveStagePipeline {
            config: self.config,
            key: self.key.ok_or_else(|| missing("key"))?,
            validate: self.validate,
            preprocess: self.preprocess,
            call: Arc::new(OnPayload(self.call.ok_or_else(|| missing("call"))?)),
            destination: Arc::new(SendTo(
                self.destination.ok_or_else(|| missing("destination"))?,
            )),
        })
    }
}

impl<T: Record> DataStream<T> {
    /// Runs this stream through a [`FiveStagePipeline`]: five named operators, the
    /// first two chained to the input, then a hash exchange by partition, then the
    /// last three chained.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// use flink_core::pipeline::FiveStagePipeline;
    ///
    /// struct Accept;
    /// impl AckDestination<u64> for Accept {
    ///     fn send(&self, _: u64) -> futures::future::BoxFuture<'static, Result<(), DeliveryError>> {
    ///         Box::pin(async { Ok(()) })
    ///     }
    /// }
    /// let pipeline = FiveStagePipeline::<u64, u64>::builder()
    ///     .key(|x| (x % 10).to_string())
    ///     .validate(|x| if *x > 0 { Ok(()) } else { Err("zero".into()) })
    ///     .call(|x: u64| async move { Ok::<u64, String>(x * 2) })
    ///     .destination(Accept)
    ///     .build()
    ///     .unwrap();
    /// let env = StreamExecutionEnvironment::new();
    /// let out = env.from_sequence(0, 100).apply_pipeline(&pipeline);
    /// let delivered = out.delivered.collect_vec();
    /// let rejected = out.dead_letters.collect_vec();
    /// let undelivered = out.undelivered.collect_vec();
    /// let names: Vec<String> = env.stream_graph().unwrap().nodes.iter().map(|n| n.name.clone()).collect();
    /// assert_eq!(&names[1..6], ["Gateway", "KeyGen", "IngressProcessing", "AsyncEgressProcessing", "FinalSink"]);
    /// # let _ = (delivered, rejected, undelivered);
    /// ```
    pub fn apply_pipeline<O: Record>(&self, p: &FiveStagePipeline<T, O>) -> PipelineStreams<T, O> {
        let state = PipelineState::new();
        let c = p.config.clone();
        let (gw_cfg, thresholds, st) = (c.gateway.clone(), c.thresholds, state.clone());
        let gateway = self.transform("Gateway", move |ctx| {
            GatewayOperator::new(gw_cfg.clone(), thresholds, st.clone(), ctx)
                .storing_queue_in_snapshots()
        });
        let gateway_node = gateway.inputs[0].node;
        let (key, kg_cfg) = (p.key.clone(), c.key_gen.clone());
        let key_gen = gateway.transform("KeyGen", move |ctx| {
            KeyGenOperator::new(key.clone(), kg_cfg.clone(), ctx)
        });
        let (validate, preprocess, in_cfg, st) = (
            p.validate.clone(),
            p.preprocess.clone(),
            c.ingress.clone(),
            state.clone(),
        );
        let ingress = key_gen
            .key_by(|e: &Envelope<T>| e.partition)
            .partitioned()
            .transform("IngressProcessing", move |ctx| {
                IngressOperator::new(
                    validate.clone(),
                    preprocess.clone(),
                    in_cfg.clone(),
                    &st,
                    ctx,
                )
            });
        let (call, eg_cfg, st) = (p.call.clone(), c.egress.clone(), state.clone());
        let egress = ingress.transform("AsyncEgressProcessing", move |ctx| {
            EgressOperator::new(call.clone(), &eg_cfg, &st, ctx).storing_queue_in_snapshots()
        });
        let (dest, fs_cfg, gw_cfg, st) = (
            p.destination.clone(),
            c.final_sink.clone(),
            c.gateway.clone(),
            state.clone(),
        );
        let final_sink = egress.transform("FinalSink", move |ctx| {
            FinalSinkOperator::new(dest.clone(), &fs_cfg, &gw_cfg, st.clone(), ctx)
                .storing_queue_in_snapshots()
        });
        let dead_letters = ingress
            .dead_letters::<Envelope<T>>()
            .union(&[egress.dead_letters::<Envelope<T>>()]);
        self.env()
            .inner
            .borrow_mut()
            .pipelines
            .push(PipelineHandle {
                state: state.clone(),
                config: p.config.clone(),
                gateway: gateway_node,
            });
        PipelineStreams {
            undelivered: final_sink.dead_letters::<Envelope<O>>(),
            delivered: final_sink,
            dead_letters,
            state,
            config: p.config.clone(),
        }
    }
}
