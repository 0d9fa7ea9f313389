//! Bronze: every change as it arrived, appended, one row per change (operation, before and
//! after as JSON text, binlog position, GTID, source time, Kafka coordinates, ingestion time),
//! partitioned by ingestion day.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Int32Array, Int64Array, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::change::LakeChange;
use super::layout::INGEST_DATE;
use super::types::utc_micros;
use super::LakeError;
use crate::envelope::row::RowImage;
use crate::event::now_ms;

/// The bronze rows of `changes`.
pub(super) fn bronze_batch(changes: &[&LakeChange]) -> Result<RecordBatch, LakeError> {
    let now = now_ms() as i64;
    let day = (now / 86_400_000) as i32;
    let schema = Arc::new(Schema::new(vec![
        Field::new("op", DataType::Utf8, false),
        Field::new("before", DataType::Utf8, true),
        Field::new("after", DataType::Utf8, true),
        Field::new("position", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_pos", DataType::Int64, false),
        Field::new("source_row", DataType::Int32, false),
        Field::new("gtid", DataType::Utf8, true),
        Field::new("source_ts", utc_micros(), false),
        Field::new("snapshot", DataType::Boolean, false),
        Field::new("kafka_topic", DataType::Utf8, true),
        Field::new("kafka_partition", DataType::Int32, true),
        Field::new("kafka_offset", DataType::Int64, true),
        Field::new("ingested_at", utc_micros(), false),
        Field::new(INGEST_DATE, DataType::Date32, false),
    ]));
    let from_kafka = |c: &&LakeChange| c.offset.is_some();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            changes.iter().map(|c| c.op.code()),
        )),
        images_json(changes, |c| c.before.as_ref()),
        images_json(changes, |c| c.after.as_ref()),
        Arc::new(StringArray::from_iter_values(
            changes.iter().map(|c| c.order.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            changes.iter().map(|c| &*c.file),
        )),
        Arc::new(Int64Array::from_iter_values(
            changes.iter().map(|c| c.pos as i64),
        )),
        Arc::new(Int32Array::from_iter_values(
            changes.iter().map(|c| c.row as i32),
        )),
        Arc::new(StringArray::from_iter(
            changes.iter().map(|c| c.gtid.as_deref()),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(changes.iter().map(|c| c.ts_ms * 1000))
                .with_timezone("UTC"),
        ),
        Arc::new(BooleanArray::from_iter(
            changes.iter().map(|c| Some(c.snapshot)),
        )),
        Arc::new(StringArray::from_iter(
            changes
                .iter()
                .map(|c| from_kafka(c).then_some(c.topic.as_str())),
        )),
        Arc::new(Int32Array::from_iter(
            changes.iter().map(|c| from_kafka(c).then_some(c.partition)),
        )),
        Arc::new(Int64Array::from_iter(changes.iter().map(|c| c.offset))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(changes.iter().map(|_| now * 1000))
                .with_timezone("UTC"),
        ),
        Arc::new(Date32Array::from_iter_values(changes.iter().map(|_| day))),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| LakeError::Storage {
        table: "bronze".into(),
        reason: e.to_string(),
    })
}

/// One image of each change (`before` or `after`) as JSON text; null where it has none. The
/// text is written into one buffer and copied into the array, not allocated per row.
fn images_json(
    changes: &[&LakeChange],
    image: impl Fn(&LakeChange) -> Option<&RowImage>,
) -> ArrayRef {
    let mut out = StringBuilder::with_capacity(changes.len(), changes.len() * 64);
    let mut text = Vec::with_capacity(256);
    for c in changes {
        match image(c) {
            Some(row) => {
                text.clear();
                row.write_json(&c.schema, &mut text);
                out.append_value(std::str::from_utf8(&text).expect("serde_json writes UTF-8"));
            }
            None => out.append_null(),
        }
    }
    Arc::new(out.finish())
}
