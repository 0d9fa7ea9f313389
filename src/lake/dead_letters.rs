//! The dead-letter table: records that are not binlake change events (not JSON, not an
//! envelope, a table the record's schema does not name), with the reason, appended exactly once
//! by Kafka offset.

use std::sync::Arc;

use deltalake::arrow::array::{
    Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::change::LakeChange;
use super::config::LakeConfig;
use super::layer::Layer;
use super::layout::DEAD_LETTERS;
use super::metrics::LakeMetrics;
use super::types::{arrow_type, build_array, utc_micros};
use super::LakeError;
use crate::event::now_ms;
use crate::transport::record::{Offsets, Record, SourcePartition};

/// A poison record and why.
pub(super) struct DeadLetter<'a> {
    pub(super) record: &'a Record,
    pub(super) reason: String,
}

/// Appends the records of `dead` the table does not hold yet; returns the commits made.
pub(super) async fn write_dead_letters(
    layer: &mut Layer,
    dead: &[DeadLetter<'_>],
    settings: &LakeConfig,
    metrics: &mut LakeMetrics,
) -> Result<u64, LakeError> {
    let fresh: Vec<&DeadLetter> = dead
        .iter()
        .filter(|d| match d.record.offset {
            Some(o) => layer
                .state
                .offsets
                .get(&SourcePartition::kafka(&d.record.topic, d.record.partition).to_string())
                .is_none_or(|next| o >= next),
            None => true,
        })
        .collect();
    for d in &fresh {
        tracing::warn!(topic = %d.record.topic, partition = d.record.partition, offset = ?d.record.offset, reason = %d.reason, "dead letter");
    }
    metrics.dead_letters += fresh.len() as u64;
    if fresh.is_empty() {
        return Ok(0);
    }
    let consumed = Offsets::after(fresh.iter().map(|d| d.record));
    let text = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    let now = now_ms() as i64 * 1000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("reason", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, true),
        Field::new("key", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
        Field::new("ingested_at", utc_micros(), false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                fresh.iter().map(|d| d.reason.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                fresh.iter().map(|d| d.record.topic.as_str()),
            )),
            Arc::new(Int32Array::from_iter_values(
                fresh.iter().map(|d| d.record.partition),
            )),
            Arc::new(Int64Array::from_iter(fresh.iter().map(|d| d.record.offset))),
            Arc::new(StringArray::from_iter(
                fresh.iter().map(|d| text(&d.record.key)),
            )),
            Arc::new(StringArray::from_iter(
                fresh.iter().map(|d| text(&d.record.value)),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(fresh.iter().map(|_| now))
                    .with_timezone("UTC"),
            ),
        ],
    )
    .map_err(|e| LakeError::Storage {
        table: DEAD_LETTERS.into(),
        reason: e.to_string(),
    })?;
    let state = layer.next_state(&[], &consumed);
    layer.append(batch, None, state, settings).await?;
    Ok(1)
}

/// Whether one change's values convert into their columns; the error names the column.
pub(super) fn convertible(c: &LakeChange) -> Result<(), String> {
    for row in [&c.before, &c.after].into_iter().flatten() {
        for (i, column) in c.schema.columns.iter().enumerate() {
            let value = row.get(i);
            // One value: the array's "row 0: " says nothing.
            build_array(column, &arrow_type(column), &[value]).map_err(|e| {
                format!(
                    "column {}: {}",
                    column.name,
                    e.strip_prefix("row 0: ").unwrap_or(&e)
                )
            })?;
        }
    }
    Ok(())
}
