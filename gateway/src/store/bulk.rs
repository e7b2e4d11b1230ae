//! Bulk inserts, thousands of rows per statement, on either backend. On
//! PostgreSQL a table takes a whole batch as one statement with one
//! parameter, the rows as a JSON array expanded by
//! `json_populate_recordset`: the statement text is fixed, so it is
//! prepared once per connection and sends no per-value type information.
//! On SQLite rows go as multi-row `VALUES` lists of anonymous `?`
//! parameters, which SQLite binds in linear time, each row's fields bound
//! straight from its struct (a serde serializer into the query, no JSON
//! tree in between). Inserts skip keys already
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

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds a row struct's fields, in order, as one `VALUES` tuple: a serde
/// serializer straight into the query, so that a row costs no JSON tree (a
/// map with a key per column) and each text is copied once. The fields'
/// names must be `columns`, in order: checked as they are bound.
struct Binder<'c, 'q> {
    query: Option<AnyQuery<'q>>,
    columns: &'c [&'c str],
    next: usize,
}

impl<'q> Binder<'_, 'q> {
    fn bind<T>(&mut self, value: T)
    where
        T: 'q + Send + sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        self.query = self.query.take().map(|q| q.bind(value));
    }
}

/// Why a row could not be bound (a field that is not a column's value).
#[derive(Debug)]
struct BindError(String);

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BindError {}

impl serde::ser::Error for BindError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        BindError(msg.to_string())
    }
}

fn not_a_column<T>(what: &str) -> Result<T, BindError> {
    Err(BindError(format!(
        "a row is a struct of column values, not {what}"
    )))
}

type No = serde::ser::Impossible<(), BindError>;

impl<'q> serde::ser::SerializeStruct for &mut Binder<'_, 'q> {
    type Ok = ();
    type Error = BindError;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), BindError> {
        match self.columns.get(self.next) {
            Some(column) if *column == key => {}
            other => {
                return Err(BindError(format!(
                    "field `{key}` is not column {:?} of the statement",
                    other
                )));
            }
        }
        self.next += 1;
        value.serialize(Field(self))
    }

    fn end(self) -> Result<(), BindError> {
        if self.next == self.columns.len() {
            Ok(())
        } else {
            Err(BindError(format!(
                "the row has {} fields, the statement {} columns",
                self.next,
                self.columns.len()
            )))
        }
    }
}

/// The compound shapes no column takes (lists, tuples, maps, enums with
/// fields), refused the same way by the row's and the field's serializer.
macro_rules! refuse_compound {
    ($list:literal, $map:literal) => {
        fn serialize_seq(self, _: Option<usize>) -> Result<No, BindError> {
            not_a_column($list)
        }
        fn serialize_tuple(self, _: usize) -> Result<No, BindError> {
            not_a_column("a tuple")
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<No, BindError> {
            not_a_column("a tuple")
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<No, BindError> {
            not_a_column("a tuple")
        }
        fn serialize_map(self, _: Option<usize>) -> Result<No, BindError> {
            not_a_column($map)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<No, BindError> {
            not_a_column("an enum with data")
        }
    };
}

/// The row itself: a struct.
impl<'b, 'c, 'q> serde::Serializer for &'b mut Binder<'c, 'q> {
    type Ok = ();
    type Error = BindError;
    type SerializeSeq = No;
    type SerializeTuple = No;
    type SerializeTupleStruct = No;
    type SerializeTupleVariant = No;
    type SerializeMap = No;
    type SerializeStruct = Self;
    type SerializeStructVariant = No;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, BindError> {
        Ok(self)
    }
    fn serialize_bool(self, _: bool) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_i64(self, _: i64) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_u64(self, _: u64) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_f64(self, _: f64) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_str(self, _: &str) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_none(self) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_unit(self) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), BindError> {
        not_a_column("a value")
    }
    refuse_compound!("a list", "a map");
    fn serialize_i8(self, _: i8) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_i16(self, _: i16) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_i32(self, _: i32) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_u8(self, _: u8) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_u16(self, _: u16) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_u32(self, _: u32) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_f32(self, _: f32) -> Result<(), BindError> {
        not_a_column("a value")
    }
    fn serialize_char(self, _: char) -> Result<(), BindError> {
        not_a_column("a value")
    }
}

/// One field's value, bound as the SQL value it stands for (as the JSON
/// path did: integers as integers, booleans as 0 or 1, `None` as NULL).
struct Field<'b, 'c, 'q>(&'b mut Binder<'c, 'q>);

impl serde::Serializer for Field<'_, '_, '_> {
    type Ok = ();
    type Error = BindError;
    type SerializeSeq = No;
    type SerializeTuple = No;
    type SerializeTupleStruct = No;
    type SerializeTupleVariant = No;
    type SerializeMap = No;
    type SerializeStruct = No;
    type SerializeStructVariant = No;

    fn serialize_bool(self, v: bool) -> Result<(), BindError> {
        self.0.bind(v as i64);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), BindError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), BindError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), BindError> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), BindError> {
        self.0.bind(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), BindError> {
        self.serialize_i64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), BindError> {
        self.serialize_i64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), BindError> {
        self.serialize_i64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), BindError> {
        match i64::try_from(v) {
            Ok(i) => self.serialize_i64(i),
            Err(_) => self.serialize_f64(v as f64),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<(), BindError> {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result<(), BindError> {
        self.0.bind(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), BindError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), BindError> {
        self.0.bind(v.to_string());
        Ok(())
    }
    fn serialize_none(self) -> Result<(), BindError> {
        self.0.bind(None::<String>);
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), BindError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), BindError> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), BindError> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), BindError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), BindError> {
        value.serialize(self)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), BindError> {
        not_a_column("bytes")
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), BindError> {
        not_a_column("an enum with data")
    }
    refuse_compound!(
        "a list (give it as JSON text)",
        "a map (give it as JSON text)"
    );
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<No, BindError> {
        not_a_column("a struct (give it as JSON text)")
    }
}

/// Binds `row`'s fields (named `columns`, in order) onto `q`.
fn bind_row<'q, T: Serialize>(
    q: AnyQuery<'q>,
    columns: &[&str],
    row: &T,
) -> Result<AnyQuery<'q>, StoreError> {
    let mut binder = Binder {
        query: Some(q),
        columns,
        next: 0,
    };
    row.serialize(&mut binder)
        .map_err(|e| StoreError::Encode(e.to_string()))?;
    binder
        .query
        .ok_or_else(|| StoreError::Encode("the row was not bound".into()))
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
                    q = bind_row(q, columns, row)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row<'a> {
        id: &'a str,
        n: Option<u64>,
        flag: bool,
        at: f64,
    }

    #[test]
    fn a_row_binds_when_its_fields_are_the_columns_in_order() {
        let row = Row {
            id: "a",
            n: None,
            flag: true,
            at: 1.5,
        };
        let q = sqlx::query("SELECT ?");
        assert!(bind_row(q, &["id", "n", "flag", "at"], &row).is_ok());
        for wrong in [
            &["id", "flag", "n", "at"][..],
            &["id", "n", "flag"],
            &["id", "n", "flag", "at", "x"],
        ] {
            let q = sqlx::query("SELECT ?");
            let e = bind_row(q, wrong, &row).err().expect("refused");
            assert!(
                e.to_string().contains("column") || e.to_string().contains("fields"),
                "{e}"
            );
        }
    }
}
