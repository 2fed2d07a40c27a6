//! The column values a record maps to.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// One column value. Converted to the column's type when written: an [`Int`] fits
/// `smallint`, `integer`, `bigint`, `real`, `double precision` (or text), a [`Float`]
/// `real` or `double precision`, a [`Text`] any text type, a [`Json`] `json` or
/// `jsonb`. A value that does not fit its column (an `Int` beyond `integer`'s range,
/// say) fails that row, which becomes a dead letter.
///
/// [`Int`]: SqlValue::Int
/// [`Float`]: SqlValue::Float
/// [`Text`]: SqlValue::Text
/// [`Json`]: SqlValue::Json
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL `NULL`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Text(String),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `json` / `jsonb`.
    Json(serde_json::Value),
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for SqlValue {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}
impl From<u32> for SqlValue {
    fn from(v: u32) -> Self {
        Self::Int(v.into())
    }
}
impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}
impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_string())
    }
}
impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}
impl From<serde_json::Value> for SqlValue {
    fn from(v: serde_json::Value) -> Self {
        Self::Json(v)
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

type BoxError = Box<dyn Error + Sync + Send>;

fn does_not_fit(value: &dyn std::fmt::Display, ty: &Type) -> BoxError {
    format!("value {value} does not fit column type {ty}").into()
}

impl ToSql for SqlValue {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Bool(b) => b.to_sql_checked(ty, out),
            Self::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)
                    .map_err(|_| does_not_fit(i, ty))?
                    .to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)
                    .map_err(|_| does_not_fit(i, ty))?
                    .to_sql(ty, out),
                Type::INT8 => i.to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_string().to_sql_checked(ty, out),
            },
            Self::Float(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql_checked(ty, out),
            },
            Self::Text(s) => s.to_sql_checked(ty, out),
            Self::Bytes(b) => b.to_sql_checked(ty, out),
            Self::Json(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl SqlValue {
    /// A stable text form, to compare upsert keys within a batch.
    pub(crate) fn key_text(&self) -> String {
        format!("{self:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_range_checked_against_the_column_type() {
        let mut buf = BytesMut::new();
        assert!(SqlValue::Int(70_000).to_sql(&Type::INT4, &mut buf).is_ok());
        let Err(err) = SqlValue::Int(70_000).to_sql(&Type::INT2, &mut buf) else {
            panic!("70,000 fitted a smallint");
        };
        assert_eq!(err.to_string(), "value 70000 does not fit column type int2");
        assert!(
            SqlValue::Text("x".into())
                .to_sql(&Type::INT4, &mut buf)
                .is_err()
        );
        assert!(matches!(
            SqlValue::Null.to_sql(&Type::INT4, &mut buf),
            Ok(IsNull::Yes)
        ));
        assert_eq!(SqlValue::from(Option::<i64>::None), SqlValue::Null);
    }
}
