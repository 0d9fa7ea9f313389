//! The unit the transport carries, the same in Kafka and in the embedded channel: a topic, a
//! key and a value (the Debezium envelope), plus the table schema the value was written with
//! (a fingerprint in a Kafka header, the schema itself in-process), which is what lets the lake
//! type its columns. Also the encoder that turns change events into records.

use std::sync::Arc;

use crate::envelope::{Envelope, EnvelopeOptions};
use crate::event::{ChangeEvent, Op, TableId, TableSchema};

/// The Kafka header naming the schema fingerprint of a data message.
pub const SCHEMA_HEADER: &str = "binlake.schema";

/// One message on its way from the source to the lake.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    /// Kafka partition, or 0 in-process.
    pub partition: i32,
    /// Kafka offset; None in-process, where the binlog position is what orders records.
    pub offset: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub schema_id: Option<String>,
    /// In-process the schema travels with the record; from Kafka it is looked up by id.
    pub schema: Option<Arc<TableSchema>>,
}

/// The topic of a table: `<prefix>.<db>.<table>`.
pub fn table_topic(prefix: &str, id: &TableId) -> String {
    format!("{prefix}.{}.{}", id.db, id.table)
}

/// The topic carrying the schemas data messages refer to: `__binlake-schemas.<prefix>`.
pub fn schema_topic(prefix: &str) -> String {
    format!("__binlake-schemas.{prefix}")
}

/// A stable id of a table schema: the table, a CRC32 of the schema's JSON and its length.
pub fn schema_fingerprint(schema: &TableSchema) -> String {
    let json = serde_json::to_vec(schema).expect("a schema serialises");
    format!(
        "{}.{}:{:08x}{:x}",
        schema.id.db,
        schema.id.table,
        crc32fast::hash(&json),
        json.len()
    )
}

/// Receives each (key, value) message an event becomes.
pub type Emit<'a> = dyn FnMut(Option<&[u8]>, Option<&[u8]>) -> Result<(), String> + 'a;

/// Encodes change events into key/value pairs as Debezium's MySQL connector would publish them:
/// a primary-key change becomes a delete (and tombstone) for the old key and a create for the
/// new one; a delete is followed by a tombstone when configured.
pub struct RecordEncoder {
    envelope: Envelope,
    tombstones_on_delete: bool,
    key: Vec<u8>,
    value: Vec<u8>,
    other_key: Vec<u8>,
}

impl RecordEncoder {
    pub fn new(topic_prefix: &str, tombstones_on_delete: bool) -> RecordEncoder {
        RecordEncoder {
            envelope: Envelope::new(&EnvelopeOptions {
                name: topic_prefix.to_string(),
            }),
            tombstones_on_delete,
            key: Vec::with_capacity(256),
            value: Vec::with_capacity(4096),
            other_key: Vec::with_capacity(256),
        }
    }

    /// Calls `emit(key, value)` for each message `event` becomes, in order.
    pub fn encode(
        &mut self,
        event: &ChangeEvent<'_>,
        now_ms: u64,
        emit: &mut Emit<'_>,
    ) -> Result<(), String> {
        let id = &event.table.id;
        if event.op == Op::Update && !event.table.primary_key.is_empty() {
            let before_only = ChangeEvent {
                after: None,
                ..event.clone()
            };
            self.other_key.clear();
            self.envelope
                .write_key(&before_only, &mut self.other_key)
                .map_err(|m| format!("{id} at {}: {m}", event.position))?;
            self.key.clear();
            self.envelope
                .write_key(event, &mut self.key)
                .map_err(|m| format!("{id} at {}: {m}", event.position))?;
            if self.key != self.other_key {
                let delete = ChangeEvent {
                    op: Op::Delete,
                    after: None,
                    ..event.clone()
                };
                let create = ChangeEvent {
                    op: Op::Create,
                    before: None,
                    ..event.clone()
                };
                self.one(&delete, now_ms, emit)?;
                return self.one(&create, now_ms, emit);
            }
        }
        self.one(event, now_ms, emit)
    }

    fn one(
        &mut self,
        event: &ChangeEvent<'_>,
        now_ms: u64,
        emit: &mut Emit<'_>,
    ) -> Result<(), String> {
        self.key.clear();
        self.value.clear();
        let located =
            |m: crate::mysql::Malformed| format!("{} at {}: {m}", event.table.id, event.position);
        let has_key = event.op != Op::Truncate;
        if has_key {
            self.envelope
                .write_key(event, &mut self.key)
                .map_err(located)?;
        }
        self.envelope
            .write(event, now_ms, &mut self.value)
            .map_err(located)?;
        let key = has_key.then_some(self.key.as_slice());
        emit(key, Some(&self.value))?;
        if event.op == Op::Delete && self.tombstones_on_delete {
            // Debezium's tombstone: the key with no value, so compaction can drop the row.
            emit(key, None)?;
        }
        Ok(())
    }
}
