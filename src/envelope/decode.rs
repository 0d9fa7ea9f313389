//! Decoding: a Debezium envelope (as binlake, or Debezium's MySQL connector with the JSON
//! converter, writes it; with or without the `schema`/`payload` wrapper) back into the parts a
//! change is applied by, checked against the table schema the record names. The error is the
//! reason a message is not a change event (the lake's dead letters).

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;
use serde_json::Value as Json;

use super::row::{read_row, RowImage};
use crate::event::{Op, Position, TableSchema};

/// One decoded change event.
#[derive(Debug, Clone)]
pub struct DecodedChange {
    pub op: Op,
    /// The row images, in the schema's column order.
    pub before: Option<RowImage>,
    pub after: Option<RowImage>,
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

/// The fields of an envelope decoding reads, borrowed from the message where no escape forces a
/// copy. Everything else (`transaction`, the wrapper's `schema`) is skipped without being built;
/// the row images are kept as text, read into the schema's columns once the schema is checked.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct Wire<'a> {
    #[serde(borrow, default)]
    op: Text<'a>,
    #[serde(borrow, default)]
    source: Option<WireSource<'a>>,
    #[serde(borrow, default)]
    before: Option<&'a RawValue>,
    #[serde(borrow, default)]
    after: Option<&'a RawValue>,
    /// Present with Debezium's `schema`/`payload` wrapper (schemas enabled).
    #[serde(default)]
    schema: Option<IgnoredAny>,
    #[serde(borrow, default)]
    payload: Option<Box<Wire<'a>>>,
}

/// A field read as text when it is a JSON string (borrowed unless it has escapes); any other
/// value reads as absent, which is what the checks below report.
#[derive(Default)]
struct Text<'a>(Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }

    fn into_owned(self) -> Option<String> {
        self.0.map(Cow::into_owned)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(None))
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Text<'de>, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct WireSource<'a> {
    #[serde(borrow, default)]
    db: Text<'a>,
    #[serde(borrow, default)]
    table: Text<'a>,
    #[serde(borrow, default)]
    file: Text<'a>,
    #[serde(borrow, default)]
    gtid: Text<'a>,
    #[serde(borrow, default)]
    name: Text<'a>,
    #[serde(default)]
    snapshot: Option<Json>,
    #[serde(default)]
    pos: Option<Json>,
    #[serde(default)]
    row: Option<Json>,
    #[serde(default)]
    ts_ms: Option<Json>,
}

/// The text of a row image: an object, or None for null or absent.
fn object<'a>(v: Option<&'a RawValue>, what: &str) -> Result<Option<&'a str>, String> {
    let Some(text) = v.map(|v| v.get().trim_start()) else {
        return Ok(None);
    };
    match text.as_bytes().first() {
        Some(b'{') => Ok(Some(text)),
        Some(b'n') => Ok(None),
        _ => {
            let value: Json = serde_json::from_str(text).unwrap_or(Json::Null);
            Err(format!(
                "`{what}` must be an object or null, got {}",
                short(&value)
            ))
        }
    }
}

/// A row image's text (the field `what`) read into the columns of `schema`.
fn row_of(
    text: Option<&str>,
    what: &str,
    schema: &TableSchema,
) -> Result<Option<RowImage>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    let read =
        read_row(text, schema).map_err(|e| format!("not a Debezium envelope: `{what}`: {e}"))?;
    match read.unknown {
        Some(unknown) => Err(format!(
            "column {unknown} is not in the schema of {}",
            schema.id
        )),
        None => Ok(Some(read.row)),
    }
}

/// Why a message that did not fit [`Wire`] is not a change event: not JSON at all, or JSON of
/// another shape (a field of the wrong type, an array).
fn not_an_envelope(value: &[u8], e: serde_json::Error) -> String {
    if e.classify() != Category::Data {
        return format!("not JSON: {e}");
    }
    // A type error can come before a syntax error further on; the syntax error is the news.
    match serde_json::from_slice::<IgnoredAny>(value) {
        Ok(_) => format!("not a Debezium envelope: {e}"),
        Err(syntax) => format!("not JSON: {syntax}"),
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

/// The text every layer orders changes by: the binlog place, and at one place a delete before
/// anything else (a primary-key move's delete and create share one binlog row).
pub fn order_key(position: &Position, delete: bool) -> String {
    format!("{}:{}", position.sort_key(), if delete { 0 } else { 1 })
}

/// Decodes one envelope written with `schema`.
pub fn decode(value: &[u8], schema: SchemaRef<'_>) -> Result<DecodedChange, String> {
    // A JSON array would fill the struct's fields by position; an envelope is an object.
    if value.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let e = serde_json::from_slice::<Json>(value).map(|v| short(&v));
        return Err(match e {
            Ok(v) => format!("not a Debezium envelope: {v}"),
            Err(e) => format!("not JSON: {e}"),
        });
    }
    let wire: Wire = serde_json::from_slice(value).map_err(|e| not_an_envelope(value, e))?;
    // Debezium with schemas enabled wraps the envelope in {"schema", "payload"}.
    let envelope = match wire.payload {
        Some(payload) if wire.schema.is_some() => *payload,
        _ => wire,
    };
    let op = match envelope.op.as_deref() {
        Some("c") => Op::Create,
        Some("u") => Op::Update,
        Some("d") => Op::Delete,
        Some("r") => Op::Read,
        Some("t") => Op::Truncate,
        other => return Err(format!("`op` must be c, u, d, r or t, got {other:?}")),
    };
    let source = envelope.source.ok_or("`source` is missing")?;
    let (Some(db), Some(table)) = (source.db.as_deref(), source.table.as_deref()) else {
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
    let file = source.file.as_deref().ok_or("`source.file` is missing")?;
    let pos = source
        .pos
        .as_ref()
        .and_then(Json::as_u64)
        .ok_or("`source.pos` is missing")?;
    let row = source.row.as_ref().and_then(Json::as_u64).unwrap_or(0) as u32;
    let before = object(envelope.before, "before")?;
    let after = object(envelope.after, "after")?;
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
    let before = row_of(before, "before", schema)?;
    let after = row_of(after, "after", schema)?;
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
        gtid: source.gtid.into_owned(),
        ts_ms: source.ts_ms.as_ref().and_then(Json::as_i64).unwrap_or(0),
        snapshot: matches!(
            source.snapshot.as_ref().and_then(Json::as_str),
            Some("true" | "last" | "first" | "incremental")
        ),
        server: source.name.into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Column, ColumnType, TableId};

    fn orders() -> Arc<TableSchema> {
        Arc::new(TableSchema {
            id: TableId::new("shop", "orders"),
            columns: vec![
                Column::new("id", ColumnType::Int),
                Column::new("note", ColumnType::VarChar { max_bytes: 80 }),
            ],
            primary_key: vec![0],
            positional_names: false,
        })
    }

    fn decode_text(text: &str) -> Result<DecodedChange, String> {
        decode(text.as_bytes(), SchemaRef::Known(&orders()))
    }

    #[test]
    fn reads_binlake_and_debezium_wrapped_envelopes_alike() {
        let envelope = r#"{"before":{"id":1,"note":"a"},"after":{"NOTE":"b\"c","id":1},
            "source":{"name":"s1","db":"shop","table":"orders","file":"bin\u002e000003",
            "pos":4711,"row":2,"gtid":"0-1-9","ts_ms":1700000000000,"snapshot":"last"},
            "op":"u","ts_ms":1,"transaction":{"id":"x","total_order":3}}"#;
        let wrapped =
            format!(r#"{{"schema":{{"type":"struct","fields":[]}},"payload":{envelope}}}"#);
        for text in [envelope, wrapped.as_str()] {
            let d = decode_text(text).unwrap();
            assert_eq!(d.op, Op::Update);
            assert_eq!(&*d.position.file, "bin.000003");
            assert_eq!((d.position.pos, d.position.row), (4711, 2));
            assert_eq!(d.gtid.as_deref(), Some("0-1-9"));
            assert_eq!(d.server.as_deref(), Some("s1"));
            assert_eq!(d.ts_ms, 1_700_000_000_000);
            assert!(d.snapshot);
            assert_eq!(d.before.unwrap().get(1), Some(&Json::from("a")));
            // Keys in another order and case land in the schema's columns.
            let after = d.after.unwrap();
            assert_eq!(after.get(0), Some(&Json::from(1)));
            assert_eq!(after.get(1), Some(&Json::from("b\"c")));
            assert_eq!(d.order, order_key(&d.position, false));
        }
    }

    #[test]
    fn names_what_is_wrong_with_a_message() {
        let source = r#""source":{"db":"shop","table":"orders","file":"f","pos":4}"#;
        let cases = [
            ("this is not json", "not JSON: expected ident at line 1 column 2"),
            ("[1,2]", "not a Debezium envelope: [1,2]"),
            (
                r#"{"op":"c","after":{"id":1}"#,
                "not JSON: EOF while parsing an object at line 1 column 26",
            ),
            (
                r#"{"op":"c","after":{"id":1},"source":7}"#,
                "not a Debezium envelope: invalid type: integer `7`, expected a JSON object at line 1 column 37",
            ),
            (
                &format!(r#"{{"op":"x",{source}}}"#),
                r#"`op` must be c, u, d, r or t, got Some("x")"#,
            ),
            (r#"{"op":"c","after":{"id":1}}"#, "`source` is missing"),
            // The generic parse this replaced let the last of two equal keys win; a repeated
            // field is now a dead letter rather than a guess at which one was meant.
            (
                &format!(r#"{{"op":"c","op":"d","after":{{"id":1}},{source}}}"#),
                "not a Debezium envelope: duplicate field `op` at line 1 column 14",
            ),
            (
                &format!(r#"{{"op":7,"after":{{"id":1}},{source}}}"#),
                "`op` must be c, u, d, r or t, got None",
            ),
            (
                r#"{"op":"c","after":{"id":1},"source":{"db":["shop"],"table":"orders"}}"#,
                "`source.db` / `source.table` are missing",
            ),
            (
                &format!(r#"{{"op":"c",{source}}}"#),
                "op c without `after`",
            ),
            (
                &format!(r#"{{"op":"c","after":[1],{source}}}"#),
                "`after` must be an object or null, got [1]",
            ),
            (
                &format!(r#"{{"op":"c","after":{{"id":1,"colour":2}},{source}}}"#),
                "column colour is not in the schema of shop.orders",
            ),
            (
                r#"{"op":"c","after":{"id":1},"source":{"db":"shop","table":"items","file":"f","pos":4}}"#,
                "the message is for shop.items but its schema is shop.orders",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(decode_text(text).unwrap_err(), want, "for {text}");
        }
        let unknown = decode(
            format!(r#"{{"op":"c","after":{{"id":1}},{source}}}"#).as_bytes(),
            SchemaRef::Unknown("shop.orders#7"),
        );
        assert_eq!(
            unknown.unwrap_err(),
            "unknown table shop.orders: schema shop.orders#7 was never published"
        );
    }
}
