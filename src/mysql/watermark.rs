//! The lock-free snapshot (`snapshot_positions = "watermark"`, MySQL's default): DBLog's
//! watermarks. The snapshot runs while the binlog streams. A reader task takes each chunk
//! (a primary-key range, `snapshot_chunk_rows` rows) between two watermarks it writes to
//! `watermark_table`; the stream, meeting those watermarks in the binlog, reconciles the chunk
//! with the changes between them and emits what is left as `r` events at the high watermark's
//! place in the binlog.
//!
//! For each chunk the reader:
//! 1. writes the low watermark (an autocommitted INSERT; it returns once committed),
//! 2. opens `START TRANSACTION WITH CONSISTENT SNAPSHOT`, SELECTs the chunk, commits,
//! 3. hands the rows to the stream (before the next step, so they are there when it looks),
//! 4. writes the high watermark.
//!
//! The stream, from the low watermark of a chunk to its high one, notes the key of every change
//! to the chunk's table (before and after images); at the high watermark it drops the chunk's
//! rows with a noted key and emits the others at the high watermark's position.
//!
//! Why nothing is lost or applied out of order. Let S be the moment the read's snapshot was
//! taken (step 2), and k a key of the chunk's range.
//! - Every transaction before the low watermark in the binlog is committed, and visible at S:
//!   the low watermark's commit returned before S, and servers commit in binlog order
//!   (`binlog_order_commits`, on by default in MySQL and MariaDB).
//! - No transaction after the high watermark in the binlog is visible at S: a visible one
//!   committed in the engine before S, and a server writes the binlog before the engine commit,
//!   so it sits before the high watermark, written after the read ended.
//! - So only transactions between the watermarks can be in doubt. If one changed k, k's row is
//!   dropped and the stream alone carries k: it delivers every change to k from where streaming
//!   started, each with the full row image, in binlog order, and the lake keeps the last.
//! - If none changed k, the row read is k's state at every point between the watermarks; it is
//!   emitted at the high watermark, after every change before it (whose effects it holds) and
//!   before every change after it, which the lake applies on top. A key absent from the read
//!   (deleted, or inserted later) gets its state from the stream the same way.
//! - The stream starts at the binlog position read before the first low watermark, so it holds
//!   every change after any chunk's read.
//!
//! Progress and crashes: a chunk counts as done once its rows are emitted, and the checkpoint,
//! written after the output made them durable, records it with the stream's position. A restart
//! streams from that position and reads the chunks after the last done one again with new
//! watermarks; watermarks of the earlier run are passed over. A chunk emitted twice is harmless:
//! the second copy is newer, and the lake keeps a key's newest change.
//!
//! The reader needs CREATE (once), INSERT and DELETE on `watermark_table`, which is never
//! published; no lock and no RELOAD. Each chunk's rows are deleted once its high watermark is
//! written (the stream needs only their INSERTs in the binlog), so the table stays empty.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::checkpoint::{KeyValue, SnapshotState};
use super::schema::SchemaTracker;
use super::snapshot::{chunk_query, chunk_row, prepare_session, read_chunk, snapshot_schema};
use super::SourceError;
use crate::event::{
    now_ms, ChangeEvent, Op, Position, Row, SourceInfo, TableId, TableSchema, Value,
};

/// One chunk, read between its watermarks.
pub struct Chunk {
    pub id: String,
    /// Its table's index in the snapshot state.
    pub table_index: usize,
    pub table: Arc<TableSchema>,
    pub rows: Vec<Row<'static>>,
    pub last_key: Option<Vec<KeyValue>>,
    /// The table's last chunk.
    pub done: bool,
}

/// Creates the watermark table (and its database) when missing.
pub async fn ensure_table(conn: &mut Conn, table: &TableId) -> Result<(), mysql_async::Error> {
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {}",
        quote(&table.db)
    ))
    .await?;
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (id VARCHAR(100) NOT NULL, kind VARCHAR(4) NOT NULL, \
         table_name VARCHAR(200) NOT NULL, written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (id, kind))",
        quote(&table.db),
        quote(&table.table)
    ))
    .await
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// Where the reader reports a failure the stream must stop on.
pub type Failure = Arc<Mutex<Option<String>>>;

/// The reader: every remaining chunk of every table in `state`, each between watermarks, into
/// `chunks`. A failure is put in `failure` (the stream stops on it).
#[allow(clippy::too_many_arguments)]
pub async fn read_chunks(
    mut conn: Conn,
    url: String,
    mut state: SnapshotState,
    schema: SchemaTracker,
    watermarks: TableId,
    chunk_rows: u64,
    run: String,
    chunks: tokio::sync::mpsc::Sender<Chunk>,
    failure: Failure,
) {
    let result = read_all(
        &mut conn,
        &url,
        &mut state,
        &schema,
        &watermarks,
        chunk_rows,
        &run,
        &chunks,
    )
    .await;
    if let Err(e) = result {
        tracing::error!("snapshot: {e}");
        *failure.lock().expect("failure slot") = Some(e.to_string());
        return;
    }
    let _ = conn.disconnect().await;
}

#[allow(clippy::too_many_arguments)]
async fn read_all(
    conn: &mut Conn,
    url: &str,
    state: &mut SnapshotState,
    schema: &SchemaTracker,
    watermarks: &TableId,
    chunk_rows: u64,
    run: &str,
    chunks: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<(), SourceError> {
    let server_err = |what: String| {
        move |e: mysql_async::Error| SourceError::Server {
            url: url.to_string(),
            what: what.clone(),
            reason: e.to_string(),
        }
    };
    prepare_session(conn, url).await?;
    let insert = format!(
        "INSERT INTO {}.{} (id, kind, table_name) VALUES (?, ?, ?)",
        quote(&watermarks.db),
        quote(&watermarks.table)
    );
    let delete = format!(
        "DELETE FROM {}.{} WHERE id = ?",
        quote(&watermarks.db),
        quote(&watermarks.table)
    );
    // Rows a crashed run left behind (their INSERTs are in the binlog already).
    conn.query_drop(format!(
        "DELETE FROM {}.{}",
        quote(&watermarks.db),
        quote(&watermarks.table)
    ))
    .await
    .map_err(server_err(format!(
        "removing old watermarks from {watermarks}"
    )))?;
    let mut sequence = 0u64;
    for t in 0..state.tables.len() {
        if state.tables[t].done {
            continue;
        }
        let id = state.tables[t].table.clone();
        let Some(declared) = schema.get(&id) else {
            continue;
        };
        let table = Arc::new(snapshot_schema(&id, declared));
        let mut last_key = state.tables[t].last_key.clone();
        loop {
            sequence += 1;
            let chunk_id = format!("{run}-{sequence}");
            let (sql, params) = chunk_query(&table, last_key.as_ref(), chunk_rows);
            conn.exec_drop(&insert, (&chunk_id, "low", id.to_string()))
                .await
                .map_err(server_err(format!(
                    "writing a low watermark to {watermarks}"
                )))?;
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await
                .map_err(server_err(
                    "START TRANSACTION WITH CONSISTENT SNAPSHOT".into(),
                ))?;
            let rows = read_chunk(conn, url, &id, sql, params).await?;
            let n = rows.len() as u64;
            let mut converted = Vec::with_capacity(rows.len());
            for row in rows {
                let (after, key) = chunk_row(&table, row)?;
                if key.is_some() {
                    last_key = key;
                }
                converted.push(after);
            }
            let done = table.primary_key.is_empty() || n < chunk_rows;
            let chunk = Chunk {
                id: chunk_id.clone(),
                table_index: t,
                table: Arc::clone(&table),
                rows: converted,
                last_key: last_key.clone(),
                done,
            };
            if chunks.send(chunk).await.is_err() {
                // The stream has stopped; so does the snapshot.
                return Ok(());
            }
            conn.exec_drop(&insert, (&chunk_id, "high", id.to_string()))
                .await
                .map_err(server_err(format!(
                    "writing a high watermark to {watermarks}"
                )))?;
            // The stream needs only the INSERTs in the binlog: the rows can go.
            conn.exec_drop(&delete, (&chunk_id,))
                .await
                .map_err(server_err(format!("removing watermarks from {watermarks}")))?;
            if done {
                break;
            }
        }
    }
    Ok(())
}

/// The key of `row` in `table` as comparable text (the whole row for a keyless table).
fn key_of(table: &TableSchema, row: &Row<'_>) -> String {
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

/// A chunk's window: from its low watermark in the stream to its high one.
struct Window {
    id: String,
    table: TableId,
    /// Keys of the chunk's table changed inside the window.
    changed: HashSet<String>,
}

/// What the stream makes of one change.
pub enum Observed {
    /// A change to publish.
    Change,
    /// A watermark (never published), and the snapshot rows to emit in its place.
    Watermark(Vec<ChangeEvent<'static>>),
}

/// The stream's side: watches for watermarks and changes inside windows, and turns each
/// chunk into the rows to emit.
pub struct Reconciler {
    chunks: tokio::sync::mpsc::Receiver<Chunk>,
    failure: Failure,
    watermarks: TableId,
    run: String,
    window: Option<Window>,
    /// A chunk taken from the channel before its high watermark came.
    early: Option<Chunk>,
    pub state: SnapshotState,
    server_id: u32,
    /// Snapshot rows emitted.
    pub rows: u64,
}

impl Reconciler {
    pub fn new(
        chunks: tokio::sync::mpsc::Receiver<Chunk>,
        failure: Failure,
        watermarks: TableId,
        run: String,
        mut state: SnapshotState,
        schema: &SchemaTracker,
        server_id: u32,
    ) -> Reconciler {
        // A table dropped before its snapshot has nothing to read.
        for t in &mut state.tables {
            if !t.done && schema.get(&t.table).is_none() {
                tracing::warn!(table = %t.table, "dropped before its snapshot; skipping it");
                t.done = true;
            }
        }
        Reconciler {
            chunks,
            failure,
            watermarks,
            run,
            window: None,
            early: None,
            state,
            server_id,
            rows: 0,
        }
    }

    /// Whether every table's snapshot has been emitted.
    pub fn finished(&self) -> bool {
        self.state.done()
    }

    /// The reader's failure, if it had one.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().expect("failure slot").clone()
    }

    /// Looks at one change the stream decoded.
    pub fn observe(&mut self, event: &ChangeEvent<'_>) -> Result<Observed, String> {
        if event.table.id == self.watermarks {
            return self.watermark(event);
        }
        if let Some(window) = &mut self.window {
            if event.table.id == window.table {
                for row in [&event.before, &event.after].into_iter().flatten() {
                    window.changed.insert(key_of(&event.table, row));
                }
            }
        }
        Ok(Observed::Change)
    }

    fn watermark(&mut self, event: &ChangeEvent<'_>) -> Result<Observed, String> {
        let text = |i: usize| match event.after.as_ref().and_then(|r| r.get(i)) {
            Some(Some(Value::Text(t))) => Some(t.to_string()),
            Some(Some(Value::Bytes(b))) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        let (Op::Create, Some(id), Some(kind), Some(table)) = (event.op, text(0), text(1), text(2))
        else {
            return Ok(Observed::Watermark(Vec::new()));
        };
        // Watermarks of an earlier run (before a restart) are passed over.
        if !id.starts_with(&format!("{}-", self.run)) {
            return Ok(Observed::Watermark(Vec::new()));
        }
        match kind.as_str() {
            "low" => {
                let (db, name) = table.split_once('.').unwrap_or((&table, ""));
                self.window = Some(Window {
                    id,
                    table: TableId::new(db, name),
                    changed: HashSet::new(),
                });
                Ok(Observed::Watermark(Vec::new()))
            }
            "high" => self.high(&id, &table, event),
            _ => Ok(Observed::Watermark(Vec::new())),
        }
    }

    fn high(&mut self, id: &str, table: &str, event: &ChangeEvent<'_>) -> Result<Observed, String> {
        let chunk = match self.early.take() {
            Some(c) if c.id == id => c,
            other => {
                self.early = other;
                loop {
                    match self.chunks.try_recv() {
                        Ok(c) if c.id == id => break c,
                        Ok(c) => self.early = Some(c),
                        Err(_) => {
                            return Err(format!(
                                "snapshot of {table}: the high watermark {id} (at {}) came before its chunk; {}",
                                event.position,
                                self.failure()
                                    .unwrap_or_else(|| "the reader stopped".into())
                            ))
                        }
                    }
                }
            }
        };
        let changed = match self.window.take() {
            Some(w) if w.id == id => w.changed,
            // The low watermark was before where this stream started: every key is in doubt.
            _ => {
                return Err(format!(
                    "snapshot of {table}: the high watermark {id} (at {}) came without its low watermark",
                    event.position
                ))
            }
        };
        let mut out = Vec::with_capacity(chunk.rows.len());
        for (i, row) in chunk.rows.into_iter().enumerate() {
            if changed.contains(&key_of(&chunk.table, &row)) {
                continue;
            }
            out.push(ChangeEvent {
                table: Arc::clone(&chunk.table),
                op: Op::Read,
                before: None,
                after: Some(row),
                position: Position {
                    file: event.position.file.clone(),
                    pos: event.position.pos,
                    // Row 0 is the watermark's own; the chunk's rows follow it.
                    row: i as u32 + 1,
                },
                source: SourceInfo {
                    server_id: self.server_id,
                    ts_ms: now_ms(),
                    gtid: None,
                    thread: None,
                    query: None,
                    snapshot: "true",
                },
                transaction: None,
            });
        }
        let progress = &mut self.state.tables[chunk.table_index];
        progress.rows += out.len() as u64;
        if chunk.last_key.is_some() {
            progress.last_key = chunk.last_key;
        }
        progress.done |= chunk.done;
        self.rows += out.len() as u64;
        let done = progress.done;
        tracing::info!(
            table = %progress.table,
            changed_in_window = changed.len(),
            "snapshot {}: {} rows{}",
            progress.table,
            progress.rows,
            if done { ", done" } else { "" }
        );
        if done && self.state.done() {
            tracing::info!(rows = self.rows, "snapshot done");
        }
        Ok(Observed::Watermark(out))
    }
}
