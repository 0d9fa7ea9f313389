//! One change as the lake applies it: a transport record's envelope decoded (see
//! [`crate::envelope::decode`]) against the table schema the record names, with where it came
//! through (topic, partition, offset) and the ordering key every layer compares.

use std::sync::Arc;

use serde_json::Value as Json;

use crate::envelope::decode::{decode, SchemaRef};
use crate::envelope::row::RowImage;
use crate::event::{Op, TableSchema};
use crate::transport::record::{Record, SourcePartition, SCHEMA_HEADER};

#[derive(Debug, Clone)]
pub struct LakeChange {
    pub schema: Arc<TableSchema>,
    pub op: Op,
    /// The row images, one slot per column of `schema`.
    pub before: Option<RowImage>,
    pub after: Option<RowImage>,
    pub file: Arc<str>,
    pub pos: u64,
    pub row: u32,
    /// Sorts like the change's place in the binlog; a primary-key move's delete sorts before
    /// its create, which share one binlog row.
    pub order: String,
    pub gtid: Option<String>,
    pub ts_ms: i64,
    pub snapshot: bool,
    /// The logical server name the change came from (`source.name`).
    pub server: Option<String>,
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
    /// [`LakeChange::key_text`], made on first use (it is asked for many times a batch).
    pub key: std::sync::OnceLock<String>,
}

impl LakeChange {
    /// The source partition a change came through: `topic:partition`, or the embedded channel.
    pub fn source_partition(&self) -> SourcePartition {
        SourcePartition::of(&self.topic, self.partition, self.offset)
    }

    /// The primary-key values as JSON text (from after, or before for a delete).
    pub fn key_text(&self) -> &str {
        self.key.get_or_init(|| {
            static NULL: Json = Json::Null;
            let row = self.after.as_ref().or(self.before.as_ref());
            let key: Vec<&Json> = self
                .schema
                .primary_key
                .iter()
                .map(|&i| row.and_then(|r| r.get(i)).unwrap_or(&NULL))
                .collect();
            serde_json::to_string(&key).expect("JSON values serialize")
        })
    }
}

/// Decodes a record's value. `Ok(None)` is a tombstone (no value), which carries no change.
/// The error is the reason the record is a poison message.
pub fn parse(record: &Record) -> Result<Option<LakeChange>, String> {
    let Some(value) = &record.value else {
        return Ok(None);
    };
    let schema = match (&record.schema, &record.schema_id) {
        (Some(s), _) => SchemaRef::Known(s),
        (None, Some(id)) => SchemaRef::Unknown(id),
        (None, None) => SchemaRef::Missing(SCHEMA_HEADER),
    };
    let d = decode(value, schema)?;
    Ok(Some(LakeChange {
        schema: Arc::clone(record.schema.as_ref().expect("decode checked the schema")),
        op: d.op,
        before: d.before,
        after: d.after,
        file: d.position.file,
        pos: d.position.pos,
        row: d.position.row,
        order: d.order,
        gtid: d.gtid,
        ts_ms: d.ts_ms,
        snapshot: d.snapshot,
        server: d.server,
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        key: Default::default(),
    }))
}
