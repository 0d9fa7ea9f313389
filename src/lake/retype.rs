//! Silver and history following the source's DDL beyond added columns, by
//! `[lake] schema_changes` (per table overridable):
//! - a column whose MySQL type changed to one with another Delta type (INT → BIGINT when ids
//!   run out, DECIMAL(10,2) → DECIMAL(14,2), FLOAT → DOUBLE, DATE → DATETIME, INT → VARCHAR,
//!   ...) is cast to its new type; `lenient` never narrows (the table keeps the wider type and
//!   new values are written in it, see [`super::types::typed_columns`]);
//! - a renamed column (RENAME / CHANGE COLUMN, known from the column's earlier names) keeps its
//!   values under the new name (`evolve`);
//! - a dropped column stays in silver and history, null in rows written after the drop, under
//!   every policy but `stop`, which stops on it: the lake sees only successive schemas, and a
//!   column gone from one may have been renamed by a statement binlake did not see (it started
//!   after it), so dropping it could lose values the source still has;
//! - a changed primary key (`DROP PRIMARY KEY, ADD PRIMARY KEY (a, b)`) re-keys both; a
//!   dropped one (with no unique key to take its place) makes the table a multiset keyed by
//!   row ids ([`super::multiset`]), and a key given to such a table drops its row ids;
//! - `stop` stops the table on any of these, naming the change and the recovery.
//!
//! Each table is rewritten from its own rows in one Delta commit that carries the table's
//! exactly-once state (with the new key), so a reader sees the old table or the new one, and a
//! crash before the commit leaves the old one to be rewritten again. A new key needs no data
//! change: silver holds the server's current rows, which the server keeps unique under it.
//! binlake rewrites rather than turning on Delta's `typeWidening` feature, which Microsoft
//! Fabric's SQL endpoint and older readers cannot read, and which covers only widening.
//!
//! The server converts its rows itself, with no row event, so the cast must give what the
//! server gave. DataFusion's casts match MySQL's for widening (integers, FLOAT → DOUBLE,
//! DECIMAL precision and scale up, DATE → DATETIME at midnight) and for numbers to text; a
//! value that does not convert (text that is no number) stops the table, naming the column.

use std::sync::Arc;

use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::{cast, col, lit, when, SessionContext};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::protocol::SaveMode;

use super::change::LakeChange;
use super::config::{Readers, SchemaChanges};
use super::layer::{quote, Layer};
use super::layout::{
    CDC_POSITION, CDC_PREFIX, END_AT, END_POSITION, ROW_ID, START_AT, START_POSITION,
};
use super::types::{holds_as_is, lake_type};
use super::LakeError;
use crate::event::TableSchema;

/// What a table must go through to follow `schema`.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// (name, type held, new type).
    casts: Vec<(String, DataType, DataType)>,
    /// (old name, new name).
    renames: Vec<(String, String)>,
    drops: Vec<String>,
    rekey: bool,
}

impl Plan {
    fn is_empty(&self) -> bool {
        self.casts.is_empty() && self.renames.is_empty() && self.drops.is_empty() && !self.rekey
    }

    fn describe(&self, held_key: &[String], key: &[String]) -> String {
        let mut what: Vec<String> = self
            .casts
            .iter()
            .map(|(n, old, new)| format!("{n} {old} → {new}"))
            .collect();
        what.extend(self.renames.iter().map(|(o, n)| format!("{o} renamed {n}")));
        what.extend(self.drops.iter().map(|d| format!("{d} dropped")));
        if self.rekey {
            what.push(format!(
                "primary key ({}) → ({})",
                held_key.join(", "),
                key.join(", ")
            ));
        }
        what.join(", ")
    }
}

/// Whether a column of type `held` takes every value of type `new` unchanged (so keeping it
/// never narrows the column).
fn holds(held: &DataType, new: &DataType) -> bool {
    use DataType as T;
    let rank = |t: &DataType| match t {
        T::Int8 => Some((1, true)),
        T::Int16 => Some((2, true)),
        T::Int32 => Some((4, true)),
        T::Int64 => Some((8, true)),
        T::UInt8 => Some((1, false)),
        T::UInt16 => Some((2, false)),
        T::UInt32 => Some((4, false)),
        T::UInt64 => Some((8, false)),
        _ => None,
    };
    match (held, new) {
        _ if held == new => true,
        (T::Utf8 | T::LargeUtf8, _) => true,
        (T::Float64, T::Float32) => true,
        (T::Timestamp(..), T::Date32) => true,
        (T::Decimal128(p1, s1), T::Decimal128(p2, s2)) => {
            s1 >= s2 && (*p1 as i16 - *s1 as i16) >= (*p2 as i16 - *s2 as i16)
        }
        _ => match (rank(held), rank(new)) {
            (Some((a, sa)), Some((b, sb))) => (sa == sb && a >= b) || (sa && !sb && a > b),
            _ => false,
        },
    }
}

/// Compares the table with `schema` under `policy`.
fn plan(
    layer: &Layer,
    schema: &TableSchema,
    key: &[String],
    policy: SchemaChanges,
    readers: Readers,
) -> Plan {
    let Some(existing) = layer.arrow_schema() else {
        return Plan::default();
    };
    let is_data = |name: &str| {
        !name.starts_with(CDC_PREFIX)
            && ![START_AT, END_AT, START_POSITION, END_POSITION].contains(&name)
    };
    let declared = |name: &str| schema.columns.iter().any(|c| c.name == name);
    let mut out = Plan {
        rekey: !layer.state.key.is_empty() && layer.state.key != key,
        ..Plan::default()
    };
    for c in &schema.columns {
        let new = lake_type(c, readers);
        match existing.field_with_name(&c.name) {
            Ok(f) if !holds_as_is(f.data_type(), c, readers) => {
                if policy != SchemaChanges::Lenient || !holds(f.data_type(), &new) {
                    out.casts.push((c.name.clone(), f.data_type().clone(), new));
                }
            }
            Ok(_) => {}
            Err(_) if policy != SchemaChanges::Lenient => {
                // The newest earlier name the table still holds, and the source does not.
                if let Some(old) = c
                    .renamed_from
                    .iter()
                    .rev()
                    .find(|o| existing.field_with_name(o).is_ok() && !declared(o))
                {
                    out.renames.push((old.clone(), c.name.clone()));
                }
            }
            Err(_) => {}
        }
    }
    if policy == SchemaChanges::Stop {
        for f in existing.fields() {
            let name = f.name();
            if is_data(name) && !declared(name) {
                out.drops.push(name.clone());
            }
        }
    }
    out
}

/// Brings the table to `schema` under `policy` (see the module doc).
///
/// `first` is the first change under `schema`: a table keyed again after being a multiset
/// closes its history's open versions at it.
pub(super) async fn follow_schema(
    layer: &mut Layer,
    schema: &TableSchema,
    key: &[String],
    policy: SchemaChanges,
    readers: Readers,
    first: &LakeChange,
) -> Result<(), LakeError> {
    let plan = plan(layer, schema, key, policy, readers);
    if plan.is_empty() {
        return Ok(());
    }
    let what = plan.describe(&layer.state.key, key);
    if policy == SchemaChanges::Stop {
        return Err(LakeError::Value {
            table: schema.id.to_string(),
            column: plan
                .casts
                .iter()
                .map(|(n, _, _)| n.clone())
                .chain(plan.renames.iter().map(|(o, _)| o.clone()))
                .chain(plan.drops.iter().cloned())
                .chain(plan.rekey.then(|| layer.state.key.join(", ")))
                .collect::<Vec<_>>()
                .join(", "),
            reason: format!(
                "schema_changes = \"stop\" for this table, and its DDL changed: {what}. Recover: set [lake] table_schema_changes = {{ \"{}\" = \"evolve\" }} and restart, or stop binlake, move {} (and its __history) aside and re-snapshot the table",
                schema.id, layer.path
            ),
        });
    }
    let existing = layer.arrow_schema().expect("a planned table exists");
    let started = std::time::Instant::now();
    let table = layer.table.as_ref().expect("a layer keeps its table");
    let provider = table
        .table_provider()
        .await
        .map_err(|e| layer_err(layer, e.to_string()))?;
    // Delta's session: its planner runs the write plan below.
    let ctx = SessionContext::new_with_state(
        deltalake::delta_datafusion::DeltaSessionContext::new().state(),
    );
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| layer_err(layer, e.to_string()))?;
    ctx.register_table("t", provider)
        .map_err(|e| layer_err(layer, e.to_string()))?;
    let df = ctx
        .table("t")
        .await
        .map_err(|e| layer_err(layer, e.to_string()))?;
    let target_type = |name: &str, held: &DataType| {
        plan.casts
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, new)| new.clone())
            .unwrap_or_else(|| held.clone())
    };
    let mut columns = Vec::new();
    let row_ids = key == [ROW_ID];
    // A multiset given a key on columns it holds is re-keyed from its own rows (the server
    // keeps them unique under the key). Given one on a column it does not hold (one added
    // with AUTO_INCREMENT, filled by the server without row events), its rows cannot be keyed
    // from themselves: silver is emptied, history's open versions closed, and the snapshot the
    // source takes of such a table (see the schema tracker) fills them again by the new key.
    let keyed_again = layer.state.key == [ROW_ID]
        && !row_ids
        && key.iter().any(|k| existing.field_with_name(k).is_err());
    let history = layer.path.ends_with("__history");
    for f in existing.fields() {
        let name = f.name();
        // A table keyed again by columns no longer needs the row ids of its keyless days.
        if plan.drops.contains(name) || (name == ROW_ID && !row_ids) {
            continue;
        }
        if keyed_again && history && (name == END_AT || name == END_POSITION) {
            let end = if name == END_AT {
                lit(ScalarValue::TimestampMicrosecond(
                    Some(first.ts_ms * 1000),
                    Some(Arc::from("UTC")),
                ))
            } else {
                lit(first.order.clone())
            };
            // CASE rather than COALESCE: the column stays nullable (the versions opened
            // later are open).
            let closed = when(col(quote(name)).is_null(), end)
                .otherwise(col(quote(name)))
                .map_err(|e| layer_err(layer, e.to_string()))?;
            columns.push(closed.alias(name));
            continue;
        }
        let (out_name, out_type) = match plan.renames.iter().find(|(o, _)| o == name) {
            Some((_, new)) => {
                let declared = schema.columns.iter().find(|c| &c.name == new);
                (
                    new.clone(),
                    declared.map_or(f.data_type().clone(), |c| lake_type(c, readers)),
                )
            }
            None => (name.clone(), target_type(name, f.data_type())),
        };
        let expr = col(quote(name));
        columns.push(if out_type != *f.data_type() {
            cast(expr, out_type).alias(&out_name)
        } else {
            expr.alias(&out_name)
        });
    }
    if row_ids && existing.field_with_name(ROW_ID).is_err() {
        // A table whose key was dropped becomes a multiset: each row's id is the order key of
        // the change that wrote it, as it would have been had the table never had a key.
        let written_by = if history {
            START_POSITION
        } else {
            CDC_POSITION
        };
        columns.push(col(written_by).alias(ROW_ID));
    }
    let mut df = df
        .select(columns)
        .map_err(|e| layer_err(layer, e.to_string()))?;
    if keyed_again && !history {
        df = df
            .filter(lit(false))
            .map_err(|e| layer_err(layer, e.to_string()))?;
    } else if plan.rekey && !keyed_again {
        // Files in the new key's order keep key lookups cheap; this sort holds the table in
        // memory, which only a key change pays.
        let mut order: Vec<_> = key.iter().map(|k| col(quote(k)).sort(true, true)).collect();
        if history {
            order.push(col(START_POSITION).sort(true, true));
        }
        df = df
            .sort(order)
            .map_err(|e| layer_err(layer, e.to_string()))?;
    }
    let state = layer.state.clone().with_key(key);
    let properties = state.commit_properties();
    let writer_properties = layer.writer_properties();
    let table = layer.table.take().expect("a layer keeps its table");
    let unchanged = table.clone();
    // The rows stream from the old files into the new ones: the old files stay until a vacuum
    // removes them, long after this commit.
    let mut write = table
        .write(Vec::new())
        .with_input_plan(df.logical_plan().clone())
        .with_session_state(Arc::new(ctx.state()))
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
        .with_commit_properties(properties);
    if let Some(p) = writer_properties {
        write = write.with_writer_properties(p);
    }
    let columns_changed = plan
        .casts
        .iter()
        .map(|(n, _, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let table = match write.await {
        Ok(table) => table,
        Err(e) => {
            // Nothing was committed: the layer keeps the table as it was.
            layer.table = Some(unchanged);
            return Err(LakeError::Value {
                table: schema.id.to_string(),
                column: columns_changed,
                reason: format!(
                    "rewriting {} for {what} failed (a value that does not convert to its column's new type?): {e}",
                    layer.path
                ),
            });
        }
    };
    layer.table = Some(table);
    layer.state = state;
    layer.key_cache = Arc::default();
    layer.commits += 1;
    tracing::info!(
        table = %layer.path,
        seconds = started.elapsed().as_secs_f64(),
        "rewrote the table for {what}"
    );
    Ok(())
}

fn layer_err(layer: &Layer, reason: String) -> LakeError {
    LakeError::Storage {
        table: layer.path.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_holds_the_values_of_a_narrower_type_only() {
        use DataType as T;
        assert!(holds(&T::Int64, &T::Int32));
        assert!(!holds(&T::Int32, &T::Int64));
        assert!(holds(&T::Int64, &T::UInt32));
        assert!(!holds(&T::UInt64, &T::Int32), "negative values");
        assert!(holds(&T::Float64, &T::Float32));
        assert!(holds(&T::Decimal128(14, 2), &T::Decimal128(10, 2)));
        assert!(holds(&T::Decimal128(11, 3), &T::Decimal128(10, 2)));
        assert!(!holds(&T::Decimal128(10, 3), &T::Decimal128(10, 2)));
        assert!(holds(&T::Utf8, &T::Int32));
        assert!(!holds(&T::Int64, &T::Utf8));
    }

    /// A DECIMAL's scale lowered: the server rounds half away from zero (MySQL and MariaDB
    /// alike), and so does the rewrite's cast.
    #[tokio::test]
    async fn a_lower_decimal_scale_rounds_half_away_from_zero_as_the_server_does() {
        let ctx = SessionContext::new();
        let batches = ctx
            .sql(
                "SELECT CAST(CAST(v AS DECIMAL(10,4)) AS DECIMAL(10,2)) FROM (VALUES ('1.2350'), \
                 ('-1.2350'), ('1.2349'), ('-1.2349'), ('0.0050')) AS t(v)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = deltalake::arrow::compute::cast(batches[0].column(0), &DataType::Utf8).unwrap();
        let text: Vec<_> = text
            .as_any()
            .downcast_ref::<deltalake::arrow::array::StringArray>()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect();
        assert_eq!(text, ["1.24", "-1.24", "1.23", "-1.23", "0.01"]);
    }
}
