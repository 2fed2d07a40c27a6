//! [`AggregateFunction`]: incremental aggregation with an accumulator.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Folds records into an accumulator and reads a result from it (Flink's
/// `AggregateFunction`): a window keeps one accumulator per key and window, never
/// the records.
///
/// ```
/// use flink_core::windows::AggregateFunction;
///
/// /// The average of the values.
/// #[derive(Clone)]
/// struct Average;
///
/// impl AggregateFunction<f64, f64> for Average {
///     type Acc = (f64, u64);
///     fn create_accumulator(&self) -> (f64, u64) {
///         (0.0, 0)
///     }
///     fn add(&self, value: f64, acc: &mut (f64, u64)) {
///         acc.0 += value;
///         acc.1 += 1;
///     }
///     fn get_result(&self, acc: &(f64, u64)) -> f64 {
///         acc.0 / acc.1 as f64
///     }
/// }
///
/// let mut acc = Average.create_accumulator();
/// Average.add(1.0, &mut acc);
/// Average.add(2.0, &mut acc);
/// assert_eq!(Average.get_result(&acc), 1.5);
/// ```
pub trait AggregateFunction<I, O>: Clone + Send + Sync + 'static {
    /// The running state of one aggregate (`Clone`: a checkpoint copies it at the
    /// barrier and encodes the copy later).
    type Acc: Clone + Serialize + DeserializeOwned + Send + 'static;

    /// A new, empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;

    /// Adds `value` to `acc`.
    fn add(&self, value: I, acc: &mut Self::Acc);

    /// The result of what `acc` holds.
    fn get_result(&self, acc: &Self::Acc) -> O;

    /// Whether [`merge`](Self::merge) is implemented: session windows merge
    /// accumulators, and are a build error
    /// ([`WindowError::AggregateCannotMerge`](super::WindowError::AggregateCannotMerge))
    /// with a function that cannot. Override both or neither.
    fn can_merge(&self) -> bool {
        false
    }

    /// Folds `other` into `acc` (Flink's `merge`), when session windows merge.
    fn merge(&self, _acc: &mut Self::Acc, _other: Self::Acc) {}
}
