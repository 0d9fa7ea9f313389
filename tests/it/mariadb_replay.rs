//! Replay of binlogs written by a live MariaDB running sql/workload/all_types.sql: the state
//! the replayed changes add up to must equal what MariaDB's SELECT returns, value by value.

use std::collections::BTreeMap;

use binlake::replay::ReplayOptions;
use serde_json::Value;

use crate::support::mariadb::MariaDb;

/// For each column of all_types, the SQL that computes Debezium's encoding of it from the
/// stored value; BIT columns are compared as integers.
const ALL_TYPES_COLUMNS: &[(&str, &str)] = &[
    ("id", "id"),
    ("t_tiny", "t_tiny"),
    ("t_tiny_u", "t_tiny_u"),
    ("t_small", "t_small"),
    ("t_small_u", "t_small_u"),
    ("t_medium", "t_medium"),
    ("t_medium_u", "t_medium_u"),
    ("t_int", "t_int"),
    ("t_added", "t_added"),
    ("t_int_u", "t_int_u"),
    ("t_big", "t_big"),
    ("t_big_u", "t_big_u"),
    ("t_dec_small", "CAST(t_dec_small AS CHAR)"),
    ("t_dec_big", "CAST(t_dec_big AS CHAR)"),
    ("t_dec_int", "CAST(t_dec_int AS CHAR)"),
    ("t_float", "t_float"),
    ("t_double", "t_double"),
    ("t_bit1", "t_bit1 + 0"),
    ("t_bit5", "t_bit5 + 0"),
    ("t_bit64", "CAST(t_bit64 + 0 AS UNSIGNED)"),
    ("t_date", "DATEDIFF(t_date, '1970-01-01')"),
    ("t_dt0", "FLOOR(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', t_dt0) / 1000)"),
    ("t_dt3", "FLOOR(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', t_dt3) / 1000)"),
    ("t_dt6", "TIMESTAMPDIFF(MICROSECOND, '1970-01-01', t_dt6)"),
    ("t_ts0", "DATE_FORMAT(t_ts0, '%Y-%m-%dT%H:%i:%sZ')"),
    ("t_ts6", "DATE_FORMAT(t_ts6, '%Y-%m-%dT%H:%i:%s.%fZ')"),
    ("t_time0", "CAST(ROUND(TIME_TO_SEC(t_time0) * 1000000) AS SIGNED)"),
    ("t_time6", "CAST(ROUND(TIME_TO_SEC(t_time6) * 1000000) AS SIGNED)"),
    ("t_year", "t_year + 0"),
    ("t_char", "t_char"),
    ("t_varchar", "t_varchar"),
    ("t_text", "t_text"),
    ("t_mediumtext", "t_mediumtext"),
    ("t_binary", "REPLACE(TO_BASE64(t_binary), '\\n', '')"),
    ("t_varbinary", "REPLACE(TO_BASE64(t_varbinary), '\\n', '')"),
    ("t_blob", "REPLACE(TO_BASE64(t_blob), '\\n', '')"),
    ("t_longblob", "REPLACE(TO_BASE64(t_longblob), '\\n', '')"),
    ("t_enum", "t_enum"),
    ("t_set", "t_set"),
    ("t_json", "t_json"),
    (
        "t_geo",
        "IF(t_geo IS NULL, NULL, JSON_OBJECT('wkb', REPLACE(TO_BASE64(ST_AsBinary(t_geo)), '\\n', ''), 'srid', ST_SRID(t_geo)))",
    ),
];

fn select_json(db: &MariaDb, table: &str, columns: &[(&str, &str)], order: &str) -> Vec<Value> {
    let pairs: Vec<String> = columns
        .iter()
        .map(|(name, expr)| format!("'{name}', {expr}"))
        .collect();
    let sql = format!(
        "SET time_zone = '+00:00'; SELECT JSON_OBJECT({}) FROM binlake_types.{table} ORDER BY {order};",
        pairs.join(", ")
    );
    db.sql(&sql)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Debezium's BIT encodings (bool for BIT(1), little-endian bytes otherwise) as an integer.
fn bit_as_integer(v: &Value) -> Value {
    use base64::Engine;
    match v {
        Value::Bool(b) => Value::from(*b as u64),
        Value::String(s) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
            Value::from(
                bytes
                    .iter()
                    .rev()
                    .fold(0u64, |acc, b| (acc << 8) | *b as u64),
            )
        }
        other => other.clone(),
    }
}

fn assert_same(table: &str, key: &str, col: &str, replayed: &Value, selected: &Value) {
    let ok = match (col, replayed, selected) {
        (c, r, s) if c.starts_with("t_bit") => bit_as_integer(r) == *s,
        // MariaDB prints FLOAT with 6 significant digits, and 0 for 0.0.
        ("t_float", Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            (a - b).abs() <= 1e-6 * a.abs().max(1.0)
        }
        ("t_double", Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // JSON_OBJECT embeds a JSON column as a document, not a string.
        ("t_json", Value::String(a), b) => {
            let b = match b {
                Value::String(s) => serde_json::from_str::<Value>(s).unwrap(),
                other => other.clone(),
            };
            serde_json::from_str::<Value>(a).unwrap() == b
        }
        _ => replayed == selected,
    };
    assert!(
        ok,
        "{table} key {key} column {col}: replay gave {replayed}, SELECT gave {selected}"
    );
}

/// The state a sequence of change events adds up to, per table: the last image per key
/// (`id`), and the rows of the table without a key as a multiset.
pub struct Folded {
    pub tables: BTreeMap<String, BTreeMap<String, Value>>,
    pub no_pk_rows: Vec<Value>,
}

/// Folds events in order. An event already seen (same position and images) is a duplicate
/// re-delivered after a restart and is dropped, as a sink does.
pub fn fold(events: &[Value]) -> Folded {
    let mut seen = std::collections::HashSet::new();
    let mut state: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut no_pk_rows: Vec<Value> = Vec::new();
    for e in events {
        let s = &e["source"];
        // Snapshot rows of one chunk share a position: the images are part of the identity.
        let identity = (
            s["file"].to_string(),
            s["pos"].as_u64(),
            s["row"].as_u64(),
            e["before"].to_string(),
            e["after"].to_string(),
        );
        if !seen.insert(identity) {
            continue;
        }
        let table = s["table"].as_str().unwrap();
        let table = if table == "old_name" {
            "new_name"
        } else {
            table
        };
        let rows = state.entry(table.to_string()).or_default();
        let op = e["op"].as_str().unwrap();
        if op == "t" {
            rows.clear();
            continue;
        }
        if table == "no_pk" {
            match op {
                "c" | "r" => no_pk_rows.push(e["after"].clone()),
                "d" => {
                    let i = no_pk_rows.iter().position(|r| *r == e["before"]).unwrap();
                    no_pk_rows.remove(i);
                }
                _ => panic!("unexpected {op} on no_pk"),
            }
            continue;
        }
        if !e["before"].is_null() {
            rows.remove(&e["before"]["id"].to_string());
        }
        if !e["after"].is_null() {
            rows.insert(e["after"]["id"].to_string(), e["after"].clone());
        }
    }
    // `ALTER TABLE ... ADD COLUMN t_added ... DEFAULT 'dflt'` fills existing rows without any
    // row event: the binlog cannot show it. A sink applies the DDL's default to rows written
    // before the ALTER, as this fold does.
    if let Some(all) = state.get_mut("all_types") {
        for row in all.values_mut() {
            let obj = row.as_object_mut().unwrap();
            obj.entry("t_added").or_insert_with(|| Value::from("dflt"));
        }
    }
    Folded {
        tables: state,
        no_pk_rows,
    }
}

/// Compares the folded state of sql/workload/all_types.sql with the server's tables.
pub fn assert_all_types_state_equals_select(db: &MariaDb, folded: &mut Folded) {
    let state = &folded.tables;
    let selected = select_json(db, "all_types", ALL_TYPES_COLUMNS, "id");
    let replayed = &state["all_types"];
    let keys: Vec<&String> = replayed.keys().collect();
    assert_eq!(keys.len(), selected.len(), "rows: replay {keys:?}");
    assert_eq!(keys.len(), 6);
    for row in &selected {
        let key = row["id"].to_string();
        let mine = replayed
            .get(&key)
            .unwrap_or_else(|| panic!("key {key} missing from replay"));
        for (col, _) in ALL_TYPES_COLUMNS {
            assert_same("all_types", &key, col, &mine[*col], &row[*col]);
        }
    }
    // The primary-key change moved row 2 to 20; the re-inserted 7 holds its second version.
    assert!(!replayed.contains_key("2"));
    assert_eq!(replayed["7"]["t_varchar"], "second");
    assert_eq!(replayed["1"]["t_varchar"], "héllo wörld ✓ 𝄞");

    for (table, cols) in [
        (
            "latin",
            vec![("id", "id"), ("name", "name"), ("note", "note")],
        ),
        ("truncated", vec![("id", "id"), ("v", "v")]),
        ("new_name", vec![("id", "id"), ("v", "v")]),
    ] {
        let selected = select_json(db, table, &cols, "id");
        let replayed: Vec<&Value> = state[table].values().collect();
        assert_eq!(replayed.len(), selected.len(), "{table}");
        for (r, s) in replayed.iter().zip(&selected) {
            assert_eq!(*r, s, "{table}");
        }
    }
    let selected = select_json(db, "no_pk", &[("a", "a"), ("b", "b")], "a, b");
    folded.no_pk_rows.sort_by_key(|r| r.to_string());
    assert_eq!(folded.no_pk_rows, selected);
    assert_eq!(state["latin"]["1"]["note"], "Grüße, €uro");
}

#[test]
fn replayed_mariadb_binlog_equals_select_for_every_type() {
    let db = MariaDb::start();
    // The private server, not some other MariaDB on the machine.
    assert_eq!(db.sql("SELECT @@port").trim(), db.port.to_string());
    db.sql_file(&crate::fixture("../../sql/workload/all_types.sql"));
    let files = db.binlogs();
    let mut out = Vec::new();
    binlake::replay::replay_files(&files, &ReplayOptions::default(), &mut out).unwrap();
    let events: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut folded = fold(&events);
    assert_all_types_state_equals_select(&db, &mut folded);
}
