//! The unit the transport carries, the same in Kafka and in the embedded channel: a topic, a
//! key and a value (the Debezium envelope), plus the table schema the value was written with
//! (a fingerprint in a Kafka header, the schema itself in-process), which is what lets the lake
//! type its columns; the source partition a record came through and the offsets type every
//! stage keeps; topic naming; and the encoder that turns change events into records.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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

impl Record {
    /// Bytes of its key and value: what batch and channel budgets count.
    pub fn payload_bytes(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// The way a record came: a Kafka topic partition, or the in-process channel (which has no
/// offsets; there the binlog position orders records). Written `topic:partition` or
/// `embedded` in the lake's state and in Kafka offsets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourcePartition {
    Kafka { topic: String, partition: i32 },
    Embedded,
}

impl SourcePartition {
    /// The partition of a record at `offset` on `topic`/`partition` (no offset: embedded).
    pub fn of(topic: &str, partition: i32, offset: Option<i64>) -> SourcePartition {
        match offset {
            Some(_) => SourcePartition::kafka(topic, partition),
            None => SourcePartition::Embedded,
        }
    }

    pub fn kafka(topic: &str, partition: i32) -> SourcePartition {
        SourcePartition::Kafka {
            topic: topic.to_string(),
            partition,
        }
    }

    /// Reads the text form back (`topic:partition` or `embedded`).
    pub fn parse(text: &str) -> Option<SourcePartition> {
        if text == "embedded" {
            return Some(SourcePartition::Embedded);
        }
        let (topic, partition) = text.rsplit_once(':')?;
        Some(SourcePartition::kafka(topic, partition.parse().ok()?))
    }

    /// The Kafka topic, if any.
    pub fn topic(&self) -> Option<&str> {
        match self {
            SourcePartition::Kafka { topic, .. } => Some(topic),
            SourcePartition::Embedded => None,
        }
    }
}

impl fmt::Display for SourcePartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePartition::Kafka { topic, partition } => write!(f, "{topic}:{partition}"),
            SourcePartition::Embedded => f.write_str("embedded"),
        }
    }
}

/// The next offset to consume per Kafka source partition (by its text form, as the lake's state
/// stores it): what a set of records consumed, what a table holds, where a group resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Offsets(BTreeMap<String, i64>);

impl Offsets {
    /// Moves `partition`'s next offset to `next`, never back.
    pub fn advance(&mut self, partition: impl fmt::Display, next: i64) {
        let e = self.0.entry(partition.to_string()).or_insert(next);
        *e = (*e).max(next);
    }

    /// Moves `partition`'s next offset back to `next` if it is lower: what every one of
    /// several holders has.
    pub fn lower(&mut self, partition: impl fmt::Display, next: i64) {
        let e = self.0.entry(partition.to_string()).or_insert(next);
        *e = (*e).min(next);
    }

    /// Advances past `record` (a record without an offset moves nothing).
    pub fn consume(&mut self, record: &Record) {
        if let Some(o) = record.offset {
            self.advance(
                SourcePartition::kafka(&record.topic, record.partition),
                o + 1,
            );
        }
    }

    /// The offsets just past `records`.
    pub fn after<'a>(records: impl IntoIterator<Item = &'a Record>) -> Offsets {
        let mut out = Offsets::default();
        for r in records {
            out.consume(r);
        }
        out
    }

    /// Advances every partition of `other`.
    pub fn advance_all(&mut self, other: &Offsets) {
        for (sp, next) in other.iter() {
            self.advance(sp, next);
        }
    }

    /// Whether every partition of `targets` is at or past its target.
    pub fn reached(&self, targets: &Offsets) -> bool {
        targets
            .iter()
            .all(|(sp, end)| self.get(sp).is_some_and(|c| c >= end))
    }

    pub fn get(&self, partition: &str) -> Option<i64> {
        self.0.get(partition).copied()
    }

    pub fn insert(&mut self, partition: impl fmt::Display, next: i64) {
        self.0.insert(partition.to_string(), next);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, i64)> for Offsets {
    fn from_iter<I: IntoIterator<Item = (String, i64)>>(iter: I) -> Self {
        Offsets(iter.into_iter().collect())
    }
}

/// The `db.table` a table topic `<prefix>.<db>.<table>` carries.
pub fn table_of_topic(prefix: &str, topic: &str) -> Option<(String, String)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('.')?;
    let (db, table) = rest.split_once('.')?;
    Some((db.to_string(), table.to_string()))
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
