//! The initial snapshot: a consistent image of every included table, emitted as `r` events,
//! read in primary-key chunks without locking (MariaDB) and resumable at the last finished
//! chunk.
//!
//! Each chunk is read in its own `START TRANSACTION WITH CONSISTENT SNAPSHOT`, whose exact
//! binlog position MariaDB reports (`binlog_snapshot_file` / `binlog_snapshot_position`). Every
//! row of the chunk carries that position (minus one, so it sorts after every change the
//! snapshot includes and before every change it does not), and streaming starts at the first
//! chunk's position. A sink that never applies a change at or before the position it already
//! applied for a key (binlake's rule) ends exactly at the source's state. MySQL has no such
//! status variable: there each chunk's position is taken under a brief
//! `FLUSH TABLES WITH READ LOCK` (needs RELOAD), the documented fallback.

use std::sync::Arc;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as MyValue};

use super::checkpoint::{Checkpoint, CheckpointStore, KeyValue, SnapshotState, CHECKPOINT_VERSION};
use super::flavor::ServerInfo;
use super::schema::{DeclaredTable, SchemaTracker};
use super::{SourceError, SourceOutput};
use crate::event::{
    days_from_civil, now_ms, ChangeEvent, Column, ColumnType, DateTimeValue, Op, Position,
    SourceInfo, TableId, TableSchema, TimeValue, Value,
};

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// The schema events of a snapshot carry, from the declared table.
pub fn snapshot_schema(id: &TableId, declared: &DeclaredTable) -> TableSchema {
    let columns: Vec<Column> = declared
        .columns
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            column_type: c.column_type(),
            unsigned: c.unsigned,
            nullable: c.nullable,
            charset: c.charset,
            members: c.members.clone(),
            default: c.default.clone(),
            renamed_from: c.renamed_from.clone(),
        })
        .collect();
    let primary_key = declared
        .row_key()
        .iter()
        .filter_map(|k| columns.iter().position(|c| c.name.eq_ignore_ascii_case(k)))
        .collect();
    TableSchema {
        id: id.clone(),
        columns,
        primary_key,
        positional_names: false,
    }
}

/// Converts a value SELECTed over the binary protocol (session time zone UTC) into binlake's
/// value for the column, the same one the binlog decoder gives.
pub fn convert(col: &Column, v: MyValue) -> Result<Value<'static>, String> {
    use std::borrow::Cow;
    let bad = |v: &MyValue| {
        format!(
            "column `{}`: unexpected {v:?} for {:?}",
            col.name, col.column_type
        )
    };
    Ok(match v {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) => match col.column_type {
            ColumnType::Year => Value::Year(i as u16),
            ColumnType::Bit { .. } => Value::Bit(i as u64),
            _ if col.unsigned => Value::UInt(i as u64),
            _ => Value::Int(i),
        },
        MyValue::UInt(u) => match col.column_type {
            ColumnType::Year => Value::Year(u as u16),
            _ => Value::UInt(u),
        },
        MyValue::Float(f) => Value::Float(f),
        MyValue::Double(f) => match col.column_type {
            ColumnType::Float => Value::Float(f as f32),
            _ => Value::Double(f),
        },
        MyValue::Date(y, mo, d, h, mi, s, us) => {
            let dt = DateTimeValue {
                year: y,
                month: mo,
                day: d,
                hour: h,
                minute: mi,
                second: s,
                micros: us,
            };
            match col.column_type {
                ColumnType::Date => Value::Date(dt),
                ColumnType::Timestamp { .. } => {
                    if dt.is_zero_date() {
                        Value::Timestamp { secs: 0, micros: 0 }
                    } else {
                        let days = days_from_civil(y as i64, mo as i64, d as i64);
                        Value::Timestamp {
                            secs: days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + s as i64,
                            micros: us,
                        }
                    }
                }
                _ => Value::DateTime(dt),
            }
        }
        MyValue::Time(negative, days, h, m, s, us) => Value::Time(TimeValue {
            negative,
            hours: days * 24 + h as u32,
            minutes: m,
            seconds: s,
            micros: us,
        }),
        MyValue::Bytes(b) => match &col.column_type {
            ColumnType::Decimal { .. } => Value::DecimalText(Cow::Owned(
                String::from_utf8(b).map_err(|e| format!("column `{}`: {e}", col.name))?,
            )),
            ColumnType::Enum => {
                let label = String::from_utf8_lossy(&b);
                if label.is_empty() {
                    Value::Enum(0)
                } else {
                    let i = col
                        .members
                        .iter()
                        .position(|m| *m == label)
                        .ok_or_else(|| {
                            format!("column `{}`: {label:?} is not a member", col.name)
                        })?;
                    Value::Enum(i as u16 + 1)
                }
            }
            ColumnType::Set => {
                let text = String::from_utf8_lossy(&b);
                let mut mask = 0u64;
                for label in text.split(',').filter(|l| !l.is_empty()) {
                    let i = col.members.iter().position(|m| m == label).ok_or_else(|| {
                        format!("column `{}`: {label:?} is not a member", col.name)
                    })?;
                    mask |= 1 << i;
                }
                Value::Set(mask)
            }
            ColumnType::Bit { .. } => Value::Bit(b.iter().fold(0u64, |a, x| (a << 8) | *x as u64)),
            ColumnType::Year => Value::Year(
                String::from_utf8_lossy(&b)
                    .parse()
                    .map_err(|_| bad(&MyValue::Bytes(b.clone())))?,
            ),
            ColumnType::Json => {
                Value::JsonText(Cow::Owned(String::from_utf8_lossy(&b).into_owned()))
            }
            ColumnType::Geometry => Value::Geometry(Cow::Owned(b)),
            ColumnType::Vector => Value::Vector(Cow::Owned(b)),
            _ if col.is_binary() => Value::Bytes(Cow::Owned(b)),
            _ => Value::Text(Cow::Owned(match String::from_utf8(b) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            })),
        },
    })
}

/// The SELECT of the chunk after `last_key` (the whole table when it has no primary key), in
/// primary-key order: `(k1 > ?) OR (k1 = ? AND k2 > ?) ...`, and its parameters; with
/// `filter`, only the rows that SQL predicate selects.
pub fn chunk_query(
    table: &TableSchema,
    last_key: Option<&Vec<KeyValue>>,
    chunk_rows: u64,
    filter: Option<&str>,
) -> (String, Vec<MyValue>) {
    let columns: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
    let keys: Vec<String> = table
        .primary_key
        .iter()
        .map(|&i| quote(&table.columns[i].name))
        .collect();
    let from = format!("{}.{}", quote(&table.id.db), quote(&table.id.table));
    let mut params: Vec<MyValue> = Vec::new();
    let mut sql = format!("SELECT {} FROM {from}", columns.join(", "));
    if let Some(last) = last_key {
        let mut ors = Vec::new();
        for n in 0..keys.len() {
            let mut ands = Vec::new();
            for (k, key) in keys.iter().enumerate().take(n) {
                ands.push(format!("{key} = ?"));
                params.push(MyValue::from(&last[k]));
            }
            ands.push(format!("{} > ?", keys[n]));
            params.push(MyValue::from(&last[n]));
            ors.push(format!("({})", ands.join(" AND ")));
        }
        sql.push_str(&format!(" WHERE ({})", ors.join(" OR ")));
    }
    if let Some(f) = filter {
        let glue = if last_key.is_some() { " AND" } else { " WHERE" };
        sql.push_str(&format!("{glue} ({f})"));
    }
    if !keys.is_empty() {
        sql.push_str(&format!(" ORDER BY {} LIMIT {chunk_rows}", keys.join(", ")));
    }
    (sql, params)
}

/// Readies a snapshot connection: values come back in UTC (as the binlog has TIMESTAMPs), and
/// each chunk reads one consistent snapshot.
pub async fn prepare_session(conn: &mut Conn, url: &str) -> Result<(), SourceError> {
    for statement in [
        "SET SESSION time_zone = '+00:00'",
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    ] {
        conn.query_drop(statement)
            .await
            .map_err(|e| SourceError::Server {
                url: url.to_string(),
                what: statement.into(),
                reason: e.to_string(),
            })?;
    }
    Ok(())
}

/// Runs a chunk's SELECT inside the consistent-snapshot transaction the caller opened, and
/// ends the transaction.
pub async fn read_chunk(
    conn: &mut Conn,
    url: &str,
    table: &TableId,
    sql: String,
    params: Vec<MyValue>,
) -> Result<Vec<mysql_async::Row>, SourceError> {
    let err = |what: String| {
        move |e: mysql_async::Error| SourceError::Server {
            url: url.to_string(),
            what,
            reason: e.to_string(),
        }
    };
    let rows = conn
        .exec(&sql, params)
        .await
        .map_err(err(format!("snapshot of {table}")))?;
    conn.query_drop("COMMIT")
        .await
        .map_err(err("COMMIT".into()))?;
    Ok(rows)
}

/// One SELECTed row as binlake's values, and its primary key as a checkpoint stores it.
pub fn chunk_row(
    table: &TableSchema,
    row: mysql_async::Row,
) -> Result<(crate::event::Row<'static>, Option<Vec<KeyValue>>), SourceError> {
    let values = row.unwrap();
    let key = (!table.primary_key.is_empty()).then(|| {
        table
            .primary_key
            .iter()
            .map(|&i| KeyValue::from(&values[i]))
            .collect::<Vec<_>>()
    });
    let mut after = Vec::with_capacity(values.len());
    for (col, v) in table.columns.iter().zip(values) {
        after.push(Some(convert(col, v).map_err(|e| {
            SourceError::Unsupported(format!("snapshot of {}: {e}", table.id))
        })?));
    }
    Ok((after, key))
}

/// Where a snapshot runs: the server connection and what it knows of it.
pub struct SnapshotTarget<'a> {
    pub conn: &'a mut Conn,
    /// The server URL without password, for messages.
    pub url: &'a str,
    pub info: &'a ServerInfo,
    pub server_id: u32,
    pub chunk_rows: u64,
}

/// Takes (or continues) the snapshot: emits rows to `output`, and after each chunk makes the
/// output durable and checkpoints the progress. Returns the number of rows emitted.
pub async fn run_snapshot(
    target: SnapshotTarget<'_>,
    schema: &SchemaTracker,
    state: &mut SnapshotState,
    output: &mut dyn SourceOutput,
    store: &CheckpointStore,
) -> Result<u64, SourceError> {
    let SnapshotTarget {
        conn,
        url,
        info,
        server_id,
        chunk_rows,
    } = target;
    let server_err = |what: String| {
        move |e: mysql_async::Error| SourceError::Server {
            url: url.to_string(),
            what: what.clone(),
            reason: e.to_string(),
        }
    };
    let emit = |event: &ChangeEvent<'_>, output: &mut dyn SourceOutput| {
        output.change(event).map_err(SourceError::Output)
    };
    let checkpoint =
        |state: &SnapshotState, output: &mut dyn SourceOutput| -> Result<(), SourceError> {
            output.make_durable().map_err(SourceError::Output)?;
            let (file, pos) = state.start.clone().unwrap_or_default();
            store.save(&Checkpoint {
                version: CHECKPOINT_VERSION,
                file,
                pos,
                gtid: String::new(),
                schema: schema.to_entries(),
                snapshot_done: state.done(),
                snapshot: Some(state.clone()),
                written_at_ms: now_ms(),
                selection: None,
                requested: Vec::new(),
            })?;
            Ok(())
        };
    prepare_session(conn, url).await?;
    let mut total = 0u64;
    let started = Instant::now();
    for t in 0..state.tables.len() {
        if state.tables[t].done {
            continue;
        }
        let id = state.tables[t].table.clone();
        let Some(declared) = schema.get(&id) else {
            tracing::warn!(table = %id, "dropped before its snapshot; skipping it");
            state.tables[t].done = true;
            continue;
        };
        let table_schema = Arc::new(snapshot_schema(&id, declared));
        let estimate: u64 = conn
            .exec_first(
                "SELECT COALESCE(table_rows, 0) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                (&id.db, &id.table),
            )
            .await
            .map_err(server_err(format!("estimating the rows of {id}")))?
            .unwrap_or(0);
        loop {
            let (sql, params) = chunk_query(
                &table_schema,
                state.tables[t].last_key.as_ref(),
                chunk_rows,
                state.tables[t].filter.as_deref(),
            );
            let (file, pos, gtid) = consistent_snapshot(conn, info, url).await?;
            let rows = read_chunk(conn, url, &id, sql, params).await?;
            if state.start.is_none() {
                state.start = Some((file.clone(), pos));
                state.start_gtid = gtid;
            }
            let file: Arc<str> = Arc::from(file.as_str());
            let n = rows.len() as u64;
            let mut last_key = None;
            // A table with no key is a multiset in the lake, read whole in one chunk: a
            // TRUNCATE just before its rows makes silver exactly them, whatever it held (a
            // snapshot taken again after a lost checkpoint).
            let keyless = table_schema.primary_key.is_empty();
            if keyless {
                let truncate = ChangeEvent {
                    table: table_schema.clone(),
                    op: Op::Truncate,
                    before: None,
                    after: None,
                    position: Position {
                        file: file.clone(),
                        pos: pos.saturating_sub(1),
                        row: 0,
                    },
                    source: SourceInfo::snapshot_read(server_id),
                    transaction: None,
                };
                emit(&truncate, output)?;
            }
            for (index, row) in rows.into_iter().enumerate() {
                let (after, key) = chunk_row(&table_schema, row)?;
                if key.is_some() {
                    last_key = key;
                }
                let event = ChangeEvent {
                    table: table_schema.clone(),
                    op: Op::Read,
                    before: None,
                    after: Some(after),
                    position: Position {
                        file: file.clone(),
                        // Just before the snapshot point (see the module comment); the row
                        // index tells identical rows of a keyless table apart.
                        pos: pos.saturating_sub(1),
                        row: index as u32 + u32::from(keyless),
                    },
                    source: SourceInfo::snapshot_read(server_id),
                    transaction: None,
                };
                emit(&event, output)?;
            }
            total += n;
            let p = &mut state.tables[t];
            p.rows += n;
            if last_key.is_some() {
                p.last_key = last_key;
            }
            if table_schema.primary_key.is_empty() || n < chunk_rows {
                p.done = true;
            }
            let rate = total as f64 / started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                table = %id,
                "snapshot {id}: {} of about {} rows{} ({:.0} rows/s overall)",
                p.rows,
                estimate.max(p.rows),
                if p.done { ", done" } else { "" },
                rate
            );
            checkpoint(state, output)?;
            if state.tables[t].done {
                break;
            }
        }
    }
    Ok(total)
}

/// An error of the statement `what` on the server at `url`.
fn server_err(url: &str, what: &str) -> impl Fn(mysql_async::Error) -> SourceError {
    let (url, what) = (url.to_string(), what.to_string());
    move |e| SourceError::Server {
        url: url.clone(),
        what: what.clone(),
        reason: e.to_string(),
    }
}

/// MariaDB: starts a consistent-snapshot transaction and returns the binlog position it
/// corresponds to (every transaction before it visible, none after), which MariaDB reports
/// without a lock.
pub async fn mariadb_snapshot_position(
    conn: &mut Conn,
    url: &str,
) -> Result<(String, u64), SourceError> {
    let err = |what: &str| server_err(url, what);
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        .await
        .map_err(err("START TRANSACTION WITH CONSISTENT SNAPSHOT"))?;
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(err("SHOW STATUS LIKE 'binlog_snapshot_%'"))?;
    let get = |name: &str| {
        rows.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let file = get("binlog_snapshot_file").unwrap_or_default();
    let pos = get("binlog_snapshot_position")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    if file.is_empty() {
        return Err(SourceError::Server {
            url: url.to_string(),
            what: "reading binlog_snapshot_file".into(),
            reason: "the server reports no binlog position (is log_bin on?)".into(),
        });
    }
    Ok((file, pos))
}

/// Starts a consistent-snapshot transaction and returns its binlog position (and, on MySQL,
/// the executed GTID set there).
async fn consistent_snapshot(
    conn: &mut Conn,
    info: &ServerInfo,
    url: &str,
) -> Result<(String, u64, String), SourceError> {
    let err = |what: &str| server_err(url, what);
    if info.has_snapshot_position() {
        let (file, pos) = mariadb_snapshot_position(conn, url).await?;
        Ok((file, pos, String::new()))
    } else {
        conn.query_drop("FLUSH TABLES WITH READ LOCK")
            .await
            .map_err(err(
                "FLUSH TABLES WITH READ LOCK (the MySQL snapshot needs RELOAD)",
            ))?;
        let result = async {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await?;
            let row: Option<mysql_async::Row> =
                conn.query_first(info.binlog_status_statement()).await?;
            Ok::<_, mysql_async::Error>(row)
        }
        .await;
        conn.query_drop("UNLOCK TABLES")
            .await
            .map_err(err("UNLOCK TABLES"))?;
        let row =
            result
                .map_err(err("consistent snapshot"))?
                .ok_or_else(|| SourceError::Server {
                    url: url.to_string(),
                    what: info.binlog_status_statement().into(),
                    reason: "the binary log is off".into(),
                })?;
        let file: String = row.get(0).unwrap_or_default();
        let pos: u64 = row.get(1).unwrap_or_default();
        let gtid: String = row
            .get::<Option<String>, _>(4)
            .flatten()
            .unwrap_or_default();
        Ok((file, pos, gtid.replace('\n', "")))
    }
}
