//! [`CoProcessFunction`]: a function of two non-keyed connected inputs with the
//! context of the record (its timestamp, the watermark, processing time, side
//! outputs), as Flink's `CoProcessFunction`. Like [`ProcessFunction`], it has no
//! timers: those need a key ([`KeyedCoProcessFunction`]).
//!
//! [`ProcessFunction`]: crate::process_function::ProcessFunction
//! [`KeyedCoProcessFunction`]: crate::connected_streams::KeyedCoProcessFunction

use std::marker::PhantomData;

use crate::connected_streams::{CoInput, ConnectedStreams};
use crate::datastream::DataStream;
use crate::process_function::{ProcessFunction, ProcessFunctionContext};
use crate::stream_type::Record;

/// A function of two non-keyed inputs (see [`ConnectedStreams::process`]); one
/// instance sees the records of both inputs that reach its subtask, so a field of
/// the function is shared by both (not checkpointed: keyed state needs
/// [`ConnectedStreams::key_by`]).
pub trait CoProcessFunction<A, B, O>: Clone + Send + Sync + 'static {
    /// A record of the first input.
    fn process_element1(&mut self, record: A, ctx: &mut ProcessFunctionContext<'_, O>);

    /// A record of the second input.
    fn process_element2(&mut self, record: B, ctx: &mut ProcessFunctionContext<'_, O>);
}

impl<A: Record, B: Record> ConnectedStreams<A, B> {
    /// Runs `f` on both inputs, each record with its context (Flink's non-keyed
    /// `connect(..).process(CoProcessFunction)`): the record's timestamp, the
    /// operator's watermark (the minimum of both inputs'), processing time, side
    /// outputs.
    ///
    /// ```
    /// use flink_core::prelude::*;
    /// use flink_core::co_process_function::CoProcessFunction;
    ///
    /// /// Numbers pass; words go to a side output, with their length on the main one.
    /// #[derive(Clone)]
    /// struct Split(OutputTag<String>);
    ///
    /// impl CoProcessFunction<u64, String, u64> for Split {
    ///     fn process_element1(&mut self, n: u64, ctx: &mut ProcessFunctionContext<'_, u64>) {
    ///         ctx.collect(n);
    ///     }
    ///     fn process_element2(&mut self, w: String, ctx: &mut ProcessFunctionContext<'_, u64>) {
    ///         ctx.collect(w.len() as u64);
    ///         ctx.output(&self.0, w);
    ///     }
    /// }
    ///
    /// let env = StreamExecutionEnvironment::new();
    /// let words = OutputTag::<String>::new("words");
    /// let numbers = env.from_sequence(1, 3);
    /// let text = env.from_collection(vec!["ab".to_string()]);
    /// let both = numbers.connect(&text).process(Split(words.clone()));
    /// let (main, side) = (both.collect_vec(), both.side_output(&words).collect_vec());
    /// # let _ = (main, side);
    /// ```
    pub fn process<O, F>(&self, f: F) -> DataStream<O>
    where
        O: Record,
        F: CoProcessFunction<A, B, O>,
    {
        self.tagged()
            .process_function(CoProcess {
                f,
                _inputs: PhantomData,
            })
            .name("CoProcess")
    }
}

/// Runs a [`CoProcessFunction`] as the process function of the tagged union of its
/// inputs.
struct CoProcess<F, A, B> {
    f: F,
    _inputs: PhantomData<fn(A, B)>,
}

impl<F: Clone, A, B> Clone for CoProcess<F, A, B> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            _inputs: PhantomData,
        }
    }
}

impl<A, B, O, F> ProcessFunction<CoInput<A, B>, O> for CoProcess<F, A, B>
where
    A: 'static,
    B: 'static,
    F: CoProcessFunction<A, B, O>,
{
    fn process_element(&mut self, record: CoInput<A, B>, ctx: &mut ProcessFunctionContext<'_, O>) {
        match record {
            CoInput::First(a) => self.f.process_element1(a, ctx),
            CoInput::Second(b) => self.f.process_element2(b, ctx),
        }
    }
}
