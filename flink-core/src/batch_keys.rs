//! [`Keys`]: a keyed stream's key selector, callable per record and per batch.

use std::sync::Arc;

use crate::functions::KeySelector;
use crate::keyed_stream::KeyFn;
use crate::timestamped::Timestamped;

/// Appends the key of each record of a batch to a vector, in order.
pub type BatchKeyFn<T, K> = Arc<dyn Fn(&[T], &mut Vec<K>) + Send + Sync>;

/// The key selector of a keyed stream behind dynamic entry points: one key, or
/// the keys of a whole batch (of bare or of timestamped records) in one call with
/// the user's selector inlined in its loop. Keyed operators that work per batch
/// take a batch entry point, so that extracting a key costs no dynamic call per
/// record; the user's selector keeps its own type only where
/// [`KeyedStream`](crate::keyed_stream::KeyedStream) was built.
pub struct Keys<T, K> {
    one: KeyFn<T, K>,
    batch: BatchKeyFn<T, K>,
    /// The batch entry point for records with their timestamps.
    stamped: BatchKeyFn<Timestamped<T>, K>,
}

impl<T, K> Keys<T, K> {
    /// Both entry points of `selector`.
    pub fn new<F>(selector: F) -> Self
    where
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        Self::shared(Arc::new(selector))
    }

    /// Both entry points of a selector already shared (its own type, not yet a
    /// [`KeyFn`], so that the batch loop inlines it).
    pub fn shared<F>(selector: Arc<F>) -> Self
    where
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let (each, each_stamped) = (selector.clone(), selector.clone());
        Self {
            one: selector,
            batch: Arc::new(move |records: &[T], keys: &mut Vec<K>| {
                keys.extend(records.iter().map(|r| each(r)));
            }),
            stamped: Arc::new(move |records: &[Timestamped<T>], keys: &mut Vec<K>| {
                keys.extend(records.iter().map(|r| each_stamped(&r.value)));
            }),
        }
    }

    /// The per-record entry point.
    pub fn one(&self) -> KeyFn<T, K> {
        self.one.clone()
    }
}

impl<T, K> Clone for Keys<T, K> {
    fn clone(&self) -> Self {
        Self {
            one: self.one.clone(),
            batch: self.batch.clone(),
            stamped: self.stamped.clone(),
        }
    }
}

impl<T: 'static, K: 'static> KeySelector<T, K> for Keys<T, K> {
    #[inline]
    fn key(&self, value: &T) -> K {
        (self.one)(value)
    }

    #[inline]
    fn keys(&self, records: &[T], keys: &mut Vec<K>) {
        (self.batch)(records, keys);
    }

    #[inline]
    fn keys_of_stamped(&self, records: &[Timestamped<T>], keys: &mut Vec<K>) {
        (self.stamped)(records, keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_entry_points_give_the_selectors_keys() {
        let keys = Keys::new(|r: &(u32, &'static str)| r.0 % 3);
        let records = [(1, "a"), (5, "b"), (9, "c")];
        let mut batch = vec![7];
        keys.keys(&records, &mut batch);
        assert_eq!(batch, vec![7, 1, 2, 0], "appended in order");
        let one: Vec<u32> = records.iter().map(|r| keys.key(r)).collect();
        assert_eq!(one, batch[1..]);
        let stamped: Vec<_> = records
            .iter()
            .zip(1..)
            .map(|(&value, timestamp)| Timestamped { timestamp, value })
            .collect();
        let mut of_stamped = Vec::new();
        keys.keys_of_stamped(&stamped, &mut of_stamped);
        assert_eq!(of_stamped, one);
    }
}
