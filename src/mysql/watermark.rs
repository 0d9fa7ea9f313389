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
//!
//! The stream's side is [`super::reconcile`]; a server the reader may not write to takes
//! [`super::read_only`] instead.

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::checkpoint::SnapshotState;
use super::schema::SchemaTracker;
use super::snapshot::prepare_session;
use super::snapshot_chunk::{finish_reader, read_in_snapshot, tables_to_read, Chunk, Failure};
use super::SourceError;
use crate::event::TableId;

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
    finish_reader(conn, result, &failure).await;
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
    for (t, table, mut last_key) in tables_to_read(state, schema) {
        let id = table.id.clone();
        loop {
            sequence += 1;
            let chunk_id = format!("{run}-{sequence}");
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
            let chunk = read_in_snapshot(
                conn,
                url,
                &table,
                t,
                last_key.take(),
                chunk_rows,
                state.tables[t].filter.as_deref(),
                chunk_id.clone(),
            )
            .await?;
            last_key = chunk.last_key.clone();
            let done = chunk.done;
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
