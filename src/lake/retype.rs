//! A column whose MySQL type changed to one with another Delta type (INT → BIGINT when ids run
//! out, DECIMAL(10,2) → DECIMAL(14,2), FLOAT → DOUBLE, DATE → DATETIME, INT → VARCHAR, ...),
//! or a primary key that changed (`DROP PRIMARY KEY, ADD PRIMARY KEY (a, b)`): silver and
//! history are rewritten from their own rows, each such column cast to its new type and the
//! rows ordered by the new key, in one Delta commit per table that carries the table's
//! exactly-once state (with the new key), so a reader sees the old table or the new one, and a
//! crash before the commit leaves the old one to be rewritten again. A new key needs no data
//! change: silver holds the server's current rows, which the server keeps unique under the new
//! key, and history's versions stay what they were. binlake rewrites rather than turning on Delta's `typeWidening`
//! feature, which Microsoft Fabric's SQL endpoint and older readers cannot read, and which
//! covers only widening.
//!
//! The server converts its rows itself, with no row event, so the cast must give what the
//! server gave. DataFusion's casts match MySQL's for widening (integers, FLOAT → DOUBLE,
//! DECIMAL precision and scale up, DATE → DATETIME at midnight) and for numbers to text; a
//! value that does not convert (text that is no number) stops the table, naming the column.

use std::sync::Arc;

use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::{cast, col, SessionContext};
use deltalake::protocol::SaveMode;

use super::layer::{quote, Layer};
use super::layout::START_POSITION;
use super::types::arrow_type;
use super::LakeError;
use crate::event::TableSchema;

/// The columns of `schema` the table holds under another Delta type: (name, old, new).
pub(super) fn changed_types(
    layer: &Layer,
    schema: &TableSchema,
) -> Vec<(String, DataType, DataType)> {
    let Some(existing) = layer.arrow_schema() else {
        return Vec::new();
    };
    schema
        .columns
        .iter()
        .filter_map(|c| {
            let field = existing.field_with_name(&c.name).ok()?;
            let new = arrow_type(c);
            (*field.data_type() != new).then(|| (c.name.clone(), field.data_type().clone(), new))
        })
        .collect()
}

/// Rewrites the table with every changed column cast to its new type, and under `key` when the
/// table is keyed otherwise (see the module doc).
pub(super) async fn retype_columns(
    layer: &mut Layer,
    schema: &TableSchema,
    key: &[String],
) -> Result<(), LakeError> {
    let changed = changed_types(layer, schema);
    let rekey = layer.exists() && !layer.state.key.is_empty() && layer.state.key != key;
    if changed.is_empty() && !rekey {
        return Ok(());
    }
    let existing = layer.arrow_schema().expect("a rewritten table exists");
    let started = std::time::Instant::now();
    let table = layer.table.as_ref().expect("a layer keeps its table");
    let provider = table
        .table_provider()
        .await
        .map_err(|e| layer_err(layer, e.to_string()))?;
    let ctx = SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .map_err(|e| layer_err(layer, e.to_string()))?;
    ctx.register_table("t", provider)
        .map_err(|e| layer_err(layer, e.to_string()))?;
    let df = ctx
        .table("t")
        .await
        .map_err(|e| layer_err(layer, e.to_string()))?;
    let columns: Vec<_> = existing
        .fields()
        .iter()
        .map(
            |f| match changed.iter().find(|(name, _, _)| name == f.name()) {
                Some((name, _, new)) => cast(col(quote(name)), new.clone()).alias(name),
                None => col(quote(f.name())),
            },
        )
        .collect();
    let mut order: Vec<_> = schema
        .primary_key
        .iter()
        .map(|&i| col(quote(&schema.columns[i].name)).sort(true, true))
        .collect();
    if layer.path.ends_with("__history") {
        order.push(col(START_POSITION).sort(true, true));
    }
    let mut df = df
        .select(columns)
        .map_err(|e| layer_err(layer, e.to_string()))?;
    if !order.is_empty() {
        df = df
            .sort(order)
            .map_err(|e| layer_err(layer, e.to_string()))?;
    }
    let mut what: Vec<String> = changed
        .iter()
        .map(|(n, old, new)| format!("{n} {old} → {new}"))
        .collect();
    if rekey {
        what.push(format!(
            "primary key ({}) → ({})",
            layer.state.key.join(", "),
            key.join(", ")
        ));
    }
    let what = what.join(", ");
    let batches = df.collect().await.map_err(|e| LakeError::Value {
        table: schema.id.to_string(),
        column: changed
            .iter()
            .map(|(n, _, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        reason: format!(
            "the rows {} holds do not convert to the column's new type ({what}): {e}",
            layer.path
        ),
    })?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let state = layer.state.clone().with_key(key);
    let properties = state.commit_properties();
    let writer_properties = layer.writer_properties();
    let table = layer.table.take().expect("a layer keeps its table");
    let mut write = table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
        .with_commit_properties(properties);
    if let Some(p) = writer_properties {
        write = write.with_writer_properties(p);
    }
    let table = write.await.map_err(super::layer::delta_err(&layer.path))?;
    layer.table = Some(table);
    layer.state = state;
    layer.key_cache = Arc::default();
    layer.commits += 1;
    tracing::info!(
        table = %layer.path,
        rows,
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
