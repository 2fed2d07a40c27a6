//! State descriptors: the name, type and options of a named keyed state (Flink's
//! `ValueStateDescriptor`, `ListStateDescriptor`, ...). A function keeps its
//! descriptors (they are cheap to clone) and asks its context for the current key's
//! state with them; the name identifies the state in checkpoints, so it must stay
//! the same across versions of a job for a savepoint to restore.

use std::marker::PhantomData;
use std::sync::Arc;

use super::ttl::StateTtlConfig;
use crate::windows::AggregateFunction;

/// The name and options every descriptor has.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub(crate) name: Arc<str>,
    pub(crate) ttl: Option<StateTtlConfig>,
}

impl Common {
    fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            ttl: None,
        }
    }
}

macro_rules! descriptor_common {
    ($desc:ident < $($t:ident),* >) => {
        impl<$($t),*> $desc<$($t),*> {
            /// The state's name.
            pub fn name(&self) -> &str {
                &self.common.name
            }

            /// Gives the state's values a time-to-live (Flink's `enableTimeToLive`).
            pub fn with_ttl(mut self, ttl: StateTtlConfig) -> Self {
                self.common.ttl = Some(ttl);
                self
            }

            /// The state's time-to-live, if any.
            pub fn ttl(&self) -> Option<&StateTtlConfig> {
                self.common.ttl.as_ref()
            }
        }
    };
}

/// A named state holding one value per key; read it with
/// [`KeyedContext::get_state`](crate::keyed_process_function::KeyedContext::get_state).
///
/// ```
/// use flink_core::state::ValueStateDescriptor;
/// let last = ValueStateDescriptor::<String>::new("last");
/// assert_eq!(last.name(), "last");
/// ```
#[derive(Debug)]
pub struct ValueStateDescriptor<T> {
    pub(crate) common: Common,
    _type: PhantomData<fn() -> T>,
}

impl<T> ValueStateDescriptor<T> {
    /// A value state called `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            common: Common::new(name),
            _type: PhantomData,
        }
    }
}

impl<T> Clone for ValueStateDescriptor<T> {
    fn clone(&self) -> Self {
        Self {
            common: self.common.clone(),
            _type: PhantomData,
        }
    }
}

descriptor_common!(ValueStateDescriptor<T>);

/// A named state holding a list per key; read it with
/// [`KeyedContext::get_list_state`](crate::keyed_process_function::KeyedContext::get_list_state).
///
/// ```
/// use flink_core::state::ListStateDescriptor;
/// let pending = ListStateDescriptor::<(u64, String)>::new("pending");
/// # let _ = pending;
/// ```
#[derive(Debug)]
pub struct ListStateDescriptor<T> {
    pub(crate) common: Common,
    _type: PhantomData<fn() -> T>,
}

impl<T> ListStateDescriptor<T> {
    /// A list state called `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            common: Common::new(name),
            _type: PhantomData,
        }
    }
}

impl<T> Clone for ListStateDescriptor<T> {
    fn clone(&self) -> Self {
        Self {
            common: self.common.clone(),
            _type: PhantomData,
        }
    }
}

descriptor_common!(ListStateDescriptor<T>);

/// A named state holding a map per key (Flink's `MapState`); read it with
/// [`KeyedContext::get_map_state`](crate::keyed_process_function::KeyedContext::get_map_state).
///
/// ```
/// use flink_core::state::MapStateDescriptor;
/// let by_item = MapStateDescriptor::<String, u64>::new("count-by-item");
/// # let _ = by_item;
/// ```
#[derive(Debug)]
pub struct MapStateDescriptor<UK, UV> {
    pub(crate) common: Common,
    _type: PhantomData<fn() -> (UK, UV)>,
}

impl<UK, UV> MapStateDescriptor<UK, UV> {
    /// A map state called `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            common: Common::new(name),
            _type: PhantomData,
        }
    }
}

impl<UK, UV> Clone for MapStateDescriptor<UK, UV> {
    fn clone(&self) -> Self {
        Self {
            common: self.common.clone(),
            _type: PhantomData,
        }
    }
}

descriptor_common!(MapStateDescriptor<UK, UV>);

/// The reduce function of a [`ReducingStateDescriptor`].
pub(crate) type ReduceFn<T> = Arc<dyn Fn(T, T) -> T + Send + Sync>;

/// A named state that folds every added value into one per key with a reduce
/// function; read it with
/// [`KeyedContext::get_reducing_state`](crate::keyed_process_function::KeyedContext::get_reducing_state).
///
/// ```
/// use flink_core::state::ReducingStateDescriptor;
/// let largest = ReducingStateDescriptor::new("largest", |a: u64, b: u64| a.max(b));
/// # let _ = largest;
/// ```
pub struct ReducingStateDescriptor<T> {
    pub(crate) common: Common,
    pub(crate) reduce: ReduceFn<T>,
}

impl<T> ReducingStateDescriptor<T> {
    /// A reducing state called `name`, combining values with `reduce`.
    pub fn new(
        name: impl Into<Arc<str>>,
        reduce: impl Fn(T, T) -> T + Send + Sync + 'static,
    ) -> Self {
        Self {
            common: Common::new(name),
            reduce: Arc::new(reduce),
        }
    }
}

impl<T> Clone for ReducingStateDescriptor<T> {
    fn clone(&self) -> Self {
        Self {
            common: self.common.clone(),
            reduce: self.reduce.clone(),
        }
    }
}

impl<T> std::fmt::Debug for ReducingStateDescriptor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReducingStateDescriptor")
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

descriptor_common!(ReducingStateDescriptor<T>);

/// A named state that adds values into one accumulator per key with an
/// [`AggregateFunction`] and reads its result; read it with
/// [`KeyedContext::get_aggregating_state`](crate::keyed_process_function::KeyedContext::get_aggregating_state).
///
/// ```
/// use flink_core::state::AggregatingStateDescriptor;
/// use flink_core::windows::AggregateFunction;
///
/// #[derive(Clone)]
/// struct Mean;
/// impl AggregateFunction<f64, f64> for Mean {
///     type Acc = (f64, u64);
///     fn create_accumulator(&self) -> (f64, u64) { (0.0, 0) }
///     fn add(&self, v: f64, acc: &mut (f64, u64)) { acc.0 += v; acc.1 += 1; }
///     fn get_result(&self, acc: &(f64, u64)) -> f64 { acc.0 / acc.1 as f64 }
/// }
///
/// let mean = AggregatingStateDescriptor::new("mean", Mean);
/// # let _ = mean;
/// ```
pub struct AggregatingStateDescriptor<I, O, F> {
    pub(crate) common: Common,
    pub(crate) function: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O, F: AggregateFunction<I, O>> AggregatingStateDescriptor<I, O, F> {
    /// An aggregating state called `name`, adding values with `function`.
    pub fn new(name: impl Into<Arc<str>>, function: F) -> Self {
        Self {
            common: Common::new(name),
            function,
            _types: PhantomData,
        }
    }
}

impl<I, O, F: Clone> Clone for AggregatingStateDescriptor<I, O, F> {
    fn clone(&self) -> Self {
        Self {
            common: self.common.clone(),
            function: self.function.clone(),
            _types: PhantomData,
        }
    }
}

impl<I, O, F> std::fmt::Debug for AggregatingStateDescriptor<I, O, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatingStateDescriptor")
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

descriptor_common!(AggregatingStateDescriptor<I, O, F>);
