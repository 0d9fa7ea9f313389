//! One change as the lake reads it back from a transport record: the Debezium envelope parsed
//! against the table schema the record names, with the ordering key every layer compares.

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::event::{Position, TableSchema};
use crate::transport::record::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Create,
    Update,
    Delete,
    /// A snapshot read.
    Read,
    Truncate,
}

impl ChangeOp {
    pub fn code(self) -> &'static str {
        match self {
            ChangeOp::Create => "c",
            ChangeOp::Update => "u",
            ChangeOp::Delete => "d",
            ChangeOp::Read => "r",
            ChangeOp::Truncate => "t",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LakeChange {
    pub schema: Arc<TableSchema>,
    pub op: ChangeOp,
    pub before: Option<Map<String, Json>>,
    pub after: Option<Map<String, Json>>,
    pub file: String,
    pub pos: u64,
    pub row: u32,
    /// Sorts like the change's place in the binlog; a primary-key move's delete sorts before
    /// its create, which share one binlog row.
    pub order: String,
    pub gtid: Option<String>,
    pub ts_ms: i64,
    pub snapshot: bool,
    pub topic: String,
    pub partition: i32,
    pub offset: Option<i64>,
}

impl LakeChange {
    /// The source partition a change came through: `topic:partition`, or the embedded channel.
    pub fn source_partition(&self) -> String {
        source_partition(&self.topic, self.partition, self.offset.is_some())
    }

    /// The primary-key values as JSON text (from after, or before for a delete).
    pub fn key_text(&self) -> String {
        let row = self.after.as_ref().or(self.before.as_ref());
        let mut key = Vec::with_capacity(self.schema.primary_key.len());
        for &i in &self.schema.primary_key {
            let name = &self.schema.columns[i].name;
            key.push(row.and_then(|r| r.get(name)).cloned().unwrap_or(Json::Null));
        }
        Json::Array(key).to_string()
    }
}

pub fn source_partition(topic: &str, partition: i32, from_kafka: bool) -> String {
    if from_kafka {
        format!("{topic}:{partition}")
    } else {
        "embedded".into()
    }
}

fn object(v: Option<&Json>, what: &str) -> Result<Option<Map<String, Json>>, String> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Object(m)) => Ok(Some(m.clone())),
        Some(other) => Err(format!(
            "`{what}` must be an object or null, got {}",
            short(other)
        )),
    }
}

fn short(v: &Json) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut cut = 80;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Parses a record's value. `Ok(None)` is a tombstone (no value), which carries no change.
/// The error is the reason the record is a poison message.
pub fn parse(
    record: &Record,
    schema: Option<&Arc<TableSchema>>,
) -> Result<Option<LakeChange>, String> {
    let Some(value) = &record.value else {
        return Ok(None);
    };
    let envelope: Json = serde_json::from_slice(value).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(envelope) = envelope else {
        return Err(format!("not a Debezium envelope: {}", short(&envelope)));
    };
    // Debezium with schemas enabled wraps the envelope in {"schema", "payload"}.
    let envelope = match envelope.get("payload") {
        Some(Json::Object(p)) if envelope.contains_key("schema") => p.clone(),
        _ => envelope,
    };
    let op = match envelope.get("op").and_then(Json::as_str) {
        Some("c") => ChangeOp::Create,
        Some("u") => ChangeOp::Update,
        Some("d") => ChangeOp::Delete,
        Some("r") => ChangeOp::Read,
        Some("t") => ChangeOp::Truncate,
        other => return Err(format!("`op` must be c, u, d, r or t, got {other:?}")),
    };
    let source = envelope
        .get("source")
        .and_then(Json::as_object)
        .ok_or("`source` is missing")?;
    let text = |k: &str| source.get(k).and_then(Json::as_str);
    let (Some(db), Some(table)) = (text("db"), text("table")) else {
        return Err("`source.db` / `source.table` are missing".into());
    };
    let Some(schema) = schema else {
        return Err(match &record.schema_id {
            Some(id) => format!("unknown table {db}.{table}: schema {id} was never published"),
            None => format!(
                "unknown table {db}.{table}: the message names no schema (header {})",
                crate::transport::record::SCHEMA_HEADER
            ),
        });
    };
    if schema.id.db != db || schema.id.table != table {
        return Err(format!(
            "the message is for {db}.{table} but its schema is {}",
            schema.id
        ));
    }
    let file = text("file").ok_or("`source.file` is missing")?.to_string();
    let pos = source
        .get("pos")
        .and_then(Json::as_u64)
        .ok_or("`source.pos` is missing")?;
    let row = source.get("row").and_then(Json::as_u64).unwrap_or(0) as u32;
    let before = object(envelope.get("before"), "before")?;
    let after = object(envelope.get("after"), "after")?;
    match op {
        ChangeOp::Create | ChangeOp::Read if after.is_none() => {
            return Err(format!("op {} without `after`", op.code()))
        }
        ChangeOp::Update if after.is_none() || before.is_none() => {
            return Err("op u needs `before` and `after`".into())
        }
        ChangeOp::Delete if before.is_none() => return Err("op d without `before`".into()),
        _ => {}
    }
    for row_value in [&before, &after].into_iter().flatten() {
        if let Some(unknown) = row_value.keys().find(|k| schema.column_index(k).is_none()) {
            return Err(format!(
                "column {unknown} is not in the schema of {}",
                schema.id
            ));
        }
    }
    let position = Position {
        file: Arc::from(file.as_str()),
        pos,
        row,
    };
    let order = format!(
        "{}:{}",
        position.sort_key(),
        if op == ChangeOp::Delete { 0 } else { 1 }
    );
    Ok(Some(LakeChange {
        schema: Arc::clone(schema),
        op,
        before,
        after,
        file,
        pos,
        row,
        order,
        gtid: text("gtid").map(str::to_string),
        ts_ms: source.get("ts_ms").and_then(Json::as_i64).unwrap_or(0),
        snapshot: matches!(
            text("snapshot"),
            Some("true" | "last" | "first" | "incremental")
        ),
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
    }))
}
