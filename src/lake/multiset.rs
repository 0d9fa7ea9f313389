//! Silver and history of a table with no key at all (no primary key, no non-null unique key,
//! no `[source] key_columns`): a multiset of whole rows, as the source holds it.
//!
//! Every row silver holds has an id, `_cdc_row_id`: the order key of the change that wrote it
//! (one binlog row writes one row, so no two rows share it), and both tables are keyed by it.
//! [`identify_rows`] turns the table's changes into changes of ids before the keyed steps run:
//! - an insert (or snapshot read) writes a row under a new id, its own order key;
//! - a delete removes one live row equal to its before image over every column the change
//!   carries (the oldest such copy: any copy would do, the choice only has to be the same
//!   when a crashed batch is applied again, which it is, silver being unchanged by then);
//! - an update is a delete of its before image and an insert of its after image, the delete
//!   ordered just before the insert as a primary-key move's is.
//!
//! A delete or update of a row silver does not hold removes nothing, as a delete of an unknown
//! key does in a keyed table: the table was captured without a snapshot, or a lock-free
//! snapshot's chunk has not landed yet.
//!
//! Finding the rows a batch's deletes remove reads silver's columns (only files whose first
//! column's statistics can hold a wanted row, when that column is an integer). Tables with
//! deletes that grow large deserve a key: `key_columns`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::Schema;
use deltalake::arrow::row::{RowConverter, SortField};
use serde_json::Value as Json;

use super::change::LakeChange;
use super::config::Readers;
use super::keys::locate;
use super::layer::{df_err, Layer};
use super::layout::ROW_ID;
use super::types::typed_columns;
use super::LakeError;
use crate::envelope::decode::order_key;
use crate::envelope::row::RowImage;
use crate::event::{Column, ColumnType, Op, Position, TableSchema};

/// `schema` with the `_cdc_row_id` column appended and made its key.
pub(super) fn keyed_schema(schema: &TableSchema) -> TableSchema {
    let mut keyed = schema.clone();
    let mut id = Column::new(ROW_ID, ColumnType::VarChar { max_bytes: 255 });
    id.nullable = false;
    keyed.columns.push(id);
    keyed.primary_key = vec![keyed.columns.len() - 1];
    keyed
}

/// One change of the table, as changes of row ids under `keyed` (see the module doc), in
/// order; each with the index in `changes` it came from.
pub(super) async fn identify_rows(
    silver: &Layer,
    keyed: &Arc<TableSchema>,
    changes: &[&LakeChange],
    readers: Readers,
) -> Result<Vec<(usize, LakeChange)>, LakeError> {
    let table = keyed.id.to_string();
    let plain = TableSchema {
        columns: keyed.columns[..keyed.columns.len() - 1].to_vec(),
        primary_key: Vec::new(),
        ..(**keyed).clone()
    };
    // Every row image of the batch, typed as silver holds its columns, encoded so that equal
    // values have equal bytes (NULL equal to NULL).
    let images: Vec<Option<&RowImage>> = changes
        .iter()
        .flat_map(|c| [c.before.as_ref(), c.after.as_ref()])
        .collect();
    let existing = silver.arrow_schema();
    let (fields, arrays) = typed_columns(&plain, &images, existing.as_ref(), readers)?;
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), arrays)
        .map_err(|e| df_err(&keyed.id, e))?;
    let converter = RowConverter::new(
        fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )
    .map_err(|e| df_err(&keyed.id, e))?;
    let encoded = converter
        .convert_columns(batch.columns())
        .map_err(|e| df_err(&keyed.id, e))?;
    let bytes = |i: usize| -> Box<[u8]> { Box::from(encoded.row(i).data()) };
    // The distinct rows deletes remove, looked up in silver.
    let mut wanted: HashMap<Box<[u8]>, usize> = HashMap::new();
    let mut wanted_rows: Vec<u32> = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        if c.before.is_some() && matches!(c.op, Op::Delete | Op::Update) {
            let image = 2 * i;
            wanted.entry(bytes(image)).or_insert_with(|| {
                wanted_rows.push(image as u32);
                wanted_rows.len() - 1
            });
        }
    }
    let mut live: HashMap<Box<[u8]>, BTreeSet<String>> = HashMap::new();
    if let (Some(t), false) = (silver.existing(), wanted_rows.is_empty()) {
        let indices = deltalake::arrow::array::UInt32Array::from(wanted_rows.clone());
        let keys = deltalake::arrow::compute::take_record_batch(&batch, &indices)
            .map_err(|e| df_err(&keyed.id, e))?;
        let located = locate(t, &silver.path, &keys, Some(ROW_ID), None).await?;
        for (row, index) in &wanted {
            for m in located.rows.get(index).into_iter().flatten() {
                let id = m.value.clone().ok_or_else(|| LakeError::Value {
                    table: table.clone(),
                    column: ROW_ID.into(),
                    reason: format!("{}: a row without an id", silver.path),
                })?;
                live.entry(row.clone()).or_default().insert(id);
            }
        }
    }
    let with_id = |row: &RowImage, id: &str| {
        let mut row = row.clone();
        row.push(Json::String(id.to_string()));
        row
    };
    let mut out = Vec::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        let change = |op, order: String, before, after| LakeChange {
            schema: Arc::clone(keyed),
            op,
            before,
            after,
            order,
            // The key is the row id now, not the source's.
            key: Default::default(),
            ..(*c).clone()
        };
        let removed = match (c.op, &c.before) {
            (Op::Delete | Op::Update, Some(before)) => live
                .get_mut(&bytes(2 * i))
                .and_then(|ids| ids.pop_first())
                .map(|id| with_id(before, &id)),
            _ => None,
        };
        let insert_order = c.order.clone();
        match c.op {
            Op::Delete => {
                if let Some(before) = removed {
                    out.push((i, change(Op::Delete, insert_order, Some(before), None)));
                }
            }
            Op::Update => {
                let after = c.after.as_ref().expect("an update has an after image");
                let new = with_id(after, &insert_order);
                if let Some(before) = removed {
                    out.push((i, change(Op::Delete, delete_order(c), Some(before), None)));
                }
                live.entry(bytes(2 * i + 1))
                    .or_default()
                    .insert(insert_order.clone());
                out.push((i, change(Op::Update, insert_order, None, Some(new))));
            }
            Op::Create | Op::Read => {
                let after = c.after.as_ref().expect("an insert has an after image");
                live.entry(bytes(2 * i + 1))
                    .or_default()
                    .insert(insert_order.clone());
                out.push((
                    i,
                    change(
                        c.op,
                        insert_order.clone(),
                        None,
                        Some(with_id(after, &insert_order)),
                    ),
                ));
            }
            Op::Truncate => out.push((i, change(Op::Truncate, insert_order, None, None))),
        }
    }
    Ok(out)
}

/// The order key of an update's delete half: at the update's binlog place, sorting just before
/// it, as a primary-key move's delete does.
fn delete_order(update: &LakeChange) -> String {
    let position = Position {
        file: Arc::clone(&update.file),
        pos: update.pos,
        row: update.row,
    };
    order_key(&position, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_deletes_just_before_it_inserts() {
        let position = Position {
            file: Arc::from("mysql-bin.000001"),
            pos: 1234,
            row: 2,
        };
        let update = order_key(&position, false);
        let delete = order_key(&position, true);
        assert_eq!(delete, "0000000001:000000001234:00000002:0");
        assert!(delete < update);
        let earlier = Position { row: 1, ..position };
        assert!(delete > order_key(&earlier, false));
    }

    #[test]
    fn the_keyed_schema_is_keyed_by_the_row_id_alone() {
        let mut schema = TableSchema {
            id: crate::event::TableId::new("shop", "log"),
            columns: vec![
                Column::new("at", ColumnType::Int),
                Column::new("what", ColumnType::VarChar { max_bytes: 40 }),
            ],
            primary_key: Vec::new(),
            positional_names: false,
        };
        let keyed = keyed_schema(&schema);
        assert_eq!(keyed.columns.len(), 3);
        assert_eq!(keyed.columns[2].name, ROW_ID);
        assert!(!keyed.columns[2].nullable);
        assert_eq!(keyed.primary_key, [2]);
        schema.columns.push(keyed.columns[2].clone());
        assert_eq!(schema.columns, keyed.columns);
    }
}
