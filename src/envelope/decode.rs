//! Decoding: a Debezium envelope (as binlake, or Debezium's MySQL connector with the JSON
//! converter, writes it; with or without the `schema`/`payload` wrapper) back into the parts a
//! change is applied by, checked against the table schema the record names. The error is the
//! reason a message is not a change event (the lake's dead letters).

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::event::{Op, Position, TableSchema};

/// One decoded change event.
#[derive(Debug, Clone)]
pub struct DecodedChange {
    pub op: Op,
    pub before: Option<Map<String, Json>>,
    pub after: Option<Map<String, Json>>,
    pub position: Position,
    /// Sorts like the change's place in the binlog; a primary-key move's delete sorts before
    /// its create, which share one binlog row.
    pub order: String,
    pub gtid: Option<String>,
    pub ts_ms: i64,
    /// Read by a snapshot rather than streamed.
    pub snapshot: bool,
    /// The logical server name (`source.name`).
    pub server: Option<String>,
}

/// What names the schema a message was written with, for the error when it is unknown.
pub enum SchemaRef<'a> {
    /// The schema, found.
    Known(&'a Arc<TableSchema>),
    /// The id the message named, never published.
    Unknown(&'a str),
    /// The message named none (under this header).
    Missing(&'a str),
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

/// Decodes one envelope written with `schema`.
/// The text every layer orders changes by: the binlog place, and at one place a delete before
/// anything else (a primary-key move's delete and create share one binlog row).
pub fn order_key(position: &Position, delete: bool) -> String {
    format!("{}:{}", position.sort_key(), if delete { 0 } else { 1 })
}

pub fn decode(value: &[u8], schema: SchemaRef<'_>) -> Result<DecodedChange, String> {
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
        Some("c") => Op::Create,
        Some("u") => Op::Update,
        Some("d") => Op::Delete,
        Some("r") => Op::Read,
        Some("t") => Op::Truncate,
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
    let schema = match schema {
        SchemaRef::Known(s) => s,
        SchemaRef::Unknown(id) => {
            return Err(format!(
                "unknown table {db}.{table}: schema {id} was never published"
            ))
        }
        SchemaRef::Missing(header) => {
            return Err(format!(
                "unknown table {db}.{table}: the message names no schema (header {header})"
            ))
        }
    };
    if schema.id.db != db || schema.id.table != table {
        return Err(format!(
            "the message is for {db}.{table} but its schema is {}",
            schema.id
        ));
    }
    let file = text("file").ok_or("`source.file` is missing")?;
    let pos = source
        .get("pos")
        .and_then(Json::as_u64)
        .ok_or("`source.pos` is missing")?;
    let row = source.get("row").and_then(Json::as_u64).unwrap_or(0) as u32;
    let before = object(envelope.get("before"), "before")?;
    let after = object(envelope.get("after"), "after")?;
    match op {
        Op::Create | Op::Read if after.is_none() => {
            return Err(format!("op {} without `after`", op.code()))
        }
        Op::Update if after.is_none() || before.is_none() => {
            return Err("op u needs `before` and `after`".into())
        }
        Op::Delete if before.is_none() => return Err("op d without `before`".into()),
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
        file: Arc::from(file),
        pos,
        row,
    };
    let order = order_key(&position, op == Op::Delete);
    Ok(DecodedChange {
        op,
        before,
        after,
        position,
        order,
        gtid: text("gtid").map(str::to_string),
        ts_ms: source.get("ts_ms").and_then(Json::as_i64).unwrap_or(0),
        snapshot: matches!(
            text("snapshot"),
            Some("true" | "last" | "first" | "incremental")
        ),
        server: text("name").map(str::to_string),
    })
}
