//! An existing Debezium consumer reading binlake's topics: every column of the all-types
//! workload is decoded by the semantic type Debezium's MySQL connector documentation gives it
//! (with `decimal.handling.mode=string`, `time.precision.mode=adaptive_time_microseconds`,
//! `binary.handling.mode=bytes`), turned back into MySQL's own text, and compared with what
//! MariaDB prints for the stored value.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use crate::kafka::run_source_with;
use crate::support::kafka::{broker, consume_all, one_partition};
use crate::support::mariadb::MariaDb;
use crate::support::unique_prefix;

/// Debezium's semantic types for the MySQL column types of all_types.
#[derive(Clone, Copy, Debug)]
enum Semantic {
    /// INT8..INT64, FLOAT32/64, strings: the JSON value as it is.
    Plain,
    /// `decimal.handling.mode=string`.
    DecimalString,
    /// BIT(1): BOOLEAN.
    Boolean,
    /// BIT(n > 1): `io.debezium.data.Bits`, bytes little-endian.
    Bits,
    /// DATE: `io.debezium.time.Date`, days since the epoch.
    Date,
    /// DATETIME(0-3): `io.debezium.time.Timestamp`, milliseconds since the epoch.
    TimestampMillis(usize),
    /// DATETIME(4-6): `io.debezium.time.MicroTimestamp`.
    MicroTimestamp,
    /// TIMESTAMP: `io.debezium.time.ZonedTimestamp`, ISO-8601 in UTC.
    ZonedTimestamp,
    /// TIME: `io.debezium.time.MicroTime`, microseconds.
    MicroTime(usize),
    /// YEAR: `io.debezium.time.Year`.
    Year,
    /// BINARY/VARBINARY/BLOB: bytes, base64 in JSON.
    Bytes,
    /// ENUM: `io.debezium.data.Enum`; SET: `io.debezium.data.EnumSet`.
    EnumText,
    /// JSON: `io.debezium.data.Json`, a string holding the document.
    Json,
    /// GEOMETRY: `io.debezium.data.geometry.Geometry`, `{wkb, srid}`.
    Geometry,
}

/// (column, semantic type, SQL giving MariaDB's own text for the stored value)
const COLUMNS: &[(&str, Semantic, &str)] = &[
    ("t_tiny", Semantic::Plain, "t_tiny"),
    ("t_tiny_u", Semantic::Plain, "t_tiny_u"),
    ("t_small", Semantic::Plain, "t_small"),
    ("t_medium_u", Semantic::Plain, "t_medium_u"),
    ("t_int", Semantic::Plain, "t_int"),
    ("t_big", Semantic::Plain, "t_big"),
    ("t_big_u", Semantic::Plain, "t_big_u"),
    (
        "t_dec_small",
        Semantic::DecimalString,
        "CAST(t_dec_small AS CHAR)",
    ),
    (
        "t_dec_big",
        Semantic::DecimalString,
        "CAST(t_dec_big AS CHAR)",
    ),
    ("t_double", Semantic::Plain, "t_double"),
    ("t_bit1", Semantic::Boolean, "t_bit1 + 0"),
    ("t_bit5", Semantic::Bits, "t_bit5 + 0"),
    ("t_bit64", Semantic::Bits, "CAST(t_bit64 + 0 AS UNSIGNED)"),
    ("t_date", Semantic::Date, "CAST(t_date AS CHAR)"),
    ("t_dt0", Semantic::TimestampMillis(0), "CAST(t_dt0 AS CHAR)"),
    ("t_dt3", Semantic::TimestampMillis(3), "CAST(t_dt3 AS CHAR)"),
    ("t_dt6", Semantic::MicroTimestamp, "CAST(t_dt6 AS CHAR)"),
    ("t_ts0", Semantic::ZonedTimestamp, "CAST(t_ts0 AS CHAR)"),
    ("t_ts6", Semantic::ZonedTimestamp, "CAST(t_ts6 AS CHAR)"),
    ("t_time0", Semantic::MicroTime(0), "CAST(t_time0 AS CHAR)"),
    ("t_time6", Semantic::MicroTime(6), "CAST(t_time6 AS CHAR)"),
    ("t_year", Semantic::Year, "t_year + 0"),
    ("t_char", Semantic::Plain, "t_char"),
    ("t_varchar", Semantic::Plain, "t_varchar"),
    ("t_text", Semantic::Plain, "t_text"),
    ("t_binary", Semantic::Bytes, "HEX(t_binary)"),
    ("t_blob", Semantic::Bytes, "HEX(t_blob)"),
    ("t_enum", Semantic::EnumText, "t_enum"),
    ("t_set", Semantic::EnumText, "t_set"),
    ("t_json", Semantic::Json, "t_json"),
    (
        "t_geo",
        Semantic::Geometry,
        "IF(t_geo IS NULL, NULL, CONCAT(ST_SRID(t_geo), ':', ST_AsText(t_geo)))",
    ),
];

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn civil(days: i64) -> (i64, i64, i64) {
    let (y, m, d) = binlake::event::civil_from_days(days);
    (y, m as i64, d as i64)
}

fn datetime_text(micros: i64, digits: usize) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if digits > 0 {
        s.push_str(&format!(".{:06}", frac)[..digits + 1]);
    }
    s
}

/// What a Debezium consumer makes of the value, written as MySQL prints the column.
fn decode(semantic: Semantic, v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    let text = |s: String| Value::String(s);
    match semantic {
        Semantic::Plain | Semantic::DecimalString | Semantic::EnumText | Semantic::Year => {
            v.clone()
        }
        Semantic::Boolean => Value::from(v.as_bool().unwrap() as u64),
        Semantic::Bits => {
            let bytes = b64(v.as_str().unwrap());
            Value::from(bytes.iter().rev().fold(0u64, |a, b| (a << 8) | *b as u64))
        }
        Semantic::Date => {
            let (y, m, d) = civil(v.as_i64().unwrap());
            text(format!("{y:04}-{m:02}-{d:02}"))
        }
        Semantic::TimestampMillis(digits) => {
            text(datetime_text(v.as_i64().unwrap() * 1000, digits))
        }
        Semantic::MicroTimestamp => text(datetime_text(v.as_i64().unwrap(), 6)),
        Semantic::ZonedTimestamp => {
            // "2038-01-19T03:14:07.999999Z" → "2038-01-19 03:14:07.999999"
            text(v.as_str().unwrap().trim_end_matches('Z').replace('T', " "))
        }
        Semantic::MicroTime(digits) => {
            let us = v.as_i64().unwrap();
            let sign = if us < 0 { "-" } else { "" };
            let a = us.unsigned_abs();
            let secs = a / 1_000_000;
            let mut s = format!(
                "{sign}{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
            if digits > 0 {
                s.push_str(&format!(".{:06}", a % 1_000_000)[..digits + 1]);
            }
            text(s)
        }
        Semantic::Bytes => text(
            b64(v.as_str().unwrap())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect(),
        ),
        Semantic::Json => serde_json::from_str(v.as_str().unwrap()).unwrap(),
        Semantic::Geometry => {
            let wkb = b64(v["wkb"].as_str().unwrap());
            text(format!("{}:{}", v["srid"], wkt(&wkb)))
        }
    }
}

/// Enough WKB (little-endian POINT / LINESTRING) to print what ST_AsText prints.
fn wkt(wkb: &[u8]) -> String {
    let f = |at: usize| f64::from_le_bytes(wkb[at..at + 8].try_into().unwrap());
    let n = |x: f64| format!("{x}");
    match u32::from_le_bytes(wkb[1..5].try_into().unwrap()) {
        1 => format!("POINT({} {})", n(f(5)), n(f(13))),
        2 => {
            let count = u32::from_le_bytes(wkb[5..9].try_into().unwrap()) as usize;
            let pts: Vec<String> = (0..count)
                .map(|i| format!("{} {}", n(f(9 + 16 * i)), n(f(17 + 16 * i))))
                .collect();
            format!("LINESTRING({})", pts.join(","))
        }
        t => format!("WKB type {t}"),
    }
}

#[test]
fn a_debezium_consumer_reads_every_column_type() {
    let db = MariaDb::start();
    db.sql_file(&crate::fixture("../../sql/workload/all_types.sql"));
    let b = broker();
    let prefix = unique_prefix("dbz");
    let topic = format!("{prefix}.binlake_types.all_types");
    one_partition(&b, &topic);
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_source_with(&db, &b, dir.path(), &prefix, "binlake_types.*", "");
    assert_eq!(code, Some(0), "{stderr}");

    // A keyed consumer: the last value per key, tombstones remove.
    let mut rows: BTreeMap<u64, Value> = BTreeMap::new();
    for (key, value) in consume_all(&b, &topic) {
        let id = key["id"].as_u64().unwrap();
        if value.is_null() || value["after"].is_null() {
            rows.remove(&id);
        } else {
            rows.insert(id, value["after"].clone());
        }
    }
    let pairs: Vec<String> = COLUMNS
        .iter()
        .map(|(c, _, e)| format!("'{c}', {e}"))
        .collect();
    let selected: Vec<Value> = db
        .sql(&format!(
            "SET time_zone = '+00:00'; SELECT JSON_OBJECT('id', id, {}) FROM binlake_types.all_types ORDER BY id;",
            pairs.join(", ")
        ))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), selected.len());
    let mut compared = 0;
    for s in &selected {
        let id = s["id"].as_u64().unwrap();
        let after = &rows[&id];
        for (column, semantic, _) in COLUMNS {
            let mine = decode(*semantic, &after[*column]);
            let mut theirs = s[*column].clone();
            // Zero dates are null in Debezium's encoding; MariaDB prints them as zeros.
            if theirs.as_str().is_some_and(|t| t.starts_with("0000-00-00")) {
                theirs = Value::Null;
            }
            if let (Semantic::Json, Value::String(t)) = (semantic, &theirs) {
                theirs = serde_json::from_str(t).unwrap();
            }
            let same = match (&mine, &theirs) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => mine == theirs,
            };
            assert!(same, "id {id} column {column} ({semantic:?}): consumer read {mine}, MariaDB has {theirs}");
            compared += 1;
        }
    }
    assert_eq!(compared, 6 * COLUMNS.len());
}
