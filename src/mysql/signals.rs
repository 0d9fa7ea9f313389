//! Requests to a running source: `binlake snapshot` asks it to snapshot a table again, or a
//! slice of it (`--where`), for backfills and repairs. The request travels as a row in the
//! signal table on the server (Debezium's signalling table: `id`, `type`, `data`), which the
//! source meets in its own binlog stream, in order with the changes; or, where binlake may not
//! write to the server, as a file in the checkpoint's folder (`signals/<id>.json`), which the
//! source looks for between transactions.

use std::path::{Path, PathBuf};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde_json::{json, Value as Json};

use crate::event::{ChangeEvent, Op, TableId, Value};

/// Debezium's signal type for an ad-hoc snapshot.
pub const EXECUTE_SNAPSHOT: &str = "execute-snapshot";

/// One table to snapshot, and the rows to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    pub id: String,
    pub table: TableId,
    /// An SQL predicate: only the rows it selects.
    pub filter: Option<String>,
}

/// The `data` of an `execute-snapshot` signal, in Debezium's shape.
pub fn snapshot_data(table: &TableId, filter: Option<&str>) -> Json {
    let mut data = json!({ "data-collections": [table.to_string()], "type": "incremental" });
    if let Some(f) = filter {
        data["additional-conditions"] =
            json!([{ "data-collection": table.to_string(), "filter": f }]);
    }
    data
}

/// Reads a signal: the snapshots it asks for. Other signal types are ignored (empty).
pub fn parse(id: &str, kind: &str, data: &str) -> Result<Vec<SnapshotRequest>, String> {
    if kind != EXECUTE_SNAPSHOT {
        return Ok(Vec::new());
    }
    let data: Json =
        serde_json::from_str(data).map_err(|e| format!("signal {id}: `data` is not JSON: {e}"))?;
    let tables = data["data-collections"]
        .as_array()
        .ok_or_else(|| format!("signal {id}: `data` has no \"data-collections\" list"))?;
    let mut out = Vec::new();
    for t in tables {
        let name = t
            .as_str()
            .ok_or_else(|| format!("signal {id}: {t} is not a `db.table` name"))?;
        let (db, table) = name
            .split_once('.')
            .ok_or_else(|| format!("signal {id}: {name:?} is not `db.table`"))?;
        let filter = data["additional-conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["data-collection"].as_str() == Some(name))
            .and_then(|c| c["filter"].as_str())
            .map(str::to_string);
        out.push(SnapshotRequest {
            id: id.to_string(),
            table: TableId::new(db, table),
            filter,
        });
    }
    Ok(out)
}

/// A row inserted into the signal table, read as a signal.
pub fn from_change(event: &ChangeEvent<'_>) -> Option<Result<Vec<SnapshotRequest>, String>> {
    if event.op != Op::Create {
        return None;
    }
    let row = event.after.as_ref()?;
    let text = |name: &str| {
        let i = event.table.column_index(name)?;
        match row.get(i)?.as_ref()? {
            Value::Text(t) => Some(t.to_string()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    };
    let (id, kind, data) = (text("id")?, text("type")?, text("data")?);
    Some(parse(&id, &kind, &data))
}

/// The folder file signals go to, beside the checkpoint.
pub fn folder(checkpoint_dir: &Path) -> PathBuf {
    checkpoint_dir.join("signals")
}

/// Takes the file signals waiting in `folder` (each file is read once, then removed).
pub fn take_files(folder: &Path) -> Vec<Result<Vec<SnapshotRequest>, String>> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let read = std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| {
                let signal: Json = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
                parse(
                    signal["id"].as_str().unwrap_or_default(),
                    signal["type"].as_str().unwrap_or_default(),
                    &signal["data"].to_string(),
                )
            });
        let _ = std::fs::remove_file(&path);
        out.push(read);
    }
    out
}

/// Writes a file signal into `folder` (atomically: a temporary file renamed).
pub fn write_file(folder: &Path, id: &str, data: &Json) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(folder)?;
    let path = folder.join(format!("{id}.json"));
    let tmp = folder.join(format!("{id}.json.tmp"));
    let signal = json!({ "id": id, "type": EXECUTE_SNAPSHOT, "data": data });
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&signal).expect("serialisable"),
    )?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// Inserts a signal into `table` on the server (created when missing).
pub async fn insert(
    conn: &mut Conn,
    table: &TableId,
    id: &str,
    data: &Json,
) -> Result<(), mysql_async::Error> {
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {}",
        quote(&table.db)
    ))
    .await?;
    let name = format!("{}.{}", quote(&table.db), quote(&table.table));
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {name} (id VARCHAR(64) NOT NULL PRIMARY KEY, \
         type VARCHAR(32) NOT NULL, data TEXT NULL)"
    ))
    .await?;
    conn.exec_drop(
        format!("INSERT INTO {name} (id, type, data) VALUES (?, ?, ?)"),
        (id, EXECUTE_SNAPSHOT, data.to_string()),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debezium_snapshot_signals_name_tables_and_their_filters() {
        let t = TableId::new("shop", "orders");
        let data = snapshot_data(&t, Some("id > 100"));
        let requests = parse("s1", EXECUTE_SNAPSHOT, &data.to_string()).unwrap();
        assert_eq!(
            requests,
            [SnapshotRequest {
                id: "s1".into(),
                table: t.clone(),
                filter: Some("id > 100".into()),
            }]
        );
        let whole = parse("s2", EXECUTE_SNAPSHOT, &snapshot_data(&t, None).to_string()).unwrap();
        assert_eq!(whole[0].filter, None);
        assert!(parse("s3", "log", "{}").unwrap().is_empty());
        let e = parse(
            "s4",
            EXECUTE_SNAPSHOT,
            "{\"data-collections\": [\"orders\"]}",
        )
        .unwrap_err();
        assert_eq!(e, "signal s4: \"orders\" is not `db.table`");

        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "s5", &data).unwrap();
        let taken = take_files(dir.path());
        assert_eq!(taken.len(), 1);
        assert_eq!(
            taken[0].as_ref().unwrap()[0].filter.as_deref(),
            Some("id > 100")
        );
        assert!(
            take_files(dir.path()).is_empty(),
            "a file signal is taken once"
        );
    }
}
