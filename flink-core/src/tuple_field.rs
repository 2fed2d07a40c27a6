//! [`TupleField`]: a field of a tuple by its position, so that the keyed
//! aggregations take a position as Flink's `sum(1)` does
//! ([`KeyedStream::sum_at`](crate::keyed_stream::KeyedStream::sum_at) and its
//! siblings) instead of a field-accessor closure.

/// The field at position `I` of a tuple (tuples of up to six fields).
///
/// ```
/// use flink_core::tuple_field::TupleField;
///
/// let mut pair = ("apples".to_string(), 3u64);
/// *TupleField::<1>::field_mut(&mut pair) += 2;
/// assert_eq!(*TupleField::<1>::field(&pair), 5);
/// ```
pub trait TupleField<const I: usize> {
    /// The field's type.
    type Value;

    /// The field.
    fn field(&self) -> &Self::Value;

    /// The field, to change it.
    fn field_mut(&mut self) -> &mut Self::Value;
}

/// `TupleField<i>` for the tuple `(T0, .., Tn)` and every listed position.
macro_rules! tuple_fields {
    ( $types:tt : $( $index:tt => $ty:ident ),+ ) => {
        $( tuple_field!($types, $index, $ty); )+
    };
}

/// `TupleField<index>` of the tuple of `types`, whose field there is a `ty`.
macro_rules! tuple_field {
    ( ($($types:ident),+), $index:tt, $ty:ident ) => {
        impl<$($types),+> TupleField<$index> for ($($types,)+) {
            type Value = $ty;

            #[inline]
            fn field(&self) -> &$ty {
                &self.$index
            }

            #[inline]
            fn field_mut(&mut self) -> &mut $ty {
                &mut self.$index
            }
        }
    };
}

tuple_fields!((T0): 0 => T0);
tuple_fields!((T0, T1): 0 => T0, 1 => T1);
tuple_fields!((T0, T1, T2): 0 => T0, 1 => T1, 2 => T2);
tuple_fields!((T0, T1, T2, T3): 0 => T0, 1 => T1, 2 => T2, 3 => T3);
tuple_fields!((T0, T1, T2, T3, T4): 0 => T0, 1 => T1, 2 => T2, 3 => T3, 4 => T4);
tuple_fields!((T0, T1, T2, T3, T4, T5): 0 => T0, 1 => T1, 2 => T2, 3 => T3, 4 => T4, 5 => T5);
