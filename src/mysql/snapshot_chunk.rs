//! A chunk of the lock-free snapshots ([`super::watermark`], [`super::read_only`]): the rows a
//! reader task SELECTed in one consistent read, what the stream needs to place them, and the
//! key a chunk's rows are reconciled with the stream's changes by.

use std::sync::{Arc, Mutex};

use mysql_async::Conn;

use super::checkpoint::KeyValue;
use super::read_only::Visibility;
use super::snapshot::{chunk_query, chunk_row, read_chunk};
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
    id: String,
) -> Result<Chunk, SourceError> {
    let (sql, params) = chunk_query(table, last_key.as_ref(), chunk_rows);
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
