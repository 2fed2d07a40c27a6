//! The orders table of the PostgreSQL sink tests: its record type, its schema (with
//! a primary key and a check constraint, so that duplicates and refused rows show)
//! and the sink configuration writing it.

use flink_connectors::postgres::{PostgresConfig, SqlValue};
use serde::{Deserialize, Serialize};

use super::pg::exec;

/// A row of the orders table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub name: String,
    pub amount: i64,
}

/// The valid order `id` (name `o{id}`, amount `id % 1000`).
pub fn order(id: i64) -> Order {
    Order {
        id,
        name: format!("o{id}"),
        amount: id % 1000,
    }
}

/// Orders `1..=n`.
pub fn orders(n: i64) -> Vec<Order> {
    (1..=n).map(order).collect()
}

/// Writes orders into `table` at `url`.
pub fn order_config(url: &str, table: &str) -> PostgresConfig<Order> {
    PostgresConfig::new(url, table, ["id", "name", "amount"], |o: &Order| {
        vec![
            SqlValue::Int(o.id),
            SqlValue::from(o.name.as_str()),
            SqlValue::Int(o.amount),
        ]
    })
}

/// Creates the orders table `table`: the id is the primary key, the name at most 12
/// characters, the amount not negative.
pub fn create_orders(url: &str, table: &str) {
    exec(
        url,
        &format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, name varchar(12) NOT NULL, \
             amount integer NOT NULL CHECK (amount >= 0))"
        ),
    );
}
