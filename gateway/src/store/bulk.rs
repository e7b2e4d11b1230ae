//! Bulk inserts, thousands of rows per statement, on either backend. On
//! PostgreSQL a table takes a whole batch as one statement with one
//! parameter, the rows as a JSON array expanded by
//! `json_populate_recordset`: the statement text is fixed, so it is
//! prepared once per connection and sends no per-value type information.
//! On SQLite rows go as multi-row `VALUES` lists of anonymous `?`
//! parameters, which SQLite binds in linear time. Inserts skip keys already
//! stored, so a batch can be retried or replayed without duplicates.

use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::{Backend, StoreError};

/// Rows per statement on SQLite: with anonymous `?` parameters SQLite
/// binds in linear time, and a full statement stays well under its limit
/// of 32,766 parameters.
const SQLITE_ROWS_PER_STATEMENT: usize = 128;

/// PostgreSQL: `INSERT INTO table (columns) SELECT columns FROM` the JSON
/// array in `$1`, skipping rows whose `key` is already stored.
fn insert_json_sql(table: &str, columns: &[&str], key: &str) -> String {
    let list = columns.join(", ");
    format!(
        "INSERT INTO {table} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{table}, $1::json) \
         ON CONFLICT ({key}) DO NOTHING"
    )
}

/// SQLite: `INSERT INTO table (columns) VALUES (?, …), …` for `rows` rows,
/// skipping rows whose `key` is already stored.
fn insert_values_sql(table: &str, columns: &[&str], key: &str, rows: usize) -> String {
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    format!(
        "INSERT INTO {table} ({}) VALUES {} ON CONFLICT ({key}) DO NOTHING",
        columns.join(", "),
        vec![one; rows].join(", ")
    )
}

/// Binds one JSON value as the SQL value it stands for.
fn bind_json<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    value: Option<&serde_json::Value>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    use serde_json::Value;
    match value {
        Some(Value::String(s)) => q.bind(s.clone()),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => q.bind(i),
            None => q.bind(n.as_f64()),
        },
        Some(Value::Bool(b)) => q.bind(*b as i64),
        Some(other @ (Value::Array(_) | Value::Object(_))) => q.bind(other.to_string()),
        Some(Value::Null) | None => q.bind(None::<String>),
    }
}

/// Inserts `rows` into `table` within `conn`'s transaction, skipping rows
/// whose `key` is already stored.
pub(super) async fn insert_rows<T: Serialize>(
    backend: Backend,
    conn: &mut sqlx::AnyConnection,
    table: &str,
    columns: &[&str],
    key: &str,
    rows: &[T],
) -> Result<(), StoreError> {
    match backend {
        Backend::Postgres => {
            sqlx::query(AssertSqlSafe(insert_json_sql(table, columns, key)))
                .bind(json(rows)?)
                .execute(&mut *conn)
                .await?;
        }
        Backend::Sqlite => {
            for chunk in rows.chunks(SQLITE_ROWS_PER_STATEMENT) {
                let sql = insert_values_sql(table, columns, key, chunk.len());
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for row in chunk {
                    let row =
                        serde_json::to_value(row).map_err(|e| StoreError::Encode(e.to_string()))?;
                    for column in columns {
                        q = bind_json(q, row.get(column));
                    }
                }
                q.execute(&mut *conn).await?;
            }
        }
    }
    Ok(())
}

/// Serializes rows for one statement.
pub(super) fn json<T: Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Encode(e.to_string()))
}
