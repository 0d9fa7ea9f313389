//! Silver: the current row of every live key. A batch collapses to the last change per key;
//! the rows it replaces or deletes are dropped by deletion vector (only the new rows are
//! written) or, with `silver_deletes = "copy_on_write"` or a column dropped at the source, by a
//! Delta MERGE. A TRUNCATE deletes every row written before it.

use std::collections::HashMap;
use std::ops::Not;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::prelude::{col, lit};

use super::change::LakeChange;
use super::config::LakeConfig;
use super::guard::Applied;
use super::keys::Located;
use super::layer::{df_err, insert_all, qualified, quote, Layer};
use super::layout::{CDC_OP, CDC_POSITION, CDC_PREFIX, CDC_TS};
use super::state::LayerState;
use super::typed_images::TypedImages;
use super::types::utc_micros;
use super::LakeError;
use crate::envelope::row::RowImage;
use crate::event::{Op, TableSchema};

/// What silver holds of a batch's keys.
pub(super) struct SilverKeys<'a> {
    pub(super) applied: &'a Applied,
    pub(super) located: &'a Located,
    /// Key text → the key's index in `located`.
    pub(super) index: &'a HashMap<&'a str, usize>,
}

/// Silver: the last change per key, merged.
pub(super) async fn write_silver(
    layer: &mut Layer,
    schema: &TableSchema,
    changes: &[&LakeChange],
    typed: &TypedImages,
    keys: SilverKeys<'_>,
    state: LayerState,
    settings: &LakeConfig,
) -> Result<(), LakeError> {
    let applied = keys.applied;
    let mut last: HashMap<&str, usize> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        let k = c.key_text();
        match last.get(k) {
            Some(&j) if changes[j].order >= c.order => {}
            Some(_) => {
                last.insert(k, i);
            }
            None => {
                order.push(k);
                last.insert(k, i);
            }
        }
    }
    let finals: Vec<&LakeChange> = order.iter().map(|k| changes[last[k]]).collect();
    let any_live = finals
        .iter()
        .any(|c| applied.get(c.key_text()).is_some_and(|k| k.live));
    let rows: Vec<Option<&RowImage>> = finals
        .iter()
        .map(|c| c.after.as_ref().or(c.before.as_ref()))
        .collect();
    let existing = layer.arrow_schema();
    let (mut fields, mut arrays) =
        typed.columns_for(schema, &rows, existing.as_ref(), settings.readers)?;
    fields.push(Field::new(CDC_OP, DataType::Utf8, false));
    arrays.push(Arc::new(StringArray::from_iter_values(
        finals.iter().map(|c| c.op.code()),
    )));
    fields.push(Field::new(CDC_POSITION, DataType::Utf8, false));
    arrays.push(Arc::new(StringArray::from_iter_values(
        finals.iter().map(|c| c.order.as_str()),
    )));
    fields.push(Field::new(CDC_TS, utc_micros(), false));
    arrays.push(Arc::new(
        TimestampMicrosecondArray::from_iter_values(finals.iter().map(|c| c.ts_ms * 1000))
            .with_timezone("UTC"),
    ));
    let deleted: Vec<bool> = finals.iter().map(|c| c.op == Op::Delete).collect();
    let batch_schema = Arc::new(Schema::new(fields.clone()));
    let make = |arrays: Vec<ArrayRef>| {
        RecordBatch::try_new(batch_schema.clone(), arrays).map_err(|e| df_err(&schema.id, e))
    };
    if !layer.exists() || !any_live {
        // Nothing to update or delete: append the live rows.
        let keep = BooleanArray::from(deleted.iter().map(|d| !d).collect::<Vec<_>>());
        let batch = deltalake::arrow::compute::filter_record_batch(&make(arrays)?, &keep)
            .map_err(|e| df_err(&schema.id, e))?;
        return layer.append(batch, None, state, settings).await;
    }
    // A column dropped at the source keeps its values in silver; a MERGE leaves it alone
    // where a new row would not have it.
    let dropped_columns = existing.as_ref().is_some_and(|t| {
        t.fields().iter().any(|f| {
            !f.name().starts_with(CDC_PREFIX) && !fields.iter().any(|b| b.name() == f.name())
        })
    });
    if settings.deletion_vectors() && !dropped_columns {
        let keep = BooleanArray::from(deleted.iter().map(|d| !d).collect::<Vec<_>>());
        let batch = deltalake::arrow::compute::filter_record_batch(&make(arrays)?, &keep)
            .map_err(|e| df_err(&schema.id, e))?;
        let replaced: Vec<usize> = finals
            .iter()
            .filter_map(|c| keys.index.get(c.key_text()).copied())
            .collect();
        return layer
            .upsert_by_deletion(schema, batch, keys.located, replaced, state)
            .await;
    }
    fields.push(Field::new("__delete", DataType::Boolean, false));
    arrays.push(Arc::new(BooleanArray::from(deleted)));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| df_err(&schema.id, e))?;
    let delete = || qualified("s", "__delete");
    layer
        .merge(schema, batch, "__delete", None, state, |m, columns| {
            m.when_matched_delete(|d| d.predicate(delete()))?
                .when_matched_update(|u| {
                    columns.iter().fold(u.predicate(delete().not()), |u, c| {
                        u.update(quote(c), qualified("s", c))
                    })
                })?
                .when_not_matched_insert(|i| insert_all(i, columns, delete().not()))
        })
        .await
}

/// TRUNCATE: deletes every row written before it.
pub(super) async fn truncate_silver(
    layer: &mut Layer,
    t: &LakeChange,
    state: LayerState,
) -> Result<(), LakeError> {
    let before = col(CDC_POSITION).lt(lit(t.order.clone()));
    layer
        .commit_if_exists(state, |table, properties| async move {
            let (table, _) = table
                .delete()
                .with_predicate(before)
                .with_commit_properties(properties)
                .await?;
            Ok(table)
        })
        .await
}
