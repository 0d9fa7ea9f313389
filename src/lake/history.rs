//! History (SCD type 2): every change a version with `__start_at`/`__end_at` and their binlog
//! order keys; a change closes the open version of its key. With deletion vectors the open
//! versions are read back, closed and written again, the old copies deleted by deletion vector;
//! otherwise a Delta MERGE closes them. A TRUNCATE closes every open version.

use std::collections::HashMap;
use std::ops::Not;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::prelude::{col, lit, Expr};

use super::change::LakeChange;
use super::config::LakeConfig;
use super::guard::Applied;
use super::keys::{self, Located};
use super::layer::{conform, df_err, insert_all, qualified, Layer};
use super::layout::{CDC_OP, END_AT, END_POSITION, START_AT, START_POSITION};
use super::read_back::read_located;
use super::state::LayerState;
use super::typed_images::TypedImages;
use super::types::utc_micros;
use super::LakeError;
use crate::envelope::row::RowImage;
use crate::event::{Op, TableSchema};

/// What the history step knows of a batch's keys.
pub(super) struct HistoryKeys<'a> {
    pub(super) applied: &'a Applied,
    /// The batch's distinct keys as typed key columns (when a table existed to look them up).
    pub(super) keys: Option<&'a RecordBatch>,
    /// Key text → the key's row in `keys`.
    pub(super) index: &'a HashMap<&'a str, usize>,
}

/// History: every change a version; the open version of a changed key is closed.
pub(super) async fn write_history(
    layer: &mut Layer,
    schema: &TableSchema,
    changes: &[&LakeChange],
    typed: &TypedImages,
    keys: HistoryKeys<'_>,
    state: LayerState,
    settings: &LakeConfig,
) -> Result<(), LakeError> {
    let applied = keys.applied;
    // Per key, its changes in order.
    let mut by_key: Vec<(&str, Vec<&LakeChange>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for c in changes {
        let k = c.key_text();
        match index.get(k) {
            Some(&i) => by_key[i].1.push(c),
            None => {
                index.insert(k, by_key.len());
                by_key.push((k, vec![c]));
            }
        }
    }
    // Rows: (kind, values, op, start, end)
    struct Row<'a> {
        close: bool,
        values: Option<&'a RowImage>,
        op: &'static str,
        start: Option<&'a LakeChange>,
        end: Option<&'a LakeChange>,
    }
    let mut rows: Vec<Row> = Vec::new();
    for (k, list) in &mut by_key {
        list.sort_by(|a, b| a.order.cmp(&b.order));
        let first = list[0];
        if applied
            .get(*k)
            .is_some_and(|state| state.live || state.open_in_history)
        {
            rows.push(Row {
                close: true,
                values: first.before.as_ref().or(first.after.as_ref()),
                op: "",
                start: None,
                end: Some(first),
            });
        }
        for (i, c) in list.iter().enumerate() {
            if c.op == Op::Delete {
                continue;
            }
            rows.push(Row {
                close: false,
                values: c.after.as_ref(),
                op: c.op.code(),
                start: Some(c),
                end: list.get(i + 1).copied(),
            });
        }
    }
    let any_close = rows.iter().any(|r| r.close);
    // With deletion vectors the versions closed are read back from the table: a close row's
    // values are not written.
    let by_deletion = layer.exists() && any_close && settings.deletion_vectors();
    let values: Vec<_> = rows
        .iter()
        .map(|r| {
            if r.close && by_deletion {
                None
            } else {
                r.values
            }
        })
        .collect();
    let existing = layer.arrow_schema();
    let (mut fields, mut arrays) =
        typed.columns_for(schema, &values, existing.as_ref(), settings.readers)?;
    let ts = |c: Option<&LakeChange>| c.map(|c| c.ts_ms * 1000);
    fields.push(Field::new(CDC_OP, DataType::Utf8, true));
    arrays.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| (!r.close).then_some(r.op)),
    )));
    fields.push(Field::new(START_AT, utc_micros(), true));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from_iter(rows.iter().map(|r| ts(r.start))).with_timezone("UTC"),
    ));
    fields.push(Field::new(END_AT, utc_micros(), true));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from_iter(rows.iter().map(|r| ts(r.end))).with_timezone("UTC"),
    ));
    fields.push(Field::new(START_POSITION, DataType::Utf8, true));
    arrays.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| r.start.map(|c| c.order.as_str())),
    )));
    fields.push(Field::new(END_POSITION, DataType::Utf8, true));
    arrays.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| r.end.map(|c| c.order.as_str())),
    )));
    if !layer.exists() || !any_close {
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| df_err(&schema.id, e))?;
        return layer.append(batch, None, state, settings).await;
    }
    if by_deletion {
        // The open versions are read, closed and written again; the old copies are deleted
        // by deletion vector.
        let new_versions = BooleanArray::from(rows.iter().map(|r| !r.close).collect::<Vec<_>>());
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| df_err(&schema.id, e))?;
        let new_rows = deltalake::arrow::compute::filter_record_batch(&batch, &new_versions)
            .map_err(|e| df_err(&schema.id, e))?;
        drop(batch);
        // Key index → the change that ends its open version.
        let ends: HashMap<usize, &LakeChange> = rows
            .iter()
            .filter(|r| r.close)
            .filter_map(|r| {
                let end = r.end?;
                Some((*keys.index.get(end.key_text())?, end))
            })
            .collect();
        layer
            .add_missing_columns(schema, &new_rows.schema())
            .await?;
        let table = layer.existing().expect("exists");
        let target = layer.arrow_schema().expect("exists");
        let closing: Vec<usize> = ends.keys().copied().collect();
        // The open versions (no end) of the keys to close.
        let mut open = match keys.keys {
            Some(all) => {
                keys::locate_subset(table, &layer.path, all, &closing, Some(END_AT)).await?
            }
            None => Located::default(),
        };
        open.retain_null();
        let mut parts = vec![conform(&new_rows, &target, &schema.id.to_string())?];
        drop(new_rows);
        for (open, key_of_row) in
            read_located(table, &layer.path, &open, closing.iter().copied()).await?
        {
            let mut closed = conform(&open, &target, &schema.id.to_string())?;
            let end_of = |i: usize| ends[&key_of_row[i]];
            let n = closed.num_rows();
            let end_at: ArrayRef = Arc::new(
                TimestampMicrosecondArray::from_iter_values((0..n).map(|i| end_of(i).ts_ms * 1000))
                    .with_timezone("UTC"),
            );
            let end_position: ArrayRef = Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| end_of(i).order.as_str()),
            ));
            let mut columns = closed.columns().to_vec();
            for (name, values) in [(END_AT, end_at), (END_POSITION, end_position)] {
                if let Ok(i) = target.index_of(name) {
                    columns[i] =
                        deltalake::arrow::compute::cast(&values, target.field(i).data_type())
                            .map_err(|e| df_err(&schema.id, e))?;
                }
            }
            closed = RecordBatch::try_new(Arc::clone(&target), columns)
                .map_err(|e| df_err(&schema.id, e))?;
            parts.push(closed);
        }
        let batch = deltalake::arrow::compute::concat_batches(&target, &parts)
            .map_err(|e| df_err(&schema.id, e))?;
        drop(parts);
        return layer
            .upsert_by_deletion(schema, batch, &open, closing, state)
            .await;
    }
    fields.push(Field::new("__close", DataType::Boolean, false));
    arrays.push(Arc::new(BooleanArray::from(
        rows.iter().map(|r| r.close).collect::<Vec<_>>(),
    )));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| df_err(&schema.id, e))?;
    let close = || qualified("s", "__close");
    // Only the open version of a key is closed, and only by a close row.
    let open = qualified("t", END_POSITION).is_null().and(close());
    layer
        .merge(schema, batch, "__close", Some(open), state, |m, columns| {
            m.when_matched_update(|u| {
                u.update(END_AT, qualified("s", END_AT))
                    .update(END_POSITION, qualified("s", END_POSITION))
            })?
            .when_not_matched_insert(|i| insert_all(i, columns, close().not()))
        })
        .await
}

/// TRUNCATE: closes every version open at the truncate. A version that started after it (a
/// change of another partition consumed ahead of the truncate) stays open, as its row stays
/// in silver.
pub(super) async fn truncate_history(
    layer: &mut Layer,
    t: &LakeChange,
    state: LayerState,
) -> Result<(), LakeError> {
    let started_before = col(START_POSITION).lt(lit(t.order.clone()));
    let end_position = lit(t.order.clone());
    let end_at = Expr::Literal(
        deltalake::datafusion::scalar::ScalarValue::TimestampMicrosecond(
            Some(t.ts_ms * 1000),
            Some("UTC".into()),
        ),
        None,
    );
    layer
        .commit_if_exists(state, |table, properties| async move {
            let (table, _) = table
                .update()
                .with_predicate(col(END_POSITION).is_null().and(started_before))
                .with_update(END_POSITION, end_position)
                .with_update(END_AT, end_at)
                .with_commit_properties(properties)
                .await?;
            Ok(table)
        })
        .await
}
