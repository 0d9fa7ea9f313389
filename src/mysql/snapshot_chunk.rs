//! A chunk of the lock-free snapshots ([`super::watermark`], [`super::read_only`]): the rows a
//! reader task SELECTed in one consistent read, what the stream needs to place them, and the
//! key a chunk's rows are reconciled with the stream's changes by, and, read-only, which
//! transactions its read saw.

use std::sync::{Arc, Mutex};

use mysql_async::Conn;

use super::checkpoint::{KeyValue, SnapshotState};
use super::gtid::GtidSet;
use super::schema::SchemaTracker;
use super::snapshot::{chunk_query, chunk_row, read_chunk, snapshot_schema};
use super::SourceError;
use crate::event::{Row, TableSchema, Value};

/// One chunk, as a reader task hands it to the stream.
pub struct Chunk {
    pub id: String,
    /// Its table's index in the snapshot state.
    pub table_index: usize,
    pub table: Arc<TableSchema>,
    pub rows: Vec<Row<'static>>,
    pub last_key: Option<Vec<KeyValue>>,
    /// The table's last chunk.
    pub done: bool,
    /// The read-only snapshot: which transactions the read saw (the watermark snapshot finds
    /// that out from its watermarks in the stream instead).
    pub visible: Option<Visibility>,
}

/// Which transactions a chunk's read saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// MySQL: the executed GTID set read just before the read.
    Executed(GtidSet),
    /// MariaDB: every transaction before this binlog position.
    Before { file: String, pos: u64 },
}

/// The transaction that last changed a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    Gtid(Arc<str>),
    At(Arc<str>, u64),
}

impl Visibility {
    pub fn covers(&self, stamp: &Stamp) -> bool {
        match (self, stamp) {
            (Visibility::Executed(set), Stamp::Gtid(gtid)) => set.contains(gtid),
            (Visibility::Before { file, pos }, Stamp::At(f, p)) => {
                (f.as_ref(), *p) < (file.as_str(), *pos)
            }
            _ => false,
        }
    }

    /// Whether everything before the stream's starting point is visible.
    pub fn covers_start(&self, start: &StreamStart) -> bool {
        match (self, start) {
            (Visibility::Executed(set), StreamStart::Executed(start)) => set.contains_set(start),
            (Visibility::Before { file, pos }, StreamStart::At { file: f, pos: p }) => {
                (f.as_str(), *p) <= (file.as_str(), *pos)
            }
            _ => false,
        }
    }
}

/// Where the stream starts, as the reader must see it before its first chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStart {
    Executed(GtidSet),
    At { file: String, pos: u64 },
}

/// Where a reader reports a failure the stream must stop on.
pub type Failure = Arc<Mutex<Option<String>>>;

/// The key of `row` in `table` as comparable text (the whole row for a keyless table).
pub fn key_of(table: &TableSchema, row: &Row<'_>) -> String {
    let parts: Vec<String> = if table.primary_key.is_empty() {
        row.iter()
            .map(|v| v.as_ref().map_or("-".into(), Value::comparable))
            .collect()
    } else {
        table
            .primary_key
            .iter()
            .map(|&i| {
                row.get(i)
                    .and_then(|v| v.as_ref())
                    .map_or("-".into(), Value::comparable)
            })
            .collect()
    };
    parts.join("\u{1f}")
}

/// A reader's end: its failure goes to `failure` (the stream stops on it), or its connection
/// is closed.
pub async fn finish_reader(conn: Conn, result: Result<(), SourceError>, failure: &Failure) {
    match result {
        Err(e) => {
            tracing::error!("snapshot: {e}");
            *failure.lock().expect("failure slot") = Some(e.to_string());
        }
        Ok(()) => {
            let _ = conn.disconnect().await;
        }
    }
}

/// The tables of `state` a reader still has to read: (index in the state, the schema its rows
/// are read with, the key its next chunk starts after). A table dropped since is passed over.
pub fn tables_to_read(
    state: &SnapshotState,
    schema: &SchemaTracker,
) -> Vec<(usize, Arc<TableSchema>, Option<Vec<KeyValue>>)> {
    state
        .tables
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.done)
        .filter_map(|(i, t)| {
            let declared = schema.get(&t.table)?;
            Some((
                i,
                Arc::new(snapshot_schema(&t.table, declared)),
                t.last_key.clone(),
            ))
        })
        .collect()
}

/// SELECTs the chunk of `table` after `last_key` inside the consistent-snapshot transaction the
/// caller opened, ends the transaction, and converts the rows. `visible` is left for the caller.
#[allow(clippy::too_many_arguments)]
pub async fn read_in_snapshot(
    conn: &mut Conn,
    url: &str,
    table: &Arc<TableSchema>,
    table_index: usize,
    last_key: Option<Vec<KeyValue>>,
    chunk_rows: u64,
    filter: Option<&str>,
    id: String,
) -> Result<Chunk, SourceError> {
    let (sql, params) = chunk_query(table, last_key.as_ref(), chunk_rows, filter);
    let rows = read_chunk(conn, url, &table.id, sql, params).await?;
    let n = rows.len() as u64;
    let mut last_key = last_key;
    let mut converted = Vec::with_capacity(rows.len());
    for row in rows {
        let (after, key) = chunk_row(table, row)?;
        if key.is_some() {
            last_key = key;
        }
        converted.push(after);
    }
    Ok(Chunk {
        id,
        table_index,
        table: Arc::clone(table),
        rows: converted,
        last_key,
        done: table.primary_key.is_empty() || n < chunk_rows,
        visible: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn an_executed_set_covers_its_members_and_a_position_what_is_before_it() {
        let v = Visibility::Executed(GtidSet::parse(&format!("{A}:1-10")).unwrap());
        assert!(v.covers(&Stamp::Gtid(format!("{A}:10").into())));
        assert!(!v.covers(&Stamp::Gtid(format!("{A}:11").into())));
        assert!(
            !v.covers(&Stamp::At("b.000001".into(), 4)),
            "no GTID: never covered"
        );
        assert!(v.covers_start(&StreamStart::Executed(
            GtidSet::parse(&format!("{A}:1-9")).unwrap()
        )));
        assert!(!v.covers_start(&StreamStart::Executed(
            GtidSet::parse(&format!("{A}:1-11")).unwrap()
        )));
        let v = Visibility::Before {
            file: "b.000002".into(),
            pos: 500,
        };
        assert!(v.covers(&Stamp::At("b.000002".into(), 499)));
        assert!(v.covers(&Stamp::At("b.000001".into(), 90_000)));
        assert!(!v.covers(&Stamp::At("b.000002".into(), 500)));
        assert!(v.covers_start(&StreamStart::At {
            file: "b.000002".into(),
            pos: 500
        }));
        assert!(!v.covers_start(&StreamStart::At {
            file: "b.000003".into(),
            pos: 4
        }));
    }
}
