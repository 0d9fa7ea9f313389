//! Debezium-compatible JSON encoding of change events (the JSON converter with schemas off):
//! the value envelope `{before, after, source, op, ts_ms, transaction}` and the message key.
//! Written straight into a byte buffer, without an intermediate JSON tree.

use base64::Engine;

use crate::event::{ChangeEvent, Column, ColumnType, Row, TableSchema, Value};
use crate::mysql::jsonb::{write_json_string, write_json_text};
use crate::mysql::Malformed;

/// The version string reported in `source.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings of the envelope encoder.
#[derive(Debug, Clone)]
pub struct EnvelopeOptions {
    /// The logical server name (`source.name`, and the topic prefix in Kafka).
    pub name: String,
}

impl Default for EnvelopeOptions {
    fn default() -> Self {
        EnvelopeOptions {
            name: "binlake".into(),
        }
    }
}

/// Encodes change events as Debezium JSON.
#[derive(Debug, Clone)]
pub struct Envelope {
    name_json: Vec<u8>,
    /// The statement text of the last event, escaped: every row of a statement carries it,
    /// and a long INSERT ... SELECT would otherwise be escaped once per row.
    query_cache: Option<(std::sync::Arc<str>, Vec<u8>)>,
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn push_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(
        start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
        0,
    );
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("buffer sized by encoded_len");
    out.truncate(start + n);
    out.push(b'"');
}

fn push_opt_str(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(s) => write_json_string(s, out),
        None => push_str(out, "null"),
    }
}

/// `2024-02-29T13:05:07.123456Z`, with as many fraction digits as the column declares.
fn push_iso_timestamp(out: &mut Vec<u8>, secs: i64, micros: u32, fsp: u8) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::event::civil_from_days(days);
    let text = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    out.push(b'"');
    push_str(out, &text);
    if fsp > 0 {
        let frac = format!("{micros:06}");
        out.push(b'.');
        push_str(out, &frac[..fsp.min(6) as usize]);
    }
    push_str(out, "Z\"");
}

/// Writes one column value in Debezium's encoding for the column's MySQL type.
pub fn write_value(col: &Column, v: &Value<'_>, out: &mut Vec<u8>) -> Result<(), Malformed> {
    match v {
        Value::Null => push_str(out, "null"),
        Value::Int(i) => push_int(out, *i),
        Value::UInt(u) => push_int(out, *u),
        Value::Float(f) => {
            if f.is_finite() {
                push_str(out, ryu::Buffer::new().format_finite(*f));
            } else {
                push_str(out, "null");
            }
        }
        Value::Double(f) => {
            if f.is_finite() {
                push_str(out, ryu::Buffer::new().format_finite(*f));
            } else {
                push_str(out, "null");
            }
        }
        Value::Decimal(d) => {
            out.push(b'"');
            d.write_to(out);
            out.push(b'"');
        }
        Value::DecimalText(d) => write_json_string(d, out),
        Value::Bit(bits) => {
            let width = match col.column_type {
                ColumnType::Bit { bits } => bits,
                _ => 64,
            };
            if width == 1 {
                push_str(out, if *bits != 0 { "true" } else { "false" });
            } else {
                let n = (width as usize).div_ceil(8).clamp(1, 8);
                push_base64(out, &bits.to_le_bytes()[..n]);
            }
        }
        Value::Date(d) => match d.days_since_epoch() {
            Some(days) => push_int(out, days),
            None => push_str(out, "null"),
        },
        Value::DateTime(d) => {
            let fsp = match col.column_type {
                ColumnType::DateTime { fsp } => fsp,
                _ => 6,
            };
            match d.micros_since_epoch() {
                Some(us) if fsp <= 3 => push_int(out, us.div_euclid(1000)),
                Some(us) => push_int(out, us),
                None => push_str(out, "null"),
            }
        }
        Value::Timestamp { secs, micros } => {
            if *secs == 0 && *micros == 0 {
                push_str(out, "null");
            } else {
                let fsp = match col.column_type {
                    ColumnType::Timestamp { fsp } => fsp,
                    _ => 0,
                };
                push_iso_timestamp(out, *secs, *micros, fsp);
            }
        }
        Value::Time(t) => push_int(out, t.total_micros()),
        Value::Year(y) => push_int(out, *y),
        Value::Text(s) => write_json_string(s, out),
        Value::Bytes(b) => push_base64(out, b),
        Value::Enum(i) => {
            if col.members.is_empty() {
                push_int(out, *i);
            } else if *i == 0 {
                push_str(out, "\"\"");
            } else {
                match col.members.get(*i as usize - 1) {
                    Some(m) => write_json_string(m, out),
                    None => {
                        return Err(Malformed::new(format!(
                            "column `{}`: ENUM index {i} beyond its {} members",
                            col.name,
                            col.members.len()
                        )))
                    }
                }
            }
        }
        Value::Set(mask) => {
            if col.members.is_empty() {
                push_int(out, *mask);
            } else {
                let mut s = String::new();
                for (i, m) in col.members.iter().enumerate().take(64) {
                    if mask & (1 << i) != 0 {
                        if !s.is_empty() {
                            s.push(',');
                        }
                        s.push_str(m);
                    }
                }
                write_json_string(&s, out);
            }
        }
        Value::JsonBinary(b) => {
            let mut text = Vec::with_capacity(b.len() * 2);
            write_json_text(b, &mut text)
                .map_err(|e| Malformed::new(format!("column `{}`: {e}", col.name)))?;
            write_json_string(&String::from_utf8_lossy(&text), out);
        }
        Value::JsonText(t) => write_json_string(t, out),
        Value::Geometry(g) => {
            if g.len() < 4 {
                return Err(Malformed::new(format!(
                    "column `{}`: GEOMETRY of {} bytes has no SRID",
                    col.name,
                    g.len()
                )));
            }
            let srid = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
            push_str(out, "{\"wkb\":");
            push_base64(out, &g[4..]);
            push_str(out, ",\"srid\":");
            push_int(out, srid);
            out.push(b'}');
        }
        Value::Vector(b) => {
            out.push(b'[');
            for (i, c) in b.chunks_exact(4).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let f = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if f.is_finite() {
                    push_str(out, ryu::Buffer::new().format_finite(f));
                } else {
                    push_str(out, "null");
                }
            }
            out.push(b']');
        }
    }
    Ok(())
}

fn write_row(schema: &TableSchema, row: &Row<'_>, out: &mut Vec<u8>) -> Result<(), Malformed> {
    out.push(b'{');
    let mut first = true;
    for (col, v) in schema.columns.iter().zip(row.iter()) {
        let Some(v) = v else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_string(&col.name, out);
        out.push(b':');
        write_value(col, v, out)?;
    }
    out.push(b'}');
    Ok(())
}

impl Envelope {
    pub fn new(options: &EnvelopeOptions) -> Self {
        let mut name_json = Vec::new();
        write_json_string(&options.name, &mut name_json);
        Envelope {
            name_json,
            query_cache: None,
        }
    }

    /// Writes the Debezium value envelope of `event`; `ts_ms` is the processing time.
    pub fn write(
        &mut self,
        event: &ChangeEvent<'_>,
        ts_ms: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), Malformed> {
        let schema = &event.table;
        out.reserve(512 + 64 * schema.columns.len());
        push_str(out, "{\"before\":");
        match &event.before {
            Some(r) => write_row(schema, r, out)?,
            None => push_str(out, "null"),
        }
        push_str(out, ",\"after\":");
        match &event.after {
            Some(r) => write_row(schema, r, out)?,
            None => push_str(out, "null"),
        }
        let s = &event.source;
        push_str(out, ",\"source\":{\"version\":\"");
        push_str(out, VERSION);
        push_str(out, "\",\"connector\":\"mysql\",\"name\":");
        out.extend_from_slice(&self.name_json);
        push_str(out, ",\"ts_ms\":");
        push_int(out, s.ts_ms);
        push_str(out, ",\"snapshot\":\"");
        push_str(out, s.snapshot);
        push_str(out, "\",\"db\":");
        write_json_string(&schema.id.db, out);
        push_str(out, ",\"table\":");
        write_json_string(&schema.id.table, out);
        push_str(out, ",\"server_id\":");
        push_int(out, s.server_id);
        push_str(out, ",\"gtid\":");
        push_opt_str(out, s.gtid.as_deref());
        push_str(out, ",\"file\":");
        write_json_string(&event.position.file, out);
        push_str(out, ",\"pos\":");
        push_int(out, event.position.pos);
        push_str(out, ",\"row\":");
        push_int(out, event.position.row);
        push_str(out, ",\"thread\":");
        match s.thread {
            Some(t) => push_int(out, t),
            None => push_str(out, "null"),
        }
        push_str(out, ",\"query\":");
        match &s.query {
            None => push_str(out, "null"),
            Some(q) => {
                let hit = matches!(&self.query_cache, Some((cached, _)) if std::sync::Arc::ptr_eq(cached, q));
                if !hit {
                    let mut escaped = Vec::with_capacity(q.len() + 2);
                    write_json_string(q, &mut escaped);
                    self.query_cache = Some((q.clone(), escaped));
                }
                let (_, escaped) = self.query_cache.as_ref().expect("just filled");
                out.extend_from_slice(escaped);
            }
        }
        push_str(out, "},\"op\":\"");
        push_str(out, event.op.code());
        push_str(out, "\",\"ts_ms\":");
        push_int(out, ts_ms);
        push_str(out, ",\"transaction\":");
        match &event.transaction {
            Some(t) => {
                push_str(out, "{\"id\":");
                write_json_string(&t.id, out);
                push_str(out, ",\"total_order\":");
                push_int(out, t.total_order);
                push_str(out, ",\"data_collection_order\":");
                push_int(out, t.data_collection_order);
                out.push(b'}');
            }
            None => push_str(out, "null"),
        }
        out.push(b'}');
        Ok(())
    }

    /// Writes the message key: the primary-key columns of the row (after image, or before
    /// image for deletes) as a JSON object; every column when the table has no primary key.
    pub fn write_key(&self, event: &ChangeEvent<'_>, out: &mut Vec<u8>) -> Result<(), Malformed> {
        let schema = &event.table;
        let Some(row) = event.after.as_ref().or(event.before.as_ref()) else {
            push_str(out, "null");
            return Ok(());
        };
        let all: Vec<usize>;
        let key_columns: &[usize] = if schema.primary_key.is_empty() {
            all = (0..schema.columns.len()).collect();
            &all
        } else {
            &schema.primary_key
        };
        out.push(b'{');
        let mut first = true;
        for &i in key_columns {
            let (Some(col), Some(Some(v))) = (schema.columns.get(i), row.get(i)) else {
                continue;
            };
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_string(&col.name, out);
            out.push(b':');
            write_value(col, v, out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DateTimeValue, TimeValue};
    use std::borrow::Cow;

    fn enc(column_type: ColumnType, v: Value<'_>) -> String {
        let mut col = Column::new("c", column_type);
        col.members = vec!["red".into(), "green".into(), "blue".into()];
        let mut out = Vec::new();
        write_value(&col, &v, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn debezium_encodings() {
        assert_eq!(
            enc(ColumnType::BigInt, Value::UInt(u64::MAX)),
            "18446744073709551615"
        );
        assert_eq!(enc(ColumnType::Bit { bits: 1 }, Value::Bit(1)), "true");
        assert_eq!(
            enc(ColumnType::Bit { bits: 16 }, Value::Bit(0x0102)),
            "\"AgE=\""
        );
        let d = DateTimeValue {
            year: 2024,
            month: 2,
            day: 29,
            hour: 13,
            minute: 5,
            second: 7,
            micros: 123_456,
        };
        assert_eq!(enc(ColumnType::Date, Value::Date(d)), "19782");
        assert_eq!(
            enc(ColumnType::DateTime { fsp: 3 }, Value::DateTime(d)),
            "1709211907123"
        );
        assert_eq!(
            enc(ColumnType::DateTime { fsp: 6 }, Value::DateTime(d)),
            "1709211907123456"
        );
        let zero = DateTimeValue {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            micros: 0,
        };
        assert_eq!(enc(ColumnType::Date, Value::Date(zero)), "null");
        assert_eq!(
            enc(
                ColumnType::Timestamp { fsp: 2 },
                Value::Timestamp {
                    secs: 1_577_836_800,
                    micros: 500_000
                }
            ),
            "\"2020-01-01T00:00:00.50Z\""
        );
        let t = TimeValue {
            negative: true,
            hours: 25,
            minutes: 0,
            seconds: 1,
            micros: 0,
        };
        assert_eq!(
            enc(ColumnType::Time { fsp: 0 }, Value::Time(t)),
            "-90001000000"
        );
        assert_eq!(enc(ColumnType::Enum, Value::Enum(2)), "\"green\"");
        assert_eq!(enc(ColumnType::Set, Value::Set(0b101)), "\"red,blue\"");
        assert_eq!(
            enc(
                ColumnType::Blob { pack_len: 2 },
                Value::Bytes(Cow::Borrowed(b"\x00\xff"))
            ),
            "\"AP8=\""
        );
        assert_eq!(
            enc(
                ColumnType::VarChar { max_bytes: 10 },
                Value::Text("a\"b".into())
            ),
            "\"a\\\"b\""
        );
        let geo = [0xe6, 0x10, 0, 0, 1, 2];
        assert_eq!(
            enc(ColumnType::Geometry, Value::Geometry(Cow::Borrowed(&geo))),
            "{\"wkb\":\"AQI=\",\"srid\":4326}"
        );
        let v: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        assert_eq!(
            enc(ColumnType::Vector, Value::Vector(Cow::Owned(v))),
            "[1.5,-2.0]"
        );
    }
}
